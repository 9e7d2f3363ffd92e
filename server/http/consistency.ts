// Consistency modes for reads, as Consul defines them:
//  - default: served by the leader from its state (no quorum round trip);
//  - consistent: the leader confirms with a quorum first (ReadIndex), so the read is linearizable;
//  - stale: any server answers from its own state; X-Consul-LastContact says how stale.
import type { FastifyReply } from 'fastify';
import { HttpError, NO_LEADER_TEXT } from '../errors.ts';
import type { ServerContext } from './context.ts';
import type { Consistency } from './query-options.ts';

/** Waits until this server may answer a read in the given mode, or fails with Consul's status. */
export async function readGate(ctx: ServerContext, consistency: Consistency): Promise<void> {
  const { raft } = ctx;
  if (consistency === 'stale') return;
  if (consistency === 'consistent') {
    await raft.readIndex();
    return;
  }
  if (raft.isReadyLeader()) return;
  if (raft.isLeader()) {
    // Elected a moment ago: wait (briefly) until it has applied everything earlier leaders committed.
    await raft.readIndex();
    return;
  }
  if (raft.leader() === '') throw new HttpError(500, NO_LEADER_TEXT);
  // Reads on a follower go to the leader; until requests are forwarded, the client must ask it.
  throw new HttpError(500, `not the leader; the leader is ${raft.leader()}`);
}

export function setQueryMeta(reply: FastifyReply, ctx: ServerContext, index: number, consistency: Consistency): void {
  const { raft } = ctx;
  const lastContact = raft.lastContactMs();
  void reply.header('X-Consul-Index', String(Math.max(1, index)));
  void reply.header('X-Consul-KnownLeader', raft.leader() !== '' ? 'true' : 'false');
  void reply.header('X-Consul-LastContact', String(Math.max(0, lastContact)));
  void reply.header('X-Consul-Effective-Consistency', consistency === 'default' ? 'leader' : consistency);
}
