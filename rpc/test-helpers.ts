// Helpers for the server transport's socket tests: a node = a TcpTransport (Raft and RPC) plus what
// it received; it answers the RPC method 'echo'. Message builders and waitUntil are the Raft
// transport's (raft/transport/test-helpers.ts).
import { listenIn, recordingOptions, type AddressBook, type Recorded } from '../raft/transport/test-helpers.ts';
import type { TcpTransportOptions } from './tcp-transport.ts';
import { TcpTransport } from './tcp-transport.ts';

export { app, heartbeat, waitUntil, type AddressBook } from '../raft/transport/test-helpers.ts';

export interface TestNode extends Recorded {
  readonly id: string;
  readonly transport: TcpTransport;
  readonly address: string;
}

export async function startNode(id: string, book: AddressBook, overrides: Partial<TcpTransportOptions> = {}): Promise<TestNode> {
  const { recorded, options } = recordingOptions(id, book);
  const transport = new TcpTransport({
    ...options,
    onRequest: async (_from, method, body) => {
      if (method === 'echo') return body;
      throw Object.assign(new Error(`no method ${method}`), { code: 'noSuchMethod' });
    },
    ...overrides,
  });
  return { id, transport, address: await listenIn(book, id, transport), ...recorded };
}
