// /v1/agent/self: enough of Consul's shape for clients that read the datacenter and node name.
import type { FastifyPluginAsync } from 'fastify';
import type { ServerContext } from '../context.ts';

export const agentRoutes: FastifyPluginAsync<{ ctx: ServerContext }> = async (app, { ctx }) => {
  app.get('/v1/agent/self', async () => {
    const { config } = ctx;
    const st = ctx.raft.status();
    const rpc = ctx.cluster.self().rpcAddr;
    const [rpcHost, rpcPort] = splitHostPort(rpc);
    return {
      Config: {
        Datacenter: config.datacenter,
        NodeName: config.nodeName,
        NodeID: '',
        Server: true,
        Revision: 'konsul',
        Version: ctx.version,
      },
      Member: {
        Name: config.nodeName,
        Addr: rpcHost,
        Port: rpcPort,
        Tags: { role: 'consul', dc: config.datacenter, build: `${ctx.version}:konsul` },
        Status: 1,
      },
      Stats: {
        raft: {
          state: st.role === 'leader' ? 'Leader' : st.role === 'follower' ? 'Follower' : 'Candidate',
          term: String(st.term),
          commit_index: String(st.commit),
          applied_index: String(st.applied),
          last_log_index: String(st.lastIndex),
          num_peers: String(Math.max(0, st.confState.voters.length - 1)),
        },
      },
      Meta: {},
    };
  });
};

function splitHostPort(addr: string): [string, number] {
  const i = addr.lastIndexOf(':');
  return i < 0 ? [addr, 0] : [addr.slice(0, i), Number(addr.slice(i + 1))];
}
