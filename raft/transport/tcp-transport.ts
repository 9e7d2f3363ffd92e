// Server-to-server transport over TCP (optionally mutual TLS): Raft messages one way, RPC requests
// with their responses on the same connection. See docs/adr/0006-server-rpc-transport.md.
//
// Shape (after etcd's rafthttp and hashicorp/raft's NetworkTransport):
// - one outbound connection per peer address, dialled lazily, carrying Raft messages and requests;
//   inbound connections only deliver frames (and carry responses back);
// - every send() becomes one socket write per peer (a whole Ready at once), and nothing waits for
//   replies between messages: Raft does its own flow control;
// - per-peer bounded buffering: a slow or dead peer loses its messages (Raft resends them) and is
//   reported unreachable, it never holds up the others or the Ready loop;
// - a failed dial puts the address in backoff (25 ms doubling to 1 s, jittered), during which
//   messages are dropped and requests fail fast;
// - a MsgSnap streams as begin + chunks + end, read from the storage's snapshot file piece by piece
//   (or from the message's data when it carries any), one chunk per read or per 'drain', with
//   queued Raft messages going out between chunks; a received snapshot is written to a file of the
//   storage (with backpressure on the socket) and delivered with empty data once synced.
import { isIP } from 'node:net';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import type { Message, MsgSnap } from '../core/types.ts';
import type { HostTransport } from '../host/raft-host.ts';
import type { SnapshotDataSink, SnapshotFiles } from '../host/snapshot-data.ts';
import {
  DEFAULT_MAX_FRAME_BYTES,
  FrameReader,
  LENGTH_PREFIX_BYTES,
  decodeFrame,
  encodeFrame,
  encodeMessages,
  encodeSnapChunkHeader,
  payloadHoldsBytes,
} from './codec.ts';
import type { Frame, PeerHello, SnapBeginFrame } from './codec.ts';
import { TransportCodecError, TransportError } from './errors.ts';

export type { PeerHello } from './codec.ts';
export { TransportCodecError, TransportError } from './errors.ts';
export type { TransportErrorCode } from './errors.ts';

export interface TcpTlsOptions {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** The only CA peers' certificates (client and server) are verified against. */
  readonly ca: string | Buffer;
}

export interface TcpTransportOptions {
  /** This server's Raft id; also sent in hellos. */
  readonly nodeId: string;
  /** Where to listen; port 0 picks an ephemeral port. A specific IP is also the source of outbound connections. */
  readonly listen: { readonly host: string; readonly port: number };
  /** "host:port" sent in hellos; defaults to the bound address. */
  readonly advertise?: string;
  /** Mutual TLS both ways: peers must present a certificate signed by `ca`. Host names are not checked. */
  readonly tls?: TcpTlsOptions;
  /** A peer's RPC address "host:port", looked up on every send (it may change over time). */
  resolve(id: string): string | undefined;
  /**
   * A Raft message for this node arrived. A MsgSnap comes once all of it arrived: with `snapshots`,
   * its data is in a synced file of the storage and `snapshot.data` is empty; without, in `data`.
   */
  onMessage(message: Message): void;
  /** Answers an RPC request; a thrown error goes back as an error response (message and string `code`). */
  onRequest(from: PeerHello, method: string, body: Uint8Array): Promise<Uint8Array>;
  /** A peer introduced itself (inbound and outbound connections). */
  onHello?(hello: PeerHello): void;
  /** JSON metadata for this node's hellos, asked for on every new connection. */
  helloMeta?(): Record<string, unknown>;
  /** A peer cannot be reached (dial failed, connection lost, queue full); rate-limited per peer. */
  onUnreachable?(id: string): void;
  /** A MsgSnap to `id` was fully written (true) or failed (false). */
  onSnapshotStatus?(id: string, ok: boolean): void;
  /** A connection was closed because of an error (bad frames, TLS rejection...). For debug logging only. */
  onError?(err: Error): void;
  /** Bytes buffered for one peer beyond which its Raft messages are dropped (default 16 MiB). */
  readonly maxQueueBytesPerPeer?: number;
  /** Size of the data chunks a snapshot is streamed in (default 1 MiB). */
  readonly snapshotChunkBytes?: number;
  /**
   * The storage's snapshot files: a MsgSnap with empty data is sent from the stored file of its
   * meta, and received snapshots are written to files instead of memory. Without it, snapshots
   * travel in `snapshot.data` and are reassembled in memory (tests, tools).
   */
  readonly snapshots?: SnapshotFiles;
  /** TCP connect plus TLS handshake limit; also the time an inbound connection has to say hello (default 5 s). */
  readonly dialTimeoutMs?: number;
  /** Largest frame accepted from a peer (default 64 MiB). */
  readonly maxFrameBytes?: number;
  /** Largest snapshot accepted from a peer (default 2 GiB). */
  readonly maxSnapshotBytes?: number;
  /** Timeout of request() when the caller gives none (default 10 s). */
  readonly requestTimeoutMs?: number;
}

export interface RequestOptions {
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** What the transport knows about one peer address (for status pages and debugging). */
export interface PeerLinkStatus {
  readonly address: string;
  /** Raft ids sent to through this address. */
  readonly ids: readonly string[];
  /** The id in the peer's hello on the current connection ('' if none yet). */
  readonly helloId: string;
  readonly state: 'idle' | 'connecting' | 'connected' | 'backoff';
  /** Current backoff step (0 after a peer answered); grows 25 ms → 1 s on repeated failures. */
  readonly backoffMs: number;
  readonly bufferedBytes: number;
  readonly pendingRequests: number;
}

export interface RequestResult {
  readonly body: Uint8Array;
  /** The hello of the server that answered. */
  readonly peer: PeerHello;
}

const DEFAULT_MAX_QUEUE_BYTES = 16 * 1024 * 1024;
const DEFAULT_SNAPSHOT_CHUNK_BYTES = 1024 * 1024;
const DEFAULT_DIAL_TIMEOUT_MS = 5000;
const DEFAULT_MAX_SNAPSHOT_BYTES = 2 * 1024 * 1024 * 1024;
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
const BACKOFF_INITIAL_MS = 25;
const BACKOFF_MAX_MS = 1000;
const UNREACHABLE_REPORT_INTERVAL_MS = 100;
const KEEPALIVE_DELAY_MS = 10_000;
/** Snapshots being received on one connection at once; more is a misbehaving peer. */
const MAX_INCOMING_SNAPSHOTS = 4;
/** Received snapshot bytes waiting for the disk beyond which the connection stops reading. */
const MAX_PENDING_SNAPSHOT_BYTES = 8 * 1024 * 1024;
const EMPTY = new Uint8Array(0);
/** Socket errors that only mean "the peer is down": reported through onUnreachable, not onError. */
const QUIET_SOCKET_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);

interface PendingRequest {
  resolve(result: RequestResult): void;
  reject(err: Error): void;
}

interface SnapJob {
  readonly message: MsgSnap;
  readonly stream: number;
  /** Its begin frame was written: the stream can only be abandoned by dropping the connection. */
  begun: boolean;
  settled: boolean;
}

/** The data of a snapshot being sent, piece by piece. */
interface SnapSource {
  readonly totalBytes: number;
  /** The next piece (at most the chunk size), or null after the last one. */
  next(): Promise<Uint8Array | null>;
  close(): Promise<void>;
}

/** The one task sending a link's snapshots over one connection. */
interface SnapPump {
  readonly conn: OutboundConn;
  /** Set while it waits for the socket to drain. */
  wake: (() => void) | null;
}

/** One outbound socket and what it learnt; replaced on every reconnect. */
interface OutboundConn {
  readonly socket: net.Socket;
  readonly reader: FrameReader;
  /** TCP (and TLS) established: from then on a lost request's outcome is unknown. */
  connected: boolean;
  hello: PeerHello | null;
  /** socket.write() returned false: buffer in `queue` until 'drain'. */
  blocked: boolean;
  dialTimer: NodeJS.Timeout | null;
}

/** Everything about one peer address. Links live as long as the transport. */
interface Link {
  readonly address: string;
  readonly host: string;
  readonly port: number;
  conn: OutboundConn | null;
  queue: Buffer[];
  queuedBytes: number;
  snapJobs: SnapJob[];
  /** Jobs whose end frame is written but not yet flushed. */
  readonly snapsFinishing: Set<SnapJob>;
  snapPump: SnapPump | null;
  readonly requests: Map<number, PendingRequest>;
  nextRequestId: number;
  nextStream: number;
  /** Raft ids routed to this address: who to report unreachable when it fails. */
  readonly ids: Set<string>;
  backoffMs: number;
  backoffUntil: number;
}

/** Where a snapshot being received goes: a file of the storage, or memory when there is no storage. */
type IncomingSink = { readonly kind: 'file'; readonly sink: SnapshotDataSink } | { readonly kind: 'memory'; readonly chunks: Uint8Array[] };

interface IncomingSnap {
  readonly begin: SnapBeginFrame;
  readonly sink: IncomingSink;
  received: number;
}

interface InboundConn {
  readonly socket: net.Socket;
  readonly reader: FrameReader;
  hello: PeerHello | null;
  helloTimer: NodeJS.Timeout | null;
  readonly snaps: Map<number, IncomingSnap>;
  /** Snapshot bytes handed to files and not yet written; the socket is paused while there are too many. */
  pendingSnapBytes: number;
  paused: boolean;
  closed: boolean;
}

/** Splits "host:port" and "[v6]:port". */
export function parseAddress(address: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(address) ?? /^([^:]+):(\d+)$/.exec(address);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) throw new TransportError('unreachable', `invalid address '${address}' (want host:port)`);
  return { host: m[1]!, port };
}

export function formatAddress(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

function isSpecificIp(host: string): boolean {
  return isIP(host) !== 0 && host !== '0.0.0.0' && host !== '::' && host !== '::0';
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

export class TcpTransport implements HostTransport {
  private readonly opts: TcpTransportOptions;
  private readonly maxQueueBytes: number;
  private readonly chunkBytes: number;
  private readonly dialTimeoutMs: number;
  private readonly maxFrameBytes: number;
  private readonly maxSnapshotBytes: number;
  private readonly requestTimeoutMs: number;
  private readonly links = new Map<string, Link>();
  private readonly inbound = new Set<InboundConn>();
  /** Raw sockets accepted by the server, including TLS handshakes still in progress. */
  private readonly accepted = new Set<net.Socket>();
  private readonly lastUnreachable = new Map<string, number>();
  private server: net.Server | null = null;
  private bound: { host: string; port: number } | null = null;
  private advertise = '';
  private stopped = false;
  private stopping: Promise<void> | null = null;

  constructor(opts: TcpTransportOptions) {
    this.opts = opts;
    this.maxQueueBytes = opts.maxQueueBytesPerPeer ?? DEFAULT_MAX_QUEUE_BYTES;
    this.dialTimeoutMs = opts.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    // A chunk frame adds a kind byte and a stream id to the data.
    this.chunkBytes = opts.snapshotChunkBytes ?? Math.min(DEFAULT_SNAPSHOT_CHUNK_BYTES, this.maxFrameBytes - 16);
    this.maxSnapshotBytes = opts.maxSnapshotBytes ?? DEFAULT_MAX_SNAPSHOT_BYTES;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    if (this.chunkBytes < 1 || this.chunkBytes + 16 > this.maxFrameBytes) throw new RangeError('snapshotChunkBytes must be positive and fit in maxFrameBytes');
  }

  /** Starts listening; resolves with the bound address. */
  async start(): Promise<{ host: string; port: number }> {
    if (this.stopped) throw new TransportError('stopped', 'the transport is stopped');
    if (this.server) throw new Error('TcpTransport already started');
    const t = this.opts.tls;
    const server = t
      ? tls.createServer({
        cert: t.cert,
        key: t.key,
        ca: t.ca,
        requestCert: true,
        // Checked in 'secureConnection' instead, before reading a byte, so the reason can be reported.
        rejectUnauthorized: false,
        handshakeTimeout: this.dialTimeoutMs,
      })
      : net.createServer();
    server.on('connection', (socket: net.Socket) => {
      this.accepted.add(socket);
      socket.once('close', () => this.accepted.delete(socket));
      // A TLS server handles errors on the raw socket itself; a plain one leaves it to us.
      if (!t) this.accept(socket);
    });
    if (t) {
      server.on('secureConnection', (socket: tls.TLSSocket) => {
        if (socket.authorized) {
          this.accept(socket);
          return;
        }
        this.reportError(new Error(`refused a TLS client from ${socket.remoteAddress}: ${String(socket.authorizationError)}`));
        socket.destroy();
      });
      server.on('tlsClientError', (err: Error) => this.reportError(err));
    }
    server.on('error', (err: Error) => this.reportError(err));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      server.once('error', onError);
      server.listen({ host: this.opts.listen.host, port: this.opts.listen.port }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    const addr = server.address() as net.AddressInfo;
    this.bound = { host: addr.address, port: addr.port };
    this.advertise = this.opts.advertise ?? formatAddress(addr.address, addr.port);
    return { ...this.bound };
  }

  /** One entry per peer address ever dialled. */
  peerStatus(): PeerLinkStatus[] {
    return [...this.links.values()].map((link) => ({
      address: link.address,
      ids: [...link.ids],
      helloId: link.conn?.hello?.id ?? '',
      state: link.conn ? (link.conn.hello ? 'connected' : 'connecting') : this.inBackoff(link) ? 'backoff' : 'idle',
      backoffMs: link.backoffMs,
      bufferedBytes: this.bufferedBytes(link),
      pendingRequests: link.requests.size,
    }));
  }

  boundAddress(): { host: string; port: number } {
    if (!this.bound) throw new Error('TcpTransport not started');
    return { ...this.bound };
  }

  /** Closes the listener and every connection, fails pending requests with 'stopped'. No callbacks after this. */
  stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    this.stopped = true;
    const stoppedErr = (): TransportError => new TransportError('stopped', 'the transport is stopped');
    for (const link of this.links.values()) {
      const conn = link.conn;
      link.conn = null;
      if (conn) {
        if (conn.dialTimer) clearTimeout(conn.dialTimer);
        conn.socket.destroy();
      }
      link.queue = [];
      link.queuedBytes = 0;
      link.snapJobs = [];
      link.snapsFinishing.clear();
      // The pump sees the transport stopped and closes its file.
      this.wakePump(link);
      const requests = [...link.requests.values()];
      link.requests.clear();
      for (const r of requests) r.reject(stoppedErr());
    }
    for (const conn of this.inbound) this.closeInbound(conn);
    for (const socket of this.accepted) socket.destroy();
    const server = this.server;
    this.stopping = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    return this.stopping;
  }

  // -------------------------------------------------------------------------------------------
  // Sending Raft messages
  // -------------------------------------------------------------------------------------------

  /** HostTransport: queues each peer's messages as one write. Never blocks, never throws. */
  send(messages: readonly Message[]): void {
    if (this.stopped || messages.length === 0) return;
    const first = messages[0]!.to;
    if (messages.every((m) => m.to === first)) {
      this.sendToSafely(first, messages);
      return;
    }
    const byPeer = new Map<string, Message[]>();
    for (const m of messages) {
      const list = byPeer.get(m.to);
      if (list) list.push(m);
      else byPeer.set(m.to, [m]);
    }
    for (const [to, list] of byPeer) this.sendToSafely(to, list);
  }

  private sendToSafely(to: string, messages: readonly Message[]): void {
    try {
      this.sendTo(to, messages);
    } catch (err) {
      // resolve() threw, an unencodable message (a bug upstream), a bad address: Raft copes with a drop.
      this.reportError(toError(err));
      this.dropMessages(to, messages);
    }
  }

  private sendTo(to: string, messages: readonly Message[]): void {
    const address = this.opts.resolve(to);
    if (address === undefined || address === '') {
      this.dropMessages(to, messages);
      return;
    }
    const link = this.linkFor(address);
    link.ids.add(to);
    if (!link.conn && this.inBackoff(link)) {
      this.dropMessages(to, messages);
      return;
    }
    let plain: readonly Message[] = messages;
    let snaps: MsgSnap[] = [];
    if (messages.some((m) => m.type === 'snap')) {
      plain = messages.filter((m) => m.type !== 'snap');
      snaps = messages.filter((m): m is MsgSnap => m.type === 'snap');
    }
    if (plain.length > 0) {
      const frames = encodeMessages(plain);
      if (frames.length > this.maxFrameBytes + LENGTH_PREFIX_BYTES) this.checkFrameSizes(frames);
      const buffered = this.bufferedBytes(link);
      // An empty queue takes any batch, so one huge append cannot be refused forever.
      if (buffered > 0 && buffered + frames.length > this.maxQueueBytes) this.dropMessages(to, plain);
      else this.write(link, frames);
    }
    for (const m of snaps) link.snapJobs.push({ message: m, stream: link.nextStream++, begun: false, settled: false });
    this.ensureDialled(link);
    this.flush(link);
  }

  private checkFrameSizes(frames: Buffer): void {
    for (let pos = 0; pos < frames.length;) {
      const size = frames.readUInt32BE(pos);
      if (size > this.maxFrameBytes) throw new RangeError(`a Raft message of ${size} bytes exceeds maxFrameBytes (${this.maxFrameBytes})`);
      pos += LENGTH_PREFIX_BYTES + size;
    }
  }

  private dropMessages(to: string, messages: readonly Message[]): void {
    this.reportUnreachable(to);
    for (const m of messages) if (m.type === 'snap') this.reportSnapshot(to, false);
  }

  private bufferedBytes(link: Link): number {
    return link.queuedBytes + (link.conn ? link.conn.socket.writableLength : 0);
  }

  /** Writes now, or buffers until 'drain' (or until the connection exists). */
  private write(link: Link, data: Buffer): void {
    const conn = link.conn;
    if (conn && !conn.blocked && link.queue.length === 0) {
      if (!conn.socket.write(data)) conn.blocked = true;
      return;
    }
    link.queue.push(data);
    link.queuedBytes += data.length;
  }

  private flush(link: Link): void {
    const conn = link.conn;
    if (!conn || conn.blocked) return;
    this.flushQueue(link, conn);
    if (!conn.blocked) this.kickSnapshots(link, conn);
  }

  private flushQueue(link: Link, conn: OutboundConn): void {
    if (link.queue.length === 0) return;
    const data = link.queue.length === 1 ? link.queue[0]! : Buffer.concat(link.queue, link.queuedBytes);
    link.queue = [];
    link.queuedBytes = 0;
    if (!conn.socket.write(data)) conn.blocked = true;
  }

  /** Starts the link's snapshot pump if there is work, or wakes it if it waits for the socket. */
  private kickSnapshots(link: Link, conn: OutboundConn): void {
    const pump = link.snapPump;
    if (pump) {
      if (pump.conn === conn) this.wakePump(link);
      return;
    }
    if (link.snapJobs.length === 0) return;
    const started: SnapPump = { conn, wake: null };
    link.snapPump = started;
    void this.runSnapshotPump(link, started);
  }

  private wakePump(link: Link): void {
    const wake = link.snapPump?.wake;
    if (!wake) return;
    link.snapPump!.wake = null;
    wake();
  }

  /** Sends the link's snapshots one after the other, as long as its connection lasts. */
  private async runSnapshotPump(link: Link, pump: SnapPump): Promise<void> {
    try {
      while (!this.stopped && link.conn === pump.conn && link.snapJobs.length > 0) {
        const job = link.snapJobs[0]!;
        let sent = false;
        try {
          sent = await this.streamSnapshot(link, pump, job);
        } catch (err) {
          // An unreadable or damaged file. A begun stream cannot be ended cleanly: dropping the
          // connection makes the receiver discard what it got.
          this.reportError(toError(err));
          if (job.begun && link.conn === pump.conn) pump.conn.socket.destroy();
        }
        if (link.snapJobs[0] === job) link.snapJobs.shift();
        if (!sent) this.settleSnapshot(job, false);
      }
    } finally {
      if (link.snapPump === pump) link.snapPump = null;
    }
    // Jobs queued for a newer connection while this one was ending.
    if (!this.stopped && link.conn && link.snapJobs.length > 0) this.flush(link);
  }

  /**
   * Streams one snapshot: begin, chunks as they are read, end. True once the end frame is written
   * (the job settles when it is flushed); false if the connection went away meanwhile.
   */
  private async streamSnapshot(link: Link, pump: SnapPump, job: SnapJob): Promise<boolean> {
    const conn = pump.conn;
    const alive = (): boolean => !this.stopped && link.conn === conn && !job.settled;
    const m = job.message;
    const source = await this.openSnapSource(m);
    try {
      if (!(await this.writable(link, pump)) || !alive()) return false;
      job.begun = true;
      const begin = encodeFrame({ kind: 'snapBegin', stream: job.stream, from: m.from, to: m.to, term: m.term, meta: m.snapshot.meta, totalBytes: source.totalBytes });
      if (!conn.socket.write(begin)) conn.blocked = true;
      let sent = 0;
      for (;;) {
        const piece = await source.next();
        if (!alive()) return false;
        if (piece === null) break;
        if (!(await this.writable(link, pump)) || !alive()) return false;
        const socket = conn.socket;
        socket.cork();
        socket.write(encodeSnapChunkHeader(job.stream, piece.length));
        const ok = socket.write(piece);
        socket.uncork();
        if (!ok) conn.blocked = true;
        sent += piece.length;
      }
      if (sent !== source.totalBytes) throw new Error(`snapshot ${m.snapshot.meta.index}: read ${sent} of its ${source.totalBytes} bytes`);
      if (!(await this.writable(link, pump)) || !alive()) return false;
      link.snapsFinishing.add(job);
      const ok = conn.socket.write(encodeFrame({ kind: 'snapEnd', stream: job.stream }), (err) => {
        link.snapsFinishing.delete(job);
        this.settleSnapshot(job, !err);
      });
      if (!ok) conn.blocked = true;
      return true;
    } finally {
      await source.close();
    }
  }

  /**
   * Resolves once the socket takes more, after the Raft messages queued for the peer went out (so
   * heartbeats are never stuck behind a snapshot). False if the connection went away.
   */
  private async writable(link: Link, pump: SnapPump): Promise<boolean> {
    const conn = pump.conn;
    for (;;) {
      if (this.stopped || link.conn !== conn) return false;
      if (!conn.blocked) this.flushQueue(link, conn);
      if (!conn.blocked) return true;
      await new Promise<void>((resolve) => (pump.wake = resolve));
    }
  }

  /** The snapshot's stored file when the message carries no data and there is a storage; else the data. */
  private async openSnapSource(m: MsgSnap): Promise<SnapSource> {
    const files = this.opts.snapshots;
    const chunkBytes = this.chunkBytes;
    if (files === undefined || m.snapshot.data.length > 0) {
      const data = m.snapshot.data;
      let offset = 0;
      return {
        totalBytes: data.length,
        next: async () => {
          if (offset >= data.length) return null;
          // One chunk per turn of the event loop, like a file read. Views: nothing is copied.
          await new Promise((resolve) => setImmediate(resolve));
          const end = Math.min(offset + chunkBytes, data.length);
          const piece = data.subarray(offset, end);
          offset = end;
          return piece;
        },
        close: async () => {},
      };
    }
    const reader = await files.openSnapshot(m.snapshot.meta);
    return { totalBytes: reader.dataBytes, next: () => reader.read(chunkBytes), close: () => reader.close() };
  }

  private settleSnapshot(job: SnapJob, ok: boolean): void {
    if (job.settled) return;
    job.settled = true;
    this.reportSnapshot(job.message.to, ok);
  }

  // -------------------------------------------------------------------------------------------
  // Requests
  // -------------------------------------------------------------------------------------------

  /** Sends a request to the server at `address` and waits for its answer. */
  request(address: string, method: string, body: Uint8Array, opts: RequestOptions = {}): Promise<RequestResult> {
    if (this.stopped) return Promise.reject(new TransportError('stopped', 'the transport is stopped'));
    if (opts.signal?.aborted) return Promise.reject(new TransportError('aborted', 'the request was aborted'));
    let link: Link;
    let frame: Buffer;
    try {
      link = this.linkFor(address);
    } catch (err) {
      return Promise.reject(err);
    }
    if (!link.conn && this.inBackoff(link)) {
      return Promise.reject(new TransportError('unreachable', `${address} is unreachable (reconnecting)`));
    }
    const id = link.nextRequestId++;
    try {
      frame = encodeFrame({ kind: 'request', id, method, body });
    } catch (err) {
      return Promise.reject(err);
    }
    if (frame.length - LENGTH_PREFIX_BYTES > this.maxFrameBytes) {
      return Promise.reject(new RangeError(`request of ${frame.length} bytes exceeds maxFrameBytes (${this.maxFrameBytes})`));
    }
    const timeoutMs = opts.timeoutMs ?? this.requestTimeoutMs;
    const signal = opts.signal;
    return new Promise<RequestResult>((resolve, reject) => {
      const cleanup = (): void => {
        link.requests.delete(id);
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
      link.requests.set(id, {
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
      this.ensureDialled(link);
      this.write(link, frame);
      this.flush(link);
    });
  }

  /** request() to the address `resolve(id)` gives. */
  async requestPeer(id: string, method: string, body: Uint8Array, opts?: RequestOptions): Promise<Uint8Array> {
    const address = this.opts.resolve(id);
    if (address === undefined || address === '') throw new TransportError('unreachable', `no known address for server '${id}'`);
    const result = this.request(address, method, body, opts);
    this.links.get(address)?.ids.add(id);
    return (await result).body;
  }

  // -------------------------------------------------------------------------------------------
  // Outbound connections
  // -------------------------------------------------------------------------------------------

  private linkFor(address: string): Link {
    let link = this.links.get(address);
    if (link) return link;
    const { host, port } = parseAddress(address);
    link = {
      address,
      host,
      port,
      conn: null,
      queue: [],
      queuedBytes: 0,
      snapJobs: [],
      snapsFinishing: new Set(),
      snapPump: null,
      requests: new Map(),
      nextRequestId: 1,
      nextStream: 1,
      ids: new Set(),
      backoffMs: 0,
      backoffUntil: 0,
    };
    this.links.set(address, link);
    return link;
  }

  private inBackoff(link: Link): boolean {
    return link.backoffUntil > performance.now();
  }

  private ensureDialled(link: Link): void {
    if (link.conn || this.stopped) return;
    const localHost = this.opts.listen.host;
    const options: net.TcpNetConnectOpts = { host: link.host, port: link.port };
    // Bind the source address to our listen IP: peers (and the test harness's fault proxy) can
    // then tell servers apart by source IP, as they would on separate hosts.
    const targetFamily = isIP(link.host);
    if (isSpecificIp(localHost) && (targetFamily === 0 || targetFamily === isIP(localHost))) {
      options.localAddress = localHost;
      if (targetFamily === 0) options.family = isIP(localHost);
    }
    const t = this.opts.tls;
    const socket = t
      // Only the CA chain is checked, not the host name: servers are addressed by IP and the
      // certificate says who may join the cluster, not where it lives.
      ? tls.connect({ ...options, cert: t.cert, key: t.key, ca: t.ca, rejectUnauthorized: true, checkServerIdentity: () => undefined })
      : net.connect(options);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_DELAY_MS);
    const conn: OutboundConn = { socket, reader: new FrameReader(this.maxFrameBytes), connected: false, hello: null, blocked: false, dialTimer: null };
    link.conn = conn;
    // Until the peer's hello arrives: a proxy that accepts with nothing behind it counts as down.
    conn.dialTimer = setTimeout(() => {
      conn.dialTimer = null;
      socket.destroy(Object.assign(new Error(`no hello from ${link.address} within ${this.dialTimeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, this.dialTimeoutMs);
    conn.dialTimer.unref();
    socket.once(t ? 'secureConnect' : 'connect', () => {
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
        conn.reader.push(chunk, (payload, owned) => this.onOutboundFrame(link, conn, owned ? payload : own(payload)));
      } catch (err) {
        socket.destroy(toError(err));
      }
    });
    socket.on('close', () => this.onOutboundClosed(link, conn, lastError));
    // The hello goes first; everything else queues behind it in the socket until it connects.
    if (!socket.write(encodeFrame({ kind: 'hello', hello: this.hello() }))) conn.blocked = true;
  }

  private onOutboundFrame(link: Link, conn: OutboundConn, payload: Buffer): void {
    if (link.conn !== conn) return;
    const frame = decodeFrame(payload);
    if (conn.hello === null) {
      if (frame.kind !== 'hello') throw new TransportCodecError(`${link.address} sent a ${frame.kind} frame before its hello`);
      conn.hello = frame.hello;
      if (conn.dialTimer) clearTimeout(conn.dialTimer);
      conn.dialTimer = null;
      // A peer that answered is alive: the next failure starts the backoff from the beginning.
      link.backoffMs = 0;
      this.callback(() => this.opts.onHello?.(frame.hello));
      return;
    }
    if (frame.kind === 'response' || frame.kind === 'errorResponse') {
      const pending = link.requests.get(frame.id);
      if (!pending) return; // timed out or aborted meanwhile
      if (frame.kind === 'response') pending.resolve({ body: frame.body, peer: conn.hello });
      else pending.reject(new TransportError('remote', frame.message, frame.code));
      return;
    }
    throw new TransportCodecError(`${link.address} sent an unexpected ${frame.kind} frame on a response channel`);
  }

  private onOutboundClosed(link: Link, conn: OutboundConn, lastError: Error | null): void {
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
    const requests = [...link.requests.values()];
    link.requests.clear();
    const reason = lastError ? `: ${lastError.message}` : '';
    for (const r of requests) {
      r.reject(conn.connected
        ? new TransportError('connectionLost', `connection to ${link.address} lost${reason}; the request's outcome is unknown`)
        : new TransportError('unreachable', `cannot connect to ${link.address}${reason}`));
    }
    const jobs = [...link.snapsFinishing, ...link.snapJobs];
    link.snapsFinishing.clear();
    link.snapJobs = [];
    for (const job of jobs) this.settleSnapshot(job, false);
    // The pump sees its connection gone and closes its file.
    this.wakePump(link);
    for (const id of link.ids) this.reportUnreachable(id);
    if (lastError && !QUIET_SOCKET_ERRORS.has((lastError as NodeJS.ErrnoException).code ?? '')) this.reportError(lastError);
  }

  private hello(): PeerHello {
    let meta: Record<string, unknown> = {};
    try {
      meta = this.opts.helloMeta?.() ?? {};
      JSON.stringify(meta); // throws now (cycles, BigInt) rather than inside a socket handler
    } catch (err) {
      this.reportError(toError(err));
      meta = {};
    }
    return { id: this.opts.nodeId, advertise: this.advertise, meta };
  }

  // -------------------------------------------------------------------------------------------
  // Inbound connections
  // -------------------------------------------------------------------------------------------

  private accept(socket: net.Socket): void {
    if (this.stopped) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_DELAY_MS);
    const conn: InboundConn = {
      socket,
      reader: new FrameReader(this.maxFrameBytes),
      hello: null,
      helloTimer: null,
      snaps: new Map(),
      pendingSnapBytes: 0,
      paused: false,
      closed: false,
    };
    this.inbound.add(conn);
    conn.helloTimer = setTimeout(() => {
      conn.helloTimer = null;
      this.failInbound(conn, new TransportCodecError(`${socket.remoteAddress} sent no hello within ${this.dialTimeoutMs} ms`));
    }, this.dialTimeoutMs);
    conn.helloTimer.unref();
    socket.on('error', (err: Error) => {
      if (!QUIET_SOCKET_ERRORS.has((err as NodeJS.ErrnoException).code ?? '')) this.reportError(err);
    });
    socket.on('close', () => this.closeInbound(conn));
    socket.on('data', (chunk: Buffer) => {
      try {
        conn.reader.push(chunk, (payload, owned) => this.onInboundFrame(conn, owned ? payload : own(payload)));
      } catch (err) {
        this.failInbound(conn, toError(err));
      }
    });
    socket.write(encodeFrame({ kind: 'hello', hello: this.hello() }));
  }

  private failInbound(conn: InboundConn, err: Error): void {
    if (conn.closed) return;
    this.reportError(err);
    this.closeInbound(conn);
  }

  private closeInbound(conn: InboundConn): void {
    if (conn.helloTimer) clearTimeout(conn.helloTimer);
    conn.helloTimer = null;
    // Snapshots cut off mid-stream: their files are removed.
    for (const snap of conn.snaps.values()) if (snap.sink.kind === 'file') void snap.sink.sink.abort();
    conn.snaps.clear();
    conn.closed = true;
    this.inbound.delete(conn);
    conn.socket.destroy();
  }

  private onInboundFrame(conn: InboundConn, payload: Buffer): void {
    if (conn.closed) return;
    const frame = decodeFrame(payload);
    const hello = conn.hello;
    if (hello === null) {
      if (frame.kind !== 'hello') throw new TransportCodecError(`${conn.socket.remoteAddress} sent a ${frame.kind} frame before its hello`);
      conn.hello = frame.hello;
      if (conn.helloTimer) clearTimeout(conn.helloTimer);
      conn.helloTimer = null;
      this.callback(() => this.opts.onHello?.(frame.hello));
      return;
    }
    switch (frame.kind) {
      case 'message':
        this.deliver(hello, frame.message);
        return;
      case 'request':
        this.answer(conn, hello, frame.id, frame.method, frame.body);
        return;
      case 'snapBegin': {
        if (conn.snaps.has(frame.stream) || conn.snaps.size >= MAX_INCOMING_SNAPSHOTS) throw new TransportCodecError(`unexpected snapshot stream ${frame.stream}`);
        if (frame.totalBytes > this.maxSnapshotBytes) throw new TransportCodecError(`snapshot of ${frame.totalBytes} bytes exceeds the ${this.maxSnapshotBytes}-byte limit`);
        const files = this.opts.snapshots;
        const sink: IncomingSink = files ? { kind: 'file', sink: files.receiveSnapshot(frame.meta, frame.totalBytes) } : { kind: 'memory', chunks: [] };
        conn.snaps.set(frame.stream, { begin: frame, sink, received: 0 });
        return;
      }
      case 'snapChunk': {
        const snap = conn.snaps.get(frame.stream);
        if (!snap) throw new TransportCodecError(`chunk for unknown snapshot stream ${frame.stream}`);
        snap.received += frame.data.length;
        if (snap.received > snap.begin.totalBytes) throw new TransportCodecError(`snapshot stream ${frame.stream} overran its ${snap.begin.totalBytes} bytes`);
        if (snap.sink.kind === 'memory') snap.sink.chunks.push(frame.data);
        else this.writeSnapChunk(conn, snap.sink.sink, frame.data);
        return;
      }
      case 'snapEnd': {
        const snap = conn.snaps.get(frame.stream);
        if (!snap) throw new TransportCodecError(`end of unknown snapshot stream ${frame.stream}`);
        const { begin, sink } = snap;
        if (snap.received !== begin.totalBytes) throw new TransportCodecError(`snapshot stream ${frame.stream} ended after ${snap.received} of ${begin.totalBytes} bytes`);
        conn.snaps.delete(frame.stream);
        const message = (data: Uint8Array): MsgSnap => ({ type: 'snap', from: begin.from, to: begin.to, term: begin.term, snapshot: { meta: begin.meta, data } });
        if (sink.kind === 'memory') {
          this.deliver(hello, message(sink.chunks.length === 1 ? sink.chunks[0]! : Buffer.concat(sink.chunks, snap.received)));
          return;
        }
        // Delivered once the file is synced; Raft copes with the messages that overtake it.
        sink.sink.finish().then(
          () => {
            if (!this.stopped) this.deliver(hello, message(EMPTY));
          },
          (err: unknown) => {
            void sink.sink.abort();
            this.reportError(new Error(`receiving snapshot ${begin.meta.index} from '${hello.id}': ${toError(err).message}`));
          },
        );
        return;
      }
      case 'hello':
      case 'response':
      case 'errorResponse':
        throw new TransportCodecError(`${hello.id} sent an unexpected ${frame.kind} frame`);
    }
  }

  /** Hands a chunk to the snapshot's file, pausing the socket while the disk is behind. */
  private writeSnapChunk(conn: InboundConn, sink: SnapshotDataSink, data: Uint8Array): void {
    conn.pendingSnapBytes += data.length;
    if (!conn.paused && conn.pendingSnapBytes > MAX_PENDING_SNAPSHOT_BYTES) {
      conn.paused = true;
      conn.socket.pause();
    }
    sink.write(data).then(
      () => {
        conn.pendingSnapBytes -= data.length;
        if (conn.paused && !conn.closed && conn.pendingSnapBytes <= MAX_PENDING_SNAPSHOT_BYTES / 2) {
          conn.paused = false;
          conn.socket.resume();
        }
      },
      // The sender can only learn of it by losing the connection; it then retries.
      (err: unknown) => this.failInbound(conn, new Error(`writing a received snapshot failed: ${toError(err).message}`)),
    );
  }

  private deliver(hello: PeerHello, m: Message): void {
    // A message routed to the wrong server (stale address) or claiming another sender is dropped:
    // Raft must only ever see messages meant for it from the peer that really sent them.
    if (m.to !== this.opts.nodeId || m.from !== hello.id) {
      this.reportError(new Error(`dropped a ${m.type} message from '${m.from}' to '${m.to}' received from '${hello.id}' at '${this.opts.nodeId}'`));
      return;
    }
    try {
      this.opts.onMessage(m);
    } catch (err) {
      this.reportError(toError(err));
    }
  }

  private answer(conn: InboundConn, hello: PeerHello, id: number, method: string, body: Uint8Array): void {
    let result: Promise<Uint8Array>;
    try {
      result = this.opts.onRequest(hello, method, body);
    } catch (err) {
      result = Promise.reject(err);
    }
    result.then(
      (response) => this.respond(conn, { kind: 'response', id, body: response }),
      (err: unknown) => {
        const code = (err as { code?: unknown } | null)?.code;
        const message = err instanceof Error ? err.message : String(err);
        this.respond(conn, { kind: 'errorResponse', id, message, code: typeof code === 'string' ? code : undefined });
      },
    );
  }

  private respond(conn: InboundConn, frame: Frame & { id: number }): void {
    if (conn.closed || this.stopped) return;
    let bytes: Buffer;
    try {
      bytes = encodeFrame(frame);
      if (bytes.length - LENGTH_PREFIX_BYTES > this.maxFrameBytes) throw new RangeError(`response of ${bytes.length} bytes exceeds maxFrameBytes`);
    } catch (err) {
      // The caller must hear something, or it waits for its timeout.
      bytes = encodeFrame({ kind: 'errorResponse', id: frame.id, message: `cannot send the response: ${toError(err).message}`, code: 'responseTooLarge' });
    }
    conn.socket.write(bytes);
  }

  // -------------------------------------------------------------------------------------------
  // Callbacks: never called from inside send() or request() (the caller may be mid-Ready), never
  // after stop(), never allowed to throw into the transport.
  // -------------------------------------------------------------------------------------------

  private callback(fn: () => void): void {
    queueMicrotask(() => {
      if (this.stopped) return;
      try {
        fn();
      } catch (err) {
        this.reportError(toError(err));
      }
    });
  }

  private reportUnreachable(id: string): void {
    const cb = this.opts.onUnreachable;
    if (!cb) return;
    const now = performance.now();
    const last = this.lastUnreachable.get(id);
    if (last !== undefined && now - last < UNREACHABLE_REPORT_INTERVAL_MS) return;
    this.lastUnreachable.set(id, now);
    this.callback(() => cb(id));
  }

  private reportSnapshot(id: string, ok: boolean): void {
    const cb = this.opts.onSnapshotStatus;
    if (cb) this.callback(() => cb(id, ok));
  }

  private reportError(err: Error): void {
    const cb = this.opts.onError;
    if (!cb || this.stopped) return;
    try {
      cb(err);
    } catch {
      // A logging hook must not take the transport down.
    }
  }
}

/**
 * The payload itself when decoding it keeps no views, else a copy in memory of its own (not a
 * pooled slab): a retained log entry must not pin a whole socket read buffer.
 */
function own(payload: Buffer): Buffer {
  if (!payloadHoldsBytes(payload)) return payload;
  const copy = Buffer.allocUnsafeSlow(payload.length);
  payload.copy(copy);
  return copy;
}
