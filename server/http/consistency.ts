// Consistency modes for reads, as Consul defines them:
//  - default: Consul serves it from the leader's state, which can be stale for a moment after the
//    leader is cut off. Konsul makes it linearizable instead (docs/adr/0007): any server answers
//    once a ReadIndex round confirmed its state is current. Rounds are batched, so this costs one
//    heartbeat per batch of reads, not per read;
//  - consistent: the same ReadIndex round;
//  - stale: any server answers from its own state; X-Consul-LastContact says how stale.
import type { FastifyReply } from 'fastify';
import type { ServerContext } from './context.ts';
import type { Consistency } from './query-options.ts';

/** Waits until this server may answer a read in the given mode, or fails with Consul's status. */
export async function readGate(ctx: ServerContext, consistency: Consistency): Promise<void> {
  if (consistency === 'stale') return;
  await ctx.cluster.readBarrier();
}

export function setQueryMeta(reply: FastifyReply, ctx: ServerContext, index: number, consistency: Consistency): void {
  const { raft } = ctx;
  const lastContact = raft.lastContactMs();
  void reply.header('X-Consul-Index', String(Math.max(1, index)));
  void reply.header('X-Consul-KnownLeader', raft.leader() !== '' ? 'true' : 'false');
  void reply.header('X-Consul-LastContact', String(Math.max(0, lastContact)));
  void reply.header('X-Consul-Effective-Consistency', consistency === 'default' ? 'leader' : consistency);
}
