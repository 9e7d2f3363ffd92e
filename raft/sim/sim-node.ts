// One simulated server: a RawNode over a MemoryStorage (its disk) and a KvStateMachine, driven by
// the host loop the Ready contract prescribes. A crash throws away the RawNode, the state machine
// and any Ready whose write had not finished; a restart builds a new RawNode over the same storage
// and restores the state machine from the storage's snapshot, so it re-applies from there.
import type { Prng } from '../core/prng.ts';
import type { UnsafeMutations } from '../core/raft.ts';
import { RawNode, sentBeforePersisting } from '../core/raw-node.ts';
import type { AbandonedProposals, ConfChange, Entry, FailedRead, Message, NodeId, Ready, ReadState, Snapshot } from '../core/types.ts';
import type { MemoryStorage } from '../storage/memory-storage.ts';
import { SimViolation, UNKNOWN_COMMAND } from './checkers.ts';
import type { ClientHistory, Proposal, Read, SafetyChecker } from './checkers.ts';
import { chainNext, entryDigest, GENESIS_CHAIN } from './hash.ts';
import type { FaultProfile } from './profile.ts';
import { commandOf, encodeCommand, KvStateMachine } from './state-machine.ts';
import { roleCode } from './trace.ts';
import type { Trace } from './trace.ts';

/** What a node needs from the simulation around it. */
export interface NodeEnv {
  readonly profile: FaultProfile;
  readonly checker: SafetyChecker;
  readonly history: ClientHistory;
  readonly trace: Trace;
  /** Decides write delays. */
  readonly prng: Prng;
  readonly mutations: UnsafeMutations | undefined;
  now(): number;
  /** A fresh random source for a new RawNode. */
  nodeRandom(): Prng;
  send(from: SimNode, message: Message): void;
  confChangeApplied(node: SimNode, index: number, change: ConfChange): void;
  nodeNumber(id: NodeId): number;
}

export type NodeStatus = 'absent' | 'running' | 'crashed' | 'stopped';

/**
 * The persisted log as the checkers see it: for each index from `base` (the snapshot's index) the
 * term, the hash of the log prefix ending there, and the command. Derived from durable writes only,
 * so it survives crashes together with the storage.
 */
class PersistedLog {
  base = 0;
  terms: number[] = [0];
  prefixes: number[] = [GENESIS_CHAIN];
  cmds: number[] = [-1];

  lastIndex(): number {
    return this.base + this.terms.length - 1;
  }

  /** Mirrors MemoryStorage.append: entries at or below `compacted` are dropped, later ones replace the suffix. */
  append(node: NodeId, entries: readonly Entry[], compacted: number, checker: SafetyChecker): void {
    for (const e of entries) {
      if (e.index <= compacted || e.index <= this.base) continue;
      const at = e.index - this.base;
      if (at > this.terms.length) throw new SimViolation('hostContract', `${node} persists entry ${e.index} after a gap (log ends at ${this.lastIndex()})`);
      if (at < this.terms.length) {
        this.terms.length = at;
        this.prefixes.length = at;
        this.cmds.length = at;
      }
      const prefix = chainNext(this.prefixes[at - 1]!, e.index, e.term, entryDigest(e));
      this.terms.push(e.term);
      this.prefixes.push(prefix);
      this.cmds.push(e.type === 'normal' ? commandOf(e.data) : -1);
      checker.logEntry(node, e.index, e.term, prefix);
    }
  }

  installSnapshot(index: number, term: number, prefix: number): void {
    this.base = index;
    this.terms = [term];
    this.prefixes = [prefix];
    this.cmds = [UNKNOWN_COMMAND];
  }

  /** Forgets indexes below `index` once enough have piled up (the storage compacted them). */
  trim(index: number): void {
    const drop = index - this.base;
    if (drop < 256) return;
    this.base = index;
    this.terms = this.terms.slice(drop);
    this.prefixes = this.prefixes.slice(drop);
    this.cmds = this.cmds.slice(drop);
  }
}

export class SimNode {
  readonly id: NodeId;
  readonly num: number;
  private readonly env: NodeEnv;
  readonly storage: MemoryStorage;
  private readonly plog = new PersistedLog();
  status: NodeStatus = 'absent';
  incarnation = 0;
  raw: RawNode | null = null;
  sm = new KvStateMachine();
  /** A Ready whose write is still in progress, and the tick it completes. */
  private pending: { ready: Ready; at: number; durableLastIndex: number } | null = null;
  /** Highest commit index whose entries were handed to the checker. */
  private commitRecorded = 0;
  /** The last term in which this node was seen leading (leaders are registered once per term). */
  private leaderTerm = 0;
  /** The index of the first entry of that term (the empty entry a new leader appends). */
  termStartIndex = 0;
  /** This incarnation's accepted proposals, by log index. */
  readonly proposals = new Map<number, Proposal>();
  /** This incarnation's reads not yet answered, by context. */
  readonly reads = new Map<string, Read>();
  /** Answered reads waiting for the state machine to reach their read index. */
  waitingReads: Read[] = [];
  /** Tick at which a crashed node comes back (-1: not scheduled). */
  restartAt = -1;

  constructor(id: NodeId, num: number, env: NodeEnv, storage: MemoryStorage) {
    this.id = id;
    this.num = num;
    this.env = env;
    this.storage = storage;
  }

  get running(): boolean {
    return this.status === 'running';
  }

  /** Starts (or restarts) the process over whatever the disk holds. */
  boot(): void {
    const env = this.env;
    const p = env.profile;
    const first = this.incarnation === 0;
    this.incarnation++;
    this.status = 'running';
    this.restartAt = -1;
    if (first) this.plog.append(this.id, this.storage.entries(1, this.storage.lastIndex() + 1, Infinity), 0, env.checker);
    this.sm = KvStateMachine.restore(this.storage.snapshot());
    this.raw = new RawNode({
      id: this.id,
      storage: this.storage,
      random: env.nodeRandom(),
      electionTicks: p.electionTicks,
      heartbeatTicks: p.heartbeatTicks,
      preVote: p.preVote,
      checkQuorum: p.checkQuorum,
      maxSizePerMsg: p.maxSizePerMsg,
      maxInflightMsgs: p.maxInflightMsgs,
      maxCommittedSizePerReady: p.maxCommittedSizePerReady,
      ...(env.mutations ? { unsafeMutations: env.mutations } : {}),
    });
    const hs = this.storage.hardState();
    env.trace.event(env.now(), first ? 'start' : 'restart', this.num, this.incarnation, this.storage.snapshot().meta.index, hs.commit);
    this.recordCommit(hs.commit, hs.term);
    this.afterCall();
    this.process();
  }

  /** Kills the process: the RawNode, the state machine and any unfinished write are gone. */
  crash(stopped = false): void {
    const lostReady = this.pending !== null ? 1 : 0;
    this.raw = null;
    this.pending = null;
    this.status = stopped ? 'stopped' : 'crashed';
    for (const p of this.proposals.values()) {
      p.status = 'unknown';
      this.env.history.unknown++;
    }
    this.proposals.clear();
    for (const r of this.reads.values()) r.status = 'unknown';
    for (const r of this.waitingReads) r.status = 'unknown';
    this.reads.clear();
    this.waitingReads = [];
    this.env.trace.event(this.env.now(), stopped ? 'stop' : 'crash', this.num, lostReady);
  }

  step(m: Message): void {
    this.raw!.step(m);
    this.afterCall();
    this.process();
  }

  tick(): void {
    this.raw!.tick();
    this.afterCall();
    this.process();
  }

  /** Appends commands; throws the core's RaftError when this node cannot accept them. */
  propose(cmds: readonly { cmd: number; key: number }[]): { term: number; firstIndex: number } {
    const raw = this.raw!;
    const { term, firstIndex } = raw.propose(cmds.map((c) => encodeCommand(c.cmd, c.key)));
    cmds.forEach((c, i) => {
      this.proposals.set(firstIndex + i, { cmd: c.cmd, key: c.key, node: this.id, term, index: firstIndex + i, status: 'pending' });
    });
    this.env.history.proposals += cmds.length;
    this.afterCall();
    return { term, firstIndex };
  }

  /** Registers a read and asks the core for a read index. */
  readIndex(read: Read): void {
    this.reads.set(read.context, read);
    this.raw!.readIndex(read.context);
    this.afterCall();
  }

  /** Checks after every call into the core: a node that leads registers its term once. */
  afterCall(): void {
    const raft = this.raw!.raft;
    if (raft.role === 'leader' && raft.term !== this.leaderTerm) {
      this.leaderTerm = raft.term;
      // Seen at once after the election (every call into the core is followed by this check).
      this.termStartIndex = raft.log.lastIndex();
      this.env.checker.observeLeader({ id: this.id, term: raft.term, log: raft.log });
    }
  }

  /** Carries out Readies until there are none, or one is waiting for its write to complete. */
  process(): void {
    const env = this.env;
    const p = env.profile;
    while (this.raw) {
      if (this.pending) {
        if (this.pending.at > env.now()) return;
        const { ready, durableLastIndex } = this.pending;
        this.pending = null;
        this.handle(ready, durableLastIndex);
        continue;
      }
      const rd = this.raw.ready();
      if (!rd) return;
      // As the host does (ADR 0001): a leader's replication leaves before its own write, which may
      // then be delayed or lost to a crash while followers already hold the entries.
      const durableLastIndex = this.storage.lastIndex();
      for (const m of rd.messages) if (sentBeforePersisting(m, durableLastIndex)) env.send(this, m);
      if (p.persistDelayChance > 0 && env.prng.chance(p.persistDelayChance)) {
        this.pending = { ready: rd, at: env.now() + 1 + env.prng.int(p.maxPersistDelay), durableLastIndex };
        return;
      }
      this.handle(rd, durableLastIndex);
    }
  }

  /** Steps 1–5 of the Ready contract; the messages sent before the write were those sentBeforePersisting(m, durableLastIndex). */
  private handle(rd: Ready, durableLastIndex: number): void {
    const env = this.env;
    const raw = this.raw!;
    const now = env.now();
    if (rd.softState) env.trace.event(now, 'role', this.num, roleCode(rd.softState.role), raw.raft.term, rd.softState.lead ? env.nodeNumber(rd.softState.lead) : -1);
    // 1. Install the snapshot and restore the state machine from it.
    if (rd.snapshot) this.installSnapshot(rd.snapshot);
    // 2. Append entries and save the hard state (one synced write).
    if (rd.entries.length > 0) {
      const compacted = this.storage.firstIndex() - 1;
      this.storage.append(rd.entries);
      this.plog.append(this.id, rd.entries, compacted, env.checker);
      const last = rd.entries[rd.entries.length - 1]!;
      env.trace.event(now, 'persist', this.num, rd.entries[0]!.index, last.index, last.term);
    }
    if (rd.hardState) {
      this.storage.setHardState(rd.hardState);
      const hs = rd.hardState;
      env.trace.event(now, 'hardState', this.num, hs.term, hs.vote ? env.nodeNumber(hs.vote) : -1, hs.commit);
      this.recordCommit(hs.commit, hs.term);
    }
    // 3. Send the rest (only now that what they depend on is durable).
    for (const m of rd.messages) if (!sentBeforePersisting(m, durableLastIndex)) env.send(this, m);
    // 4. Tell clients, apply, answer reads.
    for (const a of rd.abandonedProposals) this.abandon(a);
    for (const f of rd.failedReads) this.readFailed(f);
    for (const rs of rd.readStates) this.readAnswered(rs);
    let confChanged = rd.snapshot !== null;
    if (rd.committedEntries.length > 0) confChanged = this.apply(rd.committedEntries) || confChanged;
    if (this.waitingReads.length > 0) this.serveReads();
    // 5. Advance.
    raw.advance(rd);
    this.afterCall();
    const raft = raw.raft;
    if (raft.log.applied !== this.sm.applied) {
      throw new SimViolation('hostContract', `${this.id}: the core believes ${raft.log.applied} is applied, the state machine is at ${this.sm.applied}`);
    }
    if (confChanged) this.checkMembership();
    this.maybeSnapshot();
  }

  private recordCommit(commit: number, term: number): void {
    const checker = this.env.checker;
    if (commit > this.plog.lastIndex()) {
      throw new SimViolation('hostContract', `${this.id} persisted commit index ${commit} beyond its persisted log (last ${this.plog.lastIndex()})`);
    }
    for (let i = Math.max(this.commitRecorded + 1, this.plog.base); i <= commit; i++) {
      const at = i - this.plog.base;
      checker.committed(this.id, i, this.plog.terms[at]!, this.plog.prefixes[at]!, this.plog.cmds[at]!, 'persisted as committed');
    }
    if (commit > this.commitRecorded) this.commitRecorded = commit;
    checker.observeCommit(term, commit);
  }

  private installSnapshot(snap: Snapshot): void {
    const env = this.env;
    const { index, term } = snap.meta;
    this.storage.applySnapshot(snap);
    this.sm = KvStateMachine.restore(snap);
    env.checker.committed(this.id, index, term, this.sm.chain, UNKNOWN_COMMAND, 'installed a snapshot ending with');
    env.checker.logEntry(this.id, index, term, this.sm.chain);
    this.plog.installSnapshot(index, term, this.sm.chain);
    if (index > this.commitRecorded) this.commitRecorded = index;
    // The snapshot hides which entries were applied: proposals it covers have an unknown outcome.
    for (const [i, p] of this.proposals) {
      if (i <= index) {
        p.status = 'unknown';
        env.history.unknown++;
        this.proposals.delete(i);
      }
    }
    env.trace.event(env.now(), 'snapInstall', this.num, index, term);
  }

  /** Applies committed entries; returns whether one of them changed the membership. */
  private apply(entries: readonly Entry[]): boolean {
    const env = this.env;
    let confChanged = false;
    for (const e of entries) {
      const cmd = this.sm.apply(e);
      env.checker.committed(this.id, e.index, e.term, this.sm.chain, e.type === 'normal' ? cmd : -1, 'applied');
      if (e.type === 'confChange') {
        confChanged = true;
        env.confChangeApplied(this, e.index, e.change);
      }
      const p = this.proposals.get(e.index);
      if (p) {
        this.proposals.delete(e.index);
        if (p.term === e.term && p.cmd === cmd) {
          env.history.ack(p);
          env.trace.event(env.now(), 'ack', this.num, p.cmd, p.index);
        } else {
          throw new SimViolation('proposalLost', `${this.id} accepted command ${p.cmd} at ${p.index} in term ${p.term} and applied ${cmd >= 0 ? `command ${cmd}` : 'another entry'} of term ${e.term} there, without reporting the proposal abandoned`);
        }
      }
    }
    env.trace.event(env.now(), 'apply', this.num, entries[0]!.index, entries[entries.length - 1]!.index);
    return confChanged;
  }

  private abandon(a: AbandonedProposals): void {
    const env = this.env;
    env.trace.event(env.now(), 'abandoned', this.num, a.term, a.fromIndex, a.toIndex);
    for (let i = a.fromIndex; i <= a.toIndex; i++) {
      const p = this.proposals.get(i);
      if (p && p.term === a.term) {
        p.status = 'abandoned';
        env.history.abandoned++;
        this.proposals.delete(i);
      }
    }
  }

  private readAnswered(rs: ReadState): void {
    const env = this.env;
    const r = this.reads.get(rs.context);
    if (!r) throw new SimViolation('hostContract', `${this.id} got a read index for ${rs.context}, which is not waiting for one`);
    this.reads.delete(rs.context);
    env.trace.event(env.now(), 'readState', this.num, r.id, rs.index);
    env.history.answered(r, rs.index);
    this.waitingReads.push(r);
  }

  private readFailed(f: FailedRead): void {
    const env = this.env;
    const r = this.reads.get(f.context);
    if (!r) throw new SimViolation('hostContract', `${this.id} got a failure for read ${f.context}, which is not waiting`);
    this.reads.delete(f.context);
    r.status = 'failed';
    env.history.readsFailed++;
    env.trace.event(env.now(), 'readFailed', this.num, r.id, 0, 0, 0, 0, f.reason);
  }

  private serveReads(): void {
    const env = this.env;
    const applied = this.sm.applied;
    const still: Read[] = [];
    for (const r of this.waitingReads) {
      if (r.index > applied) {
        still.push(r);
        continue;
      }
      const valueIndex = this.sm.kv.get(r.key)?.index ?? 0;
      env.trace.event(env.now(), 'readServed', this.num, r.id, applied, valueIndex);
      env.history.served(r, applied, valueIndex);
    }
    this.waitingReads = still;
  }

  /** The membership the core reports must be the one the applied log (or snapshot) defines. */
  private checkMembership(): void {
    const core = this.raw!.confState();
    const sm = this.sm.confState();
    const a = `${core.voters.join(',')}|${core.learners.join(',')}`;
    const b = `${sm.voters.join(',')}|${sm.learners.join(',')}`;
    if (a !== b) {
      throw new SimViolation('membership', `${this.id} at applied index ${this.sm.applied}: the core's membership is voters {${core.voters.join(',')}} learners {${core.learners.join(',')}} but the applied log defines voters {${sm.voters.join(',')}} learners {${sm.learners.join(',')}}`);
    }
  }

  /** Every `snapshotEvery` applied entries: snapshot the state machine and compact the log. */
  private maybeSnapshot(): void {
    const p = this.env.profile;
    const applied = this.sm.applied;
    if (applied - this.storage.snapshot().meta.index < p.snapshotEvery) return;
    this.storage.createSnapshot(applied, this.raw!.confState(), this.sm.encode());
    const compactTo = applied - p.keepEntries;
    if (compactTo > this.storage.firstIndex() - 1) {
      this.storage.compact(compactTo);
      this.plog.trim(compactTo);
    }
    this.env.trace.event(this.env.now(), 'snapCreate', this.num, applied, compactTo);
  }
}
