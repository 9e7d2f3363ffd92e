// /v1/status: the leader's and the peers' server addresses, as Consul answers them (JSON strings).
import type { FastifyPluginAsync } from 'fastify';
import type { ServerContext } from '../context.ts';

export const statusRoutes: FastifyPluginAsync<{ ctx: ServerContext }> = async (app, { ctx }) => {
  // Both answer JSON ("10.0.0.1:8300", not bare text): clients decode them as JSON.
  app.get('/v1/status/leader', async (_request, reply) => {
    const leader = ctx.cluster.leaderId();
    return reply.type('application/json').send(JSON.stringify(leader ? ctx.cluster.rpcAddressOf(leader) : ''));
  });

  app.get('/v1/status/peers', async (_request, reply) => {
    return reply.type('application/json').send(JSON.stringify(ctx.cluster.servers().filter((s) => s.voter).map((s) => s.rpcAddr)));
  });
};
