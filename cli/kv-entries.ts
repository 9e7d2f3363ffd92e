// Consul KV entries as GET /v1/kv returns them, and the output formats of `konsulctl kv get`
// (raw value, `key:value` lines, and the `--detailed` block of `consul kv get -detailed`).
import { uint64Field } from '../lib/lossless-json.ts';

const NEWLINE = Buffer.from('\n');

export interface KvEntry {
  readonly key: string;
  /** Null when the key holds no value (Consul's `"Value": null`). */
  readonly value: Buffer | null;
  /** uint64 fields as canonical digit strings. */
  readonly flags: string;
  readonly createIndex: string;
  readonly modifyIndex: string;
  readonly lockIndex: string;
  /** The lock holder's session ID, '' when unlocked. */
  readonly session: string;
}

/** Reads GET /v1/kv's JSON (parsed with parseJsonLossless) into entries; throws on a shape mismatch. */
export function parseKvEntries(json: unknown): KvEntry[] {
  if (!Array.isArray(json)) throw new TypeError('expected a JSON array of KV entries');
  return json.map((item: unknown, i) => {
    if (typeof item !== 'object' || item === null) throw new TypeError(`KV entry ${i} is not an object`);
    const raw = item as Record<string, unknown>;
    if (typeof raw.Key !== 'string') throw new TypeError(`KV entry ${i} has no Key`);
    if (raw.Value !== null && raw.Value !== undefined && typeof raw.Value !== 'string') throw new TypeError(`KV entry ${i} has a non-string Value`);
    if (raw.Session !== undefined && raw.Session !== null && typeof raw.Session !== 'string') throw new TypeError(`KV entry ${i} has a non-string Session`);
    return {
      key: raw.Key,
      value: typeof raw.Value === 'string' ? Buffer.from(raw.Value, 'base64') : null,
      flags: uint64Field(raw.Flags, 'Flags'),
      createIndex: uint64Field(raw.CreateIndex, 'CreateIndex'),
      modifyIndex: uint64Field(raw.ModifyIndex, 'ModifyIndex'),
      lockIndex: uint64Field(raw.LockIndex, 'LockIndex'),
      session: typeof raw.Session === 'string' ? raw.Session : '',
    };
  });
}

/** The value as printed: the raw bytes, or their base64 with `--base64`. */
export function valueBytes(entry: KvEntry, base64: boolean): Buffer {
  const value = entry.value ?? Buffer.alloc(0);
  return base64 ? Buffer.from(value.toString('base64')) : value;
}

/** `kv get`: the value followed by a newline. */
export function formatValue(entry: KvEntry, base64: boolean): Buffer {
  return Buffer.concat([valueBytes(entry, base64), NEWLINE]);
}

/** `kv get --recurse`: one `key:value` line per entry. */
export function formatKeyValueLines(entries: readonly KvEntry[], base64: boolean): Buffer {
  return Buffer.concat(entries.flatMap((e) => [Buffer.from(`${e.key}:`), valueBytes(e, base64), NEWLINE]));
}

const DETAILED_LABEL_WIDTH = 17; // Consul's tabwriter: the longest label (11) plus 6 spaces of padding

/**
 * `kv get --detailed`, as `consul kv get -detailed` prints it: one `Label<spaces>value` line per
 * field, in this order, with `-` for no session.
 */
export function formatDetailed(entry: KvEntry, base64: boolean): Buffer {
  const fields: [string, string][] = [
    ['CreateIndex', entry.createIndex],
    ['Flags', entry.flags],
    ['Key', entry.key],
    ['LockIndex', entry.lockIndex],
    ['ModifyIndex', entry.modifyIndex],
    ['Session', entry.session === '' ? '-' : entry.session],
  ];
  const head = fields.map(([label, value]) => `${label.padEnd(DETAILED_LABEL_WIDTH)}${value}\n`).join('');
  return Buffer.concat([Buffer.from(head + 'Value'.padEnd(DETAILED_LABEL_WIDTH)), valueBytes(entry, base64), NEWLINE]);
}

/** Several `--detailed` blocks, separated by one empty line. */
export function formatDetailedBlocks(entries: readonly KvEntry[], base64: boolean): Buffer {
  return Buffer.concat(entries.flatMap((e, i) => (i === 0 ? [formatDetailed(e, base64)] : [NEWLINE, formatDetailed(e, base64)])));
}

/** Strict base64 (Go's StdEncoding, as `consul kv put -base64` takes it); whitespace such as line wraps is ignored. */
export function decodeBase64Strict(text: string): Buffer | null {
  const compact = text.replace(/\s+/g, '');
  if (compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) return null;
  return Buffer.from(compact, 'base64');
}
