// InstallSnapshot over the server transport (docs/adr/0006-server-rpc-transport.md): a MsgSnap goes
// as snapBegin + chunks + snapEnd.
//
// Sending (SnapshotSender): one pump per link reads the snapshot piece by piece, from the storage's
// snapshot file (or from the message's data when it carries any), and writes a chunk only once the
// Raft messages queued for that peer went out and the socket takes more, so heartbeats are never
// stuck behind a large snapshot and memory stays at a chunk or two per peer.
//
// Receiving (IncomingSnapshots, one per inbound connection): chunks go to a file of the storage,
// with backpressure on the socket, and the MsgSnap is delivered with empty data once the file is
// synced (or, without a storage, reassembled in memory).
import type net from 'node:net';
import type { MsgSnap } from '../core/types.ts';
import type { SnapshotDataSink, SnapshotFiles } from '../host/snapshot-data.ts';
import { encodeFrame, encodeSnapChunkHeader } from './codec.ts';
import type { Frame, PeerHello, SnapBeginFrame } from './codec.ts';
import { TransportCodecError } from './errors.ts';
import type { OutboundConn, PeerLink, PeerLinks } from './peer-links.ts';
import { toError } from './sockets.ts';

/** Snapshots being received on one connection at once; more is a misbehaving peer. */
const MAX_INCOMING_SNAPSHOTS = 4;
/** Received snapshot bytes waiting for the disk beyond which the connection stops reading. */
const MAX_PENDING_SNAPSHOT_BYTES = 8 * 1024 * 1024;
const EMPTY = new Uint8Array(0);

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

/** A link's snapshots: queued, being finished, and the pump sending them. */
interface LinkSnapshots {
  jobs: SnapJob[];
  /** Jobs whose end frame is written but not yet flushed. */
  readonly finishing: Set<SnapJob>;
  pump: SnapPump | null;
  nextStream: number;
}

export interface SnapshotSenderOptions {
  readonly links: PeerLinks;
  readonly chunkBytes: number;
  /** The storage's snapshot files: a MsgSnap with empty data is sent from the stored file of its meta. */
  readonly files: SnapshotFiles | undefined;
  isStopped(): boolean;
  /** A MsgSnap to `id` was fully written (true) or failed (false). */
  reportSnapshot(id: string, ok: boolean): void;
  reportError(err: Error): void;
}

export class SnapshotSender {
  private readonly opts: SnapshotSenderOptions;
  private readonly byAddress = new Map<string, LinkSnapshots>();

  constructor(opts: SnapshotSenderOptions) {
    this.opts = opts;
  }

  /** Queues snapshots for the link (sent once the link is writable: see kick()). */
  enqueue(link: PeerLink, messages: readonly MsgSnap[]): void {
    const state = this.stateOf(link);
    for (const m of messages) state.jobs.push({ message: m, stream: state.nextStream++, begun: false, settled: false });
  }

  /** Starts the link's snapshot pump if there is work, or wakes it if it waits for the socket. */
  kick(link: PeerLink, conn: OutboundConn): void {
    const state = this.byAddress.get(link.address);
    if (state === undefined) return;
    const pump = state.pump;
    if (pump) {
      if (pump.conn === conn) this.wakePump(state);
      return;
    }
    if (state.jobs.length === 0) return;
    const started: SnapPump = { conn, wake: null };
    state.pump = started;
    void this.runPump(link, state, started);
  }

  /** The link's connection is gone: its snapshots failed; the pump closes its file. */
  connectionLost(link: PeerLink): void {
    const state = this.byAddress.get(link.address);
    if (state === undefined) return;
    const jobs = [...state.finishing, ...state.jobs];
    state.finishing.clear();
    state.jobs = [];
    for (const job of jobs) this.settle(job, false);
    this.wakePump(state);
  }

  /** The transport stopped: everything is dropped (no callbacks after stop); pumps close their files. */
  stop(): void {
    for (const state of this.byAddress.values()) {
      state.jobs = [];
      state.finishing.clear();
      this.wakePump(state);
    }
  }

  private stateOf(link: PeerLink): LinkSnapshots {
    let state = this.byAddress.get(link.address);
    if (state === undefined) {
      state = { jobs: [], finishing: new Set(), pump: null, nextStream: 1 };
      this.byAddress.set(link.address, state);
    }
    return state;
  }

  private wakePump(state: LinkSnapshots): void {
    const wake = state.pump?.wake;
    if (!wake) return;
    state.pump!.wake = null;
    wake();
  }

  /** Sends the link's snapshots one after the other, as long as its connection lasts. */
  private async runPump(link: PeerLink, state: LinkSnapshots, pump: SnapPump): Promise<void> {
    try {
      while (!this.opts.isStopped() && link.conn === pump.conn && state.jobs.length > 0) {
        const job = state.jobs[0]!;
        let sent = false;
        try {
          sent = await this.streamSnapshot(link, state, pump, job);
        } catch (err) {
          // An unreadable or damaged file. A begun stream cannot be ended cleanly: dropping the
          // connection makes the receiver discard what it got.
          this.opts.reportError(toError(err));
          if (job.begun && link.conn === pump.conn) pump.conn.socket.destroy();
        }
        if (state.jobs[0] === job) state.jobs.shift();
        if (!sent) this.settle(job, false);
      }
    } finally {
      if (state.pump === pump) state.pump = null;
    }
    // Jobs queued for a newer connection while this one was ending.
    if (!this.opts.isStopped() && link.conn && state.jobs.length > 0) this.opts.links.flush(link);
  }

  /**
   * Streams one snapshot: begin, chunks as they are read, end. True once the end frame is written
   * (the job settles when it is flushed); false if the connection went away meanwhile.
   */
  private async streamSnapshot(link: PeerLink, state: LinkSnapshots, pump: SnapPump, job: SnapJob): Promise<boolean> {
    const conn = pump.conn;
    const alive = (): boolean => !this.opts.isStopped() && link.conn === conn && !job.settled;
    const m = job.message;
    const source = await this.openSource(m);
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
      state.finishing.add(job);
      const ok = conn.socket.write(encodeFrame({ kind: 'snapEnd', stream: job.stream }), (err) => {
        state.finishing.delete(job);
        this.settle(job, !err);
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
  private async writable(link: PeerLink, pump: SnapPump): Promise<boolean> {
    const conn = pump.conn;
    for (;;) {
      if (this.opts.isStopped() || link.conn !== conn) return false;
      if (!conn.blocked) this.opts.links.flushQueue(link, conn);
      if (!conn.blocked) return true;
      await new Promise<void>((resolve) => (pump.wake = resolve));
    }
  }

  /** The snapshot's stored file when the message carries no data and there is a storage; else the data. */
  private async openSource(m: MsgSnap): Promise<SnapSource> {
    const files = this.opts.files;
    const chunkBytes = this.opts.chunkBytes;
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

  private settle(job: SnapJob, ok: boolean): void {
    if (job.settled) return;
    job.settled = true;
    this.opts.reportSnapshot(job.message.to, ok);
  }
}

/** Where a snapshot being received goes: a file of the storage, or memory when there is no storage. */
type IncomingSink = { readonly kind: 'file'; readonly sink: SnapshotDataSink } | { readonly kind: 'memory'; readonly chunks: Uint8Array[] };

interface IncomingSnap {
  readonly begin: SnapBeginFrame;
  readonly sink: IncomingSink;
  received: number;
}

export interface IncomingSnapshotsOptions {
  readonly files: SnapshotFiles | undefined;
  readonly maxSnapshotBytes: number;
  isStopped(): boolean;
  /** The connection was closed (no more resuming it). */
  isClosed(): boolean;
  /** Writing to the file failed: the connection is dropped (the sender retries). */
  fail(err: Error): void;
  /** A complete snapshot, as a MsgSnap from `hello`'s sender. */
  deliver(hello: PeerHello, message: MsgSnap): void;
  reportError(err: Error): void;
}

export type SnapshotFrame = Extract<Frame, { kind: 'snapBegin' | 'snapChunk' | 'snapEnd' }>;

/** The snapshots arriving on one inbound connection. */
export class IncomingSnapshots {
  private readonly socket: net.Socket;
  private readonly opts: IncomingSnapshotsOptions;
  private readonly snaps = new Map<number, IncomingSnap>();
  /** Snapshot bytes handed to files and not yet written; the socket is paused while there are too many. */
  private pendingBytes = 0;
  private paused = false;

  constructor(socket: net.Socket, opts: IncomingSnapshotsOptions) {
    this.socket = socket;
    this.opts = opts;
  }

  /** Takes one snapshot frame; throws TransportCodecError for a stream that breaks the rules. */
  onFrame(hello: PeerHello, frame: SnapshotFrame): void {
    switch (frame.kind) {
      case 'snapBegin': {
        if (this.snaps.has(frame.stream) || this.snaps.size >= MAX_INCOMING_SNAPSHOTS) throw new TransportCodecError(`unexpected snapshot stream ${frame.stream}`);
        if (frame.totalBytes > this.opts.maxSnapshotBytes) throw new TransportCodecError(`snapshot of ${frame.totalBytes} bytes exceeds the ${this.opts.maxSnapshotBytes}-byte limit`);
        const files = this.opts.files;
        const sink: IncomingSink = files ? { kind: 'file', sink: files.receiveSnapshot(frame.meta, frame.totalBytes) } : { kind: 'memory', chunks: [] };
        this.snaps.set(frame.stream, { begin: frame, sink, received: 0 });
        return;
      }
      case 'snapChunk': {
        const snap = this.snaps.get(frame.stream);
        if (!snap) throw new TransportCodecError(`chunk for unknown snapshot stream ${frame.stream}`);
        snap.received += frame.data.length;
        if (snap.received > snap.begin.totalBytes) throw new TransportCodecError(`snapshot stream ${frame.stream} overran its ${snap.begin.totalBytes} bytes`);
        if (snap.sink.kind === 'memory') snap.sink.chunks.push(frame.data);
        else this.writeChunk(snap.sink.sink, frame.data);
        return;
      }
      case 'snapEnd': {
        const snap = this.snaps.get(frame.stream);
        if (!snap) throw new TransportCodecError(`end of unknown snapshot stream ${frame.stream}`);
        const { begin, sink } = snap;
        if (snap.received !== begin.totalBytes) throw new TransportCodecError(`snapshot stream ${frame.stream} ended after ${snap.received} of ${begin.totalBytes} bytes`);
        this.snaps.delete(frame.stream);
        const message = (data: Uint8Array): MsgSnap => ({ type: 'snap', from: begin.from, to: begin.to, term: begin.term, snapshot: { meta: begin.meta, data } });
        if (sink.kind === 'memory') {
          this.opts.deliver(hello, message(sink.chunks.length === 1 ? sink.chunks[0]! : Buffer.concat(sink.chunks, snap.received)));
          return;
        }
        // Delivered once the file is synced; Raft copes with the messages that overtake it.
        sink.sink.finish().then(
          () => {
            if (!this.opts.isStopped()) this.opts.deliver(hello, message(EMPTY));
          },
          (err: unknown) => {
            void sink.sink.abort();
            this.opts.reportError(new Error(`receiving snapshot ${begin.meta.index} from '${hello.id}': ${toError(err).message}`));
          },
        );
        return;
      }
    }
  }

  /** The connection closed: snapshots cut off mid-stream have their files removed. */
  abort(): void {
    for (const snap of this.snaps.values()) if (snap.sink.kind === 'file') void snap.sink.sink.abort();
    this.snaps.clear();
  }

  /** Hands a chunk to the snapshot's file, pausing the socket while the disk is behind. */
  private writeChunk(sink: SnapshotDataSink, data: Uint8Array): void {
    this.pendingBytes += data.length;
    if (!this.paused && this.pendingBytes > MAX_PENDING_SNAPSHOT_BYTES) {
      this.paused = true;
      this.socket.pause();
    }
    sink.write(data).then(
      () => {
        this.pendingBytes -= data.length;
        if (this.paused && !this.opts.isClosed() && this.pendingBytes <= MAX_PENDING_SNAPSHOT_BYTES / 2) {
          this.paused = false;
          this.socket.resume();
        }
      },
      // The sender can only learn of it by losing the connection; it then retries.
      (err: unknown) => this.opts.fail(new Error(`writing a received snapshot failed: ${toError(err).message}`)),
    );
  }
}
