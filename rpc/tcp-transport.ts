// The server's transport: Raft (raft/transport/raft-transport.ts) and the server RPC (rpc-client.ts,
// rpc-server.ts) over one set of TCP (optionally mutual TLS) connections, one per peer address, as
// docs/adr/0006-server-rpc-transport.md describes. Only the server needs both; a client agent uses
// RpcClient.standalone().
import type { Message } from '../raft/core/types.ts';
import type { HostTransport } from '../raft/host/raft-host.ts';
import { TransportError } from '../raft/transport/errors.ts';
import { RaftTransport, type LinkStatus, type RaftTransportOptions } from '../raft/transport/raft-transport.ts';
import { RpcClient, type RequestOptions, type RequestResult } from './rpc-client.ts';
import { answerRequest, type RequestHandler } from './rpc-server.ts';

export type { PeerHello } from '../raft/transport/codec.ts';
export { TransportCodecError, TransportError } from '../raft/transport/errors.ts';
export type { TransportErrorCode } from '../raft/transport/errors.ts';
export type { TcpTlsOptions } from '../raft/transport/sockets.ts';
export { formatAddress, parseAddress } from '../raft/transport/sockets.ts';
export type { RequestOptions, RequestResult } from './rpc-client.ts';

export interface TcpTransportOptions extends Omit<RaftTransportOptions, 'onRequestFrame'> {
  /** Answers an RPC request; a thrown error goes back as an error response (message and string `code`). */
  onRequest: RequestHandler;
  /** Timeout of request() when the caller gives none (default 10 s). */
  readonly requestTimeoutMs?: number;
}

/** What the transport knows about one peer address (for status pages and debugging). */
export interface PeerLinkStatus extends LinkStatus {
  readonly pendingRequests: number;
}

export class TcpTransport implements HostTransport {
  private readonly raft: RaftTransport;
  private readonly rpc: RpcClient;

  constructor(opts: TcpTransportOptions) {
    const { onRequest, requestTimeoutMs, ...raftOptions } = opts;
    const raft = new RaftTransport({ ...raftOptions, onRequestFrame: (from, request, reply) => answerRequest(onRequest, raft.maxFrameBytes, from, request, reply) });
    this.raft = raft;
    this.rpc = new RpcClient({ links: raft.links, maxFrameBytes: raft.maxFrameBytes, requestTimeoutMs });
  }

  /** Starts listening; resolves with the bound address. */
  start(): Promise<{ host: string; port: number }> {
    return this.raft.start();
  }

  boundAddress(): { host: string; port: number } {
    return this.raft.boundAddress();
  }

  /** HostTransport: queues each peer's messages as one write. Never blocks, never throws. */
  send(messages: readonly Message[]): void {
    this.raft.send(messages);
  }

  /** One entry per peer address ever dialled. */
  peerStatus(): PeerLinkStatus[] {
    return this.raft.peerStatus().map((status) => ({ ...status, pendingRequests: this.rpc.pendingRequests(status.address) }));
  }

  /** Sends a request to the server at `address` and waits for its answer. */
  request(address: string, method: string, body: Uint8Array, opts: RequestOptions = {}): Promise<RequestResult> {
    return this.rpc.request(address, method, body, opts);
  }

  /** request() to the address `resolve(id)` gives. */
  async requestPeer(id: string, method: string, body: Uint8Array, opts?: RequestOptions): Promise<Uint8Array> {
    const address = this.raft.addressOf(id);
    if (address === '') throw new TransportError('unreachable', `no known address for server '${id}'`);
    const result = this.rpc.request(address, method, body, opts);
    this.raft.noteRoute(address, id);
    return (await result).body;
  }

  /** Closes the listener and every connection, fails pending requests with 'stopped'. No callbacks after this. */
  stop(): Promise<void> {
    const stopping = this.raft.stop();
    this.rpc.stop();
    return stopping;
  }
}
