// Shared by the storage tests: temporary directories and entry builders.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Entry } from '../core/types.ts';
import type { SnapshotDataReader } from '../host/snapshot-data.ts';

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

/** All the data of an opened snapshot, read in small pieces (verified), then the reader closed. */
export async function readAllData(reader: SnapshotDataReader, pieceBytes = 64 * 1024): Promise<Buffer> {
  const pieces: Uint8Array[] = [];
  try {
    for (let piece = await reader.read(pieceBytes); piece !== null; piece = await reader.read(pieceBytes)) pieces.push(piece);
  } finally {
    await reader.close();
  }
  return Buffer.concat(pieces);
}
