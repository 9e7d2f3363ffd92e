// Expected outcomes of calling the core, as typed errors the host maps to client-facing statuses.
// Broken invariants are not errors: they throw RaftInvariantError and must never be caught quietly.
import type { NodeId } from './types.ts';

export type RaftErrorCode =
  | 'notLeader'
  | 'transferInProgress'
  | 'confChangeInProgress'
  | 'invalidConfChange'
  | 'compacted'
  | 'unavailable'
  | 'snapshotOutOfDate'
  | 'invalidArgument';

export class RaftError extends Error {
  readonly code: RaftErrorCode;
  constructor(code: RaftErrorCode, message: string) {
    super(message);
    this.name = 'RaftError';
    this.code = code;
  }
}

/** The node cannot accept the request because it is not the leader; `leader` is a hint ('' if unknown). */
export class NotLeaderError extends RaftError {
  readonly leader: NodeId;
  constructor(leader: NodeId) {
    super('notLeader', leader ? `not the leader; the leader is ${leader}` : 'no known leader');
    this.name = 'NotLeaderError';
    this.leader = leader;
  }
}

/** Requested log position lies before the storage's first index (compacted into a snapshot). */
export class CompactedError extends RaftError {
  constructor(index: number) {
    super('compacted', `log index ${index} is compacted`);
    this.name = 'CompactedError';
  }
}

/** Requested log position lies beyond what storage holds. */
export class UnavailableError extends RaftError {
  constructor(index: number) {
    super('unavailable', `log index ${index} is unavailable`);
    this.name = 'UnavailableError';
  }
}

/** A safety invariant of the core was violated: this is a bug, never an expected outcome. */
export class RaftInvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RaftInvariantError';
  }
}

export function invariant(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new RaftInvariantError(typeof message === 'string' ? message : message());
}
