// The `kv_recovery` config key (docs/adr/0017-kv-recovery.md):
//   "kv_recovery": [{ "prefix": "config/", "retention": "720h", "max_versions": 10 }],
//   "kv_recovery_max_bytes": 67108864
// Retention is a Go duration, as Consul writes durations. The leader proposes these rules to the
// FSM (server/kv-recovery-reaper.ts); the FSM's limits apply to them.
import { canonicalRules, checkKvRecoveryRules, DEFAULT_KV_RECOVERY_VERSIONS, MAX_KV_RECOVERY_RETENTION_MS, type KvRecoveryRule } from '../fsm/state/kv-recovery-commands.ts';
import { ConfigError } from '../lib/config-values.ts';
import { parseGoDuration } from '../lib/duration.ts';

/** Parses the rule list; throws ConfigError. Answers the rules in canonical order. */
export function parseKvRecoveryRules(value: unknown): KvRecoveryRule[] {
  if (!Array.isArray(value)) throw new ConfigError('kv_recovery must be a list of {"prefix", "retention", "max_versions"} objects');
  const rules = value.map((item: unknown, i): KvRecoveryRule => {
    const what = `kv_recovery[${i}]`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new ConfigError(`${what} must be an object`);
    const o = item as Record<string, unknown>;
    for (const key of Object.keys(o)) {
      if (!['prefix', 'retention', 'max_versions'].includes(key)) throw new ConfigError(`${what}: unknown key "${key}" (known: prefix, retention, max_versions)`);
    }
    if (typeof o['prefix'] !== 'string') throw new ConfigError(`${what}.prefix must be a string`);
    if (typeof o['retention'] !== 'string') throw new ConfigError(`${what}.retention must be a duration such as "720h"`);
    const parsed = parseGoDuration(o['retention']);
    if (!parsed.ok) throw new ConfigError(`${what}.retention: ${parsed.error}`);
    const retentionMs = Math.floor(parsed.ns / 1_000_000);
    if (retentionMs < 1 || retentionMs > MAX_KV_RECOVERY_RETENTION_MS) throw new ConfigError(`${what}.retention must be between 1ms and 8784h`);
    const maxVersions = o['max_versions'] ?? DEFAULT_KV_RECOVERY_VERSIONS;
    return { prefix: o['prefix'], retentionMs, maxVersions: maxVersions as number };
  });
  const canonical = canonicalRules(rules);
  for (let i = 1; i < canonical.length; i++) {
    if (canonical[i]!.prefix === canonical[i - 1]!.prefix) throw new ConfigError(`kv_recovery: prefix ${JSON.stringify(canonical[i]!.prefix)} appears twice`);
  }
  // The FSM's own checks (counts, ranges), with 1 KiB as a stand-in for the byte limit checked apart.
  const problem = checkKvRecoveryRules(canonical, 1024);
  if (problem !== null) throw new ConfigError(`kv_recovery: ${problem}`);
  return canonical;
}

export function parseKvRecoveryMaxBytes(value: unknown): number {
  const problem = checkKvRecoveryRules([], value);
  if (problem !== null) throw new ConfigError(`kv_recovery_max_bytes: ${problem}`);
  return value as number;
}
