// The server's answers to /v1/agent/self and /v1/agent/members (http/routes/agent.ts writes them):
// a server describes itself by its RPC address and Raft state, and lists the servers of the Raft
// configuration as the LAN members, failed when the leader's autopilot has lost contact with one.
import type { AgentSelf } from '../../http/routes/agent.ts';
import { hostPortOf } from '../../lib/host-port.ts';
import { restoreSection, runtimeSection, snapshotSection } from '../runtime-stats.ts';
import type { ServerContext } from './context.ts';

export function serverAgentSelf(ctx: ServerContext): AgentSelf {
  const { config } = ctx;
  return {
    datacenter: config.datacenter,
    nodeName: config.nodeName,
    version: ctx.version,
    server: true,
    memberAddress: () => {
      const { host: addr, port } = hostPortOf(ctx.cluster.self().rpcAddr);
      return { addr, port };
    },
    stats: () => {
      const st = ctx.raft.status();
      const snapshot = snapshotSection(ctx.raft);
      return {
        raft: {
          state: st.role === 'leader' ? 'Leader' : st.role === 'follower' ? 'Follower' : 'Candidate',
          term: String(st.term),
          commit_index: String(st.commit),
          applied_index: String(st.applied),
          last_log_index: String(st.lastIndex),
          num_peers: String(Math.max(0, st.confState.voters.length - 1)),
        },
        // Konsul's own sections (server/runtime-stats.ts): process runtime with event-loop lag, the
        // Raft host's snapshot figures once it keeps them (RaftHost.snapshotStats()), and the
        // staged restore this server is building, if any.
        runtime: runtimeSection(ctx.eventLoopLag),
        ...(snapshot ? { snapshot } : {}),
        restore: restoreSection(ctx.fsm.restoreProgress()),
      };
    },
    members: async () => {
      // Serf's MemberStatus stands for the leader's view of Raft contact (other servers know none).
      const health = ctx.raft.isLeader() ? new Map(ctx.cluster.autopilotHealth().servers.map((s) => [s.id, s.healthy])) : new Map<string, boolean>();
      return ctx.cluster.servers().map((server) => {
        const { host: addr, port } = hostPortOf(server.rpcAddr);
        return { name: server.id, addr, port, server: true, failed: health.get(server.id) === false };
      });
    },
  };
}
