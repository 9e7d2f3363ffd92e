// The KV table: Consul's key/value store semantics, applied deterministically.
//
// The rules follow Consul's state store (agent/consul/state/kvs.go, kvs_ce.go, graveyard.go) and
// its HTTP API; fsm/README.md lists each rule with its source. Indexes are Raft log indexes: the
// FSM passes the index of the entry being applied to every write.
//
// Reads return the stored entry objects themselves: entries are never mutated after creation (a
// write stores a new object), so a reader holding one sees a consistent record. Their `Value`
// bytes must not be modified by callers.

import { compareKeys, SortedKeySet } from './sorted-keys.ts';

/** A KV pair as Consul's API shows it (the server serializes these names as they are). */
export interface KvEntry {
  readonly Key: string;
  /** Index of the write that created the key (a key deleted and written again gets a new one). */
  readonly CreateIndex: number;
  /** Index of the last write that changed the entry. */
  readonly ModifyIndex: number;
  /** How many times a session acquired the lock on this key. */
  readonly LockIndex: number;
  /** Opaque uint64 for clients. */
  readonly Flags: bigint;
  readonly Value: Uint8Array;
  /** The session holding the lock; absent when unlocked. */
  readonly Session?: string;
}

/** Whether a session exists; given by the sessions table (fsm/state/sessions.ts). */
export interface SessionLookup {
  sessionExists(sessionId: string): boolean;
  /**
   * Whether `key` is under lock-delay at `nowMs`: a session holding it was invalidated less than
   * its LockDelay ago, so no session may acquire it yet. Absent: no lock-delays.
   */
  lockDelayed?(key: string, nowMs: number): boolean;
}

/** The lookup used until the sessions table exists: there are no sessions. */
export const NO_SESSIONS: SessionLookup = { sessionExists: () => false };

/** A write's outcome: Consul's true/false answer and the keys whose entries changed. */
export interface KvWriteDone {
  readonly kind: 'done';
  readonly result: boolean;
  readonly changedKeys: readonly string[];
  /** Set when an acquire failed because the key is under lock-delay (a transaction reports it). */
  readonly lockDelayed?: true;
}

/** A write Consul answers with an error (HTTP 500 with this text) rather than true/false. */
export interface KvWriteRejected {
  readonly kind: 'rejected';
  readonly code: 'missingSession' | 'invalidSession';
  readonly error: string;
}

export type KvWriteOutcome = KvWriteDone | KvWriteRejected;

/** The fields a PUT supplies; the mode (plain, cas, acquire, release) is chosen by the caller. */
export interface KvWrite {
  readonly key: string;
  readonly value: Uint8Array;
  readonly flags: bigint;
}

/** The table's full contents, for snapshots. Entries and tombstones are in key order. */
export interface KvTableDump {
  readonly index: number;
  readonly entries: readonly KvEntry[];
  readonly tombstones: readonly KvTombstone[];
}

/** A deleted key (or a deleted prefix, for a tree delete) and the index of the delete. */
export interface KvTombstone {
  readonly key: string;
  readonly index: number;
}

const NOTHING_CHANGED: readonly string[] = [];

export class KvTable {
  private readonly entriesByKey = new Map<string, KvEntry>();
  private sortedKeys = new SortedKeySet();
  /**
   * Deleted keys and the index of their delete. They keep a prefix's index from going backwards
   * when its newest key is deleted: a blocking `?recurse` query must see the delete as a change.
   */
  private readonly tombstoneIndexByKey = new Map<string, number>();
  private sortedTombstones = new SortedKeySet();
  /** Keys locked by each session, so that destroying a session can release its locks. */
  private readonly lockedKeysBySession = new Map<string, Set<string>>();
  /** Index of the last write that changed the table (sets and deletes; not tombstone reaping). */
  private tableIndex = 0;
  /** While a transaction runs: what its writes replaced, to put back if it fails (see beginTransaction). */
  private undo: KvUndoLog | null = null;

  /** The table index: the last index at which any KV entry changed. */
  index(): number {
    return this.tableIndex;
  }

  get size(): number {
    return this.entriesByKey.size;
  }

  get tombstoneCount(): number {
    return this.tombstoneIndexByKey.size;
  }

  get(key: string): KvEntry | undefined {
    return this.entriesByKey.get(key);
  }

  /** The entries whose key starts with `prefix`, in key order. */
  list(prefix: string): KvEntry[] {
    return this.sortedKeys.withPrefix(prefix).map((key) => this.entriesByKey.get(key)!);
  }

  /**
   * The keys that start with `prefix`, in order. With a non-empty `separator`, a key that contains
   * the separator after the prefix is cut just after its first occurrence, and each cut key is
   * listed once (Consul's `?keys&separator=`): under `a/`, keys `a/b`, `a/c/d`, `a/c/e` give
   * `a/b`, `a/c/`.
   */
  keys(prefix: string, separator = ''): string[] {
    if (separator === '') return this.sortedKeys.withPrefix(prefix);
    const result: string[] = [];
    const seen = new Set<string>();
    for (const key of this.sortedKeys.withPrefix(prefix)) {
      const at = key.indexOf(separator, prefix.length);
      if (at === -1) {
        result.push(key);
        continue;
      }
      const cut = key.slice(0, at + separator.length);
      if (!seen.has(cut)) {
        seen.add(cut);
        result.push(cut);
      }
    }
    return result;
  }

  /**
   * The index Consul answers for a listing of `prefix` (`?recurse` or `?keys`): the highest
   * ModifyIndex under the prefix, tombstones included; the table index when that is 0 or when the
   * prefix is empty. May be 0 on an empty store (the HTTP layer answers at least 1).
   */
  prefixIndex(prefix: string): number {
    if (prefix === '') return this.tableIndex;
    let highest = 0;
    for (const key of this.sortedKeys.withPrefix(prefix)) {
      const modifyIndex = this.entriesByKey.get(key)!.ModifyIndex;
      if (modifyIndex > highest) highest = modifyIndex;
    }
    for (const key of this.sortedTombstones.withPrefix(prefix)) {
      const deleteIndex = this.tombstoneIndexByKey.get(key)!;
      if (deleteIndex > highest) highest = deleteIndex;
    }
    return highest !== 0 ? highest : this.tableIndex;
  }

  /** The keys whose lock `sessionId` holds, in key order. */
  keysLockedBy(sessionId: string): string[] {
    const keys = this.lockedKeysBySession.get(sessionId);
    return keys ? [...keys].sort(compareKeys) : [];
  }

  /** The tombstones under `prefix`, in key order (for inspection and tests). */
  tombstones(prefix = ''): KvTombstone[] {
    return this.sortedTombstones.withPrefix(prefix).map((key) => ({ key, index: this.tombstoneIndexByKey.get(key)! }));
  }

  // -------------------------------------------------------------------------------------------
  // Writes. Only the FSM calls these, with the Raft index of the entry it is applying.
  // -------------------------------------------------------------------------------------------

  /**
   * A plain PUT: always succeeds. Keeps CreateIndex, and the lock (Session, LockIndex) if any.
   * Consul's code resets LockIndex to 0 here; Konsul keeps it (see fsm/README.md).
   */
  set(index: number, write: KvWrite): KvWriteDone {
    const existing = this.entriesByKey.get(write.key);
    return this.store(index, write, existing, existing?.Session, existing?.LockIndex ?? 0);
  }

  /** PUT ?cas=N: N = 0 writes only a missing key, N > 0 only a key whose ModifyIndex is N. */
  setCas(index: number, write: KvWrite, cas: number): KvWriteDone {
    const existing = this.entriesByKey.get(write.key);
    const matches = cas === 0 ? existing === undefined : existing?.ModifyIndex === cas;
    if (!matches) return done(false);
    return this.store(index, write, existing, existing?.Session, existing?.LockIndex ?? 0);
  }

  /**
   * PUT ?acquire=session: takes the lock if it is free (LockIndex + 1) or already held by this
   * session (LockIndex unchanged), and writes the value either way. Fails (false) if another
   * session holds it. The key need not exist.
   *
   * With `nowMs` (the proposer's clock, carried in the command), a key under lock-delay answers
   * false with `lockDelayed` set, before any session check: Consul's kvsPreApply refuses such a
   * lock before it reaches the state store.
   */
  acquire(index: number, write: KvWrite, sessionId: string, sessions: SessionLookup, nowMs?: number): KvWriteOutcome {
    if (nowMs !== undefined && sessions.lockDelayed?.(write.key, nowMs) === true) return { kind: 'done', result: false, changedKeys: NOTHING_CHANGED, lockDelayed: true };
    if (sessionId === '') return { kind: 'rejected', code: 'missingSession', error: 'missing session' };
    if (!sessions.sessionExists(sessionId)) {
      return { kind: 'rejected', code: 'invalidSession', error: `invalid session ${JSON.stringify(sessionId)}` };
    }
    const existing = this.entriesByKey.get(write.key);
    let lockIndex: number;
    if (existing === undefined) lockIndex = 1;
    else if (existing.Session === sessionId) lockIndex = existing.LockIndex;
    else if (existing.Session !== undefined) return done(false);
    else lockIndex = existing.LockIndex + 1;
    return this.store(index, write, existing, sessionId, lockIndex);
  }

  /**
   * PUT ?release=session: gives the lock up if this session holds it, keeping LockIndex and
   * writing the value. False if the key is missing or the session does not hold it.
   */
  release(index: number, write: KvWrite, sessionId: string): KvWriteOutcome {
    if (sessionId === '') return { kind: 'rejected', code: 'missingSession', error: 'missing session' };
    const existing = this.entriesByKey.get(write.key);
    if (existing === undefined || existing.Session !== sessionId) return done(false);
    return this.store(index, write, existing, undefined, existing.LockIndex);
  }

  /**
   * DELETE: removes the key and leaves a tombstone. Deleting a missing key succeeds and changes
   * nothing. With `cas`, deletes only if the key's ModifyIndex equals it (so cas=0 never deletes
   * an existing key), and answers true for a missing key, as Consul does.
   */
  delete(index: number, key: string, cas?: number): KvWriteDone {
    const existing = this.entriesByKey.get(key);
    if (existing === undefined) return done(true);
    if (cas !== undefined && existing.ModifyIndex !== cas) return done(false);
    this.remove(existing);
    this.sortedKeys.delete(key);
    this.putTombstone(key, index);
    this.tableIndex = index;
    return { kind: 'done', result: true, changedKeys: [key] };
  }

  /**
   * DELETE ?recurse: removes every key under the prefix. Like Consul, leaves one tombstone at the
   * prefix itself (none for the empty prefix: the table index covers it). Always true.
   */
  deleteTree(index: number, prefix: string): KvWriteDone {
    const removedKeys = this.sortedKeys.deletePrefix(prefix);
    if (removedKeys.length === 0) return done(true);
    for (const key of removedKeys) this.remove(this.entriesByKey.get(key)!);
    if (prefix !== '') this.putTombstone(prefix, index);
    this.tableIndex = index;
    return { kind: 'done', result: true, changedKeys: removedKeys };
  }

  /**
   * Forgets tombstones with index <= upToIndex. Listings of their prefixes may then answer a lower
   * index (as in Consul); the leader reaps only tombstones older than any blocking query's wait.
   * Changes no entry, so wakes no watcher and leaves the table index alone.
   */
  reapTombstones(upToIndex: number): number {
    const survivors: string[] = [];
    let reaped = 0;
    for (const key of this.sortedTombstones.all()) {
      if (this.tombstoneIndexByKey.get(key)! <= upToIndex) {
        this.tombstoneIndexByKey.delete(key);
        reaped++;
      } else {
        survivors.push(key);
      }
    }
    if (reaped > 0) this.sortedTombstones = SortedKeySet.fromSorted(survivors);
    return reaped;
  }

  // -------------------------------------------------------------------------------------------
  // Transactions (/v1/txn): a group of writes that happens entirely or not at all. Between begin
  // and commit/rollback the writes above record what they replace (first touch of each key only);
  // a rollback puts it back. The FSM applies synchronously, so nobody sees the state in between.
  // -------------------------------------------------------------------------------------------

  beginTransaction(): void {
    if (this.undo !== null) throw new Error('KvTable: a transaction is already open');
    this.undo = new KvUndoLog(this.tableIndex);
  }

  /** Keeps every write since beginTransaction. */
  commitTransaction(): void {
    this.undo = null;
  }

  /** Undoes every write since beginTransaction: entries, locks, tombstones and the table index. */
  rollbackTransaction(): void {
    const undo = this.undo;
    if (undo === null) throw new Error('KvTable: no transaction is open');
    this.undo = null;
    for (const [key, previous] of undo.entries) {
      const current = this.entriesByKey.get(key);
      if (current?.Session !== undefined) this.untrackLock(current.Session, key);
      if (previous === undefined) {
        if (current !== undefined) {
          this.entriesByKey.delete(key);
          this.sortedKeys.delete(key);
        }
        continue;
      }
      if (current === undefined) this.sortedKeys.add(key);
      this.entriesByKey.set(key, previous);
      if (previous.Session !== undefined) this.trackLock(previous.Session, key);
    }
    for (const [key, previousIndex] of undo.tombstones) {
      if (previousIndex !== undefined) {
        if (!this.tombstoneIndexByKey.has(key)) this.sortedTombstones.add(key);
        this.tombstoneIndexByKey.set(key, previousIndex);
      } else if (this.tombstoneIndexByKey.delete(key)) {
        this.sortedTombstones.delete(key);
      }
    }
    this.tableIndex = undo.tableIndex;
  }

  // -------------------------------------------------------------------------------------------
  // Snapshots.
  // -------------------------------------------------------------------------------------------

  dump(): KvTableDump {
    const entries = this.sortedKeys.all().map((key) => this.entriesByKey.get(key)!);
    return { index: this.tableIndex, entries, tombstones: this.tombstones() };
  }

  /** Replaces the whole contents. Entries and tombstones must be in key order, without duplicates. */
  load(dump: KvTableDump): void {
    this.entriesByKey.clear();
    this.lockedKeysBySession.clear();
    this.tombstoneIndexByKey.clear();
    const keys: string[] = [];
    for (const entry of dump.entries) {
      this.entriesByKey.set(entry.Key, entry);
      keys.push(entry.Key);
      if (entry.Session !== undefined) this.trackLock(entry.Session, entry.Key);
    }
    this.sortedKeys = SortedKeySet.fromSorted(keys);
    const tombstoneKeys: string[] = [];
    for (const tombstone of dump.tombstones) {
      this.tombstoneIndexByKey.set(tombstone.key, tombstone.index);
      tombstoneKeys.push(tombstone.key);
    }
    this.sortedTombstones = SortedKeySet.fromSorted(tombstoneKeys);
    this.tableIndex = dump.index;
  }

  // -------------------------------------------------------------------------------------------

  /**
   * Writes the new version of an entry. Like Consul (kvsSetTxn), a write that changes nothing
   * (same value, flags, session and lock index) is skipped: ModifyIndex stays, no watcher wakes.
   */
  private store(index: number, write: KvWrite, existing: KvEntry | undefined, session: string | undefined, lockIndex: number): KvWriteDone {
    if (
      existing !== undefined &&
      existing.Flags === write.flags &&
      existing.Session === session &&
      existing.LockIndex === lockIndex &&
      sameBytes(existing.Value, write.value)
    ) {
      return done(true);
    }
    const entry: KvEntry = {
      Key: write.key,
      CreateIndex: existing?.CreateIndex ?? index,
      ModifyIndex: index,
      LockIndex: lockIndex,
      Flags: write.flags,
      Value: write.value,
      ...(session !== undefined ? { Session: session } : {}),
    };
    this.undo?.recordEntry(write.key, existing);
    if (existing === undefined) this.sortedKeys.add(write.key);
    if (existing?.Session !== session) {
      if (existing?.Session !== undefined) this.untrackLock(existing.Session, write.key);
      if (session !== undefined) this.trackLock(session, write.key);
    }
    this.entriesByKey.set(write.key, entry);
    this.tableIndex = index;
    return { kind: 'done', result: true, changedKeys: [write.key] };
  }

  /** Drops an entry from the map and the lock index (the caller updates the sorted keys). */
  private remove(entry: KvEntry): void {
    this.undo?.recordEntry(entry.Key, entry);
    this.entriesByKey.delete(entry.Key);
    if (entry.Session !== undefined) this.untrackLock(entry.Session, entry.Key);
  }

  private putTombstone(key: string, index: number): void {
    this.undo?.recordTombstone(key, this.tombstoneIndexByKey.get(key));
    if (!this.tombstoneIndexByKey.has(key)) this.sortedTombstones.add(key);
    this.tombstoneIndexByKey.set(key, index);
  }

  private trackLock(sessionId: string, key: string): void {
    let keys = this.lockedKeysBySession.get(sessionId);
    if (keys === undefined) {
      keys = new Set();
      this.lockedKeysBySession.set(sessionId, keys);
    }
    keys.add(key);
  }

  private untrackLock(sessionId: string, key: string): void {
    const keys = this.lockedKeysBySession.get(sessionId);
    if (keys === undefined) return;
    keys.delete(key);
    if (keys.size === 0) this.lockedKeysBySession.delete(sessionId);
  }
}

/** What an open transaction's writes replaced: the first previous state of each key they touched. */
class KvUndoLog {
  /** The entry before the transaction first wrote or removed the key (undefined: it did not exist). */
  readonly entries = new Map<string, KvEntry | undefined>();
  /** The tombstone index before the transaction first set it (undefined: no tombstone). */
  readonly tombstones = new Map<string, number | undefined>();
  constructor(readonly tableIndex: number) {}

  recordEntry(key: string, previous: KvEntry | undefined): void {
    if (!this.entries.has(key)) this.entries.set(key, previous);
  }

  recordTombstone(key: string, previousIndex: number | undefined): void {
    if (!this.tombstones.has(key)) this.tombstones.set(key, previousIndex);
  }
}

function done(result: boolean): KvWriteDone {
  return { kind: 'done', result, changedKeys: NOTHING_CHANGED };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
