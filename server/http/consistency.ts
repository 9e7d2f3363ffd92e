// The server's side of the read pipeline (http/read-endpoint.ts): reads are gated by a ReadIndex
// round through the cluster, and the leader view comes from the Raft host.
import type { FastifyReply } from 'fastify';
import type { Consistency } from '../../http/query-options.ts';
import { readGate as gate, setQueryMeta as meta, type ReadPlatform } from '../../http/read-endpoint.ts';
import type { ServerContext } from './context.ts';

const platforms = new WeakMap<ServerContext, ReadPlatform>();

/** The ReadPlatform of a server context (one per context: route plugins take it once, at registration). */
export function serverReads(ctx: ServerContext): ReadPlatform {
  let platform = platforms.get(ctx);
  if (platform === undefined) {
    platform = {
      shutdownSignal: ctx.shutdownSignal,
      readBarrier: () => ctx.cluster.readBarrier(),
      knownLeader: () => ctx.raft.leader() !== '',
      lastContactMs: () => ctx.raft.lastContactMs(),
    };
    platforms.set(ctx, platform);
  }
  return platform;
}

/** Waits until this server may answer a read in the given mode, or fails with Consul's status. */
export function readGate(ctx: ServerContext, consistency: Consistency): Promise<void> {
  return gate(serverReads(ctx), consistency);
}

export function setQueryMeta(reply: FastifyReply, ctx: ServerContext, index: number, consistency: Consistency): void {
  meta(reply, serverReads(ctx), index, consistency);
}
