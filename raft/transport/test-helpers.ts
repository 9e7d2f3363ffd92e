// Helpers for the Raft transport's socket tests: a node = a RaftTransport plus what it received
// (rpc/test-helpers.ts: the same with the server's transport, Raft and RPC).
import type { Message } from '../core/types.ts';
import type { PeerHello, RaftTransportOptions } from './raft-transport.ts';
import { RaftTransport } from './raft-transport.ts';

export interface TestNode {
  readonly id: string;
  readonly transport: RaftTransport;
  readonly address: string;
  readonly received: Message[];
  readonly hellos: PeerHello[];
  readonly unreachable: string[];
  readonly snapshotStatus: { id: string; ok: boolean }[];
  readonly errors: Error[];
}

/** Shared id → address map, so nodes find each other. */
export type AddressBook = Map<string, string>;

export async function startNode(
  id: string,
  book: AddressBook,
  overrides: Partial<RaftTransportOptions> = {},
): Promise<TestNode> {
  const received: Message[] = [];
  const hellos: PeerHello[] = [];
  const unreachable: string[] = [];
  const snapshotStatus: { id: string; ok: boolean }[] = [];
  const errors: Error[] = [];
  const transport = new RaftTransport({
    nodeId: id,
    listen: { host: '127.0.0.1', port: 0 },
    resolve: (peer) => book.get(peer),
    onMessage: (m) => received.push(m),
    onHello: (h) => hellos.push(h),
    helloMeta: () => ({ name: id }),
    onUnreachable: (peer) => unreachable.push(peer),
    onSnapshotStatus: (peer, ok) => snapshotStatus.push({ id: peer, ok }),
    onError: (err) => errors.push(err),
    ...overrides,
  });
  const bound = await transport.start();
  const address = `${bound.host}:${bound.port}`;
  book.set(id, address);
  return { id, transport, address, received, hellos, unreachable, snapshotStatus, errors };
}

/** Polls `cond` every few milliseconds; rejects with `what` after `timeoutMs`. */
export async function waitUntil(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

export function heartbeat(from: string, to: string, commit = 1, context = ''): Message {
  return { type: 'heartbeat', from, to, term: 1, commit, context };
}

export function app(from: string, to: string, index: number, data: Uint8Array): Message {
  return { type: 'app', from, to, term: 1, index, logTerm: 1, commit: index, entries: [{ type: 'normal', index: index + 1, term: 1, data }] };
}
