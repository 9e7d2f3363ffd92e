// Reply helpers every route uses: Consul's JSON answers, the path tail, 405s.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { badRequest, KonsulError } from '../lib/errors.ts';

/**
 * Sends `body` as JSON (`application/json; charset=utf-8`, as fastify types it). A string is sent as already
 * serialised JSON; anything else goes through the route's response schema when it has one
 * (fast-json-stringify), else JSON.stringify.
 */
export function sendJson(reply: FastifyReply, body: unknown): FastifyReply {
  return reply.type('application/json').send(typeof body === 'string' ? body : reply.serialize(body));
}

/** The path parameter after a route's prefix (Consul takes everything, slashes included). */
export function tailParam(request: FastifyRequest, missing: string): string {
  const value = (request.params as { '*'?: string })['*'] ?? '';
  if (value === '') throw badRequest(missing);
  return value;
}

/** Consul's MethodNotAllowedError for a method a path does not take. */
export function methodNotAllowedError(method: string): KonsulError {
  return new KonsulError('methodNotAllowed', `method ${method} not allowed`);
}

/** 405 for the methods a path does not take. */
export function methodNotAllowed(app: FastifyInstance, url: string, allowed: readonly string[], methods: readonly string[] = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH']): void {
  app.route({
    method: methods.filter((m) => !allowed.includes(m)),
    url,
    handler: async (request) => {
      throw methodNotAllowedError(request.method);
    },
  });
}
