// What a restore (PUT /v1/snapshot: a staged restore's commit, or an old snapshotRestore entry)
// loads: the snapshot's tables, moved into this cluster's index space at the restore entry's index.
//
// Indexes are Raft log indexes, and Konsul's log cannot jump forward the way hashicorp/raft's
// Restore does. A snapshot taken by another cluster (or before a data loss) may carry indexes above
// the restore entry's. Kept as they are, they would sit above every later write: a `?recurse`
// listing answers the highest ModifyIndex under its prefix, so blocking queries on that prefix would
// miss every change until the log caught up. So every restored index above the restore entry's is
// lowered to it; a snapshot of this cluster's own past (all indexes below) keeps them exactly.
// Each table's own index becomes the restore entry's: the restore changed it at that index.
//
// Events keep their indexes: an event's ID encodes its index, and the event list answers the index
// of its newest event, which the next fire replaces.
//
// A staged restore (staged-restore.ts) lowers KV indexes to its restoreBegin entry's index as it
// reads them, and moves the small tables at its commit's index.
//
// A table added later restores through here too: add its section below.

import type { DecodedTables, FsmState } from './snapshot.ts';
import type { KvEntry, KvTombstone } from './state/kv.ts';
import { EMPTY_CATALOG_DUMP } from './state/catalog.ts';
import { catalogDumpForRestoreAt } from './state/catalog-snapshot.ts';
import { EMPTY_SESSIONS_DUMP } from './state/sessions.ts';
import { sessionsForRestoreAt } from './state/sessions-snapshot.ts';
import { EMPTY_KV_RECOVERY_DUMP, kvRecoveryForRestoreAt } from './state/kv-recovery.ts';

type SmallTables = Pick<DecodedTables, 'events' | 'catalog' | 'sessions' | 'kvRecovery'>;

export function stateForRestoreAt(state: FsmState, index: number): FsmState {
  const cap = (n: number): number => (n > index ? index : n);
  const entries = state.kv.entries.map((e): KvEntry =>
    e.CreateIndex > index || e.ModifyIndex > index ? { ...e, CreateIndex: cap(e.CreateIndex), ModifyIndex: cap(e.ModifyIndex) } : e,
  );
  const tombstones = state.kv.tombstones.map((t): KvTombstone => (t.index > index ? { key: t.key, index } : t));
  return { ...state, appliedIndex: index, kv: { index, entries, tombstones }, ...smallTablesForRestoreAt(state, index) };
}

/** The tables besides KV, as a restore committed at `index` loads them (a staged restore's commit too). */
export function smallTablesForRestoreAt(tables: SmallTables, index: number): Required<SmallTables> {
  return {
    events: { lastLTime: 0, events: [], ...tables.events, index },
    // Catalog: fsm/state/catalog-snapshot.ts (the same capping; every catalog index becomes `index`).
    catalog: catalogDumpForRestoreAt(tables.catalog ?? EMPTY_CATALOG_DUMP, index),
    // Sessions: fsm/state/sessions-snapshot.ts (the same capping; lock-delays are times, kept).
    sessions: sessionsForRestoreAt(tables.sessions ?? EMPTY_SESSIONS_DUMP, index),
    // Recoverable deletes: fsm/state/kv-recovery.ts (versions' indexes lowered the same way).
    kvRecovery: kvRecoveryForRestoreAt(tables.kvRecovery ?? EMPTY_KV_RECOVERY_DUMP, index),
  };
}
