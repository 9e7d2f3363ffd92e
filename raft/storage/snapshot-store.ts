// Snapshots as files, one per snapshot, in <dir>/snapshots/. A snapshot is written to a temporary
// name, fsync'd, renamed into place and the directory fsync'd, so a crash leaves either the old set
// of files or the new one, never a half-written snapshot under a real name.
//
// Snapshot data is never held whole in memory: a file is written from pieces as they are produced
// (the length and checksum in its header are filled in at the end) and read back in pieces, the
// checksum verified before the last piece is handed out.
//
// File name: <term as 16 hex digits>-<index as 16 hex digits>.snap (sorts by term, then index).
// Temporary files: <name>.<random>.tmp (written here) and <name>.<random>.recv (received from a
// leader, waiting to be installed); both are removed by open().
// File layout (big-endian):
//
//   offset  0  4 bytes  magic "KSNP"
//   offset  4  u32      format version (1)
//   offset  8  u32      length of the encoded SnapshotMeta (codec.ts, itself checksummed)
//   offset 12  u32 x 2  length of the data (high and low 32 bits)
//   offset 20  u32      CRC32 of bytes 0..19, then the meta, then the data
//   offset 24  ...      encoded meta, then the data
import { randomBytes } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { SnapshotMeta } from '../core/types.ts';
import type { SnapshotDataReader, SnapshotDataSource } from '../host/snapshot-data.ts';
import { decodeSnapshotMeta, encodeSnapshotMeta } from './codec.ts';
import { DecodeError, StorageCorruptionError } from './errors.ts';

const MAGIC = Buffer.from('KSNP', 'latin1');
const FORMAT_VERSION = 1;
const HEADER_BYTES = 24;
const SUFFIX = '.snap';
const TEMP_SUFFIX = '.tmp';
const RECEIVED_SUFFIX = '.recv';
const NAME_PATTERN = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;
/** Small pieces are gathered into writes of this size (one syscall per MiB, not per piece). */
const WRITE_BUFFER_BYTES = 1024 * 1024;
/** How much of a snapshot file may be written before it is flushed to disk (see syncInSteps). */
const SYNC_STEP_BYTES = 8 * 1024 * 1024;
/** Pieces read when only verifying a file. */
const VERIFY_PIECE_BYTES = 1024 * 1024;
/** Meta holds ids of the members: anything near this is a damaged header, not a real meta. */
const MAX_META_BYTES = 16 * 1024 * 1024;

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

/** A complete, synced snapshot file under its temporary name, waiting to be installed or discarded. */
export interface WrittenSnapshotFile {
  readonly meta: SnapshotMeta;
  readonly tempPath: string;
  readonly dataBytes: number;
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

  /** Opens (creating it if needed) the snapshot directory and removes temporary and received files of interrupted writes. */
  static async open(dir: string, options: SnapshotStoreOptions = {}): Promise<SnapshotStore> {
    await mkdir(dir, { recursive: true });
    for (const name of await readdir(dir)) {
      if (name.endsWith(TEMP_SUFFIX) || name.endsWith(RECEIVED_SUFFIX)) await rm(join(dir, name), { force: true });
    }
    return new SnapshotStore(dir, options.sync ?? true);
  }

  pathOf(term: number, index: number): string {
    return join(this.dir, snapshotFileName(term, index));
  }

  /**
   * Starts writing the snapshot `meta` under a temporary name: 'tmp' for one written here,
   * 'recv' for one received from a leader.
   */
  async createWriter(meta: SnapshotMeta, kind: 'tmp' | 'recv'): Promise<SnapshotFileWriter> {
    const suffix = kind === 'tmp' ? TEMP_SUFFIX : RECEIVED_SUFFIX;
    const tempPath = `${this.pathOf(meta.term, meta.index)}.${randomBytes(6).toString('hex')}${suffix}`;
    return SnapshotFileWriter.create(tempPath, meta, this.sync);
  }

  /**
   * Writes a snapshot durably from its data pieces; returns its file. An existing file of the same
   * term and index is replaced. Stops (removing the temporary file) with `signal`'s reason once it
   * is aborted; errors of `data` itself are passed on as they are.
   */
  async save(meta: SnapshotMeta, data: SnapshotDataSource, signal?: AbortSignal): Promise<SnapshotFile> {
    const writer = await this.createWriter(meta, 'tmp');
    let written: WrittenSnapshotFile;
    try {
      for await (const piece of data) {
        signal?.throwIfAborted();
        await writer.write(piece);
      }
      signal?.throwIfAborted();
      written = await writer.finish();
    } catch (err) {
      await writer.abort();
      throw err;
    }
    return this.install(written);
  }

  /** Renames a written file into its final name (replacing one of the same term and index) and syncs the directory. */
  async install(written: WrittenSnapshotFile): Promise<SnapshotFile> {
    const path = this.pathOf(written.meta.term, written.meta.index);
    await rename(written.tempPath, path);
    if (this.sync) await this.syncDir();
    return { term: written.meta.term, index: written.meta.index, path };
  }

  /** Removes a written file that will not be installed. */
  async discard(written: WrittenSnapshotFile): Promise<void> {
    await rm(written.tempPath, { force: true });
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
   * Opens a snapshot file for reading its data in pieces, after checking its header: magic,
   * version, lengths against the file's size, the meta (which must match the name). Throws
   * StorageCorruptionError (with the path) if anything is wrong; the checksum is checked by the
   * reader before it answers the last piece.
   */
  read(file: { readonly term: number; readonly index: number }): Promise<SnapshotFileReader> {
    return SnapshotFileReader.open(this.pathOf(file.term, file.index), file);
  }

  /** Reads a whole file in pieces to check it; answers its meta or throws StorageCorruptionError. */
  async verify(file: { readonly term: number; readonly index: number }): Promise<SnapshotMeta> {
    const reader = await this.read(file);
    try {
      while ((await reader.read(VERIFY_PIECE_BYTES)) !== null);
      return reader.meta;
    } finally {
      await reader.close();
    }
  }

  /**
   * The newest snapshot file that verifies, optionally at or below `maxIndex`, with the files
   * skipped on the way because they failed verification. `meta` is null if none is usable.
   */
  async latest(maxIndex = Infinity): Promise<{ meta: SnapshotMeta | null; file: SnapshotFile | null; problems: SnapshotProblem[] }> {
    const problems: SnapshotProblem[] = [];
    for (const file of await this.list()) {
      if (file.index > maxIndex) continue;
      try {
        return { meta: await this.verify(file), file, problems };
      } catch (err) {
        if (!(err instanceof StorageCorruptionError)) throw err;
        problems.push({ path: file.path, problem: err.message });
      }
    }
    return { meta: null, file: null, problems };
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

/**
 * Writes one snapshot file from pieces: a header placeholder and the meta first, then the data as
 * it comes, then the real header (lengths and checksum) over the placeholder, then fsync.
 */
export class SnapshotFileWriter {
  readonly meta: SnapshotMeta;
  readonly tempPath: string;
  private readonly file: FileHandle;
  private readonly sync: boolean;
  private readonly encodedMeta: Buffer;
  /** Where the next write goes. */
  private position: number;
  private dataBytes = 0;
  /** CRC32 of the data alone; combined with the header's and meta's at the end. */
  private dataCrc = 0;
  private buffer: Buffer | null = null;
  private buffered = 0;
  /** The file is durable up to here (see syncInSteps). */
  private syncedUpTo = 0;
  /** Writes run one after the other in call order. */
  private tail: Promise<void> = Promise.resolve();
  private failure: Error | null = null;
  private ended = false;
  private aborted = false;

  private constructor(tempPath: string, meta: SnapshotMeta, file: FileHandle, encodedMeta: Buffer, sync: boolean) {
    this.tempPath = tempPath;
    this.meta = meta;
    this.file = file;
    this.encodedMeta = encodedMeta;
    this.sync = sync;
    this.position = HEADER_BYTES + encodedMeta.length;
  }

  static async create(tempPath: string, meta: SnapshotMeta, sync: boolean): Promise<SnapshotFileWriter> {
    const encodedMeta = encodeSnapshotMeta(meta);
    const file = await open(tempPath, 'w');
    try {
      // The header is rewritten at the end; zeros until then, so a torn file never verifies.
      await writeFully(file, Buffer.concat([Buffer.alloc(HEADER_BYTES), encodedMeta]), 0);
    } catch (err) {
      await closeQuietly(file);
      await rm(tempPath, { force: true });
      throw err;
    }
    return new SnapshotFileWriter(tempPath, meta, file, encodedMeta, sync);
  }

  /** Appends a piece of data; the piece must not change until the returned promise resolves. */
  write(piece: Uint8Array): Promise<void> {
    if (this.ended) return Promise.reject(new Error(`snapshot file ${this.tempPath} is already finished or aborted`));
    return this.enqueue(() => this.append(piece));
  }

  /** Writes the header, syncs and closes the file. */
  async finish(): Promise<WrittenSnapshotFile> {
    if (this.ended) throw new Error(`snapshot file ${this.tempPath} is already finished or aborted`);
    this.ended = true;
    await this.enqueue(async () => {
      await this.flushBuffer();
      const header = Buffer.alloc(HEADER_BYTES);
      MAGIC.copy(header, 0);
      header.writeUInt32BE(FORMAT_VERSION, 4);
      header.writeUInt32BE(this.encodedMeta.length, 8);
      header.writeUInt32BE(Math.floor(this.dataBytes / 2 ** 32), 12);
      header.writeUInt32BE(this.dataBytes >>> 0, 16);
      const prefixCrc = crc32(this.encodedMeta, crc32(header.subarray(0, 20)));
      header.writeUInt32BE(crc32Combine(prefixCrc, this.dataCrc, this.dataBytes), 20);
      await writeFully(this.file, header, 0);
      if (this.sync) await this.file.sync();
      await this.file.close();
    });
    return { meta: this.meta, tempPath: this.tempPath, dataBytes: this.dataBytes };
  }

  /** Closes and removes the temporary file. Idempotent; never rejects. */
  async abort(): Promise<void> {
    this.ended = true;
    this.aborted = true;
    this.buffer = null;
    await this.tail.catch(() => undefined);
    await closeQuietly(this.file);
    await rm(this.tempPath, { force: true }).catch(() => undefined);
  }

  private enqueue(op: () => Promise<void>): Promise<void> {
    const run = async (): Promise<void> => {
      if (this.failure) throw this.failure;
      if (this.aborted) throw new Error(`snapshot file ${this.tempPath} was aborted`);
      try {
        await op();
      } catch (err) {
        this.failure = err instanceof Error ? err : new Error(String(err));
        throw this.failure;
      }
    };
    const result = this.tail.then(run, run);
    this.tail = result.catch(() => undefined);
    return result;
  }

  private async append(piece: Uint8Array): Promise<void> {
    this.dataCrc = crc32(piece, this.dataCrc);
    this.dataBytes += piece.length;
    if (piece.length >= WRITE_BUFFER_BYTES / 2) {
      await this.flushBuffer();
      await writeFully(this.file, piece, this.position);
      this.position += piece.length;
      await this.syncInSteps();
      return;
    }
    this.buffer ??= Buffer.allocUnsafeSlow(WRITE_BUFFER_BYTES);
    if (this.buffered + piece.length > this.buffer.length) await this.flushBuffer();
    this.buffer.set(piece, this.buffered);
    this.buffered += piece.length;
  }

  private async flushBuffer(): Promise<void> {
    if (this.buffered === 0 || this.buffer === null) return;
    await writeFully(this.file, this.buffer.subarray(0, this.buffered), this.position);
    this.position += this.buffered;
    this.buffered = 0;
    await this.syncInSteps();
  }

  /**
   * Flushes the file every SYNC_STEP_BYTES as it grows: one fsync of a 150 MB file at the end made
   * the disk busy for long enough to hold the log's own fsyncs, and so every write (p99 ×3).
   */
  private async syncInSteps(): Promise<void> {
    if (!this.sync || this.position - this.syncedUpTo < SYNC_STEP_BYTES) return;
    await this.file.datasync();
    this.syncedUpTo = this.position;
  }
}

/** Reads one snapshot file's data in pieces, checking the checksum before the last piece is answered. */
export class SnapshotFileReader implements SnapshotDataReader {
  readonly path: string;
  readonly meta: SnapshotMeta;
  readonly dataBytes: number;
  private readonly file: FileHandle;
  private readonly storedCrc: number;
  private position: number;
  private remaining: number;
  private crc: number;
  private closed = false;
  /** The checksum did not match: every later read fails too (never a quiet end of data). */
  private damage: StorageCorruptionError | null = null;

  private constructor(path: string, file: FileHandle, meta: SnapshotMeta, dataOffset: number, dataBytes: number, crc: number, storedCrc: number) {
    this.path = path;
    this.file = file;
    this.meta = meta;
    this.position = dataOffset;
    this.dataBytes = dataBytes;
    this.remaining = dataBytes;
    this.crc = crc;
    this.storedCrc = storedCrc;
  }

  static async open(path: string, expected: { readonly term: number; readonly index: number }): Promise<SnapshotFileReader> {
    const fail = (location: string, problem: string): never => {
      throw new StorageCorruptionError(path, location, problem);
    };
    let file: FileHandle;
    try {
      file = await open(path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return fail('snapshot file', 'missing');
      throw err;
    }
    try {
      const size = (await file.stat()).size;
      if (size < HEADER_BYTES) fail('header', `file of ${size} bytes is shorter than the ${HEADER_BYTES}-byte header`);
      const header = await readExactly(file, path, 0, HEADER_BYTES);
      if (!header.subarray(0, 4).equals(MAGIC)) fail('header', 'not a snapshot file (bad magic)');
      const version = header.readUInt32BE(4);
      if (version !== FORMAT_VERSION) fail('header', `unsupported format version ${version}`);
      const metaLength = header.readUInt32BE(8);
      const dataLength = header.readUInt32BE(12) * 2 ** 32 + header.readUInt32BE(16);
      const expectedSize = HEADER_BYTES + metaLength + dataLength;
      if (size !== expectedSize) fail('header', `file is ${size} bytes, header promises ${expectedSize} (truncated or extended)`);
      if (metaLength > MAX_META_BYTES) fail('header', `meta length ${metaLength} is implausible`);
      const encodedMeta = await readExactly(file, path, HEADER_BYTES, metaLength);
      let meta: SnapshotMeta;
      try {
        meta = decodeSnapshotMeta(encodedMeta);
      } catch (err) {
        if (!(err instanceof DecodeError)) throw err;
        return fail('meta', err.message);
      }
      if (meta.term !== expected.term || meta.index !== expected.index) {
        fail('meta', `holds the snapshot at term ${meta.term}, index ${meta.index}, not the one its name says`);
      }
      const crc = crc32(encodedMeta, crc32(header.subarray(0, 20)));
      const reader = new SnapshotFileReader(path, file, meta, HEADER_BYTES + metaLength, dataLength, crc, header.readUInt32BE(20));
      if (dataLength === 0) reader.checkCrc();
      return reader;
    } catch (err) {
      await closeQuietly(file);
      throw err;
    }
  }

  async read(maxBytes: number): Promise<Uint8Array | null> {
    if (this.closed) throw new Error(`snapshot file ${this.path} is closed`);
    if (this.damage) throw this.damage;
    if (this.remaining === 0) return null;
    const n = Math.min(Math.max(1, maxBytes), this.remaining);
    // Not pooled: a piece may be kept (queued on a socket) and must not pin a shared slab.
    const piece = await readExactly(this.file, this.path, this.position, n);
    this.position += n;
    this.remaining -= n;
    this.crc = crc32(piece, this.crc);
    if (this.remaining === 0) this.checkCrc();
    return piece;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await closeQuietly(this.file);
  }

  private checkCrc(): void {
    if (this.crc === this.storedCrc) return;
    this.damage = new StorageCorruptionError(this.path, 'checksum', `checksum mismatch (stored ${this.storedCrc}, computed ${this.crc})`);
    throw this.damage;
  }
}

// ---------------------------------------------------------------------------------------------
// CRC32 of a concatenation from the CRCs of its parts (zlib's crc32_combine, which node:zlib does
// not expose): the file's checksum starts with the header, whose data length is known only at the
// end, while the data's own CRC is computed as the pieces pass.
// ---------------------------------------------------------------------------------------------

const CRC32_POLY = 0xedb88320;

/** a(x) * b(x) modulo the CRC polynomial, in the reflected bit order CRC32 uses. */
function multModP(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if ((a & m) !== 0) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ CRC32_POLY : b >>> 1;
  }
  return p >>> 0;
}

/** x^(2^k) modulo the polynomial, k = 0..31. */
const X2N_TABLE: readonly number[] = (() => {
  const table: number[] = [];
  let p = 0x40000000; // x^1
  table.push(p);
  for (let k = 1; k < 32; k++) {
    p = multModP(p, p);
    table.push(p);
  }
  return table;
})();

/** x^(n * 2^k) modulo the polynomial. */
function x2nModP(n: number, k: number): number {
  let p = 0x80000000; // x^0
  while (n > 0) {
    if (n % 2 === 1) p = multModP(X2N_TABLE[k & 31]!, p);
    n = Math.floor(n / 2);
    k++;
  }
  return p;
}

/** crc32(A ‖ B) from crc32(A), crc32(B) and B's length. */
export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  return (multModP(x2nModP(lengthB, 3), crcA) ^ crcB) >>> 0;
}

// ---------------------------------------------------------------------------------------------

async function writeFully(file: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await file.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

/** Exactly `length` bytes at `position`, in a buffer of their own; a file that ends early is corrupt. */
async function readExactly(file: FileHandle, path: string, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafeSlow(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await file.read(buf, done, length - done, position + done);
    if (bytesRead === 0) throw new StorageCorruptionError(path, 'data', `file ended ${length - done} bytes early (truncated while being read)`);
    done += bytesRead;
  }
  return buf;
}

async function closeQuietly(file: FileHandle): Promise<void> {
  try {
    await file.close();
  } catch {
    // Already failing or already closed: the original error is the one to report.
  }
}
