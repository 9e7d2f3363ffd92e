// How the KV table keeps one entry: packed into a single flat latin1 string (one char per byte).
//
// Why: with a million keys the garbage collector's work is proportional to the number of heap
// objects, and every object has a header. A record object (72 B) holding a value string (16 B +
// bytes) is two objects per key besides the key; the packed string is one, ~50 B smaller, and a
// full mark of a 1e6-key heap took 380 ms with records against 150 ms packed (measured on this
// machine, ADR 0015). A Uint8Array value would cost ~400 B more (its ArrayBuffer and backing store).
//
// Layout (chars are bytes 0..255; numbers big-endian, base 256):
//   [0, 7)    CreateIndex     7 chars (56 bits: Raft indexes are < 2^53)
//   [7, 14)   ModifyIndex
//   [14, 21)  LockIndex
//   [21, 29)  Flags           8 chars (uint64)
//   [29]      session length  0 = no session (an empty session id is never stored)
//   [30, 30 + L)  session     its UTF-16 code units (session ids are ASCII UUIDs)
//   then      the value's bytes
// Records are immutable: a write stores a new string, so snapshot views and readers holding one see
// a consistent entry.

import type { KvEntry } from './kv.ts';

/** A packed KV record (see the layout above). Build with packRecord; read with the accessors. */
export type KvRecord = string & { readonly __packedKvRecord: true };

const CREATE_AT = 0;
const MODIFY_AT = 7;
const LOCK_AT = 14;
const FLAGS_AT = 21;
const SESSION_LENGTH_AT = 29;
const SESSION_AT = 30;
const MAX_SESSION_CHARS = 255;
/** String.fromCharCode takes its arguments on the stack: build long strings in slices. */
const SLICE = 8192;

const ZERO_FLAGS = 0n;
/** Flags of 0 (nearly every key) share one BigInt instead of holding one each. */
export function sharedFlags(flags: bigint): bigint {
  return flags === ZERO_FLAGS ? ZERO_FLAGS : flags;
}

/** Reused for every record built (the FSM applies one command at a time). */
let scratch = new Uint8Array(4096);

export interface RecordFields {
  readonly createIndex: number;
  readonly modifyIndex: number;
  readonly lockIndex: number;
  readonly flags: bigint;
  readonly session: string | undefined;
}

/** Packs a record whose value is given as bytes. */
export function packRecord(fields: RecordFields, value: Uint8Array): KvRecord {
  return pack(fields, value.length, (out, at) => out.set(value, at));
}

function pack(fields: RecordFields, valueLength: number, writeValue: (out: Uint8Array, at: number) => void): KvRecord {
  const session = fields.session ?? '';
  if (session.length > MAX_SESSION_CHARS) throw new RangeError(`session id of ${session.length} chars is longer than ${MAX_SESSION_CHARS}`);
  const total = SESSION_AT + session.length + valueLength;
  if (scratch.length < total) scratch = new Uint8Array(Math.max(total, scratch.length * 2));
  const out = scratch;
  writeIndex(out, CREATE_AT, fields.createIndex);
  writeIndex(out, MODIFY_AT, fields.modifyIndex);
  writeIndex(out, LOCK_AT, fields.lockIndex);
  const high = Number(fields.flags >> 32n);
  const low = Number(fields.flags & 0xffffffffn);
  writeUint32(out, FLAGS_AT, high);
  writeUint32(out, FLAGS_AT + 4, low);
  out[SESSION_LENGTH_AT] = session.length;
  let at = SESSION_AT;
  let wide = false;
  for (let i = 0; i < session.length; i++) {
    const code = session.charCodeAt(i);
    if (code > 0xff) wide = true;
    out[at++] = code;
  }
  writeValue(out, at);
  if (wide) return packWide(out, total, session);
  return latin1(out, total) as KvRecord;
}

/** A session id with chars above U+00FF (never made by Konsul, possible in a restored snapshot). */
function packWide(out: Uint8Array, total: number, session: string): KvRecord {
  return (latin1(out.subarray(0, SESSION_AT), SESSION_AT) + session + latin1(out.subarray(SESSION_AT + session.length), total - SESSION_AT - session.length)) as KvRecord;
}

function latin1(bytes: Uint8Array, length: number): string {
  if (length <= SLICE) return String.fromCharCode.apply(null, bytes.subarray(0, length) as unknown as number[]);
  let s = '';
  for (let at = 0; at < length; at += SLICE) s += String.fromCharCode.apply(null, bytes.subarray(at, Math.min(length, at + SLICE)) as unknown as number[]);
  return s;
}

export function createIndexOf(r: KvRecord): number {
  return readIndex(r, CREATE_AT);
}

export function modifyIndexOf(r: KvRecord): number {
  return readIndex(r, MODIFY_AT);
}

export function lockIndexOf(r: KvRecord): number {
  return readIndex(r, LOCK_AT);
}

export function flagsOf(r: KvRecord): bigint {
  const high = readUint32(r, FLAGS_AT);
  const low = readUint32(r, FLAGS_AT + 4);
  if (high === 0 && low === 0) return ZERO_FLAGS;
  return (BigInt(high) << 32n) | BigInt(low);
}

export function sessionOf(r: KvRecord): string | undefined {
  const length = r.charCodeAt(SESSION_LENGTH_AT);
  return length === 0 ? undefined : r.slice(SESSION_AT, SESSION_AT + length);
}

/** Where the value's bytes start in the record. */
export function valueStart(r: KvRecord): number {
  return SESSION_AT + r.charCodeAt(SESSION_LENGTH_AT);
}

export function valueLengthOf(r: KvRecord): number {
  return r.length - valueStart(r);
}

/** A fresh copy of the value's bytes. */
export function valueOf(r: KvRecord): Uint8Array {
  const from = valueStart(r);
  const bytes = new Uint8Array(r.length - from);
  for (let i = from; i < r.length; i++) bytes[i - from] = r.charCodeAt(i);
  return bytes;
}

/** Whether the record's value is exactly `value`. */
export function valueEquals(r: KvRecord, value: Uint8Array): boolean {
  const from = valueStart(r);
  if (r.length - from !== value.length) return false;
  for (let i = 0; i < value.length; i++) if (r.charCodeAt(from + i) !== value[i]) return false;
  return true;
}

/** The entry as the API shows it (a fresh object with a fresh value buffer). */
export function recordToEntry(key: string, r: KvRecord): KvEntry {
  const session = sessionOf(r);
  return {
    Key: key,
    CreateIndex: createIndexOf(r),
    ModifyIndex: modifyIndexOf(r),
    LockIndex: lockIndexOf(r),
    Flags: flagsOf(r),
    Value: valueOf(r),
    ...(session !== undefined ? { Session: session } : {}),
  };
}

export function recordFromEntry(entry: KvEntry): KvRecord {
  return packRecord({ createIndex: entry.CreateIndex, modifyIndex: entry.ModifyIndex, lockIndex: entry.LockIndex, flags: entry.Flags, session: entry.Session }, entry.Value);
}

function writeIndex(out: Uint8Array, at: number, n: number): void {
  // 56 bits: the high 24 above 2^32, the low 32.
  const high = Math.floor(n / 0x100000000);
  const low = n >>> 0;
  out[at] = (high >>> 16) & 0xff;
  out[at + 1] = (high >>> 8) & 0xff;
  out[at + 2] = high & 0xff;
  writeUint32(out, at + 3, low);
}

function readIndex(r: string, at: number): number {
  const high = (r.charCodeAt(at) << 16) | (r.charCodeAt(at + 1) << 8) | r.charCodeAt(at + 2);
  return high * 0x100000000 + readUint32(r, at + 3);
}

function writeUint32(out: Uint8Array, at: number, n: number): void {
  out[at] = n >>> 24;
  out[at + 1] = (n >>> 16) & 0xff;
  out[at + 2] = (n >>> 8) & 0xff;
  out[at + 3] = n & 0xff;
}

function readUint32(r: string, at: number): number {
  return ((r.charCodeAt(at) << 24) | (r.charCodeAt(at + 1) << 16) | (r.charCodeAt(at + 2) << 8) | r.charCodeAt(at + 3)) >>> 0;
}
