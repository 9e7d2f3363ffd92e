// The read side of the Raft log that the core needs. Implementations keep the log since the last
// snapshot readable synchronously (the durable LevelDB storage mirrors it in memory), so the core
// stays free of I/O and await. Writes (append, hard state, snapshots, compaction) are the host's
// business and happen between Ready batches.
import type { ConfState, Entry, HardState, Snapshot } from './types.ts';

export interface RaftStorage {
  /** Persisted hard state and the membership as of the latest snapshot. */
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries in [lo, hi), at least one if any exist, and at most `maxBytes` in total beyond the first. Throws CompactedError/UnavailableError. */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** Term of the entry at `index`; the snapshot's index is answerable too. Throws CompactedError/UnavailableError. */
  term(index: number): number;
  /** Index of the first entry still available (snapshot index + 1). */
  firstIndex(): number;
  /** Index of the last entry stored (the snapshot index if the log is empty). */
  lastIndex(): number;
  /** The most recent snapshot. */
  snapshot(): Snapshot;
}
