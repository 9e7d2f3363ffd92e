// KV transactions (/v1/txn): a list of operations run in order against the KV table at one Raft
// index, all or nothing. Later operations see what earlier ones wrote. Every operation runs even
// after one failed, so the answer lists every failure (Consul's txnDispatch does the same); if any
// failed, the writes are rolled back and the table is exactly as before.
//
// Verbs, results and error texts follow Consul's agent/consul/state/txn.go (txnKVS) and kvs.go:
// - writes answer the stored entry without its value; deletes answer nothing;
// - get / get-tree answer entries with their values; check-index / check-session answer the entry
//   without its value; check-not-exists answers nothing;
// - a failed check, a stale cas and a held lock are errors of the transaction, never false.

import { encodeBase64 } from '../base64.ts';
import type { KvEntry, KvTable, SessionLookup } from './kv.ts';

/** Consul's maxTxnOps (agent/txn_endpoint.go; newer Consul versions allow 128). */
export const MAX_TXN_OPS = 64;

export const TXN_KV_WRITE_VERBS = ['set', 'cas', 'lock', 'unlock', 'delete', 'delete-tree', 'delete-cas'] as const;
export const TXN_KV_READ_VERBS = ['get', 'get-or-empty', 'get-tree', 'check-index', 'check-session', 'check-not-exists'] as const;

export type TxnKvWriteVerb = (typeof TXN_KV_WRITE_VERBS)[number];
export type TxnKvReadVerb = (typeof TXN_KV_READ_VERBS)[number];
export type TxnKvVerb = TxnKvWriteVerb | TxnKvReadVerb;

const WRITE_VERBS: ReadonlySet<string> = new Set(TXN_KV_WRITE_VERBS);
const ALL_VERBS: ReadonlySet<string> = new Set([...TXN_KV_WRITE_VERBS, ...TXN_KV_READ_VERBS]);

export function isTxnKvVerb(verb: string): verb is TxnKvVerb {
  return ALL_VERBS.has(verb);
}

/** Whether the verb changes the store (a transaction with one of these goes through Raft). */
export function isTxnKvWrite(verb: TxnKvVerb): verb is TxnKvWriteVerb {
  return WRITE_VERBS.has(verb);
}

/** One KV operation, decoded. Absent fields take Consul's zero values ('' / 0). */
export interface TxnKvOp {
  readonly verb: TxnKvVerb;
  readonly key: string;
  readonly value?: Uint8Array;
  readonly flags?: bigint;
  /** The ModifyIndex for cas, delete-cas and check-index. */
  readonly index?: number;
  readonly session?: string;
}

/** An entry in the answer; `withValue` false means Consul's `"Value": null`. */
export interface TxnKvResult {
  readonly entry: KvEntry;
  readonly withValue: boolean;
}

/** Consul's TxnError: which operation failed and why. */
export interface TxnOpError {
  readonly OpIndex: number;
  readonly What: string;
}

export interface TxnOutcome {
  /** Empty when the transaction failed. */
  readonly results: readonly TxnKvResult[];
  /** Empty when the transaction succeeded. */
  readonly errors: readonly TxnOpError[];
  /** Keys whose entries changed (empty when it failed): the watchers to wake, once. */
  readonly changedKeys: readonly string[];
}

const EMPTY = new Uint8Array(0);

/**
 * What Konsul answers before running anything, in Consul's 409 shape: first Consul's preCheck
 * (kvsPreApply: every verb but delete-tree needs a key); then unknown verbs, which Consul only
 * finds while running the transaction ("unknown KV verb"), so they are never proposed.
 */
export function precheckKvTxn(ops: readonly { readonly verb: string; readonly key: string }[]): TxnOpError[] {
  const missingKeys: TxnOpError[] = [];
  ops.forEach((op, i) => {
    if (op.key === '' && op.verb !== 'delete-tree') missingKeys.push({ OpIndex: i, What: 'Must provide key' });
  });
  if (missingKeys.length > 0) return missingKeys;
  const unknownVerbs: TxnOpError[] = [];
  ops.forEach((op, i) => {
    if (!isTxnKvVerb(op.verb)) unknownVerbs.push({ OpIndex: i, What: `unknown KV verb ${JSON.stringify(op.verb)}` });
  });
  return unknownVerbs;
}

/**
 * Runs a transaction with writes at Raft index `index`: all operations, then either keeps every
 * write or undoes them all. `nowMs` is the proposer's clock, for the lock-delay of `lock` ops.
 */
export function applyKvTxn(kv: KvTable, index: number, ops: readonly TxnKvOp[], sessions: SessionLookup, nowMs?: number): TxnOutcome {
  kv.beginTransaction();
  let outcome: TxnOutcome;
  try {
    outcome = runOps(kv, index, ops, sessions, nowMs);
  } catch (err) {
    // A bug, not an expected outcome: still leave the table as it was.
    kv.rollbackTransaction();
    throw err;
  }
  if (outcome.errors.length > 0) kv.rollbackTransaction();
  else kv.commitTransaction();
  return outcome;
}

/** Runs a read-only transaction (no write verbs) against the current state, outside Raft. */
export function readKvTxn(kv: KvTable, ops: readonly TxnKvOp[]): TxnOutcome {
  for (const op of ops) {
    if (isTxnKvWrite(op.verb)) throw new Error(`readKvTxn: ${op.verb} is a write`);
  }
  return runOps(kv, 0, ops, { sessionExists: () => false }, undefined);
}

function runOps(kv: KvTable, index: number, ops: readonly TxnKvOp[], sessions: SessionLookup, nowMs: number | undefined): TxnOutcome {
  const results: TxnKvResult[] = [];
  const errors: TxnOpError[] = [];
  const changed = new Set<string>();
  ops.forEach((op, opIndex) => {
    const outcome = runOp(kv, index, op, sessions, nowMs);
    if (typeof outcome === 'string') {
      errors.push({ OpIndex: opIndex, What: outcome });
      return;
    }
    for (const key of outcome.changedKeys) changed.add(key);
    results.push(...outcome.results);
  });
  if (errors.length > 0) return { results: [], errors, changedKeys: [] };
  return { results, errors, changedKeys: [...changed] };
}

interface OpDone {
  readonly results: readonly TxnKvResult[];
  readonly changedKeys: readonly string[];
}

const NO_CHANGE: readonly string[] = [];

/** Runs one operation: what it answers and changed, or the text of its error. */
function runOp(kv: KvTable, index: number, op: TxnKvOp, sessions: SessionLookup, nowMs: number | undefined): OpDone | string {
  const key = op.key;
  const q = JSON.stringify(key);
  const write = { key, value: op.value ?? EMPTY, flags: op.flags ?? 0n };
  /** The entry now stored at the key, without its value (what Consul answers for writes and checks). */
  const stored = (changedKeys: readonly string[]): OpDone => ({ results: [{ entry: kv.get(key)!, withValue: false }], changedKeys });
  switch (op.verb) {
    case 'set':
      return stored(kv.set(index, write).changedKeys);
    case 'cas': {
      const outcome = kv.setCas(index, write, op.index ?? 0);
      return outcome.result ? stored(outcome.changedKeys) : `failed to set key ${q}, index is stale`;
    }
    case 'lock': {
      const outcome = kv.acquire(index, write, op.session ?? '', sessions, nowMs);
      if (outcome.kind === 'rejected') return outcome.error;
      // Consul's preCheck text for a key under lock-delay (agent/consul/txn_endpoint.go).
      if (outcome.lockDelayed) return `failed to lock key ${q} due to lock delay`;
      return outcome.result ? stored(outcome.changedKeys) : `failed to lock key ${q}, lock is already held`;
    }
    case 'unlock': {
      const outcome = kv.release(index, write, op.session ?? '');
      if (outcome.kind === 'rejected') return outcome.error;
      return outcome.result ? stored(outcome.changedKeys) : `failed to unlock key ${q}, lock isn't held, or is held by another session`;
    }
    case 'delete':
      return { results: [], changedKeys: kv.delete(index, key).changedKeys };
    case 'delete-tree':
      return { results: [], changedKeys: kv.deleteTree(index, key).changedKeys };
    case 'delete-cas': {
      const outcome = kv.delete(index, key, op.index ?? 0);
      return outcome.result ? { results: [], changedKeys: outcome.changedKeys } : `failed to delete key ${q}, index is stale`;
    }
    case 'get': {
      const entry = kv.get(key);
      return entry ? { results: [{ entry, withValue: true }], changedKeys: NO_CHANGE } : `key ${q} doesn't exist`;
    }
    case 'get-or-empty': {
      // Consul answers the request's own fields for a missing key (kvsGetTxn + KVGetOrEmpty).
      const entry: KvEntry = kv.get(key) ?? {
        Key: key,
        CreateIndex: 0,
        ModifyIndex: op.index ?? 0,
        LockIndex: 0,
        Flags: op.flags ?? 0n,
        Value: EMPTY,
        ...(op.session ? { Session: op.session } : {}),
      };
      return { results: [{ entry, withValue: true }], changedKeys: NO_CHANGE };
    }
    case 'get-tree':
      return { results: kv.list(key).map((entry) => ({ entry, withValue: true })), changedKeys: NO_CHANGE };
    case 'check-index': {
      const entry = kv.get(key);
      if (!entry) return `failed to check index, key ${q} doesn't exist`;
      const expected = op.index ?? 0;
      if (entry.ModifyIndex !== expected) return `failed index check for key ${q}, current modify index ${entry.ModifyIndex} != ${expected}`;
      return { results: [{ entry, withValue: false }], changedKeys: NO_CHANGE };
    }
    case 'check-session': {
      const entry = kv.get(key);
      if (!entry) return `failed to check session, key ${q} doesn't exist`;
      const current = entry.Session ?? '';
      const expected = op.session ?? '';
      if (current !== expected) return `failed session check for key ${q}, current session ${JSON.stringify(current)} != ${JSON.stringify(expected)}`;
      return { results: [{ entry, withValue: false }], changedKeys: NO_CHANGE };
    }
    case 'check-not-exists':
      return kv.get(key) ? `key ${q} exists` : { results: [], changedKeys: NO_CHANGE };
  }
}

// ---------------------------------------------------------------------------------------------
// The FSM's answer to a txn command. It travels back to the HTTP layer as JSON (possibly from the
// leader over RPC), so Flags is a decimal string (uint64) and Value base64.
// ---------------------------------------------------------------------------------------------

/** A KV entry as a txn result, JSON-safe. */
export interface TxnKvResultJson {
  readonly Key: string;
  readonly Flags: string;
  /** Base64, or null (writes and checks, and empty values, as Consul answers). */
  readonly Value: string | null;
  readonly Session?: string;
  readonly LockIndex: number;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

/** Consul's TxnResponse: Results on success, Errors on failure (the other is null). */
export interface TxnApplyResult {
  readonly kind: 'txn';
  readonly results: readonly TxnKvResultJson[] | null;
  readonly errors: readonly TxnOpError[] | null;
}

export function txnResultJson(outcome: TxnOutcome): TxnApplyResult {
  if (outcome.errors.length > 0) return { kind: 'txn', results: null, errors: outcome.errors };
  const results = outcome.results.map(({ entry, withValue }): TxnKvResultJson => ({
    Key: entry.Key,
    Flags: entry.Flags.toString(),
    Value: withValue && entry.Value.length > 0 ? encodeBase64(entry.Value) : null,
    ...(entry.Session !== undefined ? { Session: entry.Session } : {}),
    LockIndex: entry.LockIndex,
    CreateIndex: entry.CreateIndex,
    ModifyIndex: entry.ModifyIndex,
  }));
  return { kind: 'txn', results, errors: null };
}
