// The contract between the Raft host and the replicated state machine (docs/adr/0015).
//
// The state can be large (millions of keys), so nothing here works on the whole state at once:
// a snapshot is a point-in-time view taken in O(1) whose encoding is pulled out piece by piece
// while entries go on being applied, and a restore is fed piece by piece, built aside, and
// swapped in at the end. Each call does a bounded amount of work (about one chunk), so the host
// can yield to the event loop between calls and never stall heartbeats or HTTP.

/** A point-in-time view of the applied state. Later applies do not change what it encodes. */
export interface StateMachineSnapshot {
  /** The index of the last entry the view includes. */
  readonly index: number;
  /**
   * The encoded state, in order, as pieces of bounded size (about `chunkBytes`, default 1 MiB; a
   * single huge value may make one piece larger). Each `next()` does work proportional to the
   * piece it returns. The concatenation of the pieces is what `beginRestore` reads. May be
   * iterated only once.
   */
  chunks(chunkBytes?: number): Iterator<Uint8Array>;
  /** Lets go of the view (copy-on-write need not preserve it any longer). Idempotent. */
  release(): void;
}

/** A restore in progress: the new state is built aside, the current one keeps serving reads. */
export interface StateMachineRestore {
  /**
   * Feeds the next piece of an encoded state (pieces may be cut anywhere). Work is proportional
   * to the piece. Throws (a SnapshotFormatError from fsm/) on data that cannot be a valid
   * encoding; the current state is untouched.
   */
  write(piece: Uint8Array): void;
  /**
   * Checks the end of the encoding (checksum, completeness), then replaces the whole state with
   * the new one in one synchronous step and wakes every watcher. Throws on a bad or truncated
   * encoding, leaving the current state untouched. Answers the restored applied index.
   */
  finish(): number;
  /** Drops the state built so far. */
  abort(): void;
}

/** The replicated state machine as the host drives it. apply() is synchronous and deterministic. */
export interface HostStateMachine {
  apply(index: number, command: Uint8Array): unknown;
  applyNoop(index: number): void;
  /** O(1): a view of the state as of the last applied index. */
  snapshotView(): StateMachineSnapshot;
  /**
   * Why no snapshot may be taken at the current index (a multi-entry operation whose partial
   * state no snapshot holds), or null. The host waits until it answers null again.
   */
  snapshotBlocker?(): string | null;
  /** Starts replacing the whole state with an encoded one (a snapshot install or a restart). */
  beginRestore(): StateMachineRestore;
}
