// Snapshots as files, one per snapshot, in <dir>/snapshots/. A snapshot is written to a temporary
// name, fsync'd, renamed into place and the directory fsync'd, so a crash leaves either the old set
// of files or the new one, never a half-written snapshot under a real name.
//
// File name: <term as 16 hex digits>-<index as 16 hex digits>.snap (sorts by term, then index).
// File layout (big-endian):
//
//   offset  0  4 bytes  magic "KSNP"
//   offset  4  u32      format version (1)
//   offset  8  u32      length of the encoded SnapshotMeta (codec.ts, itself checksummed)
//   offset 12  u32 x 2  length of the data (high and low 32 bits)
//   offset 20  u32      CRC32 of bytes 0..19, then the meta, then the data
//   offset 24  ...      encoded meta, then the data
import type { FileHandle } from 'node:fs/promises';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Snapshot, SnapshotMeta } from '../core/types.ts';
import { decodeSnapshotMeta, encodeSnapshotMeta } from './codec.ts';
import { DecodeError, StorageCorruptionError } from './errors.ts';

const MAGIC = Buffer.from('KSNP', 'latin1');
const FORMAT_VERSION = 1;
const HEADER_BYTES = 24;
const SUFFIX = '.snap';
const TEMP_SUFFIX = '.tmp';
const NAME_PATTERN = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;

/** A snapshot file on disk, identified by the term and index in its name. */
export interface SnapshotFile {
  readonly term: number;
  readonly index: number;
  readonly path: string;
}

/** A snapshot file that could not be used, and why. */
export interface SnapshotProblem {
  readonly path: string;
  readonly problem: string;
}

export interface SnapshotStoreOptions {
  /** fsync files and the directory (default true; false only for tests and benchmarks). */
  readonly sync?: boolean;
}

export function snapshotFileName(term: number, index: number): string {
  return `${term.toString(16).padStart(16, '0')}-${index.toString(16).padStart(16, '0')}${SUFFIX}`;
}

export class SnapshotStore {
  readonly dir: string;
  private readonly sync: boolean;

  private constructor(dir: string, sync: boolean) {
    this.dir = dir;
    this.sync = sync;
  }

  /** Opens (creating it if needed) the snapshot directory and removes temporary files of interrupted writes. */
  static async open(dir: string, options: SnapshotStoreOptions = {}): Promise<SnapshotStore> {
    await mkdir(dir, { recursive: true });
    for (const name of await readdir(dir)) {
      if (name.endsWith(TEMP_SUFFIX)) await rm(join(dir, name), { force: true });
    }
    return new SnapshotStore(dir, options.sync ?? true);
  }

  pathOf(term: number, index: number): string {
    return join(this.dir, snapshotFileName(term, index));
  }

  /** Writes a snapshot durably; returns its file. An existing file of the same term and index is replaced. */
  async save(snapshot: Snapshot): Promise<SnapshotFile> {
    const { meta, data } = snapshot;
    const path = this.pathOf(meta.term, meta.index);
    const temp = path + TEMP_SUFFIX;
    const encodedMeta = encodeSnapshotMeta(meta);
    const header = Buffer.alloc(HEADER_BYTES);
    MAGIC.copy(header, 0);
    header.writeUInt32BE(FORMAT_VERSION, 4);
    header.writeUInt32BE(encodedMeta.length, 8);
    header.writeUInt32BE(Math.floor(data.length / 2 ** 32), 12);
    header.writeUInt32BE(data.length >>> 0, 16);
    header.writeUInt32BE(crc32(data, crc32(encodedMeta, crc32(header.subarray(0, 20)))), 20);

    const file = await open(temp, 'w');
    try {
      // Successive writeFile calls on one handle continue at the current position.
      await file.writeFile(Buffer.concat([header, encodedMeta]));
      await file.writeFile(data);
      if (this.sync) await file.sync();
    } catch (err) {
      await closeQuietly(file);
      await rm(temp, { force: true });
      throw err;
    }
    await file.close();
    await rename(temp, path);
    if (this.sync) await this.syncDir();
    return { term: meta.term, index: meta.index, path };
  }

  /** The snapshot files present, newest (highest index) first. Other files are ignored. */
  async list(): Promise<SnapshotFile[]> {
    const files: SnapshotFile[] = [];
    for (const name of await readdir(this.dir)) {
      const m = NAME_PATTERN.exec(name);
      if (!m) continue;
      files.push({ term: parseInt(m[1]!, 16), index: parseInt(m[2]!, 16), path: join(this.dir, name) });
    }
    return files.sort((a, b) => b.index - a.index || b.term - a.term);
  }

  /**
   * Reads and verifies a snapshot file: magic, version, lengths, checksum, and that the meta inside
   * matches the name. Throws StorageCorruptionError (with the path) if anything is wrong.
   */
  async load(file: { readonly term: number; readonly index: number }): Promise<Snapshot> {
    const path = this.pathOf(file.term, file.index);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new StorageCorruptionError(path, 'snapshot file', 'missing');
      throw err;
    }
    const snapshot = parseSnapshotFile(path, bytes);
    if (snapshot.meta.term !== file.term || snapshot.meta.index !== file.index) {
      throw new StorageCorruptionError(path, 'meta', `holds the snapshot at term ${snapshot.meta.term}, index ${snapshot.meta.index}, not the one its name says`);
    }
    return snapshot;
  }

  /**
   * The newest snapshot that loads and verifies, optionally at or below `maxIndex`, with the files
   * skipped on the way because they failed verification. `snapshot` is null if none is usable.
   */
  async latest(maxIndex = Infinity): Promise<{ snapshot: Snapshot | null; file: SnapshotFile | null; problems: SnapshotProblem[] }> {
    const problems: SnapshotProblem[] = [];
    for (const file of await this.list()) {
      if (file.index > maxIndex) continue;
      try {
        return { snapshot: await this.load(file), file, problems };
      } catch (err) {
        if (!(err instanceof StorageCorruptionError)) throw err;
        problems.push({ path: file.path, problem: err.message });
      }
    }
    return { snapshot: null, file: null, problems };
  }

  /** Removes all but the `keep` newest snapshot files; returns the removed paths. */
  async prune(keep: number): Promise<string[]> {
    const doomed = (await this.list()).slice(Math.max(keep, 0));
    for (const file of doomed) await rm(file.path, { force: true });
    if (doomed.length > 0 && this.sync) await this.syncDir();
    return doomed.map((f) => f.path);
  }

  async remove(file: SnapshotFile): Promise<void> {
    await rm(file.path, { force: true });
    if (this.sync) await this.syncDir();
  }

  /** Makes renames and removals in the directory durable. */
  private async syncDir(): Promise<void> {
    const dir = await open(this.dir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}

/** Verifies and decodes the bytes of a snapshot file. The data is a view into `bytes`. */
export function parseSnapshotFile(path: string, bytes: Uint8Array): Snapshot {
  const fail = (location: string, problem: string): never => {
    throw new StorageCorruptionError(path, location, problem);
  };
  if (bytes.length < HEADER_BYTES) fail('header', `file of ${bytes.length} bytes is shorter than the ${HEADER_BYTES}-byte header`);
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (!view.subarray(0, 4).equals(MAGIC)) fail('header', 'not a snapshot file (bad magic)');
  const version = view.readUInt32BE(4);
  if (version !== FORMAT_VERSION) fail('header', `unsupported format version ${version}`);
  const metaLength = view.readUInt32BE(8);
  const dataLength = view.readUInt32BE(12) * 2 ** 32 + view.readUInt32BE(16);
  const expected = HEADER_BYTES + metaLength + dataLength;
  if (view.length !== expected) fail('header', `file is ${view.length} bytes, header promises ${expected} (truncated or extended)`);
  const stored = view.readUInt32BE(20);
  const metaEnd = HEADER_BYTES + metaLength;
  const actual = crc32(view.subarray(metaEnd), crc32(view.subarray(HEADER_BYTES, metaEnd), crc32(view.subarray(0, 20))));
  if (stored !== actual) fail('checksum', `checksum mismatch (stored ${stored}, computed ${actual})`);
  let meta: SnapshotMeta;
  try {
    meta = decodeSnapshotMeta(view.subarray(HEADER_BYTES, metaEnd));
  } catch (err) {
    if (!(err instanceof DecodeError)) throw err;
    return fail('meta', err.message);
  }
  return { meta, data: new Uint8Array(bytes.buffer, bytes.byteOffset + metaEnd, dataLength) };
}

async function closeQuietly(file: FileHandle): Promise<void> {
  try {
    await file.close();
  } catch {
    // Already failing: the original error is the one to report.
  }
}
