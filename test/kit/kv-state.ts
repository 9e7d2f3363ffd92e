// The KV store of a running server as data: a canonical dump to compare servers and restores, and
// a checked write.
import { httpRequest } from './http.ts';

export interface KvRow {
  readonly Key: string;
  readonly Flags: string;
  readonly Value: string | null;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
  readonly LockIndex: number;
}

/** Every KV entry of a server, sorted by key; `stale` reads its own state without asking the leader. */
export async function kvDump(url: string, options: { stale?: boolean } = {}): Promise<KvRow[]> {
  const r = await httpRequest(`${url}/v1/kv/?recurse${options.stale ? '&stale' : ''}`, { timeoutMs: 5000 });
  if (r.status === 404) return [];
  if (r.status !== 200) throw new Error(`GET /v1/kv/?recurse on ${url}: HTTP ${r.status} ${r.text}`);
  // Flags are uint64: keep them as text (a JSON number over 2^53 would lose digits).
  const rows = JSON.parse(r.text.replace(/"Flags":(\d+)/g, '"Flags":"$1"')) as KvRow[];
  return rows
    .map(({ Key, Flags, Value, CreateIndex, ModifyIndex, LockIndex }) => ({ Key, Flags: String(Flags), Value, CreateIndex, ModifyIndex, LockIndex }))
    .sort((a, b) => (a.Key < b.Key ? -1 : a.Key > b.Key ? 1 : 0));
}

/** PUT /v1/kv/KEY; throws unless the server answered `true`. */
export async function putKey(url: string, key: string, value: string, flags?: string): Promise<void> {
  const r = await httpRequest(`${url}/v1/kv/${key}${flags !== undefined ? `?flags=${flags}` : ''}`, { method: 'PUT', body: value, timeoutMs: 5000 });
  if (r.status !== 200 || r.text.trim() !== 'true') throw new Error(`PUT ${key} on ${url}: HTTP ${r.status} ${r.text}`);
}
