// /v1/status: the leader's and the peers' server addresses, as Consul answers them (JSON strings).
import type { FastifyPluginAsync } from 'fastify';
import { sendJson } from '../../../http/reply.ts';
import { readQuery } from '../../../http/schemas.ts';
import type { ServerContext } from '../context.ts';

const ADDRESSES = { type: 'array', items: { type: 'string' } } as const;

export const statusRoutes: FastifyPluginAsync<{ ctx: ServerContext }> = async (app, { ctx }) => {
  // Both answer JSON ("10.0.0.1:8300", not bare text): clients decode them as JSON. They need no
  // leader and set no X-Consul-* headers (Consul's Status endpoints are not blocking reads).
  app.get('/v1/status/leader', { schema: { querystring: readQuery() } }, async (_request, reply) => {
    const leader = ctx.cluster.leaderId();
    // sendJson takes a string as JSON already: the address is quoted here.
    return sendJson(reply, JSON.stringify(leader ? ctx.cluster.rpcAddressOf(leader) : ''));
  });

  app.get('/v1/status/peers', { schema: { querystring: readQuery(), response: { 200: ADDRESSES } } }, async (_request, reply) => {
    return sendJson(reply, ctx.cluster.servers().filter((s) => s.voter).map((s) => s.rpcAddr));
  });
};
