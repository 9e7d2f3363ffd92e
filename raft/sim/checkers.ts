// The properties the simulation proves, checked incrementally as events happen so that every check
// is O(1) or O(new entries): Election Safety, Log Matching, Leader Completeness, State Machine
// Safety (committed entries never change, across snapshots and restarts), acknowledged writes are
// never lost, and ReadIndex reads are linearizable.
import type { RaftLog } from '../core/log.ts';
import type { NodeId } from '../core/types.ts';
import { hex53 } from './hash.ts';

export type ViolationKind =
  | 'electionSafety'
  | 'logMatching'
  | 'leaderCompleteness'
  | 'stateMachineSafety'
  | 'duplicateCommand'
  | 'ackLost'
  | 'proposalLost'
  | 'readLinearizability'
  | 'membership'
  | 'liveness'
  | 'coreInvariant'
  | 'hostContract'
  | 'unexpectedError';

export class SimViolation extends Error {
  readonly kind: ViolationKind;
  constructor(kind: ViolationKind, message: string) {
    super(`${kind}: ${message}`);
    this.name = 'SimViolation';
    this.kind = kind;
  }
}

/** Command id of an entry whose content is not known to the caller (e.g. covered by a snapshot). */
export const UNKNOWN_COMMAND = -2;

/** What the checkers need to see of a node that currently believes it leads. */
export interface LeaderView {
  readonly id: NodeId;
  readonly term: number;
  readonly log: RaftLog;
}

export class SafetyChecker {
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** Per log index: the committed entry's term (0 = not known yet), prefix hash and command id. */
  private readonly committedTerm: number[] = [];
  private readonly committedChain: number[] = [];
  private readonly committedCmd: number[] = [];
  private readonly indexOfCommand = new Map<number, number>();
  /** Log Matching: (index, term) -> hash of the log prefix ending with that entry, as first seen anywhere. */
  private readonly prefixOf = new Map<number, number>();
  /**
   * For each term, the highest commit index a node persisted while in that term. Everything up to
   * it was committed in that term or earlier, so every leader of a later term must hold it.
   */
  private readonly commitSeenInTerm = new Map<number, number>();
  private readonly currentLeaders: () => Iterable<LeaderView>;
  /** Highest index known committed. */
  maxCommitted = 0;
  leadersElected = 0;

  constructor(currentLeaders: () => Iterable<LeaderView>) {
    this.currentLeaders = currentLeaders;
  }

  /** Election Safety (whole history) and Leader Completeness at the moment a leader appears. */
  observeLeader(leader: LeaderView): void {
    const previous = this.leaderOfTerm.get(leader.term);
    if (previous !== undefined) {
      if (previous !== leader.id) throw new SimViolation('electionSafety', `${previous} and ${leader.id} are both leaders of term ${leader.term}`);
      return;
    }
    this.leaderOfTerm.set(leader.term, leader.id);
    this.leadersElected++;
    let committedBefore = 0;
    for (const [term, commit] of this.commitSeenInTerm) if (term < leader.term && commit > committedBefore) committedBefore = commit;
    if (committedBefore > 0) this.leaderHolds(leader, committedBefore, 'on election');
  }

  /** A node persisted `commit` while in `term`: check it against every leader of a later term. */
  observeCommit(term: number, commit: number): void {
    const seen = this.commitSeenInTerm.get(term) ?? 0;
    if (commit <= seen) return;
    this.commitSeenInTerm.set(term, commit);
    for (const leader of this.currentLeaders()) if (leader.term > term) this.leaderHolds(leader, commit, 'after a commit of an earlier term');
  }

  private leaderHolds(leader: LeaderView, index: number, when: string): void {
    const log = leader.log;
    // An index below the leader's snapshot is covered by it; snapshots are checked when installed.
    if (index < log.firstIndex() - 1) return;
    const want = this.committedTerm[index] ?? 0;
    if (log.lastIndex() < index) {
      throw new SimViolation('leaderCompleteness', `${leader.id}, leader of term ${leader.term}, lacks committed entry ${index} (its log ends at ${log.lastIndex()}) ${when}`);
    }
    const got = log.term(index);
    if (want !== 0 && got !== want) {
      throw new SimViolation('leaderCompleteness', `${leader.id}, leader of term ${leader.term}, has term ${got} at committed index ${index} whose term is ${want} ${when}`);
    }
  }

  /** Log Matching: an entry with the same index and term ends the same log prefix everywhere. */
  logEntry(node: NodeId, index: number, term: number, prefix: number): void {
    const key = index * 0x100000 + term;
    const known = this.prefixOf.get(key);
    if (known === undefined) this.prefixOf.set(key, prefix);
    else if (known !== prefix) {
      throw new SimViolation('logMatching', `${node} stores entry ${index} of term ${term} after a log prefix (${hex53(prefix)}) that differs from another node's (${hex53(known)})`);
    }
  }

  /** An entry became known committed (persisted commit index, installed snapshot, applied entry): it may never change. */
  committed(node: NodeId, index: number, term: number, prefix: number, cmd: number, how: string): void {
    const knownTerm = this.committedTerm[index] ?? 0;
    if (knownTerm === 0) {
      this.committedTerm[index] = term;
      this.committedChain[index] = prefix;
      this.committedCmd[index] = cmd;
      if (index > this.maxCommitted) this.maxCommitted = index;
    } else if (knownTerm !== term || this.committedChain[index] !== prefix) {
      throw new SimViolation(
        'stateMachineSafety',
        `${node} ${how} entry ${index} of term ${term} (prefix ${hex53(prefix)}) but committed entry ${index} is of term ${knownTerm} (prefix ${hex53(this.committedChain[index]!)})`,
      );
    } else if (this.committedCmd[index] === UNKNOWN_COMMAND) {
      this.committedCmd[index] = cmd;
    }
    if (cmd >= 0) {
      const at = this.indexOfCommand.get(cmd);
      if (at === undefined) this.indexOfCommand.set(cmd, index);
      else if (at !== index) throw new SimViolation('duplicateCommand', `command ${cmd} is committed at both ${at} and ${index}`);
    }
  }

  /** The command committed at `index` (-1 none, UNKNOWN_COMMAND if only seen through snapshots, undefined if not committed). */
  commandAt(index: number): number | undefined {
    return (this.committedTerm[index] ?? 0) === 0 ? undefined : this.committedCmd[index];
  }

  committedPrefix(index: number): number | undefined {
    return (this.committedTerm[index] ?? 0) === 0 ? undefined : this.committedChain[index];
  }
}

export type ProposalStatus = 'pending' | 'acked' | 'abandoned' | 'unknown';

export interface Proposal {
  readonly cmd: number;
  readonly key: number;
  readonly node: NodeId;
  readonly term: number;
  readonly index: number;
  status: ProposalStatus;
}

export type ReadStatus = 'pending' | 'answered' | 'served' | 'failed' | 'unknown';

export interface Read {
  readonly id: number;
  readonly context: string;
  readonly node: NodeId;
  readonly key: number;
  /** Every write acknowledged, and every state served to a read, before this read was issued lies at or below this index. */
  readonly mustCover: number;
  /** The highest index of an acknowledged write to `key` before this read was issued. */
  readonly mustSeeKeyAt: number;
  status: ReadStatus;
  index: number;
}

/** What clients were told: acknowledged writes and answered reads, checked for linearizability. */
export class ClientHistory {
  readonly acked: Proposal[] = [];
  maxAckedIndex = 0;
  private readonly ackedKeyIndex = new Map<number, number>();
  private maxServedApplied = 0;
  proposals = 0;
  abandoned = 0;
  unknown = 0;
  reads = 0;
  readsServed = 0;
  readsFailed = 0;

  ack(p: Proposal): void {
    p.status = 'acked';
    this.acked.push(p);
    if (p.index > this.maxAckedIndex) this.maxAckedIndex = p.index;
    if ((this.ackedKeyIndex.get(p.key) ?? 0) < p.index) this.ackedKeyIndex.set(p.key, p.index);
  }

  newRead(id: number, node: NodeId, key: number): Read {
    this.reads++;
    return {
      id,
      context: `r${id}`,
      node,
      key,
      mustCover: Math.max(this.maxAckedIndex, this.maxServedApplied),
      mustSeeKeyAt: this.ackedKeyIndex.get(key) ?? 0,
      status: 'pending',
      index: 0,
    };
  }

  /** The core answered the read with a read index. */
  answered(r: Read, index: number): void {
    if (index < r.mustCover) {
      throw new SimViolation('readLinearizability', `read ${r.id} on ${r.node} got read index ${index}, below index ${r.mustCover} acknowledged or observed before it was issued`);
    }
    r.status = 'answered';
    r.index = index;
  }

  /** The node applied the read index and serves the read from its state machine. */
  served(r: Read, applied: number, valueIndex: number): void {
    if (valueIndex < r.mustSeeKeyAt) {
      throw new SimViolation('readLinearizability', `read ${r.id} of key ${r.key} on ${r.node} (read index ${r.index}, applied ${applied}) sees the write at ${valueIndex}, missing the write acknowledged at ${r.mustSeeKeyAt} before the read was issued`);
    }
    r.status = 'served';
    this.readsServed++;
    if (applied > this.maxServedApplied) this.maxServedApplied = applied;
  }

  /** Acknowledged-never-lost: every acknowledged command is the committed entry at its index. */
  checkAcked(checker: SafetyChecker): void {
    for (const p of this.acked) {
      const cmd = checker.commandAt(p.index);
      if (cmd !== p.cmd && cmd !== UNKNOWN_COMMAND) {
        throw new SimViolation('ackLost', `command ${p.cmd} was acknowledged at index ${p.index} but the committed entry there is ${cmd === undefined ? 'unknown' : `command ${cmd}`}`);
      }
    }
  }
}
