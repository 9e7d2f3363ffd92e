// The snapshot archive of GET/PUT /v1/snapshot and `konsulctl snapshot save|restore`
// (docs/adr/0008-snapshot-archive.md).
//
// Consul's container, with Konsul's state inside: a gzipped tar archive holding
//   meta.json   what the snapshot is: Konsul's format marker, the Raft index and term, the size
//   state.bin   the FSM snapshot (fsm/snapshot.ts: magic "KNSL", version, sections, CRC-32)
//   SHA256SUMS  "<sha256 hex>  <name>" for meta.json and state.bin
// as Consul's snapshot/archive.go writes it, so `tar tzf`, `sha256sum -c` and Consul's own tooling
// can look inside. A Consul archive is refused (its state.bin is Consul's msgpack FSM), and so is
// anything that is not exactly these three files with matching hashes and a state that decodes.
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';

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

export function writeSnapshotArchive(meta: Omit<SnapshotArchiveMeta, 'Size' | 'Format'>, state: Uint8Array, nowMs: number): Buffer {
  const fullMeta: SnapshotArchiveMeta = { ...meta, Size: state.length, Format: ARCHIVE_FORMAT };
  const metaBytes = Buffer.from(`${JSON.stringify(fullMeta)}\n`);
  const sums = `${sha256(metaBytes)}  ${META}\n${sha256(state)}  ${STATE}\n`;
  const mtime = Math.floor(nowMs / 1000);
  const tar = Buffer.concat([
    tarFile(META, metaBytes, mtime),
    tarFile(STATE, state, mtime),
    tarFile(SUMS, Buffer.from(sums), mtime),
    Buffer.alloc(2 * BLOCK),
  ]);
  // Level 1: snapshots of large stores compress nearly as well and several times faster.
  return gzipSync(tar, { level: 1 });
}

export interface ReadLimits {
  /** The largest state.bin accepted (Infinity: no limit, e.g. to inspect a file). */
  readonly maxStateBytes: number;
}

/** Unpacks and checks an archive: the meta and the FSM snapshot bytes. Throws SnapshotArchiveError. */
export function readSnapshotArchive(archive: Uint8Array, limits: ReadLimits): { meta: SnapshotArchiveMeta; state: Uint8Array } {
  if (archive.length < 2 || archive[0] !== 0x1f || archive[1] !== 0x8b) throw new SnapshotArchiveError('not a snapshot archive (not gzip data)');
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
  const files = readTar(tar);
  const metaBytes = files.get(META);
  const state = files.get(STATE);
  const sums = files.get(SUMS);
  for (const [name, data] of [[META, metaBytes], [STATE, state], [SUMS, sums]] as const) {
    if (data === undefined) throw new SnapshotArchiveError(`failed checking integrity of snapshot: file missing for "${name}"`);
  }
  verifySums(sums!.toString('utf8'), new Map([[META, metaBytes!], [STATE, state!]]));
  let meta: SnapshotArchiveMeta;
  try {
    meta = JSON.parse(metaBytes!.toString('utf8')) as SnapshotArchiveMeta;
  } catch (err) {
    throw new SnapshotArchiveError(`failed to decode snapshot metadata: ${(err as Error).message}`);
  }
  if (typeof meta !== 'object' || meta === null || meta.Format !== ARCHIVE_FORMAT) {
    throw new SnapshotArchiveError('not a Konsul snapshot (meta.json has no "Format": "konsul-fsm"; a Consul snapshot cannot be restored into Konsul)');
  }
  if (meta.Size !== state!.length) throw new SnapshotArchiveError(`snapshot state is ${state!.length} bytes, its metadata says ${String(meta.Size)}`);
  if (state!.length > limits.maxStateBytes) {
    throw new SnapshotArchiveError(`snapshot state of ${state!.length} bytes is over the ${limits.maxStateBytes}-byte limit for a restore`, true);
  }
  return { meta, state: state! };
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** SHA256SUMS must list exactly the expected files, each with its hash (Consul's DecodeAndVerify). */
function verifySums(text: string, files: Map<string, Buffer>): void {
  const seen = new Set<string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const m = /^([0-9a-f]{64}) {2}(\S+)$/.exec(line);
    if (!m) throw new SnapshotArchiveError(`failed checking integrity of snapshot: bad line in ${SUMS}`);
    const data = files.get(m[2]!);
    if (data === undefined) throw new SnapshotArchiveError(`failed checking integrity of snapshot: list missing hash for "${m[2]}"`);
    if (sha256(data) !== m[1]) throw new SnapshotArchiveError(`failed checking integrity of snapshot: hash check failed for "${m[2]}"`);
    seen.add(m[2]!);
  }
  for (const name of files.keys()) {
    if (!seen.has(name)) throw new SnapshotArchiveError(`failed checking integrity of snapshot: file missing for "${name}"`);
  }
}

// ---------------------------------------------------------------------------------------------
// A minimal ustar writer and reader: regular files only (the reader skips pax headers).
// ---------------------------------------------------------------------------------------------

function tarFile(name: string, data: Uint8Array, mtime: number): Buffer {
  const header = Buffer.alloc(BLOCK);
  header.write(name, 0, 100, 'utf8');
  header.write('0000600\0', 100, 'ascii'); // mode
  header.write('0000000\0', 108, 'ascii'); // uid
  header.write('0000000\0', 116, 'ascii'); // gid
  header.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124, 'ascii');
  header.write(`${mtime.toString(8).padStart(11, '0')}\0`, 136, 'ascii');
  header.write('        ', 148, 'ascii'); // checksum placeholder: spaces while summing
  header.write('0', 156, 'ascii'); // regular file
  header.write('ustar\0', 257, 'ascii');
  header.write('00', 263, 'ascii');
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  const padding = (BLOCK - (data.length % BLOCK)) % BLOCK;
  return Buffer.concat([header, data, Buffer.alloc(padding)]);
}

function readTar(tar: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  let at = 0;
  for (;;) {
    if (at + BLOCK > tar.length) throw new SnapshotArchiveError('failed reading snapshot: tar archive truncated');
    const header = tar.subarray(at, at + BLOCK);
    if (header.every((b) => b === 0)) return files;
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
    const recorded = parseOctal(header.subarray(148, 156));
    if (recorded !== sum) throw new SnapshotArchiveError('failed reading snapshot: tar header checksum mismatch');
    const name = cString(header.subarray(0, 100));
    const size = parseOctal(header.subarray(124, 136));
    if (size === null) throw new SnapshotArchiveError('failed reading snapshot: bad tar entry size');
    const type = String.fromCharCode(header[156]!);
    const dataStart = at + BLOCK;
    const dataEnd = dataStart + size;
    if (dataEnd > tar.length) throw new SnapshotArchiveError('failed reading snapshot: tar archive truncated');
    at = dataStart + Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'x' || type === 'g') continue; // pax attributes: nothing Konsul needs
    if (type !== '0' && type !== '\0') throw new SnapshotArchiveError(`unexpected file ${JSON.stringify(name)} in snapshot`);
    if (name !== META && name !== STATE && name !== SUMS) throw new SnapshotArchiveError(`unexpected file ${JSON.stringify(name)} in snapshot`);
    if (files.has(name)) throw new SnapshotArchiveError(`duplicate file ${JSON.stringify(name)} in snapshot`);
    files.set(name, tar.subarray(dataStart, dataEnd));
  }
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
