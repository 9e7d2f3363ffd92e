// The Raft state machine: elections (pre-vote, check-quorum, leases), log replication with flow
// control, snapshots, single-server membership changes, ReadIndex and leadership transfer.
// Pure and deterministic: time is tick(), randomness is the injected RandomSource, and every effect
// is queued for the host to collect through RawNode.ready().
import { CompactedError, invariant, NotLeaderError, RaftError } from './errors.ts';
import { entrySize, RaftLog } from './log.ts';
import { bootstrapEntries, ConfigHistory } from './membership.ts';
import type { RandomSource } from './prng.ts';
import { Progress } from './progress.ts';
import type { RaftStorage } from './storage.ts';
import type {
  AbandonedProposals,
  ConfChange,
  ConfState,
  Entry,
  FailedRead,
  HardState,
  Message,
  MsgApp,
  MsgAppResp,
  MsgHeartbeat,
  MsgHeartbeatResp,
  MsgReadIndexResp,
  MsgSnap,
  MsgVote,
  MsgVoteResp,
  NodeId,
  ReadState,
  Role,
  SoftState,
  Status,
} from './types.ts';
import { NO_NODE } from './types.ts';

/**
 * Deliberate bugs for proving that the simulation catches unsafe behaviour. Never set outside tests.
 */
export interface UnsafeMutations {
  /** Commit an entry of an earlier term as soon as a majority stores it (Raft §5.4.2 forbids it). */
  readonly commitPreviousTermByCounting?: boolean;
  /** Grant votes without checking that the candidate's log is at least as up to date (§5.4.1). */
  readonly voteWithoutLogCheck?: boolean;
  /**
   * Let a new leader propose a membership change before an entry of its own term has committed: the
   * single-server change bug of the Raft thesis (docs/adr/0002, rule 2).
   */
  readonly confChangeBeforeTermCommit?: boolean;
}

export interface RaftConfig {
  readonly id: NodeId;
  readonly storage: RaftStorage;
  readonly random: RandomSource;
  /** A follower that hears nothing from a leader for [electionTicks, 2*electionTicks) ticks campaigns. */
  readonly electionTicks?: number;
  /** A leader sends heartbeats every heartbeatTicks ticks. Must be less than electionTicks. */
  readonly heartbeatTicks?: number;
  /** Run a pre-vote round first so a node that was partitioned away cannot disrupt the cluster. */
  readonly preVote?: boolean;
  /** Leaders step down without an active quorum; followers ignore votes while they have a leader. */
  readonly checkQuorum?: boolean;
  /** Upper bound on the entries' bytes in one append message. */
  readonly maxSizePerMsg?: number;
  /** Upper bound on append messages in flight to one follower in replicate state. */
  readonly maxInflightMsgs?: number;
  /** Upper bound on entry bytes in flight to one follower. */
  readonly maxInflightBytes?: number;
  /** Upper bound on committed entry bytes in one Ready (at least one entry is always handed out). */
  readonly maxCommittedSizePerReady?: number;
  /** Index the host's state machine has already applied (a durable FSM); defaults to the snapshot index. */
  readonly applied?: number;
  /** Unanswered ReadIndex requests fail after this many ticks; defaults to electionTicks. */
  readonly readTimeoutTicks?: number;
  readonly unsafeMutations?: UnsafeMutations;
}

interface PendingRead {
  readonly context: string;
  /** The commit index at the time of the request: the read is served once this is applied. */
  readonly index: number;
  /** The node that asked (this node for local reads, else a follower awaiting MsgReadIndexResp). */
  readonly from: NodeId;
  readonly startTick: number;
  readonly acks: Set<NodeId>;
}

export class Raft {
  readonly id: NodeId;
  readonly log: RaftLog;
  term = 0;
  vote: NodeId = NO_NODE;
  lead: NodeId = NO_NODE;
  role: Role = 'follower';

  voters = new Set<NodeId>();
  learners = new Set<NodeId>();
  /** Configurations recorded in the log; the latest one is in force (voters, learners). */
  private readonly configs: ConfigHistory;
  /** Replication state of every member (leader only). */
  progress = new Map<NodeId, Progress>();
  private votes = new Map<NodeId, boolean>();

  msgs: Message[] = [];
  readStates: ReadState[] = [];
  failedReads: FailedRead[] = [];
  abandonedProposals: AbandonedProposals[] = [];

  private readonly electionTicks: number;
  private readonly heartbeatTicks: number;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly maxSizePerMsg: number;
  private readonly maxInflightMsgs: number;
  private readonly maxInflightBytes: number;
  private readonly readTimeoutTicks: number;
  private readonly random: RandomSource;
  private readonly mutations: UnsafeMutations;

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /** Logical clock: total ticks seen, used only to expire pending reads. */
  private ticks = 0;

  /** Index of this leader's first entry of its term (the empty entry appended on election). */
  private termStartIndex = 0;
  leadTransferee: NodeId = NO_NODE;

  /** Leader: ReadIndex requests awaiting heartbeat acknowledgements from a quorum, in order. */
  private pendingReads: PendingRead[] = [];
  /** Leader: ReadIndex requests waiting for the first entry of this term to commit. */
  private readsAwaitingTermCommit: { context: string; from: NodeId; startTick: number }[] = [];
  /** Follower: ReadIndex requests forwarded to the leader, by context. */
  private forwardedReads = new Map<string, number>();

  constructor(config: RaftConfig) {
    this.id = config.id;
    invariant(this.id !== NO_NODE, 'a Raft node needs a non-empty id');
    this.electionTicks = config.electionTicks ?? 10;
    this.heartbeatTicks = config.heartbeatTicks ?? 1;
    invariant(this.heartbeatTicks > 0 && this.heartbeatTicks < this.electionTicks, 'need 0 < heartbeatTicks < electionTicks');
    this.preVote = config.preVote ?? true;
    this.checkQuorum = config.checkQuorum ?? true;
    this.maxSizePerMsg = config.maxSizePerMsg ?? 1024 * 1024;
    this.maxInflightMsgs = config.maxInflightMsgs ?? 256;
    this.maxInflightBytes = config.maxInflightBytes ?? 32 * 1024 * 1024;
    this.readTimeoutTicks = config.readTimeoutTicks ?? this.electionTicks;
    this.random = config.random;
    this.mutations = config.unsafeMutations ?? {};

    this.log = new RaftLog(config.storage);
    const { hardState, confState } = config.storage.initialState();
    // The configuration in force is the latest one in the log: start from the snapshot's and
    // replay the conf changes still in the log.
    this.configs = new ConfigHistory(this.log.firstIndex() - 1, confState);
    for (let lo = this.log.firstIndex(); lo <= this.log.lastIndex(); ) {
      const batch = this.log.slice(lo, this.log.lastIndex() + 1, 64 * 1024 * 1024);
      this.configs.record(batch);
      lo += batch.length;
    }
    this.syncConfig();
    if (hardState.term > 0 || hardState.commit > 0) {
      invariant(hardState.commit <= this.log.lastIndex(), () => `hard state commit ${hardState.commit} beyond last index ${this.log.lastIndex()}`);
      this.term = hardState.term;
      this.vote = hardState.vote;
      this.log.commitTo(hardState.commit);
    }
    // The log starts at the compaction point, which may lie below the snapshot (a host keeps some
    // entries for lagging followers); the state machine restored from the snapshot is at its index.
    const applied = config.applied ?? config.storage.snapshot().meta.index;
    if (applied > this.log.applied) this.log.appliedTo(applied);
    this.becomeFollower(this.term, NO_NODE);
  }

  // -------------------------------------------------------------------------------------------
  // State observed by the host
  // -------------------------------------------------------------------------------------------

  softState(): SoftState {
    return { lead: this.lead, role: this.role };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  /** The configuration in force: the latest in the log, committed or not. */
  confState(): ConfState {
    return this.configs.current();
  }

  /** Log index of the configuration in force (0 when it came from a snapshot or bootstrap storage). */
  confIndex(): number {
    return this.configs.latestIndex();
  }

  /** The configuration as of log index `index` (at or after the last snapshot). */
  confStateAt(index: number): ConfState {
    return this.configs.at(index);
  }

  status(): Status {
    return {
      id: this.id,
      term: this.term,
      vote: this.vote,
      commit: this.log.committed,
      applied: this.log.applied,
      lead: this.lead,
      role: this.role,
      lastIndex: this.log.lastIndex(),
      confState: this.confState(),
      leadTransferee: this.leadTransferee,
      progress: this.role === 'leader' ? [...this.progress.values()].map((p) => p.status()) : [],
    };
  }

  /**
   * Voters can campaign; learners and nodes outside the configuration cannot. Except a voter whose
   * removal is not committed yet: it may hold the only copy the remaining voters need, so it still
   * campaigns, without counting its own vote (Raft thesis §4.2.2).
   */
  promotable(): boolean {
    if (this.voters.has(this.id)) return true;
    const latest = this.configs.latestIndex();
    return latest > this.log.committed && this.configs.at(latest - 1).voters.includes(this.id);
  }

  /**
   * Seeds an empty log with the founders' configuration at term 1, exactly as storage bootstrapped
   * with founders would hold it (docs/adr/0002). Every founder that bootstraps writes identical
   * entries, so it does not matter which of them bootstraps first or whether the others already
   * received those entries from an elected founder. Returns false (and changes nothing) once the
   * log holds anything.
   */
  bootstrap(conf: ConfState): boolean {
    if (this.log.lastIndex() !== 0 || this.log.firstIndex() !== 1) return false;
    const entries = bootstrapEntries(conf);
    if (entries.length === 0) return false;
    if (this.term === 0) this.becomeFollower(1, NO_NODE);
    this.log.append(entries);
    this.recordConfigs(entries);
    this.log.commitTo(entries.length);
    return true;
  }

  // -------------------------------------------------------------------------------------------
  // Role transitions
  // -------------------------------------------------------------------------------------------

  private reset(term: number): void {
    if (this.role === 'leader') this.loseLeadership();
    if (term !== this.term) {
      this.term = term;
      this.vote = NO_NODE;
    }
    this.lead = NO_NODE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.electionTicks + this.random.int(this.electionTicks);
    this.leadTransferee = NO_NODE;
    this.votes.clear();
    this.progress.clear();
    this.termStartIndex = 0;
    this.failForwardedReads('leadershipLost');
  }

  /** Reports what a stepping-down leader leaves undecided: its uncommitted proposals and pending reads. */
  private loseLeadership(): void {
    const from = Math.max(this.log.committed + 1, this.termStartIndex + 1);
    const to = this.log.lastIndex();
    if (this.termStartIndex > 0 && from <= to) this.abandonedProposals.push({ term: this.term, fromIndex: from, toIndex: to });
    for (const r of this.pendingReads) if (r.from === this.id) this.failedReads.push({ context: r.context, reason: 'leadershipLost' });
    for (const r of this.readsAwaitingTermCommit) if (r.from === this.id) this.failedReads.push({ context: r.context, reason: 'leadershipLost' });
    this.pendingReads = [];
    this.readsAwaitingTermCommit = [];
  }

  private failForwardedReads(reason: FailedRead['reason']): void {
    for (const context of this.forwardedReads.keys()) this.failedReads.push({ context, reason });
    this.forwardedReads.clear();
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.role = 'follower';
  }

  private becomePreCandidate(): void {
    invariant(this.role !== 'leader', 'a leader cannot become a pre-candidate');
    // Pre-vote neither bumps the term nor changes the vote: it only asks whether an election could win.
    this.votes.clear();
    this.lead = NO_NODE;
    this.role = 'preCandidate';
    this.failForwardedReads('leadershipLost');
  }

  private becomeCandidate(): void {
    invariant(this.role !== 'leader', 'a leader cannot become a candidate');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = 'candidate';
  }

  private becomeLeader(): void {
    invariant(this.role === 'candidate', 'only a candidate can become leader');
    this.reset(this.term);
    this.lead = this.id;
    this.role = 'leader';
    const last = this.log.lastIndex();
    for (const id of this.voters) this.progress.set(id, this.newProgress(id, last + 1, false));
    for (const id of this.learners) this.progress.set(id, this.newProgress(id, last + 1, true));
    // Elected while its own removal is uncommitted: it leads until that commits, then steps down.
    if (!this.voters.has(this.id)) this.progress.set(this.id, this.newProgress(this.id, last + 1, false));
    const self = this.progress.get(this.id)!;
    self.match = last;
    self.becomeReplicate();
    self.recentActive = true;
    // An empty entry of the new term: committing it commits everything before it (§5.4.2) and
    // enables ReadIndex.
    this.termStartIndex = last + 1;
    this.appendEntries([{ type: 'normal', index: last + 1, term: this.term, data: new Uint8Array(0) }]);
  }

  private newProgress(id: NodeId, next: number, isLearner: boolean): Progress {
    return new Progress(id, next, isLearner, this.maxInflightMsgs, this.maxInflightBytes);
  }

  // -------------------------------------------------------------------------------------------
  // Time
  // -------------------------------------------------------------------------------------------

  tick(): void {
    this.ticks++;
    if (this.role === 'leader') this.tickHeartbeat();
    else this.tickElection();
    this.expireReads();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(false);
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTicks) {
      this.electionElapsed = 0;
      if (this.checkQuorum) {
        if (!this.quorumActive()) {
          this.becomeFollower(this.term, NO_NODE);
          return;
        }
        for (const pr of this.progress.values()) if (pr.id !== this.id) pr.recentActive = false;
      }
      // A transfer that did not complete within an election timeout is abandoned.
      if (this.leadTransferee !== NO_NODE) this.leadTransferee = NO_NODE;
    }
    if (this.heartbeatElapsed >= this.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat('');
    }
  }

  private expireReads(): void {
    const expired = (startTick: number): boolean => this.ticks - startTick >= this.readTimeoutTicks;
    for (const [context, startTick] of this.forwardedReads) {
      if (expired(startTick)) {
        this.forwardedReads.delete(context);
        this.failedReads.push({ context, reason: 'timeout' });
      }
    }
    if (this.role !== 'leader') return;
    const keep = <T extends { context: string; from: NodeId; startTick: number }>(reads: T[]): T[] =>
      reads.filter((r) => {
        if (!expired(r.startTick)) return true;
        if (r.from === this.id) this.failedReads.push({ context: r.context, reason: 'timeout' });
        return false;
      });
    this.pendingReads = keep(this.pendingReads);
    this.readsAwaitingTermCommit = keep(this.readsAwaitingTermCommit);
  }

  /** Whether a quorum of voters (this leader included) was heard from in the last election timeout. */
  private quorumActive(): boolean {
    let active = 0;
    for (const id of this.voters) {
      const pr = this.progress.get(id);
      if (id === this.id || pr?.recentActive) active++;
    }
    return active >= this.quorum();
  }

  private quorum(): number {
    return Math.floor(this.voters.size / 2) + 1;
  }

  // -------------------------------------------------------------------------------------------
  // Elections
  // -------------------------------------------------------------------------------------------

  /** Starts an election (after a pre-vote round unless `transfer`). */
  hup(transfer: boolean): void {
    if (this.role === 'leader' || !this.promotable()) return;
    this.campaign(this.preVote && !transfer ? 'preVote' : 'vote', transfer);
  }

  private campaign(type: 'vote' | 'preVote', transfer: boolean): void {
    let voteTerm: number;
    if (type === 'preVote') {
      this.becomePreCandidate();
      voteTerm = this.term + 1;
    } else {
      this.becomeCandidate();
      voteTerm = this.term;
    }
    if (this.poll(this.id, true) === 'won') {
      // A single-voter group wins at once.
      if (type === 'preVote') this.campaign('vote', transfer);
      else this.becomeLeader();
      return;
    }
    const index = this.log.lastIndex();
    const logTerm = this.log.lastTerm();
    for (const id of [...this.voters].sort()) {
      if (id === this.id) continue;
      this.send({ type, from: this.id, to: id, term: voteTerm, index, logTerm, transfer });
    }
  }

  private poll(id: NodeId, granted: boolean): 'won' | 'lost' | 'pending' {
    if (!this.votes.has(id)) this.votes.set(id, granted);
    let yes = 0;
    let no = 0;
    for (const voter of this.voters) {
      const v = this.votes.get(voter);
      if (v === true) yes++;
      else if (v === false) no++;
    }
    const q = this.quorum();
    if (yes >= q) return 'won';
    if (no > this.voters.size - q) return 'lost';
    return 'pending';
  }

  private handleVoteRequest(m: MsgVote): void {
    const respType = m.type === 'vote' ? 'voteResp' : 'preVoteResp';
    const canVote =
      this.vote === m.from ||
      (this.vote === NO_NODE && this.lead === NO_NODE) ||
      // A pre-vote for a future term is granted on the log check alone: it changes no state here.
      (m.type === 'preVote' && m.term > this.term);
    const upToDate = this.mutations.voteWithoutLogCheck ? true : this.log.isUpToDate(m.index, m.logTerm);
    if (canVote && upToDate) {
      // Answer with the candidate's term so that a pre-candidate counts the reply (it is still at term-1).
      this.send({ type: respType, from: this.id, to: m.from, term: m.term, reject: false });
      if (m.type === 'vote') {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: respType, from: this.id, to: m.from, term: this.term, reject: true });
    }
  }

  // -------------------------------------------------------------------------------------------
  // Message dispatch
  // -------------------------------------------------------------------------------------------

  step(m: Message): void {
    invariant(m.to === this.id, () => `message for ${m.to} stepped into ${this.id}`);
    if (m.term > this.term) {
      if (m.type === 'vote' || m.type === 'preVote') {
        // Leader lease: while we hear from a leader, a vote request is most likely from a node that
        // was partitioned away. Ignoring it keeps it from disrupting the cluster (§6 of the thesis).
        const inLease = this.checkQuorum && this.lead !== NO_NODE && this.electionElapsed < this.electionTicks;
        if (inLease && !m.transfer) return;
      }
      if (m.type === 'preVote') {
        // Never change our term in response to a pre-vote.
      } else if (m.type === 'preVoteResp' && !m.reject) {
        // A granted pre-vote carries the future term we asked with; the real election bumps the term.
      } else {
        const lead = m.type === 'app' || m.type === 'heartbeat' || m.type === 'snap' ? m.from : NO_NODE;
        this.becomeFollower(m.term, lead);
      }
    } else if (m.term < this.term) {
      if (m.type === 'heartbeat' || m.type === 'app') {
        // A stale leader (e.g. one that was partitioned) learns of the newer term from the answer and
        // steps down; without this it could keep a follower that ignores votes in a lease forever,
        // and a leader removed from the cluster (whom no one else contacts) would lead forever.
        this.send({ type: 'appResp', from: this.id, to: m.from, term: this.term, index: 0, reject: false, rejectHint: 0, logTerm: 0 });
      } else if (m.type === 'preVote') {
        this.send({ type: 'preVoteResp', from: this.id, to: m.from, term: this.term, reject: true });
      }
      return;
    }

    switch (m.type) {
      case 'vote':
      case 'preVote':
        this.handleVoteRequest(m);
        return;
      default:
        break;
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        return;
      case 'candidate':
      case 'preCandidate':
        this.stepCandidate(m);
        return;
      case 'follower':
        this.stepFollower(m);
        return;
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case 'appResp':
        this.handleAppendResponse(m);
        return;
      case 'heartbeatResp':
        this.handleHeartbeatResponse(m);
        return;
      case 'readIndex':
        this.handleReadIndexRequest(m.context, m.from);
        return;
      case 'app':
      case 'heartbeat':
      case 'snap':
        invariant(false, () => `leader ${this.id} of term ${this.term} got ${m.type} from ${m.from} in the same term`);
        return;
      case 'voteResp':
      case 'preVoteResp':
      case 'timeoutNow':
      case 'readIndexResp':
        return;
      case 'vote':
      case 'preVote':
        return;
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case 'app':
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return;
      case 'heartbeat':
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case 'snap':
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case 'voteResp':
      case 'preVoteResp':
        this.handleVoteResponse(m);
        return;
      case 'readIndexResp':
        return;
      case 'appResp':
      case 'heartbeatResp':
      case 'timeoutNow':
      case 'readIndex':
      case 'vote':
      case 'preVote':
        return;
    }
  }

  private handleVoteResponse(m: MsgVoteResp): void {
    const expected = this.role === 'preCandidate' ? 'preVoteResp' : 'voteResp';
    if (m.type !== expected) return;
    const result = this.poll(m.from, !m.reject);
    if (result === 'won') {
      if (this.role === 'preCandidate') this.campaign('vote', false);
      else {
        this.becomeLeader();
        this.bcastAppend();
      }
    } else if (result === 'lost') {
      this.becomeFollower(this.term, NO_NODE);
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'app':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case 'heartbeat':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case 'snap':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case 'timeoutNow':
        // Leadership transfer: campaign at once, skipping pre-vote and the leader lease.
        this.hup(true);
        return;
      case 'readIndexResp':
        this.handleReadIndexResponse(m);
        return;
      case 'readIndex':
      case 'appResp':
      case 'heartbeatResp':
      case 'voteResp':
      case 'preVoteResp':
      case 'vote':
      case 'preVote':
        return;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Follower side of replication
  // -------------------------------------------------------------------------------------------

  private handleAppendEntries(m: MsgApp): void {
    if (m.index < this.log.committed) {
      // Everything up to our commit index already matches any leader's log.
      this.sendAppResp(m.from, this.log.committed, false, 0, 0);
      return;
    }
    const appended = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (appended !== null) {
      if (appended.written.length > 0) this.recordConfigs(appended.written);
      this.sendAppResp(m.from, appended.lastNew, false, 0, 0);
      return;
    }
    // Our log does not hold (m.index, m.logTerm). Point the leader at the highest index that may still
    // match: no entry above it can, because its term is higher than m.logTerm.
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    this.sendAppResp(m.from, m.index, true, hint.index, hint.term);
  }

  private sendAppResp(to: NodeId, index: number, reject: boolean, rejectHint: number, logTerm: number): void {
    this.send({ type: 'appResp', from: this.id, to, term: this.term, index, reject, rejectHint, logTerm });
  }

  private handleHeartbeat(m: MsgHeartbeat): void {
    // The leader sends min(match, commit), so everything up to it is in our log and matches.
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.send({ type: 'heartbeatResp', from: this.id, to: m.from, term: this.term, context: m.context });
  }

  private handleSnapshot(m: MsgSnap): void {
    const { index, term } = m.snapshot.meta;
    if (index <= this.log.committed) {
      this.sendAppResp(m.from, this.log.committed, false, 0, 0);
      return;
    }
    if (this.log.matchTerm(index, term)) {
      // We already hold the snapshot's last entry: everything before it matches, just commit.
      this.log.commitTo(index);
      this.sendAppResp(m.from, this.log.committed, false, 0, 0);
      return;
    }
    // The host may still be applying entries or installing an older snapshot it was handed.
    const handedOut = Math.max(this.log.applying, this.log.unstable.snapshot?.meta.index ?? 0);
    this.log.restore(m.snapshot);
    this.configs.reset(index, m.snapshot.meta.confState, handedOut);
    this.syncConfig();
    this.sendAppResp(m.from, this.log.lastIndex(), false, 0, 0);
  }

  /** Entries were written to the log from entries[0].index on: take up the configurations they carry. */
  private recordConfigs(written: readonly Entry[]): void {
    const before = this.configs.latestIndex();
    if (before >= written[0]!.index) this.configs.truncateFrom(written[0]!.index);
    if (this.configs.record(written) || this.configs.latestIndex() !== before) this.syncConfig();
  }

  /** Puts the latest configuration in force; a leader starts or stops replicating to members. */
  private syncConfig(): void {
    const conf = this.configs.current();
    this.voters = new Set(conf.voters);
    this.learners = new Set(conf.learners);
    for (const id of this.learners) invariant(!this.voters.has(id), () => `${id} is both voter and learner`);
    if (this.role !== 'leader') return;
    for (const id of [...this.progress.keys()]) {
      if (id !== this.id && !this.voters.has(id) && !this.learners.has(id)) this.progress.delete(id);
    }
    if (this.leadTransferee !== NO_NODE && !this.voters.has(this.leadTransferee)) this.leadTransferee = NO_NODE;
    for (const id of [...conf.voters, ...conf.learners]) {
      const pr = this.progress.get(id);
      if (pr) {
        pr.isLearner = this.learners.has(id);
      } else {
        const fresh = this.newProgress(id, this.log.lastIndex() + 1, this.learners.has(id));
        // A new member counts as recently active so that it may be sent a snapshot at once.
        fresh.recentActive = true;
        this.progress.set(id, fresh);
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Leader side of replication
  // -------------------------------------------------------------------------------------------

  private appendEntries(entries: Entry[]): void {
    const last = this.log.append(entries);
    this.recordConfigs(entries);
    const self = this.progress.get(this.id);
    invariant(self !== undefined, 'leader without its own progress');
    self.maybeUpdate(last);
    this.maybeCommit();
  }

  /** Advances the commit index to the highest index stored on a quorum of voters, if of this term. */
  private maybeCommit(): boolean {
    const matches: number[] = [];
    for (const id of this.voters) matches.push(this.progress.get(id)?.match ?? 0);
    matches.sort((a, b) => b - a);
    const quorumIndex = matches[this.quorum() - 1] ?? 0;
    if (this.mutations.commitPreviousTermByCounting && quorumIndex > this.log.committed) {
      this.log.commitTo(quorumIndex);
      this.onCommitAdvanced();
      return true;
    }
    if (this.log.maybeCommit(quorumIndex, this.term)) {
      this.onCommitAdvanced();
      return true;
    }
    return false;
  }

  private onCommitAdvanced(): void {
    if (!this.voters.has(this.id) && this.log.committed >= this.configs.latestIndex()) {
      this.stepDownAfterRemoval();
      return;
    }
    if (this.committedEntryInCurrentTerm() && this.readsAwaitingTermCommit.length > 0) {
      const waiting = this.readsAwaitingTermCommit;
      this.readsAwaitingTermCommit = [];
      for (const r of waiting) this.startReadIndex(r.context, r.from, r.startTick);
    }
  }

  private committedEntryInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  /** Sends the next append (or a snapshot) to `to` if its flow control allows. Returns whether it sent. */
  private sendAppend(to: NodeId, sendIfEmpty = true): boolean {
    const pr = this.progress.get(to);
    if (!pr || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevIndex > 0 && prevIndex < this.log.firstIndex() - 1) return this.sendSnapshot(pr);
    let entries: Entry[];
    try {
      entries = this.log.entriesFrom(pr.next, this.maxSizePerMsg);
    } catch (err) {
      if (err instanceof CompactedError) return this.sendSnapshot(pr);
      throw err;
    }
    if (entries.length === 0 && !sendIfEmpty) return false;
    invariant(prevIndex === 0 || prevTerm > 0, () => `no term for index ${prevIndex} when sending to ${to}`);
    let bytes = 0;
    for (const e of entries) bytes += entrySize(e);
    this.send({ type: 'app', from: this.id, to, term: this.term, index: prevIndex, logTerm: prevTerm, entries, commit: this.log.committed });
    pr.sentEntries(prevIndex + entries.length, entries.length, bytes);
    return true;
  }

  private sendSnapshot(pr: Progress): boolean {
    if (!pr.recentActive) return false;
    const snapshot = this.log.snapshot();
    invariant(snapshot.meta.index > 0, () => `log compacted below ${pr.next} without a snapshot`);
    this.send({ type: 'snap', from: this.id, to: pr.id, term: this.term, snapshot });
    pr.becomeSnapshot(snapshot.meta.index);
    return true;
  }

  private bcastAppend(): void {
    for (const id of [...this.progress.keys()].sort()) if (id !== this.id) this.sendAppend(id);
  }

  private bcastHeartbeat(context: string): void {
    for (const id of [...this.progress.keys()].sort()) {
      if (id === this.id) continue;
      const pr = this.progress.get(id)!;
      // Never tell a follower to commit beyond what it is known to hold.
      const commit = Math.min(pr.match, this.log.committed);
      this.send({ type: 'heartbeat', from: this.id, to: id, term: this.term, commit, context });
    }
  }

  private handleAppendResponse(m: MsgAppResp): void {
    const pr = this.progress.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    if (m.reject) {
      const hint = m.logTerm > 0 ? this.log.findConflictByTerm(m.rejectHint, m.logTerm).index : m.rejectHint;
      if (pr.maybeDecrTo(m.index, hint)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) return;
    if (pr.state === 'probe') {
      pr.becomeReplicate();
    } else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) {
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === 'replicate') {
      pr.inflights.freeLE(m.index);
    }
    if (this.maybeCommit()) {
      this.bcastAppend();
    } else if (wasPaused) {
      this.sendAppend(m.from);
    }
    // Flow control may now allow several size-limited appends at once.
    while (this.sendAppend(m.from, false)) {
      /* keep sending */
    }
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
  }

  private handleHeartbeatResponse(m: MsgHeartbeatResp): void {
    const pr = this.progress.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    pr.probeSent = false;
    // Appends may have been lost: a full window would wait forever. Free one so that an append goes
    // out, whose answer (a rejection if the follower missed entries) resynchronises us (as etcd).
    if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.match < this.log.lastIndex()) this.sendAppend(m.from);
    if (m.context === '' || pr.isLearner) return;
    const idx = this.pendingReads.findIndex((r) => r.context === m.context);
    if (idx < 0) return;
    this.pendingReads[idx]!.acks.add(m.from);
    if (this.pendingReads[idx]!.acks.size < this.quorum()) return;
    // A quorum confirmed leadership after this request arrived; that confirms all earlier ones too.
    const released = this.pendingReads.slice(0, idx + 1);
    this.pendingReads = this.pendingReads.slice(idx + 1);
    for (const r of released) this.answerRead(r.context, r.from, r.index);
  }

  private answerRead(context: string, from: NodeId, index: number): void {
    if (from === this.id) this.readStates.push({ context, index });
    else this.send({ type: 'readIndexResp', from: this.id, to: from, term: this.term, context, index });
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send({ type: 'timeoutNow', from: this.id, to, term: this.term });
  }

  // -------------------------------------------------------------------------------------------
  // ReadIndex
  // -------------------------------------------------------------------------------------------

  /** Requests a linearizable read point; the answer arrives as a ReadState or FailedRead in a Ready. */
  readIndex(context: string): void {
    invariant(context !== '', 'a ReadIndex context must not be empty');
    if (this.role === 'leader') {
      this.handleReadIndexRequest(context, this.id);
    } else if (this.lead !== NO_NODE) {
      this.forwardedReads.set(context, this.ticks);
      this.send({ type: 'readIndex', from: this.id, to: this.lead, term: this.term, context });
    } else {
      this.failedReads.push({ context, reason: 'noLeader' });
    }
  }

  private handleReadIndexRequest(context: string, from: NodeId): void {
    if (!this.committedEntryInCurrentTerm()) {
      // Until an entry of this term commits, our commit index may be behind earlier leaders' commits.
      this.readsAwaitingTermCommit.push({ context, from, startTick: this.ticks });
      return;
    }
    this.startReadIndex(context, from, this.ticks);
  }

  private startReadIndex(context: string, from: NodeId, startTick: number): void {
    if (this.voters.size === 1 && this.voters.has(this.id)) {
      this.answerRead(context, from, this.log.committed);
      return;
    }
    // A leader leading through its own removal is no voter: its own acknowledgement does not count.
    const read: PendingRead = { context, from, index: this.log.committed, startTick, acks: new Set(this.voters.has(this.id) ? [this.id] : []) };
    this.pendingReads.push(read);
    this.bcastHeartbeat(context);
  }

  private handleReadIndexResponse(m: MsgReadIndexResp): void {
    if (!this.forwardedReads.delete(m.context)) return;
    this.readStates.push({ context: m.context, index: m.index });
  }

  // -------------------------------------------------------------------------------------------
  // Proposals, membership, transfer
  // -------------------------------------------------------------------------------------------

  /** Appends commands to the log. Only a leader accepts them; returns the indexes they got. */
  propose(commands: readonly Uint8Array[]): { term: number; firstIndex: number; lastIndex: number } {
    this.checkAcceptingProposals();
    invariant(commands.length > 0, 'propose needs at least one command');
    const first = this.log.lastIndex() + 1;
    const entries: Entry[] = commands.map((data, i) => ({ type: 'normal', index: first + i, term: this.term, data }));
    this.appendEntries(entries);
    this.bcastAppend();
    return { term: this.term, firstIndex: first, lastIndex: first + entries.length - 1 };
  }

  private checkAcceptingProposals(): void {
    if (this.role !== 'leader') throw new NotLeaderError(this.lead);
    if (this.leadTransferee !== NO_NODE) throw new RaftError('transferInProgress', `leadership is being transferred to ${this.leadTransferee}`);
  }

  /**
   * Proposes one single-server membership change. It takes effect on every node as soon as it is in
   * that node's log. Only one may be uncommitted at a time, and a leader makes none before an entry
   * of its own term has committed (the fix to single-server changes from the Raft mailing list).
   */
  proposeConfChange(change: ConfChange): { term: number; index: number } {
    this.checkAcceptingProposals();
    if (this.configs.latestIndex() > this.log.committed) {
      throw new RaftError('confChangeInProgress', 'a membership change is still uncommitted; retry once it commits');
    }
    if (!this.committedEntryInCurrentTerm() && !this.mutations.confChangeBeforeTermCommit) {
      throw new RaftError('confChangeInProgress', 'the new leader has not committed an entry of its term yet; retry shortly');
    }
    this.validateConfChange(change);
    const index = this.log.lastIndex() + 1;
    this.appendEntries([{ type: 'confChange', index, term: this.term, change }]);
    this.bcastAppend();
    return { term: this.term, index };
  }

  private validateConfChange(change: ConfChange): void {
    const { type, node } = change;
    if (node === NO_NODE) throw new RaftError('invalidConfChange', 'membership change without a node id');
    if (type === 'addVoter' && this.voters.has(node)) throw new RaftError('invalidConfChange', `${node} is already a voter`);
    if (type === 'addLearner' && this.voters.has(node)) throw new RaftError('invalidConfChange', `${node} is a voter; demoting a voter to learner is not supported`);
    if (type === 'addLearner' && this.learners.has(node)) throw new RaftError('invalidConfChange', `${node} is already a learner`);
    if (type === 'removeNode') {
      if (!this.voters.has(node) && !this.learners.has(node)) throw new RaftError('invalidConfChange', `${node} is not a member`);
      if (this.voters.has(node) && this.voters.size === 1) throw new RaftError('invalidConfChange', 'cannot remove the last voter');
    }
  }

  /**
   * A leader whose removal has committed stops leading. It hands over to the most up-to-date voter
   * at once, so the cluster need not wait for an election timeout.
   */
  private stepDownAfterRemoval(): void {
    this.bcastAppend();
    let successor: Progress | null = null;
    for (const id of [...this.voters].sort()) {
      const pr = this.progress.get(id);
      if (pr && (!successor || pr.match > successor.match)) successor = pr;
    }
    if (successor && successor.match === this.log.lastIndex()) this.sendTimeoutNow(successor.id);
    this.becomeFollower(this.term, NO_NODE);
  }

  /** The host applied everything up to `index`: configurations superseded by then are not needed. */
  appliedTo(index: number): void {
    this.log.appliedTo(index);
    this.configs.compact(index);
  }

  /** Hands leadership to `target` once it is up to date. */
  transferLeader(target: NodeId): void {
    if (this.role !== 'leader') throw new NotLeaderError(this.lead);
    if (target === this.id) return;
    if (!this.voters.has(target)) throw new RaftError('invalidArgument', `${target} is not a voter`);
    if (this.leadTransferee === target) return;
    this.leadTransferee = target;
    // The transfer must finish within one election timeout or it is abandoned.
    this.electionElapsed = 0;
    const pr = this.progress.get(target)!;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(target);
    else this.sendAppend(target);
  }

  /** The transport could not deliver to `to`: stop pipelining and probe again. */
  reportUnreachable(to: NodeId): void {
    const pr = this.role === 'leader' ? this.progress.get(to) : undefined;
    if (pr && pr.state === 'replicate') pr.becomeProbe();
  }

  /** The transport finished (or failed) streaming a snapshot to `to`. */
  reportSnapshot(to: NodeId, ok: boolean): void {
    const pr = this.role === 'leader' ? this.progress.get(to) : undefined;
    if (!pr || pr.state !== 'snapshot') return;
    // Either way go back to probing; on success also wait for the follower's answer to the snapshot.
    pr.becomeProbe();
    if (ok) pr.probeSent = true;
  }

  private send(m: Message): void {
    this.msgs.push(m);
  }
}

