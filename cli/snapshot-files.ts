// The snapshot agent's files (docs/adr/0019-snapshot-agent.md): how a snapshot reaches the disk
// (streamed to a hidden temporary file, synced, verified, renamed into place, directory synced),
// how a written archive is verified, and which old files rotation deletes.
//
// Names: `konsul-<UTC timestamp>-<Raft index>.snap`, e.g. `konsul-20261122T153012.345Z-1234.snap`:
// they sort by time as text, say what they hold, and are the only files rotation ever deletes
// (besides its own abandoned temporary files, `.konsul-*.snap.tmp`).
import { createReadStream } from 'node:fs';
import { open, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readSnapshotArchiveStream, type SnapshotArchiveMeta } from '../server/snapshot-archive.ts';

const SNAPSHOT_NAME = /^konsul-(\d{8})T(\d{6})\.(\d{3})Z-(\d+)\.snap$/;
const TEMP_NAME = /^\.konsul-.*\.snap\.tmp$/;

export function snapshotFileName(takenAtMs: number, index: number): string {
  const iso = new Date(takenAtMs).toISOString(); // 2026-11-22T15:30:12.345Z
  return `konsul-${iso.replace(/[-:]/g, '')}-${index}.snap`;
}

/** The time and index a snapshot file's name records; null for any other name. */
export function parseSnapshotFileName(name: string): { takenAtMs: number; index: number } | null {
  const m = SNAPSHOT_NAME.exec(name);
  if (m === null) return null;
  const [, day, time, ms, index] = m as unknown as [string, string, string, string, string];
  const iso = `${day.slice(0, 4)}-${day.slice(4, 6)}-${day.slice(6)}T${time.slice(0, 2)}:${time.slice(2, 4)}:${time.slice(4)}.${ms}Z`;
  const takenAtMs = Date.parse(iso);
  return Number.isNaN(takenAtMs) ? null : { takenAtMs, index: Number(index) };
}

/**
 * Checks a written archive completely, as a restore would (gzip, tar, SHA256SUMS, meta, and the
 * FSM snapshot's own structure and CRC), without the restore size limit; returns its meta.
 * Throws SnapshotArchiveError or SnapshotFormatError. Streams: the archive is never held whole.
 */
export async function verifyArchiveFile(path: string): Promise<SnapshotArchiveMeta> {
  return (await readSnapshotArchiveStream(createReadStream(path))).meta;
}

export class SnapshotSaveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SnapshotSaveError';
  }
}

export interface SavedSnapshot {
  readonly file: string;
  readonly path: string;
  readonly index: number;
  readonly bytes: number;
  readonly takenAtMs: number;
}

export interface SaveOptions {
  readonly dir: string;
  /** When the snapshot was requested: the time in its name. */
  readonly takenAtMs: number;
  /** X-Consul-Index of the answer, checked against the archive's own meta. */
  readonly headerIndex: number | undefined;
  /** Aborted: the temporary file is removed and nothing is renamed into place. */
  readonly signal: AbortSignal;
}

/**
 * Writes `body` to `<dir>/.<name>.tmp`, syncs it, verifies it, renames it to its final name and
 * syncs the directory: a file under a `konsul-*.snap` name is always complete, verified and durable.
 */
export async function saveSnapshot(body: AsyncIterable<Uint8Array>, options: SaveOptions): Promise<SavedSnapshot> {
  const { dir, takenAtMs, headerIndex, signal } = options;
  const temporary = join(dir, `.${snapshotFileName(takenAtMs, headerIndex ?? 0)}.tmp`);
  let bytes = 0;
  try {
    // 'wx': never write through a file someone else is writing.
    const handle = await open(temporary, 'wx', 0o600);
    try {
      for await (const chunk of body) {
        signal.throwIfAborted();
        await handle.write(chunk);
        bytes += chunk.byteLength;
      }
      await handle.sync();
    } finally {
      await handle.close();
    }
    let meta: SnapshotArchiveMeta;
    try {
      meta = await verifyArchiveFile(temporary);
    } catch (err) {
      throw new SnapshotSaveError(`the written snapshot does not verify: ${(err as Error).message}`);
    }
    if (headerIndex !== undefined && meta.Index !== headerIndex) {
      throw new SnapshotSaveError(`the archive holds index ${meta.Index}, the server announced ${headerIndex}`);
    }
    const file = snapshotFileName(takenAtMs, meta.Index);
    const path = join(dir, file);
    // The last moment to find out that another agent may be writing now.
    signal.throwIfAborted();
    await rename(temporary, path);
    await syncDirectory(dir);
    return { file, path, index: meta.Index, bytes, takenAtMs };
  } catch (err) {
    await rm(temporary, { force: true }).catch(() => undefined);
    throw err;
  }
}

/** Makes a rename in `dir` durable (the directory entry itself must reach the disk). */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export interface RotateOptions {
  /** Keep this many newest snapshots; 0 keeps every one (Consul's retain = 0). */
  readonly retain: number;
  /** Delete snapshots older than this many days; 0: no age limit. */
  readonly retainDays: number;
  /** The file just written: never deleted, whatever the limits say. */
  readonly keep: string;
  readonly nowMs: number;
  /** Temporary files untouched for this long were abandoned by a crash. */
  readonly staleTempMs: number;
}

export interface RotateResult {
  /** Snapshot files left, newest first. */
  readonly kept: readonly string[];
  readonly deleted: readonly string[];
}

/** Deletes the snapshots past the count and age limits, and abandoned temporary files. */
export async function rotateSnapshots(dir: string, options: RotateOptions): Promise<RotateResult> {
  const names = await readdir(dir);
  const snapshots = names
    .map((name) => ({ name, parsed: parseSnapshotFileName(name) }))
    .filter((s): s is { name: string; parsed: { takenAtMs: number; index: number } } => s.parsed !== null)
    .sort((a, b) => b.parsed.takenAtMs - a.parsed.takenAtMs || b.parsed.index - a.parsed.index);
  const maxAgeMs = options.retainDays * 86_400_000;
  const kept: string[] = [];
  const doomed: string[] = [];
  for (const [position, s] of snapshots.entries()) {
    const tooMany = options.retain > 0 && position >= options.retain;
    const tooOld = options.retainDays > 0 && options.nowMs - s.parsed.takenAtMs > maxAgeMs;
    if (s.name !== options.keep && (tooMany || tooOld)) doomed.push(s.name);
    else kept.push(s.name);
  }
  for (const name of names) {
    if (!TEMP_NAME.test(name)) continue;
    const info = await stat(join(dir, name)).catch(() => null);
    if (info !== null && options.nowMs - info.mtimeMs > options.staleTempMs) doomed.push(name);
  }
  const deleted: string[] = [];
  for (const name of doomed) {
    await rm(join(dir, name), { force: true });
    deleted.push(name);
  }
  return { kept, deleted };
}
