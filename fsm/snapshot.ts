// The FSM snapshot: the whole state (every table, its tombstones and indexes, the applied index) as
// one deterministic byte string. Two replicas with the same state produce the same bytes, so
// snapshots can be compared and hashed; restoring and snapshotting again gives the input back.
//
// Layout (integers big-endian; u64 values are Raft indexes < 2^53, except Flags which uses all 64):
//   magic "KNSL" | u16 format version | u64 applied index | u32 section count
//   section*: str name | u32 payload length | payload
//   u32 CRC-32 (IEEE) of everything before it
// where str = u32 UTF-8 length + bytes. Sections appear in a fixed order; a reader refuses an
// unknown section (a snapshot from a newer version) and treats a missing one as an empty table,
// so tables added later (catalog, health, sessions, acl) extend the format without a new version.
//
// KV section payload:
//   u64 table index | u32 entry count | entry* | u32 tombstone count | tombstone*
//   entry     = str key | u64 CreateIndex | u64 ModifyIndex | u64 LockIndex | u64 Flags
//               | u8 has session | [str session] | u32 value length | value bytes
//   tombstone = str key | u64 delete index
// Entries and tombstones are in key order (strictly increasing), which the reader checks.
//
// Events section payload (fsm/state/events.ts; oldest first, at most 256):
//   u64 table index | u64 last LTime | u32 event count | event*
//   event = str ID | str Name | u32 payload length | payload | str NodeFilter | str ServiceFilter
//           | str TagFilter | u32 Version | u64 LTime | u64 index
// LTimes and indexes strictly increase, which the reader checks. Written only when the table has
// ever been used, so snapshots without events keep their earlier bytes.
//
// Catalog section payload (fsm/state/catalog-snapshot.ts): u32 length | UTF-8 JSON of the table's
// dump, nodes, services and checks in key order. Written only when the catalog has ever been used.
//
// Sessions section payload (fsm/state/sessions-snapshot.ts): UTF-8 JSON of the table's dump
// (sessions in ID order with their renewal index, lock-delays in key order, the latest proposer
// clock). Written only when the table has ever been used.

import type { KvEntry, KvTableDump, KvTombstone } from './state/kv.ts';
import { compareKeys } from './state/sorted-keys.ts';
import { EVENT_RING_CAPACITY, isUuid, type EventsTableDump, type UserEvent } from './state/events.ts';
import type { CatalogTableDump } from './state/catalog.ts';
import { decodeCatalogSection, encodeCatalogSection, isEmptyCatalogDump } from './state/catalog-snapshot.ts';
import type { SessionsTableDump } from './state/sessions.ts';
import { decodeSessionsSection, encodeSessionsSection, isEmptySessionsDump } from './state/sessions-snapshot.ts';

export const SNAPSHOT_FORMAT_VERSION = 1;
const MAGIC = [0x4b, 0x4e, 0x53, 0x4c]; // "KNSL"

/** Everything the FSM holds. */
export interface FsmState {
  readonly appliedIndex: number;
  readonly kv: KvTableDump;
  /** Absent when the snapshot has no events section (an empty table, written only when used). */
  readonly events?: EventsTableDump;
  /** Absent when the snapshot has no catalog section (an empty catalog, written only when used). */
  readonly catalog?: CatalogTableDump;
  /** Absent when the snapshot has no sessions section (an empty table, written only when used). */
  readonly sessions?: SessionsTableDump;
}

/** The snapshot bytes are not a snapshot this version can read. */
export class SnapshotFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SnapshotFormatError';
  }
}

interface Section {
  readonly name: string;
  /** Exact payload size in bytes. */
  readonly size: number;
  readonly write: (w: ByteWriter) => void;
}

export function encodeSnapshot(state: FsmState): Uint8Array {
  const sections: Section[] = [
    { name: 'kv', size: kvSize(state.kv), write: (w) => writeKv(w, state.kv) },
  ];
  const events = state.events;
  if (events !== undefined && (events.index > 0 || events.lastLTime > 0 || events.events.length > 0)) {
    sections.push({ name: 'events', size: eventsSize(events), write: (w) => writeEvents(w, events) });
  }
  if (state.catalog !== undefined && !isEmptyCatalogDump(state.catalog)) {
    const payload = encodeCatalogSection(state.catalog);
    sections.push({ name: 'catalog', size: 4 + payload.length, write: (w) => w.bytes(payload) });
  }
  if (state.sessions !== undefined && !isEmptySessionsDump(state.sessions)) {
    const payload = encodeSessionsSection(state.sessions);
    sections.push({ name: 'sessions', size: 4 + payload.length, write: (w) => w.bytes(payload) });
  }
  // Sized exactly and allocated once: growing a buffer of hundreds of megabytes by doubling makes
  // V8 run full collections of a heap that holds the whole store.
  let total = MAGIC.length + 2 + 8 + 4 + 4;
  for (const section of sections) total += strSize(section.name) + 4 + section.size;
  const out = new ByteWriter(total);
  for (const b of MAGIC) out.u8(b);
  out.u16(SNAPSHOT_FORMAT_VERSION);
  out.u64(state.appliedIndex);
  out.u32(sections.length);
  for (const section of sections) {
    out.str(section.name);
    out.u32(section.size);
    const start = out.position;
    section.write(out);
    if (out.position - start !== section.size) throw new RangeError(`snapshot section ${section.name} size mismatch`);
  }
  out.u32(crc32(out.view()));
  if (out.position !== total) throw new RangeError('snapshot size mismatch');
  return out.finish();
}

/** Parses and checks a snapshot completely; throws SnapshotFormatError. */
export function decodeSnapshot(data: Uint8Array): FsmState {
  if (data.length < 4 + 4) throw new SnapshotFormatError('snapshot too short');
  const body = data.subarray(0, data.length - 4);
  const expectedCrc = new DataView(data.buffer, data.byteOffset + data.length - 4, 4).getUint32(0);
  if (crc32(body) !== expectedCrc) throw new SnapshotFormatError('snapshot checksum mismatch');
  const r = new ByteReader(body);
  for (const b of MAGIC) if (r.u8() !== b) throw new SnapshotFormatError('not a Konsul FSM snapshot');
  const version = r.u16();
  if (version !== SNAPSHOT_FORMAT_VERSION) throw new SnapshotFormatError(`unsupported snapshot format version ${version}`);
  const appliedIndex = r.u64();
  const sectionCount = r.u32();
  let kv: KvTableDump = { index: 0, entries: [], tombstones: [] };
  let events: EventsTableDump | undefined;
  let catalog: CatalogTableDump | undefined;
  let sessions: SessionsTableDump | undefined;
  const seen = new Set<string>();
  for (let i = 0; i < sectionCount; i++) {
    const name = r.str();
    const payload = new ByteReader(r.bytes());
    if (seen.has(name)) throw new SnapshotFormatError(`duplicate snapshot section ${name}`);
    seen.add(name);
    switch (name) {
      case 'kv':
        kv = readKv(payload);
        break;
      case 'events':
        events = readEvents(payload);
        break;
      case 'catalog':
        catalog = decodeCatalogSection(payload.bytes(), (message) => {
          throw new SnapshotFormatError(message);
        });
        break;
      case 'sessions':
        sessions = decodeSessionsSection(payload.bytes(), (message) => {
          throw new SnapshotFormatError(message);
        });
        break;
      default:
        throw new SnapshotFormatError(`unknown snapshot section ${JSON.stringify(name)}`);
    }
    payload.end();
  }
  r.end();
  return { appliedIndex, kv, ...(events !== undefined ? { events } : {}), ...(catalog !== undefined ? { catalog } : {}), ...(sessions !== undefined ? { sessions } : {}) };
}

function writeKv(w: ByteWriter, kv: KvTableDump): void {
  w.u64(kv.index);
  w.u32(kv.entries.length);
  for (const e of kv.entries) {
    w.str(e.Key);
    w.u64(e.CreateIndex);
    w.u64(e.ModifyIndex);
    w.u64(e.LockIndex);
    w.u64big(e.Flags);
    if (e.Session !== undefined) {
      w.u8(1);
      w.str(e.Session);
    } else {
      w.u8(0);
    }
    w.bytes(e.Value);
  }
  w.u32(kv.tombstones.length);
  for (const t of kv.tombstones) {
    w.str(t.key);
    w.u64(t.index);
  }
}

function kvSize(kv: KvTableDump): number {
  let size = 8 + 4 + 4;
  for (const e of kv.entries) {
    size += strSize(e.Key) + 8 * 4 + 1 + 4 + e.Value.length;
    if (e.Session !== undefined) size += strSize(e.Session);
  }
  for (const t of kv.tombstones) size += strSize(t.key) + 8;
  return size;
}

function writeEvents(w: ByteWriter, events: EventsTableDump): void {
  w.u64(events.index);
  w.u64(events.lastLTime);
  w.u32(events.events.length);
  for (const e of events.events) {
    w.str(e.ID);
    w.str(e.Name);
    w.bytes(e.Payload);
    w.str(e.NodeFilter);
    w.str(e.ServiceFilter);
    w.str(e.TagFilter);
    w.u32(e.Version);
    w.u64(e.LTime);
    w.u64(e.Index);
  }
}

function eventsSize(events: EventsTableDump): number {
  let size = 8 + 8 + 4;
  for (const e of events.events) {
    size += strSize(e.ID) + strSize(e.Name) + 4 + e.Payload.length + strSize(e.NodeFilter) + strSize(e.ServiceFilter) + strSize(e.TagFilter) + 4 + 8 + 8;
  }
  return size;
}

function readEvents(r: ByteReader): EventsTableDump {
  const index = r.u64();
  const lastLTime = r.u64();
  const count = r.u32();
  if (count > EVENT_RING_CAPACITY) throw new SnapshotFormatError(`more than ${EVENT_RING_CAPACITY} events`);
  const events: UserEvent[] = [];
  for (let i = 0; i < count; i++) {
    const ID = r.str();
    if (!isUuid(ID)) throw new SnapshotFormatError('event ID is not a UUID');
    const Name = r.str();
    const Payload = r.bytes().slice();
    const NodeFilter = r.str();
    const ServiceFilter = r.str();
    const TagFilter = r.str();
    const Version = r.u32();
    const LTime = r.u64();
    const eventIndex = r.u64();
    const previous = events[events.length - 1];
    if (previous !== undefined && (LTime <= previous.LTime || eventIndex <= previous.Index)) throw new SnapshotFormatError('events out of order');
    if (LTime > lastLTime) throw new SnapshotFormatError('event LTime beyond the last LTime');
    events.push({ ID, Name, Payload, NodeFilter, ServiceFilter, TagFilter, Version, LTime, Index: eventIndex });
  }
  return { index, lastLTime, events };
}

/** Bytes `str` writes: the length prefix and the UTF-8 encoding. */
function strSize(s: string): number {
  let bytes = 0;
  for (let i = 0; i < s.length; i++) {
    const code = s.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff) {
      // A surrogate pair (strings in the FSM are well-formed): one 4-byte character.
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return 4 + bytes;
}

function readKv(r: ByteReader): KvTableDump {
  const index = r.u64();
  const entryCount = r.u32();
  const entries: KvEntry[] = [];
  let previousKey: string | undefined;
  for (let i = 0; i < entryCount; i++) {
    const key = r.str();
    if (previousKey !== undefined && compareKeys(previousKey, key) >= 0) throw new SnapshotFormatError('KV entries out of order');
    previousKey = key;
    const CreateIndex = r.u64();
    const ModifyIndex = r.u64();
    const LockIndex = r.u64();
    const Flags = r.u64big();
    const hasSession = r.u8();
    if (hasSession > 1) throw new SnapshotFormatError('bad session marker');
    const session = hasSession === 1 ? r.str() : undefined;
    // A copy, so that the entry does not keep the whole snapshot buffer alive.
    const Value = r.bytes().slice();
    entries.push({ Key: key, CreateIndex, ModifyIndex, LockIndex, Flags, Value, ...(session !== undefined ? { Session: session } : {}) });
  }
  const tombstoneCount = r.u32();
  const tombstones: KvTombstone[] = [];
  previousKey = undefined;
  for (let i = 0; i < tombstoneCount; i++) {
    const key = r.str();
    if (previousKey !== undefined && compareKeys(previousKey, key) >= 0) throw new SnapshotFormatError('KV tombstones out of order');
    previousKey = key;
    tombstones.push({ key, index: r.u64() });
  }
  return { index, entries, tombstones };
}

// ---------------------------------------------------------------------------------------------

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });
const TWO_POW_32 = 2 ** 32;

class ByteWriter {
  private buffer: Uint8Array;
  private data: DataView;
  private length = 0;

  constructor(capacity: number) {
    this.buffer = new Uint8Array(capacity);
    this.data = new DataView(this.buffer.buffer);
  }

  get position(): number {
    return this.length;
  }

  u8(n: number): void {
    this.reserve(1);
    this.data.setUint8(this.length, n);
    this.length += 1;
  }

  u16(n: number): void {
    this.reserve(2);
    this.data.setUint16(this.length, n);
    this.length += 2;
  }

  u32(n: number): void {
    this.reserve(4);
    this.data.setUint32(this.length, n);
    this.length += 4;
  }

  /** A non-negative safe integer as 64 bits. */
  u64(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`not a non-negative safe integer: ${n}`);
    this.u32(Math.floor(n / TWO_POW_32));
    this.u32(n % TWO_POW_32);
  }

  u64big(n: bigint): void {
    this.reserve(8);
    this.data.setBigUint64(this.length, n);
    this.length += 8;
  }

  /** Length-prefixed bytes. */
  bytes(b: Uint8Array): void {
    this.u32(b.length);
    this.reserve(b.length);
    this.buffer.set(b, this.length);
    this.length += b.length;
  }

  /** Length-prefixed UTF-8, written in place (no temporary array per string: snapshots hold millions). */
  str(s: string): void {
    // No bounds check here: an overflow (a sizing bug) is caught by the section size check.
    const lengthAt = this.length;
    let at = lengthAt + 4;
    let ascii = true;
    for (let i = 0; i < s.length; i++) {
      const code = s.charCodeAt(i);
      if (code >= 0x80) {
        ascii = false;
        break;
      }
      this.buffer[at++] = code;
    }
    if (!ascii) at = lengthAt + 4 + encoder.encodeInto(s, this.buffer.subarray(lengthAt + 4)).written;
    this.data.setUint32(lengthAt, at - lengthAt - 4);
    this.length = at;
  }

  /** The bytes written so far (a view, not a copy). */
  view(): Uint8Array {
    return this.buffer.subarray(0, this.length);
  }

  finish(): Uint8Array {
    return this.length === this.buffer.length ? this.buffer : this.buffer.slice(0, this.length);
  }

  /** The writer is sized exactly up front; running past the end is a sizing bug. */
  private reserve(n: number): void {
    if (this.length + n > this.buffer.length) throw new RangeError('snapshot writer overflow: size computed too small');
  }
}

class ByteReader {
  private readonly data: DataView;
  private offset = 0;

  constructor(private readonly buffer: Uint8Array) {
    this.data = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  }

  u8(): number {
    this.need(1);
    const n = this.data.getUint8(this.offset);
    this.offset += 1;
    return n;
  }

  u16(): number {
    this.need(2);
    const n = this.data.getUint16(this.offset);
    this.offset += 2;
    return n;
  }

  u32(): number {
    this.need(4);
    const n = this.data.getUint32(this.offset);
    this.offset += 4;
    return n;
  }

  u64(): number {
    const high = this.u32();
    const low = this.u32();
    const n = high * TWO_POW_32 + low;
    if (!Number.isSafeInteger(n)) throw new SnapshotFormatError('index beyond 2^53');
    return n;
  }

  u64big(): bigint {
    this.need(8);
    const n = this.data.getBigUint64(this.offset);
    this.offset += 8;
    return n;
  }

  /** Length-prefixed bytes (a view into the snapshot). */
  bytes(): Uint8Array {
    const length = this.u32();
    this.need(length);
    const b = this.buffer.subarray(this.offset, this.offset + length);
    this.offset += length;
    return b;
  }

  str(): string {
    const bytes = this.bytes();
    // Keys are mostly short ASCII: building those directly avoids a TextDecoder call per string.
    if (bytes.length <= 64) {
      let s = '';
      for (let i = 0; i < bytes.length; i++) {
        const b = bytes[i]!;
        if (b >= 0x80) return decodeUtf8(bytes);
        s += String.fromCharCode(b);
      }
      return s;
    }
    return decodeUtf8(bytes);
  }

  /** Checks that everything was read. */
  end(): void {
    if (this.offset !== this.buffer.length) throw new SnapshotFormatError('trailing bytes in snapshot');
  }

  private need(n: number): void {
    if (this.offset + n > this.buffer.length) throw new SnapshotFormatError('snapshot truncated');
  }
}

function decodeUtf8(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new SnapshotFormatError('string is not valid UTF-8');
  }
}

/** CRC tables for slicing-by-8: table k maps a byte to its CRC contribution k bytes further on. */
const CRC_TABLES = (() => {
  const tables = Array.from({ length: 8 }, () => new Uint32Array(256));
  const base = tables[0]!;
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    base[n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    for (let k = 1; k < 8; k++) tables[k]![n] = (tables[k - 1]![n]! >>> 8) ^ base[tables[k - 1]![n]! & 0xff]!;
  }
  return tables as [Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array];
})();

/** CRC-32 (IEEE 802.3, as zlib computes it), eight bytes per step. */
export function crc32(bytes: Uint8Array): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = CRC_TABLES;
  let crc = 0xffffffff;
  let i = 0;
  for (const end = bytes.length - 8; i <= end; i += 8) {
    const a = (crc ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24))) >>> 0;
    crc =
      t7[a & 0xff]! ^
      t6[(a >>> 8) & 0xff]! ^
      t5[(a >>> 16) & 0xff]! ^
      t4[a >>> 24]! ^
      t3[bytes[i + 4]!]! ^
      t2[bytes[i + 5]!]! ^
      t1[bytes[i + 6]!]! ^
      t0[bytes[i + 7]!]!;
  }
  for (; i < bytes.length; i++) crc = t0[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
