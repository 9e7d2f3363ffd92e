// Helpers for the Raft transport's socket tests: a node = a RaftTransport plus what it received
// (rpc/test-helpers.ts: the same with the server's transport, Raft and RPC).
import type { Message } from '../core/types.ts';
import type { PeerHello, RaftTransportOptions } from './raft-transport.ts';
import { RaftTransport } from './raft-transport.ts';

/** What a test node's callbacks recorded. */
export interface Recorded {
  readonly received: Message[];
  readonly hellos: PeerHello[];
  readonly unreachable: string[];
  readonly snapshotStatus: { id: string; ok: boolean }[];
  readonly errors: Error[];
}

export interface TestNode extends Recorded {
  readonly id: string;
  readonly transport: RaftTransport;
  readonly address: string;
}

/** Shared id → address map, so nodes find each other. */
export type AddressBook = Map<string, string>;

/**
 * The options every test node's transport gets (listen on an ephemeral loopback port, find peers in
 * the book, record every callback), and the lists they record into; rpc/test-helpers.ts uses the
 * same for the server's transport.
 */
export function recordingOptions(id: string, book: AddressBook): { recorded: Recorded; options: Omit<RaftTransportOptions, 'onRequest'> } {
  const recorded: Recorded = { received: [], hellos: [], unreachable: [], snapshotStatus: [], errors: [] };
  return {
    recorded,
    options: {
      nodeId: id,
      listen: { host: '127.0.0.1', port: 0 },
      resolve: (peer) => book.get(peer),
      onMessage: (m) => recorded.received.push(m),
      onHello: (h) => recorded.hellos.push(h),
      helloMeta: () => ({ name: id }),
      onUnreachable: (peer) => recorded.unreachable.push(peer),
      onSnapshotStatus: (peer, ok) => recorded.snapshotStatus.push({ id: peer, ok }),
      onError: (err) => recorded.errors.push(err),
    },
  };
}

/** Starts a transport and enters its address in the book. */
export async function listenIn(book: AddressBook, id: string, transport: { start(): Promise<{ host: string; port: number }> }): Promise<string> {
  const bound = await transport.start();
  const address = `${bound.host}:${bound.port}`;
  book.set(id, address);
  return address;
}

export async function startNode(id: string, book: AddressBook, overrides: Partial<RaftTransportOptions> = {}): Promise<TestNode> {
  const { recorded, options } = recordingOptions(id, book);
  const transport = new RaftTransport({ ...options, ...overrides });
  return { id, transport, address: await listenIn(book, id, transport), ...recorded };
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
