// The client side of the server RPC: a request frame to a server's RPC address, answered by a
// response or an error response on the same connection (docs/adr/0006-server-rpc-transport.md).
// Requests travel over PeerLinks: a server shares its Raft transport's connections (one per peer
// address, as before the split: the wire is the same), a client agent dials its own (standalone()).
import type { PeerHello } from '../raft/transport/codec.ts';
import { DEFAULT_MAX_FRAME_BYTES, LENGTH_PREFIX_BYTES, encodeFrame } from '../raft/transport/codec.ts';
import { TransportError } from '../raft/transport/errors.ts';
import { PeerLinks, type PeerLink } from '../raft/transport/peer-links.ts';
import type { TcpTlsOptions } from '../raft/transport/sockets.ts';

export interface RequestOptions {
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface RequestResult {
  readonly body: Uint8Array;
  /** The hello of the server that answered. */
  readonly peer: PeerHello;
}

const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

interface PendingRequest {
  resolve(result: RequestResult): void;
  reject(err: Error): void;
}

/** The requests waiting on one link, by frame id. */
interface LinkRequests {
  readonly pending: Map<number, PendingRequest>;
  nextId: number;
}

export interface RpcClientOptions {
  /** The connections requests go over. */
  readonly links: PeerLinks;
  /** Largest request frame sent (the peer refuses larger ones). */
  readonly maxFrameBytes: number;
  /** Timeout of request() when the caller gives none (default 10 s). */
  readonly requestTimeoutMs?: number | undefined;
}

export interface StandaloneRpcClientOptions {
  /** The id this side sends in its hellos (an agent: "agent:<node>"). */
  readonly nodeId: string;
  readonly tls?: TcpTlsOptions | undefined;
  /** TCP connect plus TLS handshake plus the server's hello (default 5 s). */
  readonly dialTimeoutMs?: number;
  readonly maxFrameBytes?: number;
  readonly requestTimeoutMs?: number;
  /** Bad frames, TLS failures: for debug logging. */
  onError?(err: Error): void;
}

export class RpcClient {
  private readonly opts: RpcClientOptions;
  private readonly links: PeerLinks;
  private readonly byAddress = new Map<string, LinkRequests>();
  private readonly ownsLinks: boolean;

  constructor(opts: RpcClientOptions, ownsLinks = false) {
    this.opts = opts;
    this.links = opts.links;
    this.ownsLinks = ownsLinks;
    this.links.use({
      onFrame: (link, peer, frame) => {
        if (frame.kind !== 'response' && frame.kind !== 'errorResponse') return false;
        const pending = this.byAddress.get(link.address)?.pending.get(frame.id);
        if (!pending) return true; // timed out or aborted meanwhile
        if (frame.kind === 'response') pending.resolve({ body: frame.body, peer });
        else pending.reject(new TransportError('remote', frame.message, frame.code));
        return true;
      },
      onClosed: (link, connected, error) => this.failLink(link, connected, error),
    });
  }

  /** A client with connections of its own: no listener, no Raft (a client agent's). */
  static standalone(opts: StandaloneRpcClientOptions): RpcClient {
    const maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    const links = new PeerLinks({
      hello: () => ({ id: opts.nodeId, advertise: '', meta: {} }),
      tls: opts.tls,
      dialTimeoutMs: opts.dialTimeoutMs ?? 5000,
      maxFrameBytes,
      reportError: (err) => {
        if (links.isStopped) return;
        try {
          opts.onError?.(err);
        } catch {
          // A logging hook must not take the client down.
        }
      },
    });
    return new RpcClient({ links, maxFrameBytes, requestTimeoutMs: opts.requestTimeoutMs }, true);
  }

  /** Requests waiting for an answer from `address`. */
  pendingRequests(address: string): number {
    return this.byAddress.get(address)?.pending.size ?? 0;
  }

  /** Sends a request to the server at `address` and waits for its answer. */
  request(address: string, method: string, body: Uint8Array, opts: RequestOptions = {}): Promise<RequestResult> {
    const links = this.links;
    if (links.isStopped) return Promise.reject(new TransportError('stopped', 'the transport is stopped'));
    if (opts.signal?.aborted) return Promise.reject(new TransportError('aborted', 'the request was aborted'));
    let link: PeerLink;
    let frame: Buffer;
    try {
      link = links.link(address);
    } catch (err) {
      return Promise.reject(err);
    }
    if (!link.conn && links.inBackoff(link)) {
      return Promise.reject(new TransportError('unreachable', `${address} is unreachable (reconnecting)`));
    }
    const requests = this.requestsOf(address);
    const id = requests.nextId++;
    try {
      frame = encodeFrame({ kind: 'request', id, method, body });
    } catch (err) {
      return Promise.reject(err);
    }
    const maxFrameBytes = this.opts.maxFrameBytes;
    if (frame.length - LENGTH_PREFIX_BYTES > maxFrameBytes) {
      return Promise.reject(new RangeError(`request of ${frame.length} bytes exceeds maxFrameBytes (${maxFrameBytes})`));
    }
    const timeoutMs = opts.timeoutMs ?? this.opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const signal = opts.signal;
    return new Promise<RequestResult>((resolve, reject) => {
      const cleanup = (): void => {
        requests.pending.delete(id);
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const onAbort = (): void => {
        cleanup();
        reject(new TransportError('aborted', 'the request was aborted'));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new TransportError('timeout', `no answer from ${address} to '${method}' within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      signal?.addEventListener('abort', onAbort, { once: true });
      requests.pending.set(id, {
        resolve: (result) => {
          cleanup();
          resolve(result);
        },
        reject: (err) => {
          cleanup();
          reject(err);
        },
      });
      // Requests bypass the Raft queue bound: callers wait for them, which bounds them already.
      links.ensureDialled(link);
      links.write(link, frame);
      links.flush(link);
    });
  }

  /** Fails every pending request with 'stopped' (and closes the connections when they are the client's own). */
  stop(): void {
    if (this.ownsLinks) this.links.stop();
    for (const requests of this.byAddress.values()) {
      const pending = [...requests.pending.values()];
      requests.pending.clear();
      for (const r of pending) r.reject(new TransportError('stopped', 'the transport is stopped'));
    }
  }

  private requestsOf(address: string): LinkRequests {
    let requests = this.byAddress.get(address);
    if (requests === undefined) {
      requests = { pending: new Map(), nextId: 1 };
      this.byAddress.set(address, requests);
    }
    return requests;
  }

  /** The connection is gone: a request that may have left has an unknown outcome, else nothing was sent. */
  private failLink(link: PeerLink, connected: boolean, lastError: Error | null): void {
    const requests = this.byAddress.get(link.address);
    if (requests === undefined || requests.pending.size === 0) return;
    const pending = [...requests.pending.values()];
    requests.pending.clear();
    const reason = lastError ? `: ${lastError.message}` : '';
    for (const r of pending) {
      r.reject(connected
        ? new TransportError('connectionLost', `connection to ${link.address} lost${reason}; the request's outcome is unknown`)
        : new TransportError('unreachable', `cannot connect to ${link.address}${reason}`));
    }
  }
}
