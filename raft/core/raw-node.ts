// The host-facing wrapper of the Raft state machine: it gathers the core's effects into Ready
// batches and learns through advance() what the host has persisted and applied.
import { invariant } from './errors.ts';
import { Raft, type RaftConfig } from './raft.ts';
import type { ConfChange, ConfState, HardState, Message, NodeId, Ready, SoftState, Status } from './types.ts';

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function sameSoftState(a: SoftState, b: SoftState): boolean {
  return a.lead === b.lead && a.role === b.role;
}

const DEFAULT_MAX_COMMITTED_BYTES_PER_READY = 64 * 1024 * 1024;

export class RawNode {
  readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  private readonly maxCommittedBytes: number;
  /** The Ready handed out and not yet advanced; only one may be outstanding. */
  private outstanding: Ready | null = null;

  constructor(config: RaftConfig) {
    this.raft = new Raft(config);
    this.prevSoftState = this.raft.softState();
    this.prevHardState = this.raft.hardState();
    this.maxCommittedBytes = config.maxCommittedSizePerReady ?? DEFAULT_MAX_COMMITTED_BYTES_PER_READY;
  }

  /** Seeds an empty log with the founders' configuration (see Raft.bootstrap); false if not empty. */
  bootstrap(conf: ConfState): boolean {
    return this.raft.bootstrap(conf);
  }

  /** Advances logical time by one tick (election and heartbeat timeouts are counted in ticks). */
  tick(): void {
    this.raft.tick();
  }

  /** Delivers a message from another node. */
  step(message: Message): void {
    this.raft.step(message);
  }

  /** Starts an election now (the host's "campaign" button; the node must be a voter). */
  campaign(): void {
    this.raft.hup(false);
  }

  /** Appends commands (leader only, else NotLeaderError). Returns the log positions they took. */
  propose(commands: readonly Uint8Array[]): { term: number; firstIndex: number; lastIndex: number } {
    return this.raft.propose(commands);
  }

  /** Proposes a single-server membership change (leader only, one at a time). */
  proposeConfChange(change: ConfChange): { term: number; index: number } {
    return this.raft.proposeConfChange(change);
  }

  /** Asks for a linearizable read point; answered in a later Ready's readStates or failedReads. */
  readIndex(context: string): void {
    this.raft.readIndex(context);
  }

  transferLeader(target: NodeId): void {
    this.raft.transferLeader(target);
  }

  reportUnreachable(to: NodeId): void {
    this.raft.reportUnreachable(to);
  }

  reportSnapshot(to: NodeId, ok: boolean): void {
    this.raft.reportSnapshot(to, ok);
  }

  status(): Status {
    return this.raft.status();
  }

  /** The membership as of the last applied entry: what a snapshot taken now must record. */
  confState(): ConfState {
    return this.raft.confStateAt(this.raft.log.applied);
  }

  /** The membership in force: the latest configuration in the log, committed or not. */
  latestConfState(): ConfState {
    return this.raft.confState();
  }

  hasReady(): boolean {
    if (this.outstanding) return false;
    const r = this.raft;
    return (
      !sameSoftState(r.softState(), this.prevSoftState) ||
      !sameHardState(r.hardState(), this.prevHardState) ||
      r.log.unstable.snapshot !== null ||
      r.log.unstable.entries.length > 0 ||
      r.log.hasNextCommittedEntries() ||
      r.msgs.length > 0 ||
      r.readStates.length > 0 ||
      r.failedReads.length > 0 ||
      r.abandonedProposals.length > 0
    );
  }

  /**
   * Collects the pending effects. The host carries them out in the order documented on Ready and
   * then calls advance(ready). Returns null when there is nothing to do or a Ready is outstanding.
   */
  ready(): Ready | null {
    if (!this.hasReady()) return null;
    const r = this.raft;
    const soft = r.softState();
    const hard = r.hardState();
    const committedEntries = r.log.nextCommittedEntries(this.maxCommittedBytes);
    const rd: Ready = {
      softState: sameSoftState(soft, this.prevSoftState) ? null : soft,
      hardState: sameHardState(hard, this.prevHardState) ? null : hard,
      snapshot: r.log.unstable.snapshot,
      entries: r.log.unstableEntries(),
      committedEntries,
      messages: r.msgs,
      readStates: r.readStates,
      failedReads: r.failedReads,
      abandonedProposals: r.abandonedProposals,
    };
    r.msgs = [];
    r.readStates = [];
    r.failedReads = [];
    r.abandonedProposals = [];
    this.prevSoftState = soft;
    this.prevHardState = hard;
    const lastCommitted = committedEntries[committedEntries.length - 1];
    if (lastCommitted) r.log.acceptApplying(lastCommitted.index);
    this.outstanding = rd;
    return rd;
  }

  /** Tells the core the Ready was carried out: entries persisted, snapshot installed, entries applied. */
  advance(rd: Ready): void {
    invariant(this.outstanding === rd, 'advance() must be given the outstanding Ready');
    this.outstanding = null;
    const r = this.raft;
    const lastEntry = rd.entries[rd.entries.length - 1];
    if (lastEntry) r.log.stableTo(lastEntry.index, lastEntry.term);
    if (rd.snapshot) {
      r.log.stableSnapTo(rd.snapshot.meta.index);
      if (rd.snapshot.meta.index > r.log.applied) r.appliedTo(rd.snapshot.meta.index);
    }
    const lastApplied = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastApplied) r.appliedTo(lastApplied.index);
  }
}

/**
 * Whether a host may send `m` before it has persisted the Ready that carries it (ADR 0001): a
 * leader's appends, heartbeats and snapshots, as long as the commit index they carry covers only
 * entries already durable here (`durableLastIndex`: the storage's last index before this Ready is
 * written). The core counts the leader's own copy when it appends, so a leader that is a quorum on
 * its own (one voter) commits an entry before writing it; announcing that commit early would let a
 * follower apply an entry a crash could still take from the leader (the simulation found it).
 */
export function sentBeforePersisting(m: Message, durableLastIndex: number): boolean {
  if (m.type === 'snap') return true;
  return (m.type === 'app' || m.type === 'heartbeat') && m.commit <= durableLastIndex;
}
