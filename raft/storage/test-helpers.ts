// Shared by the storage tests: temporary directories and entry builders.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Entry } from '../core/types.ts';

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A fresh directory under the OS temp dir, removed when the test ends. */
export async function tempDir(t: Teardown, prefix = 'konsul-storage-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Normal entries lo..hi at `term` whose data names their index (so overwrites are visible). */
export function normalEntries(lo: number, hi: number, term: number, dataBytes = 0): Entry[] {
  const entries: Entry[] = [];
  for (let index = lo; index <= hi; index++) {
    const data = dataBytes > 0 ? new Uint8Array(dataBytes).fill(index & 0xff) : Buffer.from(`e${index}t${term}`);
    entries.push({ type: 'normal', index, term, data: new Uint8Array(data) });
  }
  return entries;
}
