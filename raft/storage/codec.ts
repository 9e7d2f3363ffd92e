// Compact binary encoding of what the durable storage keeps: log entries, the hard state, snapshot
// metadata and the log's compaction point. Every record is sealed with a CRC32 so that a damaged
// record is detected on read instead of being handed to Raft.
//
// Record layout (all records):
//
//   offset 0  u32 BE   CRC32 of every byte from offset 4 to the end
//   offset 4  u8       record kind (RecordKind), which also versions the layout
//   offset 5  ...      body
//
// Numbers in bodies are unsigned LEB128 varints (safe integers up to 2^53); strings are UTF-8. The
// last variable-length field of a body runs to the end of the record, so it needs no length prefix.
//
//   normal entry   varint index, varint term, data bytes
//   conf change    varint index, varint term, u8 change type, node id
//   hard state     varint term, varint commit, vote
//   snapshot meta  varint index, varint term, varint #voters, (varint length, id)*, varint #learners, (varint length, id)*
//   log position   varint index, varint term
import { crc32 } from 'node:zlib';
import type { ConfChangeType, ConfState, Entry, HardState, SnapshotMeta } from '../core/types.ts';
import { DecodeError } from './errors.ts';

const RecordKind = {
  NormalEntry: 1,
  ConfChangeEntry: 2,
  HardState: 3,
  SnapshotMeta: 4,
  LogPosition: 5,
} as const;
type RecordKind = (typeof RecordKind)[keyof typeof RecordKind];

const HEADER_BYTES = 5;

const CHANGE_TYPE_CODES: Record<ConfChangeType, number> = { addVoter: 1, removeNode: 2, addLearner: 3 };
const CHANGE_TYPES: readonly (ConfChangeType | undefined)[] = [undefined, 'addVoter', 'removeNode', 'addLearner'];

/** An (index, term) pair: the log's compaction point, whose term must stay answerable. */
export interface LogPosition {
  readonly index: number;
  readonly term: number;
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    size++;
  }
  return size;
}

function writeVarint(buf: Buffer, pos: number, n: number): number {
  // Division rather than shifts: indexes may exceed 32 bits.
  while (n >= 0x80) {
    buf[pos++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  buf[pos++] = n;
  return pos;
}

function checkNumber(what: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`cannot encode ${what} ${n}: not a non-negative safe integer`);
}

/** A record with its kind set and room for `bodyBytes` of body after the header; the checksum comes last (seal). */
function allocRecord(kind: RecordKind, bodyBytes: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_BYTES + bodyBytes);
  buf[4] = kind;
  return buf;
}

function seal(buf: Buffer): Buffer {
  buf.writeUInt32BE(crc32(buf.subarray(4)), 0);
  return buf;
}

export function encodeEntry(entry: Entry): Buffer {
  checkNumber('entry index', entry.index);
  checkNumber('entry term', entry.term);
  const numbers = varintSize(entry.index) + varintSize(entry.term);
  if (entry.type === 'normal') {
    const buf = allocRecord(RecordKind.NormalEntry, numbers + entry.data.length);
    let pos = writeVarint(buf, HEADER_BYTES, entry.index);
    pos = writeVarint(buf, pos, entry.term);
    buf.set(entry.data, pos);
    return seal(buf);
  }
  const code = CHANGE_TYPE_CODES[entry.change.type];
  if (code === undefined) throw new RangeError(`cannot encode conf change type '${String(entry.change.type)}'`);
  const nodeBytes = Buffer.byteLength(entry.change.node, 'utf8');
  const buf = allocRecord(RecordKind.ConfChangeEntry, numbers + 1 + nodeBytes);
  let pos = writeVarint(buf, HEADER_BYTES, entry.index);
  pos = writeVarint(buf, pos, entry.term);
  buf[pos++] = code;
  buf.write(entry.change.node, pos, 'utf8');
  return seal(buf);
}

export function encodeHardState(hs: HardState): Buffer {
  checkNumber('term', hs.term);
  checkNumber('commit', hs.commit);
  const voteBytes = Buffer.byteLength(hs.vote, 'utf8');
  const buf = allocRecord(RecordKind.HardState, varintSize(hs.term) + varintSize(hs.commit) + voteBytes);
  let pos = writeVarint(buf, HEADER_BYTES, hs.term);
  pos = writeVarint(buf, pos, hs.commit);
  buf.write(hs.vote, pos, 'utf8');
  return seal(buf);
}

function idsSize(ids: readonly string[]): number {
  let size = varintSize(ids.length);
  for (const id of ids) {
    const n = Buffer.byteLength(id, 'utf8');
    size += varintSize(n) + n;
  }
  return size;
}

function writeIds(buf: Buffer, pos: number, ids: readonly string[]): number {
  pos = writeVarint(buf, pos, ids.length);
  for (const id of ids) {
    pos = writeVarint(buf, pos, Buffer.byteLength(id, 'utf8'));
    pos += buf.write(id, pos, 'utf8');
  }
  return pos;
}

export function encodeSnapshotMeta(meta: SnapshotMeta): Buffer {
  checkNumber('snapshot index', meta.index);
  checkNumber('snapshot term', meta.term);
  const { voters, learners } = meta.confState;
  const size = varintSize(meta.index) + varintSize(meta.term) + idsSize(voters) + idsSize(learners);
  const buf = allocRecord(RecordKind.SnapshotMeta, size);
  let pos = writeVarint(buf, HEADER_BYTES, meta.index);
  pos = writeVarint(buf, pos, meta.term);
  pos = writeIds(buf, pos, voters);
  writeIds(buf, pos, learners);
  return seal(buf);
}

export function encodeLogPosition(position: LogPosition): Buffer {
  checkNumber('index', position.index);
  checkNumber('term', position.term);
  const buf = allocRecord(RecordKind.LogPosition, varintSize(position.index) + varintSize(position.term));
  const pos = writeVarint(buf, HEADER_BYTES, position.index);
  writeVarint(buf, pos, position.term);
  return seal(buf);
}

// ---------------------------------------------------------------------------------------------
// Decoding. Every decoder verifies the checksum and the kind first and throws DecodeError.
// ---------------------------------------------------------------------------------------------

class Reader {
  private readonly buf: Uint8Array;
  private pos = HEADER_BYTES;

  constructor(buf: Uint8Array) {
    this.buf = buf;
  }

  varint(what: string): number {
    let result = 0;
    let scale = 1;
    for (;;) {
      if (this.pos >= this.buf.length) throw new DecodeError(`record ends inside ${what}`);
      const byte = this.buf[this.pos++]!;
      result += (byte & 0x7f) * scale;
      if (byte < 0x80) break;
      scale *= 0x80;
      if (scale > 2 ** 53) throw new DecodeError(`${what} does not fit a safe integer`);
    }
    if (!Number.isSafeInteger(result)) throw new DecodeError(`${what} does not fit a safe integer`);
    return result;
  }

  byte(what: string): number {
    if (this.pos >= this.buf.length) throw new DecodeError(`record ends before ${what}`);
    return this.buf[this.pos++]!;
  }

  string(what: string, length: number): string {
    if (this.pos + length > this.buf.length) throw new DecodeError(`record ends inside ${what}`);
    const s = Buffer.from(this.buf.buffer, this.buf.byteOffset + this.pos, length).toString('utf8');
    this.pos += length;
    return s;
  }

  rest(): Uint8Array {
    const view = new Uint8Array(this.buf.buffer, this.buf.byteOffset + this.pos, this.buf.length - this.pos);
    this.pos = this.buf.length;
    return view;
  }

  restString(): string {
    return this.string('string', this.buf.length - this.pos);
  }

  ids(what: string): string[] {
    const count = this.varint(`${what} count`);
    // Each id takes at least one byte: a count beyond the record is damage, not a huge allocation.
    if (count > this.buf.length - this.pos) throw new DecodeError(`${what} count ${count} exceeds the record`);
    const ids: string[] = [];
    for (let i = 0; i < count; i++) ids.push(this.string(what, this.varint(`${what} length`)));
    return ids;
  }

  end(what: string): void {
    if (this.pos !== this.buf.length) throw new DecodeError(`${this.buf.length - this.pos} unexpected bytes after ${what}`);
  }
}

const KIND_NAMES: Record<RecordKind, string> = {
  [RecordKind.NormalEntry]: 'normal entry',
  [RecordKind.ConfChangeEntry]: 'conf-change entry',
  [RecordKind.HardState]: 'hard state',
  [RecordKind.SnapshotMeta]: 'snapshot meta',
  [RecordKind.LogPosition]: 'log position',
};

function kindName(kind: number): string {
  return (KIND_NAMES as Record<number, string | undefined>)[kind] ?? `unknown kind ${kind}`;
}

/** Checks length and checksum; returns the record's kind. */
function open(buf: Uint8Array): number {
  if (buf.length < HEADER_BYTES) throw new DecodeError(`record of ${buf.length} bytes is shorter than its ${HEADER_BYTES}-byte header`);
  const stored = ((buf[0]! << 24) | (buf[1]! << 16) | (buf[2]! << 8) | buf[3]!) >>> 0;
  const actual = crc32(buf.subarray(4));
  if (stored !== actual) throw new DecodeError(`checksum mismatch (stored ${hex(stored)}, computed ${hex(actual)})`);
  return buf[4]!;
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

function expectKind(buf: Uint8Array, ...kinds: RecordKind[]): number {
  const kind = open(buf);
  if (!(kinds as readonly number[]).includes(kind)) throw new DecodeError(`expected ${kinds.map(kindName).join(' or ')}, found ${kindName(kind)}`);
  return kind;
}

/** Decodes a log entry. Normal entries' data is a view into `buf` (no copy). */
export function decodeEntry(buf: Uint8Array): Entry {
  const kind = expectKind(buf, RecordKind.NormalEntry, RecordKind.ConfChangeEntry);
  const r = new Reader(buf);
  const index = r.varint('index');
  const term = r.varint('term');
  if (kind === RecordKind.NormalEntry) return { type: 'normal', index, term, data: r.rest() };
  const code = r.byte('change type');
  const type = CHANGE_TYPES[code];
  if (type === undefined) throw new DecodeError(`unknown conf change type ${code}`);
  return { type: 'confChange', index, term, change: { type, node: r.restString() } };
}

export function decodeHardState(buf: Uint8Array): HardState {
  expectKind(buf, RecordKind.HardState);
  const r = new Reader(buf);
  const term = r.varint('term');
  const commit = r.varint('commit');
  return { term, vote: r.restString(), commit };
}

export function decodeSnapshotMeta(buf: Uint8Array): SnapshotMeta {
  expectKind(buf, RecordKind.SnapshotMeta);
  const r = new Reader(buf);
  const index = r.varint('index');
  const term = r.varint('term');
  const voters = r.ids('voters');
  const learners = r.ids('learners');
  r.end('snapshot meta');
  const confState: ConfState = { voters, learners };
  return { index, term, confState };
}

export function decodeLogPosition(buf: Uint8Array): LogPosition {
  expectKind(buf, RecordKind.LogPosition);
  const r = new Reader(buf);
  const index = r.varint('index');
  const term = r.varint('term');
  r.end('log position');
  return { index, term };
}
