/** HTTP side of `GET /ping`: hands the request to the logic and returns its response. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { PingLogic } from '../logic/pinglogic';
import type { ServiceContext } from '../svc/servicecontext';
import type { PingResponse } from '../types/types';

export function pingHandler(svcCtx: ServiceContext) {
  return async function ping(_request: FastifyRequest, _reply: FastifyReply): Promise<PingResponse> {
    return new PingLogic(svcCtx).ping();
  };
}
