// The KV table: Consul's key/value store semantics, applied deterministically.
//
// The rules follow Consul's state store (agent/consul/state/kvs.go, kvs_ce.go, graveyard.go) and
// its HTTP API; fsm/README.md lists each rule with its source. Indexes are Raft log indexes: the
// FSM passes the index of the entry being applied to every write.
//
// Storage (ADR 0015): one copy-on-write B+tree of immutable packed records (kv-record.ts) in key
// order, and one of tombstones, so that a snapshot is a view taken in O(1) that later writes do not change. Reads
// answer fresh KvEntry objects built from the records.

import { CowSortedMap, SortedMapBuilder, type SortedMapView } from './cow-sorted-map.ts';
import {
  createIndexOf,
  lockIndexOf,
  modifyIndexOf,
  packRecord,
  recordFromEntry,
  recordToEntry,
  sessionOf,
  valueEquals,
  flagsOf,
  type KvRecord,
} from './kv-record.ts';
import { compareKeys } from './sorted-keys.ts';

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

/** Why a record left the store: a delete, or a write that changed its value or flags. */
export type KvRetireReason = 'deleted' | 'overwritten';

/**
 * Told about records that deletes and overwrites retire (recoverable deletes, kv-recovery.ts).
 * `covers` is asked first, so keys it does not cover cost one call; a transaction's retirements
 * are told only when it commits.
 */
export interface KvRetireListener {
  covers(key: string): boolean;
  retired(key: string, record: KvRecord, index: number, why: KvRetireReason): void;
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

/** A point-in-time view of the table for a snapshot: taken in O(1), unchanged by later writes. */
export interface KvTableView {
  readonly index: number;
  readonly entries: SortedMapView<KvRecord>;
  readonly tombstones: SortedMapView<number>;
}

export class KvTable {
  /** Every key's record, in key order (listings walk it; snapshots freeze it). */
  private entries = new CowSortedMap<KvRecord>();
  /**
   * Deleted keys and the index of their delete. They keep a prefix's index from going backwards
   * when its newest key is deleted: a blocking `?recurse` query must see the delete as a change.
   */
  private tombstoneIndexes = new CowSortedMap<number>();
  /** Keys locked by each session, so that destroying a session can release its locks. Derived: rebuilt on load. */
  private lockedKeysBySession = new Map<string, Set<string>>();
  /** Index of the last write that changed the table (sets and deletes; not tombstone reaping). */
  private tableIndex = 0;
  /** While a transaction runs: what its writes replaced, to put back if it fails (see beginTransaction). */
  private undo: KvUndoLog | null = null;
  /** Null unless recovery rules exist: the hot path then pays one null check per write. */
  private retireListener: KvRetireListener | null = null;

  /** The table index: the last index at which any KV entry changed. */
  index(): number {
    return this.tableIndex;
  }

  get size(): number {
    return this.entries.size;
  }

  get tombstoneCount(): number {
    return this.tombstoneIndexes.size;
  }

  get(key: string): KvEntry | undefined {
    const record = this.entries.get(key);
    return record === undefined ? undefined : recordToEntry(key, record);
  }

  /** The entries whose key starts with `prefix`, in key order. */
  list(prefix: string): KvEntry[] {
    const result: KvEntry[] = [];
    this.entries.forEachWithPrefix(prefix, (key, record) => result.push(recordToEntry(key, record)));
    return result;
  }

  /**
   * The keys that start with `prefix`, in order. With a non-empty `separator`, a key that contains
   * the separator after the prefix is cut just after its first occurrence, and each cut key is
   * listed once (Consul's `?keys&separator=`): under `a/`, keys `a/b`, `a/c/d`, `a/c/e` give
   * `a/b`, `a/c/`.
   */
  keys(prefix: string, separator = ''): string[] {
    if (separator === '') return this.entries.keysWithPrefix(prefix);
    const result: string[] = [];
    let lastCut: string | undefined;
    this.entries.forEachWithPrefix(prefix, (key) => {
      const at = key.indexOf(separator, prefix.length);
      if (at === -1) {
        result.push(key);
        return;
      }
      // Keys sharing a cut are adjacent in key order: comparing with the last cut is enough.
      const cut = key.slice(0, at + separator.length);
      if (cut !== lastCut) {
        lastCut = cut;
        result.push(cut);
      }
    });
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
    this.entries.forEachWithPrefix(prefix, (_key, record) => {
      const modifyIndex = modifyIndexOf(record);
      if (modifyIndex > highest) highest = modifyIndex;
    });
    this.tombstoneIndexes.forEachWithPrefix(prefix, (_key, deleteIndex) => {
      if (deleteIndex > highest) highest = deleteIndex;
    });
    return highest !== 0 ? highest : this.tableIndex;
  }

  /** The keys whose lock `sessionId` holds, in key order. */
  keysLockedBy(sessionId: string): string[] {
    const keys = this.lockedKeysBySession.get(sessionId);
    return keys ? [...keys].sort(compareKeys) : [];
  }

  /** The tombstones under `prefix`, in key order (for inspection and tests). */
  tombstones(prefix = ''): KvTombstone[] {
    const result: KvTombstone[] = [];
    this.tombstoneIndexes.forEachWithPrefix(prefix, (key, index) => result.push({ key, index }));
    return result;
  }

  // -------------------------------------------------------------------------------------------
  // Writes. Only the FSM calls these, with the Raft index of the entry it is applying.
  // -------------------------------------------------------------------------------------------

  /**
   * A plain PUT: always succeeds. Keeps CreateIndex, and the lock (Session, LockIndex) if any.
   * Consul's code resets LockIndex to 0 here; Konsul keeps it (see fsm/README.md).
   */
  set(index: number, write: KvWrite): KvWriteDone {
    const existing = this.entries.get(write.key);
    return this.store(index, write, existing, existing === undefined ? undefined : sessionOf(existing), existing === undefined ? 0 : lockIndexOf(existing));
  }

  /** PUT ?cas=N: N = 0 writes only a missing key, N > 0 only a key whose ModifyIndex is N. */
  setCas(index: number, write: KvWrite, cas: number): KvWriteDone {
    const existing = this.entries.get(write.key);
    const matches = cas === 0 ? existing === undefined : existing !== undefined && modifyIndexOf(existing) === cas;
    if (!matches) return done(false);
    return this.store(index, write, existing, existing === undefined ? undefined : sessionOf(existing), existing === undefined ? 0 : lockIndexOf(existing));
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
    const existing = this.entries.get(write.key);
    let lockIndex: number;
    const holder = existing === undefined ? undefined : sessionOf(existing);
    if (existing === undefined) lockIndex = 1;
    else if (holder === sessionId) lockIndex = lockIndexOf(existing);
    else if (holder !== undefined) return done(false);
    else lockIndex = lockIndexOf(existing) + 1;
    return this.store(index, write, existing, sessionId, lockIndex);
  }

  /**
   * PUT ?release=session: gives the lock up if this session holds it, keeping LockIndex and
   * writing the value. False if the key is missing or the session does not hold it.
   */
  release(index: number, write: KvWrite, sessionId: string): KvWriteOutcome {
    if (sessionId === '') return { kind: 'rejected', code: 'missingSession', error: 'missing session' };
    const existing = this.entries.get(write.key);
    if (existing === undefined || sessionOf(existing) !== sessionId) return done(false);
    return this.store(index, write, existing, undefined, lockIndexOf(existing));
  }

  /**
   * DELETE: removes the key and leaves a tombstone. Deleting a missing key succeeds and changes
   * nothing. With `cas`, deletes only if the key's ModifyIndex equals it (so cas=0 never deletes
   * an existing key), and answers true for a missing key, as Consul does.
   */
  delete(index: number, key: string, cas?: number): KvWriteDone {
    const existing = this.entries.get(key);
    if (existing === undefined) return done(true);
    if (cas !== undefined && modifyIndexOf(existing) !== cas) return done(false);
    this.remove(index, key, existing);
    this.putTombstone(key, index);
    this.tableIndex = index;
    return { kind: 'done', result: true, changedKeys: [key] };
  }

  /**
   * DELETE ?recurse: removes every key under the prefix. Like Consul, leaves one tombstone at the
   * prefix itself (none for the empty prefix: the table index covers it). Always true.
   */
  deleteTree(index: number, prefix: string): KvWriteDone {
    const removed: [string, KvRecord][] = [];
    this.entries.forEachWithPrefix(prefix, (key, record) => removed.push([key, record]));
    if (removed.length === 0) return done(true);
    for (const [key, record] of removed) this.remove(index, key, record);
    if (prefix !== '') this.putTombstone(prefix, index);
    this.tableIndex = index;
    return { kind: 'done', result: true, changedKeys: removed.map(([key]) => key) };
  }

  /**
   * Forgets tombstones with index <= upToIndex. Listings of their prefixes may then answer a lower
   * index (as in Consul); the leader reaps only tombstones older than any blocking query's wait.
   * Changes no entry, so wakes no watcher and leaves the table index alone.
   */
  reapTombstones(upToIndex: number): number {
    const reaped: string[] = [];
    this.tombstoneIndexes.forEachWithPrefix('', (key, deleteIndex) => {
      if (deleteIndex <= upToIndex) reaped.push(key);
    });
    for (const key of reaped) this.tombstoneIndexes.delete(key);
    return reaped.length;
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
    const retired = this.undo?.retired;
    this.undo = null;
    if (retired !== undefined && this.retireListener !== null) for (const r of retired) this.retireListener.retired(r.key, r.record, r.index, r.why);
  }

  /** Undoes every write since beginTransaction: entries, locks, tombstones and the table index. */
  rollbackTransaction(): void {
    const undo = this.undo;
    if (undo === null) throw new Error('KvTable: no transaction is open');
    this.undo = null;
    for (const [key, previous] of undo.entries) {
      const current = this.entries.get(key);
      const currentHolder = current === undefined ? undefined : sessionOf(current);
      if (currentHolder !== undefined) this.untrackLock(currentHolder, key);
      if (previous === undefined) {
        if (current !== undefined) this.entries.delete(key);
        continue;
      }
      this.entries.set(key, previous);
      const previousHolder = sessionOf(previous);
      if (previousHolder !== undefined) this.trackLock(previousHolder, key);
    }
    for (const [key, previousIndex] of undo.tombstones) {
      if (previousIndex !== undefined) this.tombstoneIndexes.set(key, previousIndex);
      else this.tombstoneIndexes.delete(key);
    }
    this.tableIndex = undo.tableIndex;
  }

  // -------------------------------------------------------------------------------------------
  // Snapshots.
  // -------------------------------------------------------------------------------------------

  /** The table as of now, in O(1): later writes copy the nodes they change instead of changing them. */
  view(): KvTableView {
    return { index: this.tableIndex, entries: this.entries.freeze(), tombstones: this.tombstoneIndexes.freeze() };
  }

  /** The whole contents as plain objects (tests and the archive inspector; snapshots use view()). */
  dump(): KvTableDump {
    const view = this.view();
    const entries: KvEntry[] = [];
    for (const run of view.entries.leaves()) for (let i = run.offset; i < run.keys.length; i++) entries.push(recordToEntry(run.keys[i]!, run.values[i]!));
    return { index: view.index, entries, tombstones: this.tombstones() };
  }

  /** Replaces the whole contents. Entries and tombstones must be in key order, without duplicates. */
  load(dump: KvTableDump): void {
    const builder = new KvTableBuilder();
    for (const entry of dump.entries) builder.addEntry(entry.Key, recordFromEntry(entry));
    for (const tombstone of dump.tombstones) builder.addTombstone(tombstone.key, tombstone.index);
    this.loadBuilt(builder, dump.index);
  }

  /** Replaces the whole contents with what a builder holds (a restore fed in pieces). */
  loadBuilt(builder: KvTableBuilder, tableIndex: number): void {
    this.entries = CowSortedMap.fromBuilder(builder.entries);
    this.tombstoneIndexes = CowSortedMap.fromBuilder(builder.tombstones);
    this.lockedKeysBySession = builder.locks;
    this.tableIndex = tableIndex;
    this.undo = null;
  }

  // -------------------------------------------------------------------------------------------

  /**
   * Writes the new version of an entry. Like Consul (kvsSetTxn), a write that changes nothing
   * (same value, flags, session and lock index) is skipped: ModifyIndex stays, no watcher wakes.
   */
  private store(index: number, write: KvWrite, existing: KvRecord | undefined, session: string | undefined, lockIndex: number): KvWriteDone {
    if (existing !== undefined && flagsOf(existing) === write.flags && sessionOf(existing) === session && lockIndexOf(existing) === lockIndex && valueEquals(existing, write.value)) {
      return done(true);
    }
    const record = packRecord({ createIndex: existing === undefined ? index : createIndexOf(existing), modifyIndex: index, lockIndex, flags: write.flags, session }, write.value);
    this.undo?.recordEntry(write.key, existing);
    if (this.retireListener !== null && existing !== undefined && this.retireListener.covers(write.key) && (flagsOf(existing) !== write.flags || !valueEquals(existing, write.value))) {
      this.noteRetired(write.key, existing, index, 'overwritten');
    }
    const before = existing === undefined ? undefined : sessionOf(existing);
    if (before !== session) {
      if (before !== undefined) this.untrackLock(before, write.key);
      if (session !== undefined) this.trackLock(session, write.key);
    }
    this.entries.set(write.key, record);
    this.tableIndex = index;
    return { kind: 'done', result: true, changedKeys: [write.key] };
  }

  /** Drops an entry and its lock. */
  private remove(index: number, key: string, record: KvRecord): void {
    this.undo?.recordEntry(key, record);
    if (this.retireListener !== null && this.retireListener.covers(key)) this.noteRetired(key, record, index, 'deleted');
    this.entries.delete(key);
    const holder = sessionOf(record);
    if (holder !== undefined) this.untrackLock(holder, key);
  }

  /** Who hears of retired records (null: nobody, the default). */
  setRetireListener(listener: KvRetireListener | null): void {
    this.retireListener = listener;
  }

  /** Inside a transaction the retirement waits for the commit (a rollback forgets it). */
  private noteRetired(key: string, record: KvRecord, index: number, why: KvRetireReason): void {
    if (this.undo !== null) this.undo.retired.push({ key, record, index, why });
    else this.retireListener!.retired(key, record, index, why);
  }

  private putTombstone(key: string, index: number): void {
    this.undo?.recordTombstone(key, this.tombstoneIndexes.get(key));
    this.tombstoneIndexes.set(key, index);
  }

  private trackLock(sessionId: string, key: string): void {
    trackLock(this.lockedKeysBySession, sessionId, key);
  }

  private untrackLock(sessionId: string, key: string): void {
    const keys = this.lockedKeysBySession.get(sessionId);
    if (keys === undefined) return;
    keys.delete(key);
    if (keys.size === 0) this.lockedKeysBySession.delete(sessionId);
  }
}

/**
 * Builds a table's contents from entries and tombstones arriving in key order (a snapshot being
 * restored in pieces), aside from the live table. The caller checks the order.
 */
export class KvTableBuilder {
  readonly entries = new SortedMapBuilder<KvRecord>();
  readonly tombstones = new SortedMapBuilder<number>();
  readonly locks = new Map<string, Set<string>>();

  addEntry(key: string, record: KvRecord): void {
    this.entries.add(key, record);
    const holder = sessionOf(record);
    if (holder !== undefined) trackLock(this.locks, holder, key);
  }

  addTombstone(key: string, index: number): void {
    this.tombstones.add(key, index);
  }
}

function trackLock(locks: Map<string, Set<string>>, sessionId: string, key: string): void {
  let keys = locks.get(sessionId);
  if (keys === undefined) {
    keys = new Set();
    locks.set(sessionId, keys);
  }
  keys.add(key);
}

/** What an open transaction's writes replaced: the first previous state of each key they touched. */
class KvUndoLog {
  /** The record before the transaction first wrote or removed the key (undefined: it did not exist). */
  readonly entries = new Map<string, KvRecord | undefined>();
  /** The tombstone index before the transaction first set it (undefined: no tombstone). */
  readonly tombstones = new Map<string, number | undefined>();
  /** Records retired while the transaction runs, told to the listener if it commits. */
  readonly retired: { key: string; record: KvRecord; index: number; why: KvRetireReason }[] = [];
  constructor(readonly tableIndex: number) {}

  recordEntry(key: string, previous: KvRecord | undefined): void {
    if (!this.entries.has(key)) this.entries.set(key, previous);
  }

  recordTombstone(key: string, previousIndex: number | undefined): void {
    if (!this.tombstones.has(key)) this.tombstones.set(key, previousIndex);
  }
}

function done(result: boolean): KvWriteDone {
  return { kind: 'done', result, changedKeys: NOTHING_CHANGED };
}

