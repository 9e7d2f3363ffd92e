// The Raft side of the server transport over TCP (optionally mutual TLS): Raft messages and
// InstallSnapshot streams between servers. See docs/adr/0006-server-rpc-transport.md; the RPC that
// shares these connections is rpc/ (rpc/tcp-transport.ts puts the two together for the server).
//
// Shape (after etcd's rafthttp and hashicorp/raft's NetworkTransport):
// - one outbound connection per peer address, dialled lazily (peer-links.ts); inbound connections
//   only deliver frames (and carry responses back);
// - every send() becomes one socket write per peer (a whole Ready at once), and nothing waits for
//   replies between messages: Raft does its own flow control;
// - per-peer bounded buffering: a slow or dead peer loses its messages (Raft resends them) and is
//   reported unreachable, it never holds up the others or the Ready loop;
// - a failed dial puts the address in backoff, during which messages are dropped;
// - a MsgSnap streams as begin + chunks + end (snapshot-stream.ts), with queued Raft messages going
//   out between chunks.
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Message, MsgSnap } from '../core/types.ts';
import type { HostTransport } from '../host/raft-host.ts';
import type { SnapshotFiles } from '../host/snapshot-data.ts';
import { DEFAULT_MAX_FRAME_BYTES, FrameReader, LENGTH_PREFIX_BYTES, decodeFrame, encodeFrame, encodeMessages } from './codec.ts';
import type { PeerHello } from './codec.ts';
import { TransportCodecError, TransportError } from './errors.ts';
import { PeerLinks } from './peer-links.ts';
import { IncomingSnapshots, SnapshotSender } from './snapshot-stream.ts';
import { formatAddress, isQuietSocketError, listen, own, toError, tuneSocket, type Listener, type TcpTlsOptions } from './sockets.ts';

export type { PeerHello } from './codec.ts';
export type { TcpTlsOptions } from './sockets.ts';

export interface RaftTransportOptions {
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
  /**
   * A request frame arrived on an inbound connection (the RPC of rpc/ answers it through `reply`).
   * Without it, a request is an unexpected frame and closes its connection.
   */
  onRequestFrame?(from: PeerHello, request: InboundRequest, reply: (response: Buffer) => void): void;
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
}

/** A request frame as it arrived. */
export interface InboundRequest {
  readonly id: number;
  readonly method: string;
  readonly body: Uint8Array;
}

/** What the transport knows about one peer address (for status pages and debugging). */
export interface LinkStatus {
  readonly address: string;
  /** Raft ids sent to through this address. */
  readonly ids: readonly string[];
  /** The id in the peer's hello on the current connection ('' if none yet). */
  readonly helloId: string;
  readonly state: 'idle' | 'connecting' | 'connected' | 'backoff';
  /** Current backoff step (0 after a peer answered); grows 25 ms → 1 s on repeated failures. */
  readonly backoffMs: number;
  readonly bufferedBytes: number;
}

const DEFAULT_MAX_QUEUE_BYTES = 16 * 1024 * 1024;
const DEFAULT_SNAPSHOT_CHUNK_BYTES = 1024 * 1024;
const DEFAULT_DIAL_TIMEOUT_MS = 5000;
const DEFAULT_MAX_SNAPSHOT_BYTES = 2 * 1024 * 1024 * 1024;
const UNREACHABLE_REPORT_INTERVAL_MS = 100;

interface InboundConn {
  readonly socket: net.Socket;
  readonly reader: FrameReader;
  hello: PeerHello | null;
  helloTimer: NodeJS.Timeout | null;
  readonly snapshots: IncomingSnapshots;
  closed: boolean;
}

export class RaftTransport implements HostTransport {
  /** The outbound connections; rpc/ sends its requests over them too. */
  readonly links: PeerLinks;
  readonly maxFrameBytes: number;
  private readonly opts: RaftTransportOptions;
  private readonly maxQueueBytes: number;
  private readonly dialTimeoutMs: number;
  private readonly maxSnapshotBytes: number;
  private readonly snapshotSender: SnapshotSender;
  private readonly inbound = new Set<InboundConn>();
  private readonly lastUnreachable = new Map<string, number>();
  private listener: Listener | null = null;
  private starting = false;
  private advertise = '';
  private stopped = false;
  private stopping: Promise<void> | null = null;

  constructor(opts: RaftTransportOptions) {
    this.opts = opts;
    this.maxQueueBytes = opts.maxQueueBytesPerPeer ?? DEFAULT_MAX_QUEUE_BYTES;
    this.dialTimeoutMs = opts.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    // A chunk frame adds a kind byte and a stream id to the data.
    const chunkBytes = opts.snapshotChunkBytes ?? Math.min(DEFAULT_SNAPSHOT_CHUNK_BYTES, this.maxFrameBytes - 16);
    this.maxSnapshotBytes = opts.maxSnapshotBytes ?? DEFAULT_MAX_SNAPSHOT_BYTES;
    if (chunkBytes < 1 || chunkBytes + 16 > this.maxFrameBytes) throw new RangeError('snapshotChunkBytes must be positive and fit in maxFrameBytes');
    this.links = new PeerLinks({
      hello: () => this.hello(),
      tls: opts.tls,
      sourceHost: opts.listen.host,
      dialTimeoutMs: this.dialTimeoutMs,
      maxFrameBytes: this.maxFrameBytes,
      ...(opts.onHello ? { onHello: opts.onHello } : {}),
      reportError: (err) => this.reportError(err),
    });
    this.snapshotSender = new SnapshotSender({
      links: this.links,
      chunkBytes,
      files: opts.snapshots,
      isStopped: () => this.stopped,
      reportSnapshot: (id, ok) => this.reportSnapshot(id, ok),
      reportError: (err) => this.reportError(err),
    });
    this.links.use({
      onWritable: (link, conn) => this.snapshotSender.kick(link, conn),
      onClosed: (link) => {
        this.snapshotSender.connectionLost(link);
        for (const id of link.ids) this.reportUnreachable(id);
      },
    });
  }

  /** Starts listening; resolves with the bound address. */
  async start(): Promise<{ host: string; port: number }> {
    if (this.stopped) throw new TransportError('stopped', 'the transport is stopped');
    if (this.listener || this.starting) throw new Error('TcpTransport already started');
    this.starting = true;
    const listener = await listen(this.opts.listen, this.opts.tls, this.dialTimeoutMs, {
      accept: (socket) => this.accept(socket),
      reportError: (err) => this.reportError(err),
    });
    if (this.stopped) {
      listener.server.close();
      throw new TransportError('stopped', 'the transport is stopped');
    }
    this.listener = listener;
    this.advertise = this.opts.advertise ?? formatAddress(listener.bound.host, listener.bound.port);
    return { ...listener.bound };
  }

  /** One entry per peer address ever dialled. */
  peerStatus(): LinkStatus[] {
    return [...this.links.all()].map((link) => ({
      address: link.address,
      ids: [...link.ids],
      helloId: link.conn?.hello?.id ?? '',
      state: this.links.state(link),
      backoffMs: link.backoffMs,
      bufferedBytes: this.links.bufferedBytes(link),
    }));
  }

  boundAddress(): { host: string; port: number } {
    if (!this.listener) throw new Error('TcpTransport not started');
    return { ...this.listener.bound };
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** The address `resolve(id)` gives ('' when none). */
  addressOf(id: string): string {
    return this.opts.resolve(id) ?? '';
  }

  /** Closes the listener and every connection. No callbacks after this. */
  stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    this.stopped = true;
    this.links.stop();
    // The pumps see the transport stopped and close their files.
    this.snapshotSender.stop();
    for (const conn of this.inbound) this.closeInbound(conn);
    const listener = this.listener;
    if (listener) for (const socket of listener.accepted) socket.destroy();
    this.stopping = listener ? new Promise<void>((resolve) => listener.server.close(() => resolve())) : Promise.resolve();
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
    const links = this.links;
    const link = links.link(address);
    link.ids.add(to);
    if (!link.conn && links.inBackoff(link)) {
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
      const buffered = links.bufferedBytes(link);
      // An empty queue takes any batch, so one huge append cannot be refused forever.
      if (buffered > 0 && buffered + frames.length > this.maxQueueBytes) this.dropMessages(to, plain);
      else links.write(link, frames);
    }
    if (snaps.length > 0) this.snapshotSender.enqueue(link, snaps);
    links.ensureDialled(link);
    links.flush(link);
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

  /** Routes `id` through the link to `address` (it is reported unreachable when that link fails). */
  noteRoute(address: string, id: string): void {
    this.links.get(address)?.ids.add(id);
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
    tuneSocket(socket);
    const conn: InboundConn = {
      socket,
      reader: new FrameReader(this.maxFrameBytes),
      hello: null,
      helloTimer: null,
      snapshots: new IncomingSnapshots(socket, {
        files: this.opts.snapshots,
        maxSnapshotBytes: this.maxSnapshotBytes,
        isStopped: () => this.stopped,
        isClosed: () => conn.closed,
        fail: (err) => this.failInbound(conn, err),
        deliver: (hello, message) => this.deliver(hello, message),
        reportError: (err) => this.reportError(err),
      }),
      closed: false,
    };
    this.inbound.add(conn);
    conn.helloTimer = setTimeout(() => {
      conn.helloTimer = null;
      this.failInbound(conn, new TransportCodecError(`${socket.remoteAddress} sent no hello within ${this.dialTimeoutMs} ms`));
    }, this.dialTimeoutMs);
    conn.helloTimer.unref();
    socket.on('error', (err: Error) => {
      if (!isQuietSocketError(err)) this.reportError(err);
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
    conn.snapshots.abort();
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
      case 'request': {
        const onRequestFrame = this.opts.onRequestFrame;
        if (onRequestFrame === undefined) break;
        onRequestFrame(hello, frame, (response) => {
          if (!conn.closed && !this.stopped) conn.socket.write(response);
        });
        return;
      }
      case 'snapBegin':
      case 'snapChunk':
      case 'snapEnd':
        conn.snapshots.onFrame(hello, frame);
        return;
      case 'hello':
      case 'response':
      case 'errorResponse':
        break;
    }
    throw new TransportCodecError(`${hello.id} sent an unexpected ${frame.kind} frame`);
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

  // -------------------------------------------------------------------------------------------
  // Callbacks: never called from inside send() (the caller may be mid-Ready), never after stop(),
  // never allowed to throw into the transport.
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

  /** Errors for debug logging (the onError option); never after stop(). */
  reportError(err: Error): void {
    const cb = this.opts.onError;
    if (!cb || this.stopped) return;
    try {
      cb(err);
    } catch {
      // A logging hook must not take the transport down.
    }
  }
}

