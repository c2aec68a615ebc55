/** The service's routes (goctl's routes.go). */
import type { FastifyInstance } from 'fastify';
import type { ServiceContext } from '../svc/servicecontext';
import { pingResponseSchema } from '../types/types';
import { pingHandler } from './pinghandler';

export function registerHandlers(server: FastifyInstance, svcCtx: ServiceContext): void {
  server.route({
    method: 'GET',
    url: '/ping',
    schema: { response: { 200: pingResponseSchema } },
    handler: pingHandler(svcCtx),
  });
}
