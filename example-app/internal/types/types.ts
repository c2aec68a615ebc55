/** Request and response types of the greet API (goctl generates these from greet.api). */

/** `GET /ping` answers `{"msg":"pong"}`. */
export interface PingResponse {
  msg: string;
}

/** JSON schema of PingResponse: Fastify serializes replies with it (fast-json-stringify). */
export const pingResponseSchema = {
  type: 'object',
  properties: { msg: { type: 'string' } },
  required: ['msg'],
} as const;
