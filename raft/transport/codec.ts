// Wire format of the server-to-server transport: length-prefixed binary frames over a byte stream.
//
//   frame    u32 BE length (of kind + body, 1 .. maxFrameBytes), u8 kind, body
//
// Numbers are unsigned LEB128 varints (safe integers up to 2^53); strings and byte strings are a
// varint length then the bytes (UTF-8 for strings); flags are one byte, 0 or 1. The last field of
// a body may run to the end of the frame ("rest"), so big payloads need no length prefix.
//
//   hello         u32 magic 'KNSL', u8 version, str id, str advertise, rest = meta as JSON object
//   message       one Raft message: u8 type, varint term, str from, str to, then per type (below)
//   request       varint id, str method, rest = body
//   response      varint id, rest = body
//   errorResponse varint id, str message, u8 hasCode, [str code]
//   snapBegin     varint stream, varint term, str from, str to, snapshot meta, varint totalBytes
//   snapChunk     varint stream, rest = data
//   snapEnd       varint stream
//
// Message bodies after the envelope:
//   app           varint index, varint logTerm, varint commit, varint #entries, entry*
//                 entry = u8 type (1 normal, 2 confChange), varint index, varint term,
//                         normal: bytes data; confChange: u8 change type, str node
//   appResp       varint index, u8 reject, varint rejectHint, varint logTerm
//   vote/preVote  varint index, varint logTerm, u8 transfer
//   *VoteResp     u8 reject
//   heartbeat     varint commit, str context
//   heartbeatResp str context
//   snap          snapshot meta, bytes data        (the transport streams snapshots instead)
//   timeoutNow    nothing
//   readIndex     str context
//   readIndexResp str context, varint index
//   snapshot meta = varint index, varint term, varint #voters, str*, varint #learners, str*
//
// No checksum: TCP (and TLS's MAC) already protect the bytes in flight, unlike the disk records.
import type { ConfChangeType, Entry, Message, MessageType, SnapshotMeta } from '../core/types.ts';
import { TransportCodecError } from './errors.ts';

export const PROTOCOL_VERSION = 1;
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;
/** The u32 length prefix. */
export const LENGTH_PREFIX_BYTES = 4;
const HELLO_MAGIC = 0x4b4e534c;

/** What a server says about itself as the first frame on every connection. */
export interface PeerHello {
  readonly id: string;
  /** Its RPC address "host:port", as the others should dial it. */
  readonly advertise: string;
  readonly meta: Record<string, unknown>;
}

export type Frame =
  | { readonly kind: 'hello'; readonly hello: PeerHello }
  | { readonly kind: 'message'; readonly message: Message }
  | { readonly kind: 'request'; readonly id: number; readonly method: string; readonly body: Uint8Array }
  | { readonly kind: 'response'; readonly id: number; readonly body: Uint8Array }
  | { readonly kind: 'errorResponse'; readonly id: number; readonly message: string; readonly code: string | undefined }
  | SnapBeginFrame
  | { readonly kind: 'snapChunk'; readonly stream: number; readonly data: Uint8Array }
  | { readonly kind: 'snapEnd'; readonly stream: number };

export interface SnapBeginFrame {
  readonly kind: 'snapBegin';
  readonly stream: number;
  readonly from: string;
  readonly to: string;
  readonly term: number;
  readonly meta: SnapshotMeta;
  readonly totalBytes: number;
}

export type FrameKind = Frame['kind'];

const KIND_CODES: Record<FrameKind, number> = {
  hello: 1,
  message: 2,
  request: 3,
  response: 4,
  errorResponse: 5,
  snapBegin: 6,
  snapChunk: 7,
  snapEnd: 8,
};
const KINDS: readonly (FrameKind | undefined)[] = [
  undefined, 'hello', 'message', 'request', 'response', 'errorResponse', 'snapBegin', 'snapChunk', 'snapEnd',
];

const MESSAGE_CODES: Record<MessageType, number> = {
  app: 1,
  appResp: 2,
  vote: 3,
  preVote: 4,
  voteResp: 5,
  preVoteResp: 6,
  heartbeat: 7,
  heartbeatResp: 8,
  snap: 9,
  timeoutNow: 10,
  readIndex: 11,
  readIndexResp: 12,
};
const MESSAGE_TYPES: readonly (MessageType | undefined)[] = [
  undefined, 'app', 'appResp', 'vote', 'preVote', 'voteResp', 'preVoteResp', 'heartbeat', 'heartbeatResp', 'snap',
  'timeoutNow', 'readIndex', 'readIndexResp',
];

const ENTRY_NORMAL = 1;
const ENTRY_CONF_CHANGE = 2;
const CHANGE_CODES: Record<ConfChangeType, number> = { addVoter: 1, removeNode: 2, addLearner: 3 };
const CHANGE_TYPES: readonly (ConfChangeType | undefined)[] = [undefined, 'addVoter', 'removeNode', 'addLearner'];

/**
 * Whether decoding `payload` yields byte fields (entry or snapshot data, request or response
 * bodies, chunk data): those are views into the payload, so a payload that is a view into a larger
 * socket buffer must be copied first, or every retained entry would pin a whole read buffer.
 */
export function payloadHoldsBytes(payload: Uint8Array): boolean {
  const kind = payload[0];
  if (kind === KIND_CODES.message) return payload[1] === MESSAGE_CODES.app || payload[1] === MESSAGE_CODES.snap;
  return kind === KIND_CODES.request || kind === KIND_CODES.response || kind === KIND_CODES.snapChunk;
}

// ---------------------------------------------------------------------------------------------
// Sizes and writing. Sizes are computed first so every frame (or batch of frames) is one allocation.
// ---------------------------------------------------------------------------------------------

function num(n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`cannot encode ${n}: not a non-negative safe integer`);
  return n;
}

function varintSize(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x200000) return 3;
  let size = 4;
  n = Math.floor(n / 0x10000000);
  while (n > 0) {
    size++;
    n = Math.floor(n / 0x80);
  }
  return size;
}

function numSize(n: number): number {
  return varintSize(num(n));
}

function strSize(s: string): number {
  const n = Buffer.byteLength(s, 'utf8');
  return varintSize(n) + n;
}

function bytesSize(b: Uint8Array): number {
  return varintSize(b.length) + b.length;
}

class Writer {
  pos: number;
  readonly buf: Buffer;

  constructor(buf: Buffer, pos = 0) {
    this.buf = buf;
    this.pos = pos;
  }

  u8(n: number): void {
    this.buf[this.pos++] = n;
  }

  u32(n: number): void {
    this.buf.writeUInt32BE(n, this.pos);
    this.pos += 4;
  }

  varint(n: number): void {
    // Division rather than shifts: indexes may exceed 32 bits.
    while (n >= 0x80) {
      this.buf[this.pos++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.buf[this.pos++] = n;
  }

  str(s: string): void {
    this.varint(Buffer.byteLength(s, 'utf8'));
    this.pos += this.buf.write(s, this.pos, 'utf8');
  }

  bytes(b: Uint8Array): void {
    this.varint(b.length);
    this.raw(b);
  }

  raw(b: Uint8Array): void {
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  flag(b: boolean): void {
    this.buf[this.pos++] = b ? 1 : 0;
  }
}

function entrySize(e: Entry): number {
  const head = 1 + numSize(e.index) + numSize(e.term);
  if (e.type === 'normal') return head + bytesSize(e.data);
  if (CHANGE_CODES[e.change.type] === undefined) throw new RangeError(`cannot encode conf change type '${String(e.change.type)}'`);
  return head + 1 + strSize(e.change.node);
}

function snapshotMetaSize(meta: SnapshotMeta): number {
  let size = numSize(meta.index) + numSize(meta.term) + varintSize(meta.confState.voters.length)
    + varintSize(meta.confState.learners.length);
  for (const id of meta.confState.voters) size += strSize(id);
  for (const id of meta.confState.learners) size += strSize(id);
  return size;
}

function writeSnapshotMeta(w: Writer, meta: SnapshotMeta): void {
  w.varint(meta.index);
  w.varint(meta.term);
  w.varint(meta.confState.voters.length);
  for (const id of meta.confState.voters) w.str(id);
  w.varint(meta.confState.learners.length);
  for (const id of meta.confState.learners) w.str(id);
}

/** Size of a message's frame body (after the kind byte); validates every number on the way. */
function messageBodySize(m: Message): number {
  const envelope = 1 + numSize(m.term) + strSize(m.from) + strSize(m.to);
  switch (m.type) {
    case 'app': {
      let size = envelope + numSize(m.index) + numSize(m.logTerm) + numSize(m.commit) + varintSize(m.entries.length);
      for (const e of m.entries) size += entrySize(e);
      return size;
    }
    case 'appResp':
      return envelope + numSize(m.index) + 1 + numSize(m.rejectHint) + numSize(m.logTerm);
    case 'vote':
    case 'preVote':
      return envelope + numSize(m.index) + numSize(m.logTerm) + 1;
    case 'voteResp':
    case 'preVoteResp':
      return envelope + 1;
    case 'heartbeat':
      return envelope + numSize(m.commit) + strSize(m.context);
    case 'heartbeatResp':
    case 'readIndex':
      return envelope + strSize(m.context);
    case 'snap':
      return envelope + snapshotMetaSize(m.snapshot.meta) + bytesSize(m.snapshot.data);
    case 'timeoutNow':
      return envelope;
    case 'readIndexResp':
      return envelope + strSize(m.context) + numSize(m.index);
    default:
      return unknownMessage(m);
  }
}

function unknownMessage(m: never): never {
  throw new RangeError(`cannot encode message type '${String((m as { type: unknown }).type)}'`);
}

function writeMessageBody(w: Writer, m: Message): void {
  w.u8(MESSAGE_CODES[m.type]);
  w.varint(m.term);
  w.str(m.from);
  w.str(m.to);
  switch (m.type) {
    case 'app':
      w.varint(m.index);
      w.varint(m.logTerm);
      w.varint(m.commit);
      w.varint(m.entries.length);
      for (const e of m.entries) {
        if (e.type === 'normal') {
          w.u8(ENTRY_NORMAL);
          w.varint(e.index);
          w.varint(e.term);
          w.bytes(e.data);
        } else {
          w.u8(ENTRY_CONF_CHANGE);
          w.varint(e.index);
          w.varint(e.term);
          w.u8(CHANGE_CODES[e.change.type]);
          w.str(e.change.node);
        }
      }
      return;
    case 'appResp':
      w.varint(m.index);
      w.flag(m.reject);
      w.varint(m.rejectHint);
      w.varint(m.logTerm);
      return;
    case 'vote':
    case 'preVote':
      w.varint(m.index);
      w.varint(m.logTerm);
      w.flag(m.transfer);
      return;
    case 'voteResp':
    case 'preVoteResp':
      w.flag(m.reject);
      return;
    case 'heartbeat':
      w.varint(m.commit);
      w.str(m.context);
      return;
    case 'heartbeatResp':
    case 'readIndex':
      w.str(m.context);
      return;
    case 'snap':
      writeSnapshotMeta(w, m.snapshot.meta);
      w.bytes(m.snapshot.data);
      return;
    case 'timeoutNow':
      return;
    case 'readIndexResp':
      w.str(m.context);
      w.varint(m.index);
      return;
    default:
      unknownMessage(m);
  }
}

function checkFrameSize(bodySize: number): number {
  const payload = 1 + bodySize;
  if (payload > 0xffffffff) throw new RangeError(`frame of ${payload} bytes does not fit the u32 length prefix`);
  return payload;
}

function startFrame(w: Writer, kind: FrameKind, payload: number): void {
  w.u32(payload);
  w.u8(KIND_CODES[kind]);
}

/**
 * Encodes messages as consecutive message frames in one buffer (one socket write for a whole
 * Ready). Throws RangeError for a message it cannot represent (a bug in the caller).
 */
export function encodeMessages(messages: readonly Message[]): Buffer {
  const sizes = new Array<number>(messages.length);
  let total = 0;
  for (let i = 0; i < messages.length; i++) {
    const payload = checkFrameSize(messageBodySize(messages[i]!));
    sizes[i] = payload;
    total += LENGTH_PREFIX_BYTES + payload;
  }
  const w = new Writer(Buffer.allocUnsafe(total));
  for (let i = 0; i < messages.length; i++) {
    startFrame(w, 'message', sizes[i]!);
    writeMessageBody(w, messages[i]!);
  }
  return w.buf;
}

/** The frame's body size, validating numbers and strings as it goes. */
function frameBodySize(f: Frame): number {
  switch (f.kind) {
    case 'hello':
      return 4 + 1 + strSize(f.hello.id) + strSize(f.hello.advertise) + Buffer.byteLength(JSON.stringify(f.hello.meta), 'utf8');
    case 'message':
      return messageBodySize(f.message);
    case 'request':
      return numSize(f.id) + strSize(f.method) + f.body.length;
    case 'response':
      return numSize(f.id) + f.body.length;
    case 'errorResponse':
      return numSize(f.id) + strSize(f.message) + 1 + (f.code === undefined ? 0 : strSize(f.code));
    case 'snapBegin':
      return numSize(f.stream) + numSize(f.term) + strSize(f.from) + strSize(f.to) + snapshotMetaSize(f.meta) + numSize(f.totalBytes);
    case 'snapChunk':
      return numSize(f.stream) + f.data.length;
    case 'snapEnd':
      return numSize(f.stream);
    default:
      return unknownFrame(f);
  }
}

function unknownFrame(f: never): never {
  throw new RangeError(`cannot encode frame kind '${String((f as { kind: unknown }).kind)}'`);
}

/** Encodes one frame, length prefix included. */
export function encodeFrame(f: Frame): Buffer {
  const payload = checkFrameSize(frameBodySize(f));
  const w = new Writer(Buffer.allocUnsafe(LENGTH_PREFIX_BYTES + payload));
  startFrame(w, f.kind, payload);
  switch (f.kind) {
    case 'hello':
      w.u32(HELLO_MAGIC);
      w.u8(PROTOCOL_VERSION);
      w.str(f.hello.id);
      w.str(f.hello.advertise);
      w.pos += w.buf.write(JSON.stringify(f.hello.meta), w.pos, 'utf8');
      break;
    case 'message':
      writeMessageBody(w, f.message);
      break;
    case 'request':
      w.varint(f.id);
      w.str(f.method);
      w.raw(f.body);
      break;
    case 'response':
      w.varint(f.id);
      w.raw(f.body);
      break;
    case 'errorResponse':
      w.varint(f.id);
      w.str(f.message);
      w.flag(f.code !== undefined);
      if (f.code !== undefined) w.str(f.code);
      break;
    case 'snapBegin':
      w.varint(f.stream);
      w.varint(f.term);
      w.str(f.from);
      w.str(f.to);
      writeSnapshotMeta(w, f.meta);
      w.varint(f.totalBytes);
      break;
    case 'snapChunk':
      w.varint(f.stream);
      w.raw(f.data);
      break;
    case 'snapEnd':
      w.varint(f.stream);
      break;
    default:
      unknownFrame(f);
  }
  return w.buf;
}

/**
 * The length prefix, kind and stream id of a snapChunk frame carrying `dataBytes`: the transport
 * writes this header and then the snapshot's bytes themselves, so chunks are never copied.
 */
export function encodeSnapChunkHeader(stream: number, dataBytes: number): Buffer {
  const payload = checkFrameSize(numSize(stream) + dataBytes);
  const w = new Writer(Buffer.allocUnsafe(LENGTH_PREFIX_BYTES + payload - dataBytes));
  startFrame(w, 'snapChunk', payload);
  w.varint(stream);
  return w.buf;
}

// ---------------------------------------------------------------------------------------------
// Decoding. Every bound is checked against the frame, so garbage throws TransportCodecError and
// never makes us allocate more than the frame itself.
// ---------------------------------------------------------------------------------------------

class Reader {
  private readonly buf: Buffer;
  private pos: number;

  constructor(buf: Buffer, pos: number) {
    this.buf = buf;
    this.pos = pos;
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.buf.length) throw new TransportCodecError(`frame ends inside ${what}`);
  }

  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }

  u32(what: string): number {
    this.need(4, what);
    const n = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return n;
  }

  flag(what: string): boolean {
    const b = this.u8(what);
    if (b > 1) throw new TransportCodecError(`${what} flag is ${b}, not 0 or 1`);
    return b === 1;
  }

  varint(what: string): number {
    const buf = this.buf;
    if (this.pos < buf.length && buf[this.pos]! < 0x80) return buf[this.pos++]!;
    let result = 0;
    let scale = 1;
    for (;;) {
      if (this.pos >= buf.length) throw new TransportCodecError(`frame ends inside ${what}`);
      const byte = buf[this.pos++]!;
      result += (byte & 0x7f) * scale;
      if (byte < 0x80) break;
      scale *= 0x80;
      if (scale > 2 ** 53) throw new TransportCodecError(`${what} does not fit a safe integer`);
    }
    if (!Number.isSafeInteger(result)) throw new TransportCodecError(`${what} does not fit a safe integer`);
    return result;
  }

  str(what: string): string {
    const n = this.varint(`${what} length`);
    this.need(n, what);
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }

  /** A view into the frame (no copy); a plain Uint8Array, like the storage codec's. */
  bytes(what: string): Uint8Array {
    const n = this.varint(`${what} length`);
    this.need(n, what);
    const view = new Uint8Array(this.buf.buffer, this.buf.byteOffset + this.pos, n);
    this.pos += n;
    return view;
  }

  rest(): Uint8Array {
    const view = new Uint8Array(this.buf.buffer, this.buf.byteOffset + this.pos, this.buf.length - this.pos);
    this.pos = this.buf.length;
    return view;
  }

  restString(): string {
    const s = this.buf.toString('utf8', this.pos);
    this.pos = this.buf.length;
    return s;
  }

  remaining(): number {
    return this.buf.length - this.pos;
  }

  ids(what: string): string[] {
    const count = this.varint(`${what} count`);
    // Each id takes at least one byte: a count beyond the frame is garbage, not a huge allocation.
    if (count > this.remaining()) throw new TransportCodecError(`${what} count ${count} exceeds the frame`);
    const ids: string[] = [];
    for (let i = 0; i < count; i++) ids.push(this.str(what));
    return ids;
  }

  end(what: string): void {
    if (this.pos !== this.buf.length) throw new TransportCodecError(`${this.buf.length - this.pos} unexpected bytes after ${what}`);
  }
}

function readSnapshotMeta(r: Reader): SnapshotMeta {
  const index = r.varint('snapshot index');
  const term = r.varint('snapshot term');
  const voters = r.ids('voters');
  const learners = r.ids('learners');
  return { index, term, confState: { voters, learners } };
}

function readEntries(r: Reader): Entry[] {
  const count = r.varint('entry count');
  // An entry takes at least three bytes.
  if (count * 3 > r.remaining()) throw new TransportCodecError(`entry count ${count} exceeds the frame`);
  const entries = new Array<Entry>(count);
  for (let i = 0; i < count; i++) {
    const type = r.u8('entry type');
    const index = r.varint('entry index');
    const term = r.varint('entry term');
    if (type === ENTRY_NORMAL) {
      entries[i] = { type: 'normal', index, term, data: r.bytes('entry data') };
    } else if (type === ENTRY_CONF_CHANGE) {
      const code = r.u8('conf change type');
      const changeType = CHANGE_TYPES[code];
      if (changeType === undefined) throw new TransportCodecError(`unknown conf change type ${code}`);
      entries[i] = { type: 'confChange', index, term, change: { type: changeType, node: r.str('conf change node') } };
    } else {
      throw new TransportCodecError(`unknown entry type ${type}`);
    }
  }
  return entries;
}

function readMessage(r: Reader): Message {
  const code = r.u8('message type');
  const type = MESSAGE_TYPES[code];
  if (type === undefined) throw new TransportCodecError(`unknown message type ${code}`);
  const term = r.varint('term');
  const from = r.str('from');
  const to = r.str('to');
  let m: Message;
  switch (type) {
    case 'app': {
      const index = r.varint('index');
      const logTerm = r.varint('logTerm');
      const commit = r.varint('commit');
      m = { type, from, to, term, index, logTerm, commit, entries: readEntries(r) };
      break;
    }
    case 'appResp': {
      const index = r.varint('index');
      const reject = r.flag('reject');
      const rejectHint = r.varint('rejectHint');
      m = { type, from, to, term, index, reject, rejectHint, logTerm: r.varint('logTerm') };
      break;
    }
    case 'vote':
    case 'preVote': {
      const index = r.varint('index');
      const logTerm = r.varint('logTerm');
      m = { type, from, to, term, index, logTerm, transfer: r.flag('transfer') };
      break;
    }
    case 'voteResp':
    case 'preVoteResp':
      m = { type, from, to, term, reject: r.flag('reject') };
      break;
    case 'heartbeat': {
      const commit = r.varint('commit');
      m = { type, from, to, term, commit, context: r.str('context') };
      break;
    }
    case 'heartbeatResp':
    case 'readIndex':
      m = { type, from, to, term, context: r.str('context') };
      break;
    case 'snap': {
      const meta = readSnapshotMeta(r);
      m = { type, from, to, term, snapshot: { meta, data: r.bytes('snapshot data') } };
      break;
    }
    case 'timeoutNow':
      m = { type, from, to, term };
      break;
    case 'readIndexResp': {
      const context = r.str('context');
      m = { type, from, to, term, context, index: r.varint('index') };
      break;
    }
  }
  r.end(`${type} message`);
  return m;
}

function readHello(r: Reader): PeerHello {
  const magic = r.u32('hello magic');
  if (magic !== HELLO_MAGIC) throw new TransportCodecError('not a Konsul RPC hello');
  const version = r.u8('protocol version');
  if (version !== PROTOCOL_VERSION) throw new TransportCodecError(`unsupported protocol version ${version} (this server speaks ${PROTOCOL_VERSION})`);
  const id = r.str('id');
  const advertise = r.str('advertise');
  let meta: unknown;
  try {
    meta = JSON.parse(r.restString());
  } catch {
    throw new TransportCodecError('hello meta is not JSON');
  }
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) throw new TransportCodecError('hello meta is not a JSON object');
  return { id, advertise, meta: meta as Record<string, unknown> };
}

/**
 * Decodes a frame's payload (kind byte + body, without the length prefix). Byte fields (entry and
 * snapshot data, request and response bodies, chunk data) are views into `payload`: the caller
 * must own that memory (see frameKindHoldsBytes).
 */
export function decodeFrame(payload: Uint8Array): Frame {
  const buf = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.length);
  if (buf.length < 1) throw new TransportCodecError('empty frame');
  const kind = KINDS[buf[0]!];
  if (kind === undefined) throw new TransportCodecError(`unknown frame kind ${buf[0]}`);
  const r = new Reader(buf, 1);
  switch (kind) {
    case 'hello':
      return { kind, hello: readHello(r) };
    case 'message':
      return { kind, message: readMessage(r) };
    case 'request': {
      const id = r.varint('request id');
      const method = r.str('method');
      return { kind, id, method, body: r.rest() };
    }
    case 'response': {
      const id = r.varint('request id');
      return { kind, id, body: r.rest() };
    }
    case 'errorResponse': {
      const id = r.varint('request id');
      const message = r.str('error message');
      const code = r.flag('has code') ? r.str('error code') : undefined;
      r.end('error response');
      return { kind, id, message, code };
    }
    case 'snapBegin': {
      const stream = r.varint('stream');
      const term = r.varint('term');
      const from = r.str('from');
      const to = r.str('to');
      const meta = readSnapshotMeta(r);
      const totalBytes = r.varint('total bytes');
      r.end('snapshot begin');
      return { kind, stream, from, to, term, meta, totalBytes };
    }
    case 'snapChunk': {
      const stream = r.varint('stream');
      return { kind, stream, data: r.rest() };
    }
    case 'snapEnd': {
      const stream = r.varint('stream');
      r.end('snapshot end');
      return { kind, stream };
    }
  }
}

/**
 * Cuts a byte stream into frame payloads. A payload lying whole inside one pushed chunk is a view of
 * it (`owned` false); a payload spanning chunks is copied into its own buffer, allocated once from
 * the length prefix (which is checked against maxFrameBytes first).
 */
export class FrameReader {
  private readonly maxFrameBytes: number;
  private readonly header = Buffer.alloc(LENGTH_PREFIX_BYTES);
  private headerFilled = 0;
  private frame: Buffer | null = null;
  private frameFilled = 0;

  constructor(maxFrameBytes = DEFAULT_MAX_FRAME_BYTES) {
    this.maxFrameBytes = maxFrameBytes;
  }

  /** Bytes of a frame received so far but not yet complete. */
  bufferedBytes(): number {
    return this.frame ? LENGTH_PREFIX_BYTES + this.frameFilled : this.headerFilled;
  }

  /** Calls onFrame for every complete frame in order; throws TransportCodecError on a bad length. */
  push(chunk: Buffer, onFrame: (payload: Buffer, owned: boolean) => void): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.frame) {
        const n = Math.min(this.frame.length - this.frameFilled, chunk.length - pos);
        chunk.copy(this.frame, this.frameFilled, pos, pos + n);
        this.frameFilled += n;
        pos += n;
        if (this.frameFilled === this.frame.length) {
          const done = this.frame;
          this.frame = null;
          this.frameFilled = 0;
          onFrame(done, true);
        }
        continue;
      }
      let length: number;
      if (this.headerFilled === 0 && chunk.length - pos >= LENGTH_PREFIX_BYTES) {
        length = chunk.readUInt32BE(pos);
        pos += LENGTH_PREFIX_BYTES;
      } else {
        const n = Math.min(LENGTH_PREFIX_BYTES - this.headerFilled, chunk.length - pos);
        chunk.copy(this.header, this.headerFilled, pos, pos + n);
        this.headerFilled += n;
        pos += n;
        if (this.headerFilled < LENGTH_PREFIX_BYTES) return;
        this.headerFilled = 0;
        length = this.header.readUInt32BE(0);
      }
      if (length === 0) throw new TransportCodecError('empty frame');
      if (length > this.maxFrameBytes) throw new TransportCodecError(`frame of ${length} bytes exceeds the ${this.maxFrameBytes}-byte limit`);
      if (chunk.length - pos >= length) {
        onFrame(chunk.subarray(pos, pos + length), false);
        pos += length;
      } else {
        this.frame = Buffer.allocUnsafeSlow(length);
        this.frameFilled = 0;
      }
    }
  }
}

/** Decodes a buffer holding whole frames (tests and tools); throws if it ends inside a frame. */
export function decodeFrames(bytes: Buffer, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Frame[] {
  const reader = new FrameReader(maxFrameBytes);
  const frames: Frame[] = [];
  reader.push(bytes, (payload) => frames.push(decodeFrame(payload)));
  if (reader.bufferedBytes() > 0) throw new TransportCodecError('bytes end inside a frame');
  return frames;
}
