// An in-memory RaftStorage with the write operations a host performs between Ready batches. It is
// the storage of the deterministic simulation and the in-memory mirror behind durable storages.
import { CompactedError, invariant, RaftError, UnavailableError } from '../core/errors.ts';
import { entrySize, limitSize } from '../core/log.ts';
import { bootstrapEntries } from '../core/membership.ts';
import type { RaftStorage } from '../core/storage.ts';
import type { ConfState, Entry, HardState, Snapshot } from '../core/types.ts';

const EMPTY_HARD_STATE: HardState = { term: 0, vote: '', commit: 0 };

export class MemoryStorage implements RaftStorage {
  private hard: HardState = EMPTY_HARD_STATE;
  private snap: Snapshot;
  /** ents[0] is a dummy at the snapshot's index and term; real entries follow. */
  private ents: Entry[];

  /** An empty storage, or with `founders` the bootstrapped log of a founding member of a new cluster. */
  constructor(founders: ConfState = { voters: [], learners: [] }) {
    this.snap = { meta: { index: 0, term: 0, confState: { voters: [], learners: [] } }, data: new Uint8Array(0) };
    this.ents = [dummy(0, 0)];
    const entries = bootstrapEntries(founders);
    if (entries.length > 0) {
      this.append(entries);
      this.hard = { term: 1, vote: '', commit: entries.length };
    }
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: this.hard, confState: this.snap.meta.confState };
  }

  setHardState(hs: HardState): void {
    this.hard = hs;
  }

  hardState(): HardState {
    return this.hard;
  }

  private offset(): number {
    return this.ents[0]!.index;
  }

  firstIndex(): number {
    return this.offset() + 1;
  }

  lastIndex(): number {
    return this.offset() + this.ents.length - 1;
  }

  term(index: number): number {
    const offset = this.offset();
    if (index < offset) throw new CompactedError(index);
    if (index > this.lastIndex()) throw new UnavailableError(index);
    return this.ents[index - offset]!.term;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const offset = this.offset();
    if (lo <= offset) throw new CompactedError(lo);
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1);
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxBytes);
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /**
   * The first index of the entries to keep behind a snapshot at `index`: at most `maxEntries` of
   * them and at most `maxBytes` in all (a few large entries, such as a restore's chunks, are not
   * worth keeping for a follower a little behind).
   */
  trailingStart(index: number, maxEntries: number, maxBytes: number): number {
    const offset = this.offset();
    const lowest = Math.max(offset + 1, index - maxEntries + 1);
    let bytes = 0;
    for (let i = Math.min(index, this.lastIndex()); i >= lowest; i--) {
      bytes += entrySize(this.ents[i - offset]!);
      if (bytes > maxBytes) return i + 1;
    }
    return lowest;
  }

  /** Appends entries, replacing any stored suffix they conflict with. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[entries.length - 1]!.index;
    if (last < first) return; // all already compacted
    const fresh = first > entries[0]!.index ? entries.slice(first - entries[0]!.index) : entries;
    const start = fresh[0]!.index - this.offset();
    invariant(start <= this.ents.length, () => `append at ${fresh[0]!.index} leaves a gap after ${this.lastIndex()}`);
    // The common case appends at the end: no copy of the log kept so far.
    if (start < this.ents.length) this.ents.length = start;
    for (const e of fresh) this.ents.push(e);
  }

  /** Replaces the whole log with a snapshot (received from the leader). */
  applySnapshot(snapshot: Snapshot): void {
    if (snapshot.meta.index <= this.snap.meta.index) throw new RaftError('snapshotOutOfDate', `snapshot ${snapshot.meta.index} is older than ${this.snap.meta.index}`);
    this.snap = snapshot;
    this.ents = [dummy(snapshot.meta.index, snapshot.meta.term)];
  }

  /** Records a snapshot of the applied state at `index` (the host's own, not yet compacting the log). */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snap.meta.index) throw new RaftError('snapshotOutOfDate', `snapshot ${index} is not newer than ${this.snap.meta.index}`);
    invariant(index <= this.lastIndex(), () => `snapshot index ${index} beyond last index ${this.lastIndex()}`);
    this.snap = { meta: { index, term: this.term(index), confState }, data };
    return this.snap;
  }

  /** Discards entries up to and including `index`, which must be covered by the snapshot. */
  compact(index: number): void {
    const offset = this.offset();
    if (index <= offset) return;
    invariant(index <= this.snap.meta.index, () => `compacting to ${index} beyond snapshot ${this.snap.meta.index}`);
    invariant(index <= this.lastIndex(), () => `compacting to ${index} beyond last index ${this.lastIndex()}`);
    const term = this.term(index);
    this.ents = [dummy(index, term), ...this.ents.slice(index - offset + 1)];
  }
}

function dummy(index: number, term: number): Entry {
  return { type: 'normal', index, term, data: new Uint8Array(0) };
}
