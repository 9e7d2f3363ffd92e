// Plain data shapes of the Raft core: log entries, persistent state, messages and the Ready batch.
// Everything here is a readonly plain object so it can be copied, logged, encoded by a transport
// and compared by the simulation without surprises.

/** A server's identity inside a Raft group (Konsul uses the node name). */
export type NodeId = string;

/** Index and term 0 mean "nothing": the log starts at index 1. */
export const NO_NODE: NodeId = '';

export type ConfChangeType = 'addVoter' | 'removeNode' | 'addLearner';

/**
 * A single-server membership change (see docs/adr/0002-membership-changes.md). Promoting a learner is
 * `addVoter` on a node that is already a learner.
 */
export interface ConfChange {
  readonly type: ConfChangeType;
  readonly node: NodeId;
}

export type Entry =
  | { readonly type: 'normal'; readonly index: number; readonly term: number; readonly data: Uint8Array }
  | { readonly type: 'confChange'; readonly index: number; readonly term: number; readonly change: ConfChange };

/** The membership of the group: who votes and who only receives the log. */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

/** What must be durable before any message that depends on it leaves the node. */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
}

export interface SnapshotMeta {
  readonly index: number;
  readonly term: number;
  /** The membership as of `index`. */
  readonly confState: ConfState;
}

export interface Snapshot {
  readonly meta: SnapshotMeta;
  /**
   * The encoded state. The core never reads it, so it may be empty when the storage keeps the data
   * in files and streams it out of band (LevelStorage, docs/adr/0003).
   */
  readonly data: Uint8Array;
}

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/** Volatile state the host may want to observe (leader changes, role changes). */
export interface SoftState {
  readonly lead: NodeId;
  readonly role: Role;
}

// ---------------------------------------------------------------------------------------------
// Messages between nodes. Every message carries the sender's term; `to` and `from` are node ids.
// ---------------------------------------------------------------------------------------------

interface Envelope {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
}

/** AppendEntries: entries follow (index, logTerm); `commit` is the leader's commit index. */
export interface MsgApp extends Envelope {
  readonly type: 'app';
  readonly index: number;
  readonly logTerm: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
}

/**
 * Reply to MsgApp. On success `index` is the last index now matching the leader. On rejection
 * `index` echoes the rejected MsgApp's index and (`rejectHint`, `logTerm`) point at the follower's
 * best guess of where the logs agree, so the leader can skip a whole term per round trip.
 */
export interface MsgAppResp extends Envelope {
  readonly type: 'appResp';
  readonly index: number;
  readonly reject: boolean;
  readonly rejectHint: number;
  readonly logTerm: number;
}

/** RequestVote and its pre-vote twin; `transfer` marks a campaign started by leadership transfer. */
export interface MsgVote extends Envelope {
  readonly type: 'vote' | 'preVote';
  readonly index: number;
  readonly logTerm: number;
  readonly transfer: boolean;
}

export interface MsgVoteResp extends Envelope {
  readonly type: 'voteResp' | 'preVoteResp';
  readonly reject: boolean;
}

/** `context` is set when the heartbeat confirms leadership for ReadIndex requests. */
export interface MsgHeartbeat extends Envelope {
  readonly type: 'heartbeat';
  readonly commit: number;
  readonly context: string;
}

export interface MsgHeartbeatResp extends Envelope {
  readonly type: 'heartbeatResp';
  readonly context: string;
}

/** InstallSnapshot. The transport streams the data in chunks (from and to the storage's files, or `snapshot.data`). */
export interface MsgSnap extends Envelope {
  readonly type: 'snap';
  readonly snapshot: Snapshot;
}

/** Sent by a leader to the transfer target: start an election now, ignoring leases. */
export interface MsgTimeoutNow extends Envelope {
  readonly type: 'timeoutNow';
}

/** A follower's ReadIndex request forwarded to the leader, and the leader's answer. */
export interface MsgReadIndex extends Envelope {
  readonly type: 'readIndex';
  readonly context: string;
}

export interface MsgReadIndexResp extends Envelope {
  readonly type: 'readIndexResp';
  readonly context: string;
  readonly index: number;
}

export type Message =
  | MsgApp
  | MsgAppResp
  | MsgVote
  | MsgVoteResp
  | MsgHeartbeat
  | MsgHeartbeatResp
  | MsgSnap
  | MsgTimeoutNow
  | MsgReadIndex
  | MsgReadIndexResp;

export type MessageType = Message['type'];

/** A linearizable read may be served once the local state machine has applied `index`. */
export interface ReadState {
  readonly context: string;
  readonly index: number;
}

/** A ReadIndex request that cannot be answered (no leader, leadership lost, timed out). */
export interface FailedRead {
  readonly context: string;
  readonly reason: 'noLeader' | 'leadershipLost' | 'timeout';
}

/**
 * Proposals this node accepted as leader in `term` at indexes [fromIndex, toIndex] that it can no
 * longer drive to commit because it stopped being leader. Their outcome is unknown: a later leader
 * may still commit some of them. The host fails the waiting callers with "leadership lost".
 */
export interface AbandonedProposals {
  readonly term: number;
  readonly fromIndex: number;
  readonly toIndex: number;
}

/**
 * The effects the host must carry out, in this order:
 *  1. install `snapshot` (if any) into storage and restore the state machine from it;
 *  2. append `entries` and save `hardState` durably (one synced write);
 *  3. send `messages` (they may depend on step 2 being durable);
 *  4. apply `committedEntries` to the state machine, answer `readStates` once applied;
 *  5. call `advance(ready)`.
 */
export interface Ready {
  readonly softState: SoftState | null;
  readonly hardState: HardState | null;
  readonly snapshot: Snapshot | null;
  readonly entries: readonly Entry[];
  readonly committedEntries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly readStates: readonly ReadState[];
  readonly failedReads: readonly FailedRead[];
  readonly abandonedProposals: readonly AbandonedProposals[];
}

/** Where a follower stands in the leader's replication of the log to it. */
export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export interface PeerStatus {
  readonly id: NodeId;
  readonly match: number;
  readonly next: number;
  readonly state: ProgressState;
  readonly isLearner: boolean;
  readonly recentActive: boolean;
}

export interface Status {
  readonly id: NodeId;
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
  readonly applied: number;
  readonly lead: NodeId;
  readonly role: Role;
  readonly lastIndex: number;
  readonly confState: ConfState;
  readonly leadTransferee: NodeId;
  /** Filled only on the leader. */
  readonly progress: readonly PeerStatus[];
}
