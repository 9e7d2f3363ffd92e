// Outbound connections of the server transport: one per peer *address*, dialled lazily, each
// starting with this side's hello (docs/adr/0006-server-rpc-transport.md). What travels on them
// belongs to the protocols using the links (LinkUser): Raft messages and snapshots
// (raft-transport.ts, snapshot-stream.ts) and RPC requests (rpc/rpc-client.ts). Responses come back
// on the same connection.
//
// - writes go out at once, or wait in the link's queue for the connection or for 'drain';
// - a dial that fails or sees no hello puts the address in backoff (25 ms doubling to 1 s,
//   jittered); a connection that had a hello may be redialled at once (the peer may just have
//   restarted), and the backoff resets after every hello.
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import { FrameReader, decodeFrame, encodeFrame } from './codec.ts';
import type { Frame, PeerHello } from './codec.ts';
import { TransportCodecError } from './errors.ts';
import { dial, isQuietSocketError, own, parseAddress, toError, type TcpTlsOptions } from './sockets.ts';

const BACKOFF_INITIAL_MS = 25;
const BACKOFF_MAX_MS = 1000;

/** One outbound socket and what it learnt; replaced on every reconnect. */
export interface OutboundConn {
  readonly socket: net.Socket;
  readonly reader: FrameReader;
  /** TCP (and TLS) established: from then on a lost request's outcome is unknown. */
  connected: boolean;
  hello: PeerHello | null;
  /** socket.write() returned false: buffer in the link's queue until 'drain'. */
  blocked: boolean;
  dialTimer: NodeJS.Timeout | null;
}

/** Everything about one peer address. Links live as long as their PeerLinks. */
export interface PeerLink {
  readonly address: string;
  readonly host: string;
  readonly port: number;
  conn: OutboundConn | null;
  queue: Buffer[];
  queuedBytes: number;
  /** Peer ids routed to this address: who to report unreachable when it fails. */
  readonly ids: Set<string>;
  backoffMs: number;
  backoffUntil: number;
}

/** A protocol sending over the links. */
export interface LinkUser {
  /** A frame other than the hello arrived on the link's connection; true if this user takes it. */
  onFrame?(link: PeerLink, hello: PeerHello, frame: Frame): boolean;
  /** The link's queue went out and its socket takes more (after a write, a flush or a 'drain'). */
  onWritable?(link: PeerLink, conn: OutboundConn): void;
  /** The link's connection closed; `connected`: TCP (and TLS) had been established. */
  onClosed?(link: PeerLink, connected: boolean, error: Error | null): void;
}

export interface PeerLinksOptions {
  /** This side's hello, asked for on every new connection. */
  hello(): PeerHello;
  readonly tls?: TcpTlsOptions | undefined;
  /** A specific IP here is the source address of outbound connections. */
  readonly sourceHost?: string | undefined;
  /** TCP connect plus TLS handshake plus the peer's hello. */
  readonly dialTimeoutMs: number;
  readonly maxFrameBytes: number;
  /** A peer introduced itself (called in a microtask, never after stop()). */
  onHello?(hello: PeerHello): void;
  /** Bad frames, TLS failures: for debug logging; never a peer merely being down. */
  reportError(err: Error): void;
}

export class PeerLinks {
  private readonly opts: PeerLinksOptions;
  private readonly links = new Map<string, PeerLink>();
  private readonly users: LinkUser[] = [];
  private stopped = false;

  constructor(opts: PeerLinksOptions) {
    this.opts = opts;
  }

  /** Adds a protocol; users hear of frames, writability and closes in the order they were added. */
  use(user: LinkUser): void {
    this.users.push(user);
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  get(address: string): PeerLink | undefined {
    return this.links.get(address);
  }

  all(): IterableIterator<PeerLink> {
    return this.links.values();
  }

  /** The link to `address`, created on first use (throws TransportError('unreachable') for a bad address). */
  link(address: string): PeerLink {
    let link = this.links.get(address);
    if (link) return link;
    const { host, port } = parseAddress(address);
    link = { address, host, port, conn: null, queue: [], queuedBytes: 0, ids: new Set(), backoffMs: 0, backoffUntil: 0 };
    this.links.set(address, link);
    return link;
  }

  inBackoff(link: PeerLink): boolean {
    return link.backoffUntil > performance.now();
  }

  state(link: PeerLink): 'idle' | 'connecting' | 'connected' | 'backoff' {
    return link.conn ? (link.conn.hello ? 'connected' : 'connecting') : this.inBackoff(link) ? 'backoff' : 'idle';
  }

  /** Our queue plus what the socket holds. */
  bufferedBytes(link: PeerLink): number {
    return link.queuedBytes + (link.conn ? link.conn.socket.writableLength : 0);
  }

  /** Writes now, or buffers until 'drain' (or until the connection exists). */
  write(link: PeerLink, data: Buffer): void {
    const conn = link.conn;
    if (conn && !conn.blocked && link.queue.length === 0) {
      if (!conn.socket.write(data)) conn.blocked = true;
      return;
    }
    link.queue.push(data);
    link.queuedBytes += data.length;
  }

  /** Sends the queue if the socket takes it, then lets the users write more. */
  flush(link: PeerLink): void {
    const conn = link.conn;
    if (!conn || conn.blocked) return;
    this.flushQueue(link, conn);
    if (conn.blocked) return;
    for (const user of this.users) user.onWritable?.(link, conn);
  }

  /** Sends the queue as one write. */
  flushQueue(link: PeerLink, conn: OutboundConn): void {
    if (link.queue.length === 0) return;
    const data = link.queue.length === 1 ? link.queue[0]! : Buffer.concat(link.queue, link.queuedBytes);
    link.queue = [];
    link.queuedBytes = 0;
    if (!conn.socket.write(data)) conn.blocked = true;
  }

  /** Closes every connection and drops every queue; users do their own stopping. No callbacks after this. */
  stop(): void {
    this.stopped = true;
    for (const link of this.links.values()) {
      const conn = link.conn;
      link.conn = null;
      if (conn) {
        if (conn.dialTimer) clearTimeout(conn.dialTimer);
        conn.socket.destroy();
      }
      link.queue = [];
      link.queuedBytes = 0;
    }
  }

  ensureDialled(link: PeerLink): void {
    if (link.conn || this.stopped) return;
    const socket = dial(link.host, link.port, this.opts.sourceHost, this.opts.tls);
    const dialTimeoutMs = this.opts.dialTimeoutMs;
    const conn: OutboundConn = { socket, reader: new FrameReader(this.opts.maxFrameBytes), connected: false, hello: null, blocked: false, dialTimer: null };
    link.conn = conn;
    // Until the peer's hello arrives: a proxy that accepts with nothing behind it counts as down.
    conn.dialTimer = setTimeout(() => {
      conn.dialTimer = null;
      socket.destroy(Object.assign(new Error(`no hello from ${link.address} within ${dialTimeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, dialTimeoutMs);
    conn.dialTimer.unref();
    socket.once(this.opts.tls ? 'secureConnect' : 'connect', () => {
      conn.connected = true;
    });
    let lastError: Error | null = null;
    socket.on('error', (err: Error) => {
      lastError = err;
    });
    socket.on('drain', () => {
      if (link.conn !== conn) return;
      conn.blocked = false;
      this.flush(link);
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        conn.reader.push(chunk, (payload, owned) => this.onFrame(link, conn, owned ? payload : own(payload)));
      } catch (err) {
        socket.destroy(toError(err));
      }
    });
    socket.on('close', () => this.onClosed(link, conn, lastError));
    // The hello goes first; everything else queues behind it in the socket until it connects.
    if (!socket.write(encodeFrame({ kind: 'hello', hello: this.opts.hello() }))) conn.blocked = true;
  }

  private onFrame(link: PeerLink, conn: OutboundConn, payload: Buffer): void {
    if (link.conn !== conn) return;
    const frame = decodeFrame(payload);
    if (conn.hello === null) {
      if (frame.kind !== 'hello') throw new TransportCodecError(`${link.address} sent a ${frame.kind} frame before its hello`);
      conn.hello = frame.hello;
      if (conn.dialTimer) clearTimeout(conn.dialTimer);
      conn.dialTimer = null;
      // A peer that answered is alive: the next failure starts the backoff from the beginning.
      link.backoffMs = 0;
      const onHello = this.opts.onHello;
      if (onHello) this.callback(() => onHello(frame.hello));
      return;
    }
    for (const user of this.users) if (user.onFrame?.(link, conn.hello, frame)) return;
    throw new TransportCodecError(`${link.address} sent an unexpected ${frame.kind} frame on a response channel`);
  }

  private onClosed(link: PeerLink, conn: OutboundConn, lastError: Error | null): void {
    if (conn.dialTimer) clearTimeout(conn.dialTimer);
    conn.dialTimer = null;
    if (link.conn !== conn || this.stopped) return;
    link.conn = null;
    link.queue = [];
    link.queuedBytes = 0;
    // An address that never said hello (refused, timed out, proxy with nothing behind it) backs off;
    // one that had a working connection may be redialled at once (it may just have restarted).
    if (conn.hello === null) {
      link.backoffMs = link.backoffMs === 0 ? BACKOFF_INITIAL_MS : Math.min(link.backoffMs * 2, BACKOFF_MAX_MS);
      link.backoffUntil = performance.now() + link.backoffMs * (0.5 + Math.random() * 0.5);
    }
    for (const user of this.users) user.onClosed?.(link, conn.connected, lastError);
    if (lastError && !isQuietSocketError(lastError)) this.opts.reportError(lastError);
  }

  /** Never from inside a caller's send, never after stop(), never throwing into the links. */
  private callback(fn: () => void): void {
    queueMicrotask(() => {
      if (this.stopped) return;
      try {
        fn();
      } catch (err) {
        this.opts.reportError(toError(err));
      }
    });
  }
}
