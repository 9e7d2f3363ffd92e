// The Raft commands of recoverable deletes (docs/adr/0017-kv-recovery.md) and their validation.
//
// - kvRecoveryRules: the leader proposes its configured rules whenever the FSM holds others, so
//   every replica applies the same rules at the same index (a config file is not replicated).
// - kvRecoveryReap: the leader's clock, `nowMs`; versions whose retention ran out by then go.
// - kvRecoveryPurge: an operator forgets the retired versions of a key (or of a prefix) for good.
// This file imports nothing from commands.ts, which imports it.

import { onlyFields } from '../command-shape.ts';

/** At most this many rules (each KV write under rules checks them in turn). */
export const MAX_KV_RECOVERY_RULES = 64;
/** Longest retention: a year. */
export const MAX_KV_RECOVERY_RETENTION_MS = 366 * 24 * 3600 * 1000;
export const MAX_KV_RECOVERY_VERSIONS = 1000;
export const DEFAULT_KV_RECOVERY_VERSIONS = 10;
/** What all retired versions may hold together (key and record bytes), unless configured. */
export const DEFAULT_KV_RECOVERY_MAX_BYTES = 64 * 1024 * 1024;
export const MIN_KV_RECOVERY_MAX_BYTES = 1024;
/** Retired versions live in memory and in every snapshot: a bound well under the state limit. */
export const MAX_KV_RECOVERY_MAX_BYTES = 4 * 1024 * 1024 * 1024;

/** Keep retired versions of keys under `prefix` for `retentionMs`, at most `maxVersions` per key. */
export interface KvRecoveryRule {
  readonly prefix: string;
  readonly retentionMs: number;
  readonly maxVersions: number;
}

export interface KvRecoveryRulesCommand {
  readonly type: 'kvRecoveryRules';
  /** Sorted by prefix, no duplicates (canonical, so that replicas compare rules exactly). */
  readonly rules: readonly KvRecoveryRule[];
  readonly maxBytes: number;
}

export interface KvRecoveryReapCommand {
  readonly type: 'kvRecoveryReap';
  /** The leader's clock (ms). */
  readonly nowMs: number;
}

export interface KvRecoveryPurgeCommand {
  readonly type: 'kvRecoveryPurge';
  readonly key: string;
  /** Purge every key that starts with `key` ('' with this: everything). */
  readonly recurse?: boolean;
}

export type KvRecoveryCommand = KvRecoveryRulesCommand | KvRecoveryReapCommand | KvRecoveryPurgeCommand;

/** Rules in their canonical order: by prefix, as strings compare (the order replicas agree on). */
export function canonicalRules(rules: readonly KvRecoveryRule[]): KvRecoveryRule[] {
  return [...rules].map((r) => ({ prefix: r.prefix, retentionMs: r.retentionMs, maxVersions: r.maxVersions })).sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0));
}

export function sameRules(a: readonly KvRecoveryRule[], b: readonly KvRecoveryRule[]): boolean {
  return a.length === b.length && a.every((r, i) => r.prefix === b[i]!.prefix && r.retentionMs === b[i]!.retentionMs && r.maxVersions === b[i]!.maxVersions);
}

/** Why a rule set is invalid (also used for the config file), or null. */
export function checkKvRecoveryRules(rules: unknown, maxBytes: unknown): string | null {
  if (!Array.isArray(rules) || rules.length > MAX_KV_RECOVERY_RULES) return `at most ${MAX_KV_RECOVERY_RULES} rules`;
  let previous: string | undefined;
  for (const rule of rules as unknown[]) {
    if (typeof rule !== 'object' || rule === null || Array.isArray(rule)) return 'a rule must be an object';
    const r = rule as Record<string, unknown>;
    for (const field of Object.keys(r)) if (!['prefix', 'retentionMs', 'maxVersions'].includes(field)) return `unknown rule field ${field}`;
    if (typeof r['prefix'] !== 'string' || LONE_SURROGATE.test(r['prefix'])) return 'a rule prefix must be a well-formed string';
    if (previous !== undefined && !(previous < r['prefix'])) return 'rules must be sorted by prefix, without duplicates';
    previous = r['prefix'];
    if (!isInt(r['retentionMs'], 1, MAX_KV_RECOVERY_RETENTION_MS)) return `retention must be between 1ms and ${MAX_KV_RECOVERY_RETENTION_MS}ms`;
    if (!isInt(r['maxVersions'], 1, MAX_KV_RECOVERY_VERSIONS)) return `max_versions must be between 1 and ${MAX_KV_RECOVERY_VERSIONS}`;
  }
  if (!isInt(maxBytes, MIN_KV_RECOVERY_MAX_BYTES, MAX_KV_RECOVERY_MAX_BYTES)) return `max bytes must be between ${MIN_KV_RECOVERY_MAX_BYTES} and ${MAX_KV_RECOVERY_MAX_BYTES}`;
  return null;
}

export function validateKvRecoveryCommand(c: Record<string, unknown>): string | null {
  switch (c['type']) {
    case 'kvRecoveryRules': {
      const fieldProblem = onlyFields(c, ['type', 'rules', 'maxBytes'], []);
      if (fieldProblem) return fieldProblem;
      const problem = checkKvRecoveryRules(c['rules'], c['maxBytes']);
      return problem === null ? null : `kvRecoveryRules: ${problem}`;
    }
    case 'kvRecoveryReap': {
      const fieldProblem = onlyFields(c, ['type', 'nowMs'], []);
      if (fieldProblem) return fieldProblem;
      return isInt(c['nowMs'], 0, Number.MAX_SAFE_INTEGER) ? null : 'kvRecoveryReap: nowMs must be a non-negative safe integer';
    }
    case 'kvRecoveryPurge': {
      const fieldProblem = onlyFields(c, ['type', 'key'], ['recurse']);
      if (fieldProblem) return fieldProblem;
      if (typeof c['key'] !== 'string' || LONE_SURROGATE.test(c['key'])) return 'kvRecoveryPurge: key must be a well-formed string';
      if (c['recurse'] !== undefined && c['recurse'] !== true) return 'kvRecoveryPurge: recurse must be true when present';
      if (c['key'] === '' && c['recurse'] !== true) return 'kvRecoveryPurge: key must not be empty';
      return null;
    }
    default:
      return `unknown command type ${JSON.stringify(c['type'])}`;
  }
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function isInt(n: unknown, min: number, max: number): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= min && n <= max;
}
