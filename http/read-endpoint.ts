// The one pipeline of a read with Consul's query options, for every read endpoint that is not the
// KV hot path (KV GETs share serialised answers through the server's answer hub, which runs the
// same steps on its own):
//   parse ?index ?wait ?stale ?consistent -> consistency gate -> block until the data's index moves
//   past ?index (or the wait ends) -> X-Consul-Index / KnownLeader / LastContact / Effective-Consistency.
//
// Consistency modes, as Consul defines them:
//  - default: Consul serves it from the leader's state, which can be stale for a moment after the
//    leader is cut off. Konsul makes it linearizable instead (docs/adr/0007): any server answers
//    once a ReadIndex round confirmed its state is current. Rounds are batched, so this costs one
//    heartbeat per batch of reads, not per read;
//  - consistent: the same ReadIndex round;
//  - stale: any server answers from its own state; X-Consul-LastContact says how stale.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { abortOnClose, blockingQuery, type Indexed } from './blocking.ts';
import { parseQueryOptions, queryOf, type Consistency, type QueryOptions } from './query-options.ts';

/** What a process gives its read endpoints: where reads are gated and what the leader view is. */
export interface ReadPlatform {
  /** Aborted when the process shuts down: blocked queries answer at once. */
  readonly shutdownSignal: AbortSignal;
  /** Waits until this process may answer a default or consistent read (a ReadIndex round). */
  readBarrier(): Promise<void>;
  /** X-Consul-KnownLeader. */
  knownLeader(): boolean;
  /** X-Consul-LastContact: milliseconds since the leader was last heard from (0 on the leader). */
  lastContactMs(): number;
}

export interface ReadSpec<T> {
  /** Registers `wake` on the data this read answers; returns the cancel function. Without it the read never blocks. */
  readonly watch?: (wake: () => void) => () => void;
  /** Reads the data and its index (again after every wake). */
  readonly run: () => Indexed<T>;
}

/** Waits until this process may answer a read in the given mode, or fails with Consul's status. */
export async function readGate(platform: ReadPlatform, consistency: Consistency): Promise<void> {
  if (consistency === 'stale') return;
  await platform.readBarrier();
}

export function setQueryMeta(reply: FastifyReply, platform: ReadPlatform, index: number, consistency: Consistency): void {
  void reply.header('X-Consul-Index', String(Math.max(1, index)));
  void reply.header('X-Consul-KnownLeader', platform.knownLeader() ? 'true' : 'false');
  void reply.header('X-Consul-LastContact', String(Math.max(0, platform.lastContactMs())));
  void reply.header('X-Consul-Effective-Consistency', consistency === 'default' ? 'leader' : consistency);
}

/**
 * Runs one read with the request's query options and sets the X-Consul-* headers; answers the
 * data (the route serialises it). `options` are the request's, when the route parsed them already.
 */
export async function readEndpoint<T>(platform: ReadPlatform, request: FastifyRequest, reply: FastifyReply, spec: ReadSpec<T>, options?: QueryOptions): Promise<T> {
  const opts = options ?? parseQueryOptions(queryOf(request));
  await readGate(platform, opts.consistency);
  const { watch } = spec;
  let answer: Indexed<T>;
  if (watch === undefined || opts.minIndex === 0) {
    const first = spec.run();
    answer = first.index >= 1 ? first : { index: 1, value: first.value };
  } else {
    answer = await blockingQuery({ minIndex: opts.minIndex, waitMs: opts.waitMs, signal: abortOnClose(reply, platform.shutdownSignal), watch, run: spec.run });
  }
  setQueryMeta(reply, platform, answer.index, opts.consistency);
  return answer.value;
}
