// Helpers for the server transport's socket tests: a node = a TcpTransport (Raft and RPC) plus what
// it received; it answers the RPC method 'echo'. Message builders and waitUntil are the Raft
// transport's (raft/transport/test-helpers.ts).
import type { Message } from '../raft/core/types.ts';
import type { AddressBook } from '../raft/transport/test-helpers.ts';
import type { PeerHello, TcpTransportOptions } from './tcp-transport.ts';
import { TcpTransport } from './tcp-transport.ts';

export { app, heartbeat, waitUntil, type AddressBook } from '../raft/transport/test-helpers.ts';

export interface TestNode {
  readonly id: string;
  readonly transport: TcpTransport;
  readonly address: string;
  readonly received: Message[];
  readonly hellos: PeerHello[];
  readonly unreachable: string[];
  readonly snapshotStatus: { id: string; ok: boolean }[];
  readonly errors: Error[];
}

export async function startNode(
  id: string,
  book: AddressBook,
  overrides: Partial<TcpTransportOptions> = {},
): Promise<TestNode> {
  const received: Message[] = [];
  const hellos: PeerHello[] = [];
  const unreachable: string[] = [];
  const snapshotStatus: { id: string; ok: boolean }[] = [];
  const errors: Error[] = [];
  const transport = new TcpTransport({
    nodeId: id,
    listen: { host: '127.0.0.1', port: 0 },
    resolve: (peer) => book.get(peer),
    onMessage: (m) => received.push(m),
    onRequest: async (_from, method, body) => {
      if (method === 'echo') return body;
      throw Object.assign(new Error(`no method ${method}`), { code: 'noSuchMethod' });
    },
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
