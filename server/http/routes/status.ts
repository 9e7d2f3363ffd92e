// /v1/status: the leader's and the peers' server addresses, as Consul answers them (JSON strings).
import type { FastifyPluginAsync } from 'fastify';
import type { ServerContext } from '../context.ts';

export const statusRoutes: FastifyPluginAsync<{ ctx: ServerContext }> = async (app, { ctx }) => {
  // Both answer JSON ("10.0.0.1:8300", not bare text): clients decode them as JSON.
  app.get('/v1/status/leader', async (_request, reply) => {
    const leader = ctx.raft.leader();
    return reply.type('application/json').send(JSON.stringify(leader ? ctx.serverAddress(leader) : ''));
  });

  app.get('/v1/status/peers', async (_request, reply) => {
    return reply.type('application/json').send(JSON.stringify(ctx.raft.status().confState.voters.map((id) => ctx.serverAddress(id))));
  });
};
