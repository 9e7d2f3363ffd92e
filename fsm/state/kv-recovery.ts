// Recoverable deletes (docs/adr/0017-kv-recovery.md): for keys under configured prefixes, the
// values that deletes and overwrites retire are kept for a retention, to be listed and written back.
//
// The KV table tells this table about every record it retires, but only once rules exist (it holds
// no listener otherwise: a store without rules pays one null check per write). Everything here is
// deterministic: the rules come through the log (kvRecoveryRules), retirement times are the FSM's
// clock (the latest proposer time the log carried, SessionsTable.clockMs), reaping carries the
// leader's clock. Bounded: at most `maxVersions` per key (the rule's) and `maxBytes` in all; past
// either, the oldest versions go first.

import { compareKeys } from './sorted-keys.ts';
import { modifyIndexOf, recordFromEntry, recordToEntry, type KvRecord } from './kv-record.ts';
import type { KvRetireListener, KvRetireReason, KvTable } from './kv.ts';
import { canonicalRules, DEFAULT_KV_RECOVERY_MAX_BYTES, type KvRecoveryCommand, type KvRecoveryRule } from './kv-recovery-commands.ts';

/** A value a delete or an overwrite retired. Immutable: dumps and readers share them. */
export interface RetiredVersion {
  readonly key: string;
  /** The entry as it was (CreateIndex, ModifyIndex, LockIndex, Flags, Session, value). */
  readonly record: KvRecord;
  readonly retiredIndex: number;
  readonly retiredAtMs: number;
  /** The retention of the rule that covered the key when it was retired (used if no rule covers it any more). */
  readonly retentionMs: number;
  readonly why: KvRetireReason;
}

export interface KvRecoveryDump {
  /** The last index that changed the table. */
  readonly index: number;
  readonly rules: readonly KvRecoveryRule[];
  readonly maxBytes: number;
  /** Oldest first: the order of eviction. */
  readonly versions: readonly RetiredVersion[];
}

export const EMPTY_KV_RECOVERY_DUMP: KvRecoveryDump = { index: 0, rules: [], maxBytes: DEFAULT_KV_RECOVERY_MAX_BYTES, versions: [] };

export function isEmptyKvRecoveryDump(dump: KvRecoveryDump): boolean {
  return dump.index === 0 && dump.rules.length === 0 && dump.versions.length === 0;
}

/** What a kvRecovery command answers. */
export interface KvRecoveryApplyResult {
  readonly kind: 'kvRecovery';
  /** Versions removed (reap, purge, or eviction by new limits). */
  readonly removed: number;
}

/** Bytes a version counts for: its key and its record (one char per byte), plus a fixed overhead. */
export function versionBytes(key: string, record: KvRecord): number {
  return 64 + key.length + record.length;
}

export class KvRecoveryTable implements KvRetireListener {
  private rules: readonly KvRecoveryRule[] = [];
  /** The rules, longest prefix first: the first that matches covers a key. */
  private matchOrder: readonly KvRecoveryRule[] = [];
  private maxBytes = DEFAULT_KV_RECOVERY_MAX_BYTES;
  /** Each key's versions, oldest first. */
  private byKey = new Map<string, RetiredVersion[]>();
  /** Every version in the order it was retired (a Set keeps insertion order and deletes in O(1)). */
  private byAge = new Set<RetiredVersion>();
  private bytes = 0;
  private tableIndex = 0;
  /** Earliest expiry, or null when it must be computed again (after removals or rule changes). */
  private earliestExpiry: number | null = Infinity;

  /**
   * @param kv the table whose retired records this one keeps.
   * @param clockMs the FSM's clock when a record retires (derived from the log).
   */
  constructor(
    private readonly kv: KvTable,
    private readonly clockMs: () => number,
  ) {}

  index(): number {
    return this.tableIndex;
  }

  currentRules(): readonly KvRecoveryRule[] {
    return this.rules;
  }

  currentMaxBytes(): number {
    return this.maxBytes;
  }

  get versionCount(): number {
    return this.byAge.size;
  }

  get totalBytes(): number {
    return this.bytes;
  }

  /** The rule that covers `key` (the longest matching prefix), if any. */
  ruleFor(key: string): KvRecoveryRule | undefined {
    for (const rule of this.matchOrder) if (key.startsWith(rule.prefix)) return rule;
    return undefined;
  }

  /** Whether the values `key` loses are kept. */
  covers(key: string): boolean {
    return this.ruleFor(key) !== undefined;
  }

  /** Whether a tree delete of `prefix` may retire something kept (a covered prefix inside or around it). */
  overlaps(prefix: string): boolean {
    return this.matchOrder.some((rule) => rule.prefix.startsWith(prefix) || prefix.startsWith(rule.prefix));
  }

  /** When the version is reaped: by the retention of the rule that covers it now, else its own. */
  expiresAtMs(version: RetiredVersion): number {
    return version.retiredAtMs + (this.ruleFor(version.key)?.retentionMs ?? version.retentionMs);
  }

  /** The earliest expiry of any version (Infinity when there are none). */
  earliestExpiryMs(): number {
    if (this.earliestExpiry === null) {
      let earliest = Infinity;
      for (const version of this.byAge) earliest = Math.min(earliest, this.expiresAtMs(version));
      this.earliestExpiry = earliest;
    }
    return this.earliestExpiry;
  }

  /** A key's versions, newest first. */
  versionsOf(key: string): RetiredVersion[] {
    return [...(this.byKey.get(key) ?? [])].reverse();
  }

  /** The versions of every key under `prefix`: keys in order, each key's newest first. */
  list(prefix: string): RetiredVersion[] {
    const keys = [...this.byKey.keys()].filter((k) => k.startsWith(prefix)).sort(compareKeys);
    return keys.flatMap((k) => this.versionsOf(k));
  }

  // -------------------------------------------------------------------------------------------
  // Writes: the KV table (through the listener) and the FSM, at the index being applied.
  // -------------------------------------------------------------------------------------------

  /** KvRetireListener: a covered record left the store at `index`. */
  retired(key: string, record: KvRecord, index: number, why: KvRetireReason): void {
    // Written and retired by the same entry (a transaction writing a key twice): nobody saw it.
    if (modifyIndexOf(record) >= index) return;
    const rule = this.ruleFor(key);
    if (rule === undefined) return;
    const version: RetiredVersion = { key, record, retiredIndex: index, retiredAtMs: this.clockMs(), retentionMs: rule.retentionMs, why };
    this.add(version);
    this.tableIndex = index;
    const versions = this.byKey.get(key)!;
    while (versions.length > rule.maxVersions) this.drop(versions[0]!);
    this.evictOverBytes();
    if (this.earliestExpiry !== null) this.earliestExpiry = Math.min(this.earliestExpiry, this.expiresAtMs(version));
  }

  apply(index: number, command: KvRecoveryCommand): KvRecoveryApplyResult {
    let removed = 0;
    switch (command.type) {
      case 'kvRecoveryRules':
        removed = this.setRules(command.rules, command.maxBytes);
        this.tableIndex = index;
        break;
      case 'kvRecoveryReap':
        removed = this.reap(command.nowMs);
        break;
      case 'kvRecoveryPurge':
        removed = this.purge(command.key, command.recurse === true);
        break;
    }
    if (removed > 0) this.tableIndex = index;
    return { kind: 'kvRecovery', removed };
  }

  /** Drops every version whose retention ran out by `nowMs`. */
  reap(nowMs: number): number {
    if (this.earliestExpiryMs() > nowMs) return 0;
    const expired: RetiredVersion[] = [];
    for (const version of this.byAge) if (this.expiresAtMs(version) <= nowMs) expired.push(version);
    for (const version of expired) this.drop(version);
    return expired.length;
  }

  /** Forgets the versions of `key`, or of every key under it. */
  purge(key: string, recurse: boolean): number {
    const keys = recurse ? [...this.byKey.keys()].filter((k) => k.startsWith(key)) : this.byKey.has(key) ? [key] : [];
    let removed = 0;
    for (const k of keys) {
      const versions = [...this.byKey.get(k)!];
      for (const version of versions) this.drop(version);
      removed += versions.length;
    }
    return removed;
  }

  // -------------------------------------------------------------------------------------------
  // Snapshots.
  // -------------------------------------------------------------------------------------------

  /** The table as plain data; O(versions) references, no copy of any value. */
  dump(): KvRecoveryDump {
    return { index: this.tableIndex, rules: this.rules, maxBytes: this.maxBytes, versions: [...this.byAge] };
  }

  load(dump: KvRecoveryDump): void {
    this.byKey = new Map();
    this.byAge = new Set();
    this.bytes = 0;
    this.installRules(dump.rules, dump.maxBytes);
    for (const version of dump.versions) this.add(version);
    this.tableIndex = dump.index;
    this.earliestExpiry = null;
  }

  // -------------------------------------------------------------------------------------------

  private setRules(rules: readonly KvRecoveryRule[], maxBytes: number): number {
    const before = this.byAge.size;
    this.installRules(rules, maxBytes);
    // New limits apply to what is kept already: trim each covered key, then the total.
    for (const [key, versions] of [...this.byKey]) {
      const rule = this.ruleFor(key);
      if (rule !== undefined) while (versions.length > rule.maxVersions) this.drop(versions[0]!);
    }
    this.evictOverBytes();
    this.earliestExpiry = null;
    return before - this.byAge.size;
  }

  private installRules(rules: readonly KvRecoveryRule[], maxBytes: number): void {
    this.rules = canonicalRules(rules);
    this.matchOrder = [...this.rules].sort((a, b) => b.prefix.length - a.prefix.length || (a.prefix < b.prefix ? -1 : 1));
    this.maxBytes = maxBytes;
    // Without rules the KV table holds no listener: its writes pay nothing for this feature.
    this.kv.setRetireListener(this.rules.length > 0 ? this : null);
  }

  private add(version: RetiredVersion): void {
    let versions = this.byKey.get(version.key);
    if (versions === undefined) {
      versions = [];
      this.byKey.set(version.key, versions);
    }
    versions.push(version);
    this.byAge.add(version);
    this.bytes += versionBytes(version.key, version.record);
  }

  private drop(version: RetiredVersion): void {
    if (!this.byAge.delete(version)) return;
    const versions = this.byKey.get(version.key)!;
    const at = versions.indexOf(version);
    versions.splice(at, 1);
    if (versions.length === 0) this.byKey.delete(version.key);
    this.bytes -= versionBytes(version.key, version.record);
    this.earliestExpiry = null;
  }

  private evictOverBytes(): void {
    while (this.bytes > this.maxBytes) {
      const oldest = this.byAge.values().next();
      if (oldest.done === true) break;
      this.drop(oldest.value);
    }
  }
}

/**
 * The table as a snapshotRestore at `index` loads it (fsm/restore.ts): indexes above the restore
 * entry's (a snapshot from another cluster) are lowered to it, as the KV table's are; times stay.
 */
export function kvRecoveryForRestoreAt(dump: KvRecoveryDump, index: number): KvRecoveryDump {
  const versions = dump.versions.map((v): RetiredVersion => {
    if (v.retiredIndex <= index && modifyIndexOf(v.record) <= index) return v;
    const entry = recordToEntry(v.key, v.record);
    const record = recordFromEntry({ ...entry, CreateIndex: Math.min(entry.CreateIndex, index), ModifyIndex: Math.min(entry.ModifyIndex, index) });
    return { ...v, record, retiredIndex: Math.min(v.retiredIndex, index) };
  });
  return { ...dump, index, versions };
}
