// The Ready loop: the one place where the pure Raft core meets time, disk and the network.
// Proposals made while a Ready is being persisted go straight into the core's unstable log, so the
// next Ready carries all of them in one synced write and one append message (group commit).
//
// Snapshots never stop the loop: a snapshot is an O(1) view of the state machine taken between two
// Readys, whose encoding is then streamed into a file in the background while entries go on being
// applied, saved and sent; installing one (at start, or from the leader) feeds the file to the
// state machine in pieces, the old state serving reads until the swap. Both give the event loop a
// turn every few milliseconds of their own CPU time.
import { randomInt, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { KonsulError, NO_LEADER_TEXT, type KonsulErrorCode } from '../../lib/errors.ts';
import { invariant, NotLeaderError, RaftError } from '../core/errors.ts';
import type { RandomSource } from '../core/prng.ts';
import type { RaftConfig } from '../core/raft.ts';
import { RawNode, sentBeforePersisting } from '../core/raw-node.ts';
import type { RaftStorage } from '../core/storage.ts';
import type { ConfChange, ConfState, Entry, HardState, Message, NodeId, Ready, Snapshot, SnapshotMeta, SoftState, Status } from '../core/types.ts';
import type { CreatedSnapshot, SnapshotDataReader, SnapshotDataSource } from './snapshot-data.ts';
import type { HostStateMachine } from './state-machine.ts';
import { SliceClock, timeSlicedPieces } from './time-slices.ts';

export type { HostStateMachine, StateMachineRestore, StateMachineSnapshot } from './state-machine.ts';

/**
 * Durable storage as the host drives it: the core's read side plus one synced save per Ready, and
 * snapshot data streamed to and from it. `snapshot().data` may be empty: the data lives in the
 * storage's files and is read with openSnapshot().
 */
export interface HostStorage extends RaftStorage {
  save(ready: { snapshot: Snapshot | null; entries: readonly Entry[]; hardState: HardState | null }): Promise<void>;
  /**
   * Writes the snapshot at `index` from the state machine's pieces and records it (compacting the
   * log). Null when a newer snapshot was installed meanwhile: this one was dropped.
   */
  createSnapshot(index: number, confState: ConfState, data: SnapshotDataSource): Promise<CreatedSnapshot | null>;
  /** Opens a recorded snapshot's data (verified before its last piece is answered). */
  openSnapshot(meta: SnapshotMeta): Promise<SnapshotDataReader>;
  close(): Promise<void>;
}

/** Delivers messages to other servers; never blocks the loop (queues and drops on its own). */
export interface HostTransport {
  send(messages: readonly Message[]): void;
}

export interface RaftHostOptions {
  readonly id: NodeId;
  readonly storage: HostStorage;
  readonly stateMachine: HostStateMachine;
  readonly transport?: HostTransport;
  /** Milliseconds per Raft tick. */
  readonly tickMs?: number;
  readonly electionTicks?: number;
  readonly heartbeatTicks?: number;
  /** Take a snapshot (and compact the log) after this many applied entries. */
  readonly snapshotEveryEntries?: number;
  /** Extra settings for the core (flow control limits and the like). */
  readonly raft?: Partial<Omit<RaftConfig, 'id' | 'storage' | 'random'>>;
  /** Told of every snapshot taken, installed from the leader, or restored at start (for the server log). */
  readonly onSnapshot?: (event: SnapshotEvent) => void;
}

export interface SnapshotEvent {
  /** taken: written here and recorded; installed: received from the leader and restored; restored: loaded at start. */
  readonly kind: 'taken' | 'installed' | 'restored';
  readonly index: number;
  readonly term: number;
  /** Bytes of encoded state. */
  readonly bytes: number;
  /** From the view (taken) or the start of the restore to the end, milliseconds. */
  readonly durationMs: number;
}

/** Figures about this node's snapshots (for /v1/agent/self and benchmarks). */
export interface SnapshotStats {
  /** Snapshots written and recorded by this node since it started. */
  readonly taken: number;
  readonly lastIndex: number;
  readonly lastBytes: number;
  readonly lastDurationMs: number;
  readonly maxDurationMs: number;
  /** Snapshots installed from a leader since this node started. */
  readonly installs: number;
  readonly lastInstallDurationMs: number;
}

/**
 * Committed entries handed to the state machine per Ready: a restore's chunks (fsm/restore-commands.ts)
 * cost ~10 ms of apply per 256 KiB, and the loop yields between Readys once a slice is used up.
 */
const MAX_COMMITTED_BYTES_PER_READY = 512 * 1024;
/** Pieces asked of the state machine when taking a snapshot: small, so each costs well under a slice. */
const SNAPSHOT_PIECE_BYTES = 64 * 1024;
/** Pieces read from a snapshot file and fed to the state machine when installing one. */
const RESTORE_PIECE_BYTES = 256 * 1024;
/** A snapshot is due once the log since the last is worth 1/8 of its size (see snapshotDue)... */
const SNAPSHOT_WRITE_AMPLIFICATION = 8;
/** ...or holds this many times snapshotEveryEntries entries. */
const SNAPSHOT_ENTRIES_CAP_FACTOR = 8;
/** ...or holds this many bytes (or 1/8 of the snapshot's, if more), whatever the entry count: it bounds the log kept in memory (a restore's chunks are few entries). */
const SNAPSHOT_LOG_BYTES_CAP = 64 * 1024 * 1024;

interface SnapshotWaiter {
  resolve(snapshot: { index: number; term: number }): void;
  reject(err: Error): void;
}

/** stop() ended an install in progress (not a failure: the recorded snapshot is restored at the next start). */
class HostStoppedError extends Error {
  constructor() {
    super('the Raft host stopped');
    this.name = 'HostStoppedError';
  }
}

/** Why a proposal failed. Its message is the text Consul answers (http/status.ts maps the code). */
export class ProposalError extends KonsulError {
  readonly reason: 'notLeader' | 'leadershipLost' | 'outcomeUnknown' | 'overwritten' | 'stopped' | 'transferInProgress';
  readonly leader: NodeId;
  /** What happened, in Konsul's words (the message is Consul's text for the reason). */
  readonly detail: string;
  constructor(reason: ProposalError['reason'], detail: string, leader: NodeId = '') {
    const { code, text } = proposalFailure(reason, detail, leader);
    super(code, text);
    this.name = 'ProposalError';
    this.reason = reason;
    this.leader = leader;
    this.detail = detail;
  }
}

function proposalFailure(reason: ProposalError['reason'], detail: string, leader: NodeId): { code: KonsulErrorCode; text: string } {
  switch (reason) {
    case 'notLeader':
      return leader ? { code: 'internal', text: `not the leader; the leader is ${leader}` } : { code: 'noLeader', text: NO_LEADER_TEXT };
    case 'leadershipLost':
      return { code: 'internal', text: 'leadership lost while committing log' };
    case 'outcomeUnknown':
      return { code: 'internal', text: detail };
    case 'overwritten':
      return { code: 'internal', text: 'leadership lost while committing log: the write was discarded' };
    case 'transferInProgress':
      return { code: 'internal', text: 'leadership transfer in progress' };
    case 'stopped':
      return { code: 'unavailable', text: 'server is shutting down' };
  }
}

/** Why a linearizable read could not be served. Its message is the text Consul answers. */
export class ReadIndexError extends KonsulError {
  readonly reason: 'noLeader' | 'leadershipLost' | 'timeout' | 'stopped';
  constructor(reason: ReadIndexError['reason'], message: string) {
    if (reason === 'noLeader') super('noLeader', NO_LEADER_TEXT);
    else if (reason === 'stopped') super('unavailable', 'server is shutting down');
    else super('internal', message);
    this.name = 'ReadIndexError';
    this.reason = reason;
  }
}

interface PendingProposal {
  readonly term: number;
  resolve(result: unknown): void;
  reject(err: Error): void;
}

/** Reads asked for in the same turn of the loop share one ReadIndex round (one heartbeat broadcast). */
interface PendingRead {
  /** Set once the leader confirmed the read point; resolved when the FSM has applied it. */
  index: number;
  readonly waiters: { resolve(index: number): void; reject(err: Error): void }[];
}

function settleRead(read: PendingRead, outcome: { index: number } | { error: Error }): void {
  for (const w of read.waiters) {
    if ('error' in outcome) w.reject(outcome.error);
    else w.resolve(outcome.index);
  }
}

/** Seeds the core's election jitter from the OS; the core itself stays deterministic. */
class CryptoRandom implements RandomSource {
  int(n: number): number {
    return randomInt(n);
  }
}

export class RaftHost {
  readonly id: NodeId;
  private readonly storage: HostStorage;
  private readonly fsm: HostStateMachine;
  private readonly transport: HostTransport | undefined;
  private readonly tickMs: number;
  private readonly snapshotEveryEntries: number;
  private readonly node: RawNode;
  private readonly proposals = new Map<number, PendingProposal>();
  private readonly reads = new Map<string, PendingRead>();
  /** Reads confirmed by the leader, waiting for the FSM to apply their index; ordered by index. */
  private readonly confirmedReads: PendingRead[] = [];
  /** Reads asked for since the loop last ran; they become one ReadIndex request. */
  private readBatch: PendingRead | null = null;
  /** When each peer last sent this node anything (for cluster stats and autopilot). */
  private readonly lastHeardAt = new Map<NodeId, number>();
  private readonly softStateListeners = new Set<(s: SoftState) => void>();
  private readonly appliedListeners = new Set<(index: number) => void>();
  private ticker: NodeJS.Timeout | null = null;
  private loopRunning = false;
  private loopRequested = false;
  private loopIdle: Promise<void> = Promise.resolve();
  private stopped = false;
  private snapshotIndex: number;
  private appliedIndex: number;
  private softState: SoftState = { lead: '', role: 'follower' };
  /** Index of the first entry of this node's current leadership term (0 when not leader). */
  private leaderTermStartIndex = 0;
  /** The commit index found in storage at start: the local replay is done once it is applied. */
  private readonly commitAtStart: number;
  private lastLeaderContactMs = 0;
  private fatal: Error | null = null;
  private readonly onSnapshot: ((event: SnapshotEvent) => void) | undefined;
  /** The snapshot being written in the background (one at a time). */
  private snapshotTask: Promise<void> | null = null;
  /** snapshotNow() callers waiting for a snapshot taken after they asked. */
  private snapshotWaiters: SnapshotWaiter[] = [];
  /** Bytes of the snapshot in force (0: none), and of the entries applied since it was taken. */
  private snapshotBytes = 0;
  private logBytesSinceSnapshot = 0;
  private stats: SnapshotStats = { taken: 0, lastIndex: 0, lastBytes: 0, lastDurationMs: 0, maxDurationMs: 0, installs: 0, lastInstallDurationMs: 0 };

  /**
   * Creates a host over `storage` and restores the state machine from the storage's snapshot,
   * streamed from its file (the event loop keeps running meanwhile). Not ticking until start().
   * On failure the storage is closed.
   */
  static async open(options: RaftHostOptions): Promise<RaftHost> {
    try {
      const host = new RaftHost(options);
      await host.restoreAtStart();
      return host;
    } catch (err) {
      await options.storage.close().catch(() => undefined);
      throw err;
    }
  }

  private constructor(options: RaftHostOptions) {
    this.id = options.id;
    this.storage = options.storage;
    this.fsm = options.stateMachine;
    this.transport = options.transport;
    this.tickMs = options.tickMs ?? 50;
    this.snapshotEveryEntries = options.snapshotEveryEntries ?? 16384;
    this.onSnapshot = options.onSnapshot;
    this.commitAtStart = this.storage.initialState().hardState.commit;
    const snapshot = this.storage.snapshot();
    this.snapshotIndex = snapshot.meta.index;
    this.appliedIndex = snapshot.meta.index;
    this.node = new RawNode({
      maxCommittedSizePerReady: MAX_COMMITTED_BYTES_PER_READY,
      ...options.raft,
      id: options.id,
      storage: options.storage,
      random: new CryptoRandom(),
      electionTicks: options.electionTicks ?? 10,
      heartbeatTicks: options.heartbeatTicks ?? 1,
      applied: snapshot.meta.index,
    });
  }

  /** Starts ticking. A lone voter (a dev server) elects itself at once instead of waiting a timeout. */
  start(): void {
    const conf = this.node.latestConfState();
    if (conf.voters.length === 1 && conf.voters[0] === this.id) this.node.campaign();
    this.ticker = setInterval(() => {
      this.node.tick();
      this.schedule();
    }, this.tickMs);
    this.ticker.unref();
    this.schedule();
  }

  /**
   * Stops ticking, finishes the Ready in progress (an install in progress is left to the next
   * start), fails everything still waiting, drops a snapshot being written, closes storage.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.ticker) clearInterval(this.ticker);
    await this.loopIdle;
    const err = new ProposalError('stopped', 'the server is shutting down');
    for (const p of this.proposals.values()) p.reject(err);
    this.proposals.clear();
    const readErr = { error: new ReadIndexError('stopped', 'the server is shutting down') };
    for (const r of this.reads.values()) settleRead(r, readErr);
    for (const r of this.confirmedReads) settleRead(r, readErr);
    if (this.readBatch) settleRead(this.readBatch, readErr);
    this.readBatch = null;
    this.reads.clear();
    this.confirmedReads.length = 0;
    for (const w of this.snapshotWaiters.splice(0)) w.reject(new ProposalError('stopped', 'the server is shutting down'));
    // Closing the storage drops a snapshot file being written; the task then lets go of its view.
    await this.storage.close();
    await this.snapshotTask;
  }

  /** Proposals still waiting for their outcome (the graceful shutdown drains them first). */
  inFlight(): number {
    return this.proposals.size;
  }

  /** Waits until no proposal is in flight or `timeoutMs` passes. */
  async drain(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.proposals.size > 0 && Date.now() < deadline && !this.fatal) {
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /**
   * Replicates a command and resolves with the state machine's result once it is applied here.
   * Fails fast with ProposalError('notLeader') on a follower.
   */
  propose(command: Uint8Array): Promise<unknown> {
    if (this.stopped) return Promise.reject(new ProposalError('stopped', 'the server is shutting down'));
    if (this.fatal) return Promise.reject(this.fatal);
    let placed: { term: number; firstIndex: number };
    try {
      placed = this.node.propose([command]);
    } catch (err) {
      return Promise.reject(toProposalError(err));
    }
    const { term, firstIndex } = placed;
    const result = new Promise<unknown>((resolve, reject) => this.proposals.set(firstIndex, { term, resolve, reject }));
    this.schedule();
    return result;
  }

  /** Proposes a membership change; resolves once it is applied here. */
  proposeConfChange(change: ConfChange): Promise<void> {
    if (this.stopped) return Promise.reject(new ProposalError('stopped', 'the server is shutting down'));
    let placed: { term: number; index: number };
    try {
      placed = this.node.proposeConfChange(change);
    } catch (err) {
      return Promise.reject(toProposalError(err));
    }
    const result = new Promise<void>((resolve, reject) =>
      this.proposals.set(placed.index, { term: placed.term, resolve: () => resolve(), reject }),
    );
    this.schedule();
    return result;
  }

  /** Resolves with an index at which a read is linearizable, once this node has applied it (ReadIndex). */
  readIndex(): Promise<number> {
    if (this.stopped) return Promise.reject(new ReadIndexError('stopped', 'the server is shutting down'));
    this.readBatch ??= { index: 0, waiters: [] };
    const batch = this.readBatch;
    const result = new Promise<number>((resolve, reject) => batch.waiters.push({ resolve, reject }));
    this.schedule();
    return result;
  }

  /**
   * Seeds an empty log with the founders' configuration (bootstrap-expect). False when the log
   * already holds entries, e.g. because an elected founder replicated them here first.
   */
  bootstrap(founders: ConfState): boolean {
    if (this.stopped) return false;
    const done = this.node.bootstrap(founders);
    if (done) this.schedule();
    return done;
  }

  /** Resolves with the leader's id once one is known, or with '' after `timeoutMs`. */
  waitForLeader(timeoutMs: number, signal?: AbortSignal): Promise<NodeId> {
    if (this.softState.lead !== '' || timeoutMs <= 0 || this.stopped) return Promise.resolve(this.softState.lead);
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        unsubscribe();
        signal?.removeEventListener('abort', done);
        resolve(this.softState.lead);
      };
      const timer = setTimeout(done, timeoutMs);
      const unsubscribe = this.onSoftState((s) => {
        if (s.lead !== '') done();
      });
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /**
   * Takes a snapshot of the applied state now and compacts the log behind it; resolves once it is
   * recorded, with the snapshot in force (a newer one if the leader's was installed meanwhile).
   * The loop takes it at its next point between two Readys, after a snapshot already being written.
   */
  snapshotNow(): Promise<{ index: number; term: number }> {
    if (this.stopped) return Promise.reject(new ProposalError('stopped', 'the server is shutting down'));
    if (this.fatal) return Promise.reject(this.fatal);
    const result = new Promise<{ index: number; term: number }>((resolve, reject) => this.snapshotWaiters.push({ resolve, reject }));
    this.schedule();
    return result;
  }

  lastSnapshotIndex(): number {
    return this.snapshotIndex;
  }

  snapshotStats(): SnapshotStats {
    return { ...this.stats };
  }

  /** Log index of the configuration in force (the latest conf change in the log). */
  configurationIndex(): number {
    return this.node.raft.confIndex();
  }

  /** The configuration in force: the latest in the log, committed or not. */
  configuration(): ConfState {
    return this.node.latestConfState();
  }

  /** Milliseconds since `peer` last sent this node a message; -1 if it never did. */
  lastHeardFromMs(peer: NodeId): number {
    const at = this.lastHeardAt.get(peer);
    return at === undefined ? -1 : Date.now() - at;
  }

  transferLeader(target: NodeId): void {
    this.node.transferLeader(target);
    this.schedule();
  }

  /** Delivers a message from another server. */
  receive(message: Message): void {
    if (this.stopped) return;
    // X-Consul-LastContact: how long since this follower last heard from a leader.
    const now = Date.now();
    this.lastHeardAt.set(message.from, now);
    if (message.type === 'app' || message.type === 'heartbeat' || message.type === 'snap') this.lastLeaderContactMs = now;
    this.node.step(message);
    this.schedule();
  }

  reportUnreachable(to: NodeId): void {
    this.node.reportUnreachable(to);
    this.schedule();
  }

  reportSnapshot(to: NodeId, ok: boolean): void {
    this.node.reportSnapshot(to, ok);
    this.schedule();
  }

  status(): Status {
    return this.node.status();
  }

  isLeader(): boolean {
    return this.softState.role === 'leader';
  }

  /**
   * A leader whose state machine has applied the first entry of its term, and so everything any
   * earlier leader committed: only then may it answer reads from its own state.
   */
  isReadyLeader(): boolean {
    return this.isLeader() && this.appliedIndex >= this.leaderTermStartIndex;
  }

  /** Resolves once the entries committed before this process started have been applied again. */
  async replayed(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.appliedIndex < this.commitAtStart) {
      if (Date.now() > deadline || this.fatal) return false;
      await new Promise((r) => setTimeout(r, 5));
    }
    return true;
  }

  leader(): NodeId {
    return this.softState.lead;
  }

  applied(): number {
    return this.appliedIndex;
  }

  /** Milliseconds since this node last heard from a leader (0 on the leader itself). */
  lastContactMs(): number {
    if (this.isLeader()) return 0;
    if (this.softState.lead === '' || this.lastLeaderContactMs === 0) return -1;
    return Date.now() - this.lastLeaderContactMs;
  }

  onSoftState(listener: (s: SoftState) => void): () => void {
    this.softStateListeners.add(listener);
    return () => this.softStateListeners.delete(listener);
  }

  onApplied(listener: (index: number) => void): () => void {
    this.appliedListeners.add(listener);
    return () => this.appliedListeners.delete(listener);
  }

  /** The error that stopped the loop (a storage failure), if any: the process must exit. */
  fatalError(): Error | null {
    return this.fatal;
  }

  private schedule(): void {
    if (this.stopped && !this.loopRunning) return;
    this.loopRequested = true;
    if (this.loopRunning) return;
    this.loopRunning = true;
    this.loopIdle = this.runLoop();
  }

  private async runLoop(): Promise<void> {
    try {
      while (this.loopRequested && !this.fatal) {
        this.loopRequested = false;
        // Let proposals that arrive in the same turn of the event loop join this batch.
        await new Promise<void>((r) => setImmediate(r));
        this.flushReadBatch();
        let rd = this.node.ready();
        const clock = new SliceClock();
        while (rd) {
          clock.start();
          await this.handleReady(rd);
          clock.stop();
          // Between two Readys (under load the loop may never run dry): everything handed out is applied.
          this.maybeSnapshot();
          // Applying is synchronous: after a slice of it (a restore's chunks), heartbeats and HTTP get a turn.
          await clock.pause();
          rd = this.node.ready();
        }
        this.maybeSnapshot();
      }
    } catch (err) {
      // Storage failures are not survivable: the durability contract can no longer be kept.
      if (!(err instanceof HostStoppedError)) this.failWith(err);
    } finally {
      this.loopRunning = false;
    }
  }

  private failWith(err: unknown): void {
    if (this.fatal) return;
    const fatal = err instanceof Error ? err : new Error(String(err));
    this.fatal = fatal;
    for (const p of this.proposals.values()) p.reject(fatal);
    this.proposals.clear();
    for (const w of this.snapshotWaiters.splice(0)) w.reject(fatal);
  }

  private flushReadBatch(): void {
    const batch = this.readBatch;
    if (!batch) return;
    this.readBatch = null;
    const context = randomUUID();
    this.reads.set(context, batch);
    this.node.readIndex(context);
  }

  private async handleReady(rd: Ready): Promise<void> {
    if (rd.softState) this.onSoftStateChange(rd.softState);
    if (rd.messages.some((m) => m.from !== this.id && m.to === this.id)) throw new RaftError('invalidArgument', 'message to self');
    // A leader's appends, heartbeats and snapshots leave before its own write (Raft thesis §10.2.1),
    // so followers write in parallel with it and a commit waits for one fsync instead of two; only
    // those whose commit index covers entries already durable here (sentBeforePersisting). Votes and
    // acknowledgements promise durable state and go after the write (ADR 0001).
    const durableLastIndex = this.storage.lastIndex();
    const early: Message[] = [];
    const late: Message[] = [];
    for (const m of rd.messages) (sentBeforePersisting(m, durableLastIndex) ? early : late).push(m);
    if (early.length > 0) this.transport?.send(early);
    if (rd.snapshot || rd.entries.length > 0 || rd.hardState) {
      await this.storage.save({ snapshot: rd.snapshot, entries: rd.entries, hardState: rd.hardState });
    }
    if (late.length > 0) this.transport?.send(late);
    if (rd.snapshot) {
      // The storage has installed the leader's file; the old state serves reads until the swap.
      // Messages arriving meanwhile are stepped into the core, as during an fsync.
      const started = performance.now();
      const bytes = await this.restoreFromStorage(rd.snapshot.meta);
      const durationMs = performance.now() - started;
      this.snapshotBytes = bytes;
      this.logBytesSinceSnapshot = 0;
      this.appliedIndex = rd.snapshot.meta.index;
      this.snapshotIndex = rd.snapshot.meta.index;
      this.stats = { ...this.stats, installs: this.stats.installs + 1, lastInstallDurationMs: durationMs };
      this.emitSnapshot({ kind: 'installed', index: rd.snapshot.meta.index, term: rd.snapshot.meta.term, bytes, durationMs });
    }
    for (const entry of rd.committedEntries) this.applyEntry(entry);
    for (const read of rd.readStates) {
      const pending = this.reads.get(read.context);
      if (!pending) continue;
      this.reads.delete(read.context);
      pending.index = read.index;
      this.confirmedReads.push(pending);
    }
    for (const failed of rd.failedReads) {
      const pending = this.reads.get(failed.context);
      if (!pending) continue;
      this.reads.delete(failed.context);
      settleRead(pending, { error: new ReadIndexError(failed.reason, readFailureText(failed.reason)) });
    }
    for (const lost of rd.abandonedProposals) {
      for (let i = lost.fromIndex; i <= lost.toIndex; i++) {
        const p = this.proposals.get(i);
        if (p && p.term === lost.term) {
          this.proposals.delete(i);
          p.reject(new ProposalError('leadershipLost', 'leadership lost while committing the write; its outcome is unknown'));
        }
      }
    }
    this.node.advance(rd);
    this.releaseReads();
    if (rd.committedEntries.length > 0 || rd.snapshot) for (const l of this.appliedListeners) l(this.appliedIndex);
  }

  private applyEntry(entry: Entry): void {
    let result: unknown;
    if (entry.type === 'normal' && entry.data.length > 0) {
      this.logBytesSinceSnapshot += entry.data.length;
      result = this.fsm.apply(entry.index, entry.data);
    }
    else this.fsm.applyNoop(entry.index);
    this.appliedIndex = entry.index;
    const pending = this.proposals.get(entry.index);
    if (!pending) return;
    this.proposals.delete(entry.index);
    if (pending.term === entry.term) pending.resolve(result);
    else pending.reject(new ProposalError('overwritten', 'the write was replaced by a newer leader\'s log and did not happen'));
  }

  private releaseReads(): void {
    let n = 0;
    while (n < this.confirmedReads.length && this.confirmedReads[n]!.index <= this.appliedIndex) n++;
    if (n === 0) return;
    for (const r of this.confirmedReads.splice(0, n)) settleRead(r, { index: r.index });
    // Later reads may carry smaller indexes (answers can arrive out of order): keep the queue sorted.
    this.confirmedReads.sort((a, b) => a.index - b.index);
  }

  private onSoftStateChange(s: SoftState): void {
    // A new leader's first entry (the empty one of its term) is its last entry right now.
    if (s.role === 'leader' && this.softState.role !== 'leader') this.leaderTermStartIndex = this.node.status().lastIndex;
    if (s.role !== 'leader') this.leaderTermStartIndex = 0;
    this.softState = s;
    if (s.lead !== '' && s.lead !== this.id) this.lastLeaderContactMs = Date.now();
    for (const l of this.softStateListeners) l(s);
  }

  /**
   * A snapshot rewrites the whole state, so the entry count alone would make a large state pay for
   * itself over and over (1e6 keys: 150 MB written every 16,384 puts cost a third of the put
   * throughput, measured). Past the entry threshold, wait until the log since the last snapshot is
   * worth an eighth of its size — the state is then rewritten at most 8 bytes per byte of log — or
   * until the log holds 8 thresholds of entries or 64 MiB, which bounds the log kept in memory.
   */
  private snapshotDue(): boolean {
    const entries = this.appliedIndex - this.snapshotIndex;
    if (this.logBytesSinceSnapshot >= Math.max(SNAPSHOT_LOG_BYTES_CAP, this.snapshotBytes / SNAPSHOT_WRITE_AMPLIFICATION)) return true;
    if (entries < this.snapshotEveryEntries) return false;
    return entries >= SNAPSHOT_ENTRIES_CAP_FACTOR * this.snapshotEveryEntries || this.logBytesSinceSnapshot * SNAPSHOT_WRITE_AMPLIFICATION >= this.snapshotBytes;
  }

  /**
   * Starts a snapshot in the background when enough entries were applied since the last one or
   * snapshotNow() asked for one. Called only between Readys.
   */
  private maybeSnapshot(): void {
    if (this.snapshotTask || this.stopped || this.fatal) return;
    // Waiters stay queued: the snapshot is taken once the state machine allows it again.
    if (this.fsm.snapshotBlocker?.() != null) return;
    const waiters = this.snapshotWaiters.splice(0);
    if (waiters.length === 0 && !this.snapshotDue()) return;
    if (this.appliedIndex <= this.snapshotIndex) {
      // Nothing applied since the snapshot in force.
      const { index, term } = this.storage.snapshot().meta;
      for (const w of waiters) w.resolve({ index, term });
      return;
    }
    try {
      this.startSnapshot(waiters);
    } catch (err) {
      // The view could not even be taken: the loop fails with it; nobody is left waiting.
      for (const w of waiters) w.reject(err instanceof Error ? err : new Error(String(err)));
      throw err;
    }
  }

  /**
   * Takes the state machine's view now (between Readys: its index is the applied index and the
   * membership is as of it) and streams it into the storage without holding the loop.
   */
  private startSnapshot(waiters: readonly SnapshotWaiter[]): void {
    const view = this.fsm.snapshotView();
    const confState = this.node.confState();
    const started = performance.now();
    // Entries applied from here on count towards the next snapshot; put back if this one fails.
    const logBytesInView = this.logBytesSinceSnapshot;
    this.logBytesSinceSnapshot = 0;
    let recorded = false;
    const task = (async (): Promise<void> => {
      try {
        invariant(view.index === this.appliedIndex, () => `snapshot view at ${view.index}, applied index ${this.appliedIndex}`);
        const created = await this.storage.createSnapshot(view.index, confState, timeSlicedPieces(view, SNAPSHOT_PIECE_BYTES));
        // Null: the leader's newer snapshot was installed meanwhile and this one was dropped.
        if (created === null) return;
        const durationMs = performance.now() - started;
        recorded = true;
        this.snapshotBytes = created.dataBytes;
        this.snapshotIndex = Math.max(this.snapshotIndex, created.meta.index);
        this.stats = {
          ...this.stats,
          taken: this.stats.taken + 1,
          lastIndex: created.meta.index,
          lastBytes: created.dataBytes,
          lastDurationMs: durationMs,
          maxDurationMs: Math.max(this.stats.maxDurationMs, durationMs),
        };
        this.emitSnapshot({ kind: 'taken', index: created.meta.index, term: created.meta.term, bytes: created.dataBytes, durationMs });
      } catch (err) {
        // Stopping closes the storage, which drops the file being written: not a failure.
        if (!this.stopped) this.failWith(err);
      } finally {
        view.release();
        if (!recorded) this.logBytesSinceSnapshot += logBytesInView;
        this.snapshotTask = null;
        const outcome = this.fatal ?? (this.stopped ? new ProposalError('stopped', 'the server is shutting down') : null);
        const { index, term } = this.storage.snapshot().meta;
        for (const w of waiters) {
          if (outcome) w.reject(outcome);
          else w.resolve({ index, term });
        }
        // Enough entries may have been applied meanwhile for the next one, or someone asked.
        this.schedule();
      }
    })();
    this.snapshotTask = task;
  }

  /** At start: the state machine gets the storage's snapshot, if there is one. */
  private async restoreAtStart(): Promise<void> {
    const meta = this.storage.snapshot().meta;
    if (meta.index === 0) return;
    const started = performance.now();
    const bytes = await this.restoreFromStorage(meta);
    this.snapshotBytes = bytes;
    this.emitSnapshot({ kind: 'restored', index: meta.index, term: meta.term, bytes, durationMs: performance.now() - started });
  }

  /**
   * Streams the recorded snapshot `meta` into the state machine; answers its size in bytes. The
   * reader checks the file's checksum before the last piece, so finish() (the swap) only ever
   * sees verified data; on any failure the restore is aborted and the old state stays.
   */
  private async restoreFromStorage(meta: SnapshotMeta): Promise<number> {
    const reader = await this.storage.openSnapshot(meta);
    const restore = this.fsm.beginRestore();
    let finished = false;
    try {
      const clock = new SliceClock();
      for (;;) {
        if (this.stopped) throw new HostStoppedError();
        const piece = await reader.read(RESTORE_PIECE_BYTES);
        if (piece === null) break;
        clock.start();
        restore.write(piece);
        clock.stop();
        await clock.pause();
      }
      finished = true;
      const restored = restore.finish();
      invariant(restored === meta.index, () => `snapshot ${meta.index} restored the state machine to index ${restored}`);
      return reader.dataBytes;
    } finally {
      if (!finished) restore.abort();
      await reader.close();
    }
  }

  private emitSnapshot(event: SnapshotEvent): void {
    try {
      this.onSnapshot?.(event);
    } catch {
      // A logging hook must not break snapshots.
    }
  }
}


function toProposalError(err: unknown): Error {
  if (err instanceof NotLeaderError) {
    return new ProposalError('notLeader', err.leader ? `not the leader; the leader is ${err.leader}` : 'No cluster leader', err.leader);
  }
  if (err instanceof RaftError && err.code === 'transferInProgress') return new ProposalError('transferInProgress', err.message);
  return err instanceof Error ? err : new Error(String(err));
}

function readFailureText(reason: ReadIndexError['reason']): string {
  switch (reason) {
    case 'noLeader':
      return 'No cluster leader';
    case 'leadershipLost':
      return 'leadership lost while confirming the read';
    case 'timeout':
      return 'timed out confirming leadership for a consistent read';
    case 'stopped':
      return 'the server is shutting down';
  }
}
