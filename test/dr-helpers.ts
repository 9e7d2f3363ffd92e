// Helpers shared by the disaster-recovery tests (server/*-recovery*.int.test.ts and friends): the
// real CLIs as child processes (bounded in time, killed by PID) and a canonical dump of the KV store.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { httpRequest } from './cluster/harness.ts';

export const KONSUL_BIN = fileURLToPath(new URL('../bin/konsul.js', import.meta.url));
export const KONSULCTL_BIN = fileURLToPath(new URL('../bin/konsulctl.js', import.meta.url));

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `node bin args...`; SIGKILLs it (by PID) if it has not finished within `timeoutMs`. */
export async function runCli(bin: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  // tap's loader in NODE_OPTIONS would slow every start for nothing.
  delete env.NODE_OPTIONS;
  const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timeoutMs = options.timeoutMs ?? 30_000;
  const timer = setTimeout(() => {
    if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  }, timeoutMs);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c) => resolve(c));
    });
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

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
