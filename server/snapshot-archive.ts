// The snapshot archive of GET/PUT /v1/snapshot and `konsulctl snapshot save|restore`
// (docs/adr/0008-snapshot-archive.md, streaming: docs/adr/0016-restore-at-any-size.md).
//
// Consul's container, with Konsul's state inside: a gzipped tar archive holding
//   meta.json   what the snapshot is: Konsul's format marker, the Raft index and term, the size
//   state.bin   the FSM snapshot (fsm/snapshot.ts: magic "KNSL", version, frames, CRC-32)
//   SHA256SUMS  "<sha256 hex>  <name>" for meta.json and state.bin
// as Consul's snapshot/archive.go writes it, so `tar tzf`, `sha256sum -c` and Consul's own tooling
// can look inside. A Consul archive is refused (its state.bin is Consul's msgpack FSM), and so is
// anything that is not exactly these three files with matching hashes and a state that decodes.
//
// States reach hundreds of megabytes, so both directions stream: the writer reads state.bin from a
// file, the reader hands state.bin on piece by piece (to a staging file) while it hashes and decodes
// it; neither holds the state in memory.
import { createReadStream } from 'node:fs';
import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pipeline as pipelineStreams } from 'node:stream';
import { createGzip, createGunzip, gunzipSync, gzipSync } from 'node:zlib';
import { SnapshotDecoder, SnapshotFormatError } from '../fsm/snapshot.ts';

export const ARCHIVE_FORMAT = 'konsul-fsm';

/** meta.json. Version/ID/Index/Term/Size as in hashicorp/raft's SnapshotMeta; Format and the rest are Konsul's. */
export interface SnapshotArchiveMeta {
  readonly Version: number;
  readonly ID: string;
  readonly Index: number;
  readonly Term: number;
  readonly Size: number;
  /** Always "konsul-fsm": what state.bin holds. */
  readonly Format: string;
  /** fsm/snapshot.ts SNAPSHOT_FORMAT_VERSION of state.bin. */
  readonly FormatVersion: number;
  readonly KonsulVersion: string;
  /** When the snapshot was taken (informational). */
  readonly CreatedAt: string;
}

/** The archive is not one this version can restore; the message says why. */
export class SnapshotArchiveError extends Error {
  /** 413 for an archive over the size limit, 400 for everything else. */
  readonly tooLarge: boolean;
  constructor(message: string, tooLarge = false) {
    super(message);
    this.name = 'SnapshotArchiveError';
    this.tooLarge = tooLarge;
  }
}

const BLOCK = 512;
const META = 'meta.json';
const STATE = 'state.bin';
const SUMS = 'SHA256SUMS';
/** meta.json and SHA256SUMS are a few hundred bytes; anything near this is not an archive of ours. */
const MAX_SMALL_FILE_BYTES = 64 * 1024;
/** gzip level 1: snapshots of large stores compress nearly as well and several times faster. */
const GZIP_LEVEL = 1;

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/** The encoded state, already on disk, that an archive wraps. */
export interface StateFile {
  readonly path: string;
  readonly bytes: number;
  readonly sha256: string;
}

export type ArchiveMetaFields = Omit<SnapshotArchiveMeta, 'Size' | 'Format'>;

/** The archive around the state file at `state.path`, as a gzip stream; the file is read as it goes. */
export function snapshotArchiveStream(meta: ArchiveMetaFields, state: StateFile, nowMs: number): Readable {
  // pipeline() destroys the gzip stream (and so the reply) if reading the file fails.
  return pipelineStreams(Readable.from(tarPieces(meta, state, nowMs)), createGzip({ level: GZIP_LEVEL }), () => undefined);
}

async function* tarPieces(meta: ArchiveMetaFields, state: StateFile, nowMs: number): AsyncGenerator<Buffer> {
  const mtime = Math.floor(nowMs / 1000);
  const metaBytes = metaJson(meta, state.bytes);
  yield tarFile(META, metaBytes, mtime);
  yield tarHeader(STATE, state.bytes, mtime);
  let read = 0;
  for await (const piece of createReadStream(state.path, { highWaterMark: 1024 * 1024 })) {
    read += (piece as Buffer).length;
    yield piece as Buffer;
  }
  if (read !== state.bytes) throw new Error(`state file ${state.path} is ${read} bytes, expected ${state.bytes}`);
  yield Buffer.alloc(padding(state.bytes));
  yield tarFile(SUMS, sumsText(metaBytes, state.sha256), mtime);
  yield Buffer.alloc(2 * BLOCK);
}

/** The whole archive of a state held in memory (small states: tests and tools). */
export function writeSnapshotArchive(meta: ArchiveMetaFields, state: Uint8Array, nowMs: number): Buffer {
  const mtime = Math.floor(nowMs / 1000);
  const metaBytes = metaJson(meta, state.length);
  const tar = Buffer.concat([
    tarFile(META, metaBytes, mtime),
    tarFile(STATE, state, mtime),
    tarFile(SUMS, sumsText(metaBytes, sha256(state)), mtime),
    Buffer.alloc(2 * BLOCK),
  ]);
  return gzipSync(tar, { level: GZIP_LEVEL });
}

function metaJson(meta: ArchiveMetaFields, size: number): Buffer {
  const full: SnapshotArchiveMeta = { ...meta, Size: size, Format: ARCHIVE_FORMAT };
  return Buffer.from(`${JSON.stringify(full)}\n`);
}

function sumsText(metaBytes: Uint8Array, stateSha256: string): Buffer {
  return Buffer.from(`${sha256(metaBytes)}  ${META}\n${stateSha256}  ${STATE}\n`);
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

export interface ReadLimits {
  /** The largest state.bin accepted (Infinity: no limit). */
  readonly maxStateBytes: number;
}

/** What the container says, once its hashes and meta are checked. */
export interface ArchiveContents {
  readonly meta: SnapshotArchiveMeta;
  readonly stateBytes: number;
  readonly stateSha256: string;
}

/** The tar entry being read: state.bin (hashed, handed on), a small file (kept) or pax data (skipped). */
type TarEntry = { name: string; remaining: number; padding: number } & (
  | { kind: 'state'; hash: Hash }
  | { kind: 'small'; kept: Buffer[] }
  | { kind: 'skip' }
);

/**
 * Reads the tar stream (uncompressed) of an archive fed in pieces cut anywhere. state.bin goes to
 * `onState` as it is read; meta.json and SHA256SUMS are kept (they are small). `end()` checks that
 * exactly the three files came, with matching hashes and a Konsul meta.json.
 */
export class ArchiveReader {
  private buffer: Buffer = Buffer.alloc(0);
  /** The entry whose data is being read, or null between entries. */
  private entry: TarEntry | null = null;
  private readonly small = new Map<string, Buffer>();
  private stateSha256: string | null = null;
  private stateBytes = 0;
  private ended = false;

  /** state.bin's size as its tar header announces it, once that has been read (for progress). */
  get announcedStateBytes(): number | null {
    return this.entry?.kind === 'state' || this.stateSha256 !== null ? this.stateBytes : null;
  }

  constructor(
    private readonly onState: (piece: Buffer) => void,
    private readonly limits: ReadLimits = { maxStateBytes: Number.POSITIVE_INFINITY },
  ) {}

  write(tar: Uint8Array): void {
    let data: Buffer = this.buffer.length === 0 ? Buffer.from(tar.buffer, tar.byteOffset, tar.byteLength) : Buffer.concat([this.buffer, tar]);
    for (;;) {
      if (this.entry !== null) {
        data = this.entryData(data);
        if (this.entry !== null) break;
        continue;
      }
      if (this.ended || data.length < BLOCK) break;
      this.header(data.subarray(0, BLOCK));
      data = data.subarray(BLOCK);
    }
    if (this.ended && data.some((b) => b !== 0)) throw new SnapshotArchiveError('failed reading snapshot: data after the end of the tar archive');
    // Keep what is left of a header (less than a block), copied: the caller may reuse its buffer.
    this.buffer = this.ended ? Buffer.alloc(0) : Buffer.from(data);
  }

  end(): ArchiveContents {
    if (!this.ended || this.entry !== null) throw new SnapshotArchiveError('failed reading snapshot: tar archive truncated');
    const metaBytes = this.small.get(META);
    const sums = this.small.get(SUMS);
    for (const [name, present] of [[META, metaBytes !== undefined], [STATE, this.stateSha256 !== null], [SUMS, sums !== undefined]] as const) {
      if (!present) throw new SnapshotArchiveError(`failed checking integrity of snapshot: file missing for "${name}"`);
    }
    verifySums(sums!.toString('utf8'), new Map([[META, sha256(metaBytes!)], [STATE, this.stateSha256!]]));
    const meta = parseMeta(metaBytes!);
    if (meta.Size !== this.stateBytes) throw new SnapshotArchiveError(`snapshot state is ${this.stateBytes} bytes, its metadata says ${String(meta.Size)}`);
    return { meta, stateBytes: this.stateBytes, stateSha256: this.stateSha256! };
  }

  /** Consumes what `data` holds of the current entry's data and padding; answers the rest. */
  private entryData(data: Buffer): Buffer {
    const entry = this.entry!;
    if (entry.remaining > 0) {
      const take = Math.min(entry.remaining, data.length);
      const piece = data.subarray(0, take);
      entry.remaining -= take;
      data = data.subarray(take);
      if (entry.kind === 'small') entry.kept.push(Buffer.from(piece));
      else if (entry.kind === 'state') {
        entry.hash.update(piece);
        this.onState(piece);
      }
      if (entry.remaining > 0) return data;
    }
    const skip = Math.min(entry.padding, data.length);
    entry.padding -= skip;
    data = data.subarray(skip);
    if (entry.padding > 0) return data;
    if (entry.kind === 'small') this.small.set(entry.name, Buffer.concat(entry.kept));
    else if (entry.kind === 'state') this.stateSha256 = entry.hash.digest('hex');
    this.entry = null;
    return data;
  }

  private header(header: Buffer): void {
    if (header.every((b) => b === 0)) {
      this.ended = true;
      return;
    }
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
    if (parseOctal(header.subarray(148, 156)) !== sum) throw new SnapshotArchiveError('failed reading snapshot: tar header checksum mismatch');
    const name = cString(header.subarray(0, 100));
    const size = parseOctal(header.subarray(124, 136));
    if (size === null) throw new SnapshotArchiveError('failed reading snapshot: bad tar entry size');
    const type = String.fromCharCode(header[156]!);
    const pad = padding(size);
    if (type === 'x' || type === 'g') {
      // pax attributes (GNU tar may add them): nothing Konsul needs.
      if (size > MAX_SMALL_FILE_BYTES) throw new SnapshotArchiveError(`failed reading snapshot: pax header of ${size} bytes is too large`);
      this.entry = { kind: 'skip', name, remaining: size, padding: pad };
      if (size === 0) this.entryData(Buffer.alloc(0));
      return;
    }
    if ((type !== '0' && type !== '\0') || (name !== META && name !== STATE && name !== SUMS)) {
      throw new SnapshotArchiveError(`unexpected file ${JSON.stringify(name)} in snapshot`);
    }
    if (this.small.has(name) || (name === STATE && this.stateSha256 !== null)) throw new SnapshotArchiveError(`duplicate file ${JSON.stringify(name)} in snapshot`);
    if (name === STATE) {
      if (size > this.limits.maxStateBytes) {
        throw new SnapshotArchiveError(`snapshot state of ${size} bytes is over the ${this.limits.maxStateBytes}-byte limit for a restore`, true);
      }
      this.stateBytes = size;
      this.entry = { kind: 'state', name, remaining: size, padding: pad, hash: createHash('sha256') };
      if (size === 0) this.entryData(Buffer.alloc(0));
      return;
    }
    if (size > MAX_SMALL_FILE_BYTES) throw new SnapshotArchiveError(`failed reading snapshot: ${name} of ${size} bytes is too large`);
    this.entry = { kind: 'small', name, remaining: size, padding: pad, kept: [] };
    if (size === 0) this.entryData(Buffer.alloc(0));
  }
}

/**
 * Unpacks and checks an archive held in memory: the container only (gzip, tar, hashes, meta), not
 * the state's own encoding. Throws SnapshotArchiveError.
 */
export function readSnapshotArchive(archive: Uint8Array, limits: ReadLimits): { meta: SnapshotArchiveMeta; state: Uint8Array } {
  checkGzipMagic(archive);
  let tar: Buffer;
  // Room for the tar headers and the other two files around the largest state accepted.
  const maxTarBytes = limits.maxStateBytes + 64 * 1024;
  try {
    tar = gunzipSync(archive, Number.isFinite(maxTarBytes) ? { maxOutputLength: maxTarBytes } : {});
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
      throw new SnapshotArchiveError(`snapshot archive too large: its state is over the ${limits.maxStateBytes}-byte limit for a restore`, true);
    }
    throw new SnapshotArchiveError(`failed reading snapshot: ${(err as Error).message}`);
  }
  const pieces: Buffer[] = [];
  const reader = new ArchiveReader((piece) => pieces.push(Buffer.from(piece)), limits);
  reader.write(tar);
  const { meta } = reader.end();
  return { meta, state: Buffer.concat(pieces) };
}

/** Entries and records per table of a verified state, and its applied index. */
export interface StateCounts {
  readonly appliedIndex: number;
  readonly kvEntries: number;
  readonly kvTombstones: number;
  readonly events: number;
  readonly nodes: number;
  readonly services: number;
  readonly checks: number;
  readonly sessions: number;
}

export interface VerifiedArchive extends ArchiveContents {
  readonly counts: StateCounts;
}

export interface ArchiveProgress {
  /** Compressed bytes read so far. */
  readonly archiveBytes: number;
  /** state.bin bytes read so far... */
  readonly stateBytes: number;
  /** ...of this many (null until state.bin's tar header has been read). */
  readonly stateTotalBytes: number | null;
  readonly kvEntries: number;
}

export interface StreamReadOptions extends Partial<ReadLimits> {
  /** Receives state.bin piece by piece (e.g. into a staging file); awaited before reading on. */
  readonly onState?: (piece: Buffer) => Promise<void> | void;
  /** Called after every piece read. */
  readonly onProgress?: (progress: ArchiveProgress) => void;
}

/**
 * Reads and checks an archive as it streams in: the container (gzip, tar, SHA256SUMS, meta) and
 * the FSM snapshot inside (structure, order, counts, CRC-32), holding no more than a piece of it.
 * Throws SnapshotArchiveError or SnapshotFormatError; the archive is good only if it returns.
 */
export async function readSnapshotArchiveStream(source: AsyncIterable<Uint8Array>, options: StreamReadOptions = {}): Promise<VerifiedArchive> {
  // No sink: the records are checked and counted, not built.
  const decoder = new SnapshotDecoder(null);
  const statePieces: Buffer[] = [];
  let stateBytes = 0;
  const reader = new ArchiveReader(
    (piece) => {
      stateBytes += piece.length;
      decoder.write(piece);
      if (options.onState) statePieces.push(Buffer.from(piece));
    },
    { maxStateBytes: options.maxStateBytes ?? Number.POSITIVE_INFINITY },
  );
  let archiveBytes = 0;
  async function* counted(): AsyncGenerator<Uint8Array> {
    // The first two bytes must be gzip's magic, whatever size the first pieces are.
    let head: Uint8Array | null = new Uint8Array(0);
    for await (const chunk of source) {
      archiveBytes += chunk.length;
      if (head !== null) {
        head = Buffer.concat([head, chunk]);
        if (head.length < 2) continue;
        checkGzipMagic(head);
        yield head;
        head = null;
        continue;
      }
      yield chunk;
    }
    if (head !== null) checkGzipMagic(head);
  }
  try {
    await pipeline(counted, createGunzip(), async (tar: AsyncIterable<Buffer>) => {
      for await (const chunk of tar) {
        reader.write(chunk);
        for (const piece of statePieces.splice(0)) await options.onState!(piece);
        options.onProgress?.({ archiveBytes, stateBytes, stateTotalBytes: reader.announcedStateBytes, kvEntries: decoder.kvEntriesRead });
      }
    });
  } catch (err) {
    if (err instanceof SnapshotArchiveError || err instanceof SnapshotFormatError) throw err;
    if ((err as { code?: string }).code?.startsWith('Z_') === true) throw new SnapshotArchiveError(`failed reading snapshot: ${(err as Error).message}`);
    throw err;
  }
  const contents = reader.end();
  const tables = decoder.finish();
  const catalog = tables.catalog;
  return {
    ...contents,
    counts: {
      appliedIndex: tables.appliedIndex,
      kvEntries: tables.kvEntries,
      kvTombstones: tables.kvTombstones,
      events: tables.events?.events.length ?? 0,
      nodes: catalog?.nodes.length ?? 0,
      services: catalog?.nodes.reduce((n, node) => n + node.services.length, 0) ?? 0,
      checks: catalog?.nodes.reduce((n, node) => n + node.checks.length, 0) ?? 0,
      sessions: tables.sessions?.sessions.length ?? 0,
    },
  };
}

function checkGzipMagic(bytes: Uint8Array): void {
  if (bytes.length < 2 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) throw new SnapshotArchiveError('not a snapshot archive (not gzip data)');
}

function parseMeta(bytes: Buffer): SnapshotArchiveMeta {
  let meta: SnapshotArchiveMeta;
  try {
    meta = JSON.parse(bytes.toString('utf8')) as SnapshotArchiveMeta;
  } catch (err) {
    throw new SnapshotArchiveError(`failed to decode snapshot metadata: ${(err as Error).message}`);
  }
  if (typeof meta !== 'object' || meta === null || meta.Format !== ARCHIVE_FORMAT) {
    throw new SnapshotArchiveError('not a Konsul snapshot (meta.json has no "Format": "konsul-fsm"; a Consul snapshot cannot be restored into Konsul)');
  }
  return meta;
}

/** SHA256SUMS must list exactly the expected files, each with its hash (Consul's DecodeAndVerify). */
function verifySums(text: string, hashes: Map<string, string>): void {
  const seen = new Set<string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const m = /^([0-9a-f]{64}) {2}(\S+)$/.exec(line);
    if (!m) throw new SnapshotArchiveError(`failed checking integrity of snapshot: bad line in ${SUMS}`);
    const hash = hashes.get(m[2]!);
    if (hash === undefined) throw new SnapshotArchiveError(`failed checking integrity of snapshot: list missing hash for "${m[2]}"`);
    if (hash !== m[1]) throw new SnapshotArchiveError(`failed checking integrity of snapshot: hash check failed for "${m[2]}"`);
    seen.add(m[2]!);
  }
  for (const name of hashes.keys()) {
    if (!seen.has(name)) throw new SnapshotArchiveError(`failed checking integrity of snapshot: file missing for "${name}"`);
  }
}

// ---------------------------------------------------------------------------------------------
// A minimal ustar writer: regular files only.
// ---------------------------------------------------------------------------------------------

function tarFile(name: string, data: Uint8Array, mtime: number): Buffer {
  return Buffer.concat([tarHeader(name, data.length, mtime), data, Buffer.alloc(padding(data.length))]);
}

function tarHeader(name: string, size: number, mtime: number): Buffer {
  const header = Buffer.alloc(BLOCK);
  header.write(name, 0, 100, 'utf8');
  header.write('0000600\0', 100, 'ascii'); // mode
  header.write('0000000\0', 108, 'ascii'); // uid
  header.write('0000000\0', 116, 'ascii'); // gid
  header.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'ascii');
  header.write(`${mtime.toString(8).padStart(11, '0')}\0`, 136, 'ascii');
  header.write('        ', 148, 'ascii'); // checksum placeholder: spaces while summing
  header.write('0', 156, 'ascii'); // regular file
  header.write('ustar\0', 257, 'ascii');
  header.write('00', 263, 'ascii');
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return header;
}

function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

function parseOctal(field: Buffer): number | null {
  const text = cString(field).trim();
  if (!/^[0-7]+$/.test(text)) return null;
  return parseInt(text, 8);
}

function cString(field: Buffer): string {
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? field.length : end).toString('utf8');
}
