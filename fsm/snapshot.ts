// The FSM snapshot: the whole state (every table, its tombstones and indexes, the applied index) as
// one deterministic byte string, written and read piece by piece (ADR 0015). Two replicas with the
// same state produce the same bytes, so snapshots can be compared and hashed; restoring and
// snapshotting again gives the input back.
//
// Format version 2 (integers big-endian; u64 values are Raft indexes < 2^53, except Flags which
// uses all 64 bits; str = u32 UTF-8 length + bytes):
//   header   magic "KNSL" | u16 format version (2) | u64 applied index
//   frames   u8 tag | u32 payload length | payload, in this order:
//     kvTable (1)        u64 table index                                   once, first
//     kvEntries (2)*     u32 count | entry*        keys strictly increasing across all frames
//     kvTombstones (3)*  u32 count | tombstone*    keys strictly increasing across all frames
//     events (4)?        the events payload below               only if the table was ever used
//     catalog (5)?       UTF-8 JSON (fsm/state/catalog-snapshot.ts)        likewise
//     sessions (6)?      UTF-8 JSON (fsm/state/sessions-snapshot.ts)       likewise
//     kvRecovery (7)?    u64 table index | u64 max bytes | u32 rule count | rule* | u64 version count
//                        (fsm/state/kv-recovery.ts)                        likewise
//     kvRecoveryVersions (8)*  u32 count | version*    oldest first across all frames
//     end (0)            u64 entry count | u64 tombstone count
//   trailer  u32 CRC-32 (IEEE) of everything before it
//   entry     = str key | u64 CreateIndex | u64 ModifyIndex | u64 LockIndex | u64 Flags
//               | u8 has session | [str session] | u32 value length | value bytes
//   tombstone = str key | u64 delete index
//   events    = u64 table index | u64 last LTime | u32 event count | event*
//   event     = str ID | str Name | u32 payload length | payload | str NodeFilter
//               | str ServiceFilter | str TagFilter | u32 Version | u64 LTime | u64 index
//               (oldest first, at most 256; LTimes and indexes strictly increase)
//   rule      = str prefix | u64 retention ms | u32 max versions         (sorted by prefix)
//   version   = entry | u64 retired index | u64 retired at ms | u64 retention ms | u8 why
//               (why: 0 deleted, 1 overwritten; retired indexes never decrease)
// A frame of entries or tombstones closes at the first record that takes its payload to 64 KiB,
// so where frames end depends on the state alone, not on how the bytes are read out. A writer
// encodes one frame at a time from a point-in-time view and a reader decodes one frame at a time
// into a table built aside: memory stays bounded by a frame and no step takes long.
//
// Version 1 (one section per table, each sized up front: the whole state encoded at once) is still
// read, so that data directories and snapshot archives written before version 2 restore.

import { KvTable, type KvEntry, type KvTableDump, type KvTableView, type KvTombstone } from './state/kv.ts';
import { createIndexOf, flagsOf, lockIndexOf, modifyIndexOf, packRecord, recordFromEntry, recordToEntry, sessionOf, valueLengthOf, valueStart, type KvRecord } from './state/kv-record.ts';
import type { SortedMapView } from './state/cow-sorted-map.ts';
import { compareKeys } from './state/sorted-keys.ts';
import { EVENT_RING_CAPACITY, isUuid, type EventsTableDump, type UserEvent } from './state/events.ts';
import { EMPTY_CATALOG_DUMP, type CatalogTableDump } from './state/catalog.ts';
import { decodeCatalogSection, encodeCatalogSection, isEmptyCatalogDump } from './state/catalog-snapshot.ts';
import { EMPTY_SESSIONS_DUMP, type SessionsTableDump } from './state/sessions.ts';
import { decodeSessionsSection, encodeSessionsSection, isEmptySessionsDump } from './state/sessions-snapshot.ts';
import { isEmptyKvRecoveryDump, type KvRecoveryDump, type RetiredVersion } from './state/kv-recovery.ts';
import { checkKvRecoveryRules, type KvRecoveryRule } from './state/kv-recovery-commands.ts';

export const SNAPSHOT_FORMAT_VERSION = 2;
const MAGIC = [0x4b, 0x4e, 0x53, 0x4c]; // "KNSL"
const HEADER_BYTES = 4 + 2 + 8;
const FRAME_HEADER_BYTES = 5;
/** Entries and tombstones go into frames of about this many payload bytes. */
const FRAME_TARGET_BYTES = 64 * 1024;
/** Pieces handed out by encodeSnapshotPieces: about this many bytes unless told otherwise. */
export const DEFAULT_PIECE_BYTES = 1024 * 1024;

const TAG_END = 0;
const TAG_KV_TABLE = 1;
const TAG_KV_ENTRIES = 2;
const TAG_KV_TOMBSTONES = 3;
const TAG_EVENTS = 4;
const TAG_CATALOG = 5;
const TAG_SESSIONS = 6;
const TAG_KV_RECOVERY = 7;
const TAG_KV_RECOVERY_VERSIONS = 8;
/** Where each tag may stand: tags must come in this order; record frames may repeat. */
/** Frames are ~64 KiB; one holding a single huge value or a whole small table is larger, never this large. */
const MAX_FRAME_BYTES = 512 * 1024 * 1024;
/** A record's session id: at most what kv-record.ts packs (Konsul's ids are 36-character UUIDs). */
const MAX_SESSION_ID_CHARS = 255;
const TAG_RANK = [8, 0, 1, 2, 3, 4, 5, 6, 7];
const REPEATABLE = new Set([TAG_KV_ENTRIES, TAG_KV_TOMBSTONES, TAG_KV_RECOVERY_VERSIONS]);

/** Everything the FSM holds, as plain objects (tests, the archive inspector, snapshotRestore). */
export interface FsmState {
  readonly appliedIndex: number;
  readonly kv: KvTableDump;
  /** Absent when the snapshot has no events section (an empty table, written only when used). */
  readonly events?: EventsTableDump;
  /** Absent when the snapshot has no catalog section (an empty catalog, written only when used). */
  readonly catalog?: CatalogTableDump;
  /** Absent when the snapshot has no sessions section (an empty table, written only when used). */
  readonly sessions?: SessionsTableDump;
  /** Absent when the snapshot has no kvRecovery section (never used). */
  readonly kvRecovery?: KvRecoveryDump;
}

/**
 * What a snapshot encodes: the KV table as an O(1) copy-on-write view, the small tables as dumps
 * taken at the same index (they hold thousands of records, not millions: ADR 0015).
 */
export interface FsmView {
  readonly appliedIndex: number;
  readonly kv: KvTableView;
  readonly events: EventsTableDump;
  readonly catalog: CatalogTableDump;
  readonly sessions: SessionsTableDump;
  /** Absent: an unused table (tests and tools building views by hand). */
  readonly kvRecovery?: KvRecoveryDump;
}

/** The snapshot bytes are not a snapshot this version can read. */
export class SnapshotFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SnapshotFormatError';
  }
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/**
 * The encoding of `view` in pieces of about `pieceBytes` (a frame larger than that, from one huge
 * value, is a piece of its own). Each step encodes about one piece: the caller decides when to go on.
 */
export function* encodeSnapshotPieces(view: FsmView, pieceBytes = DEFAULT_PIECE_BYTES): Generator<Uint8Array> {
  let piece = new ByteWriter(Math.max(pieceBytes, HEADER_BYTES));
  let crc = 0;
  for (const frame of encodeFrames(view)) {
    crc = crc32(frame, crc);
    if (piece.position > 0 && piece.position + frame.length > pieceBytes) {
      yield piece.finish();
      piece = new ByteWriter(Math.max(pieceBytes, frame.length));
    }
    if (frame.length > pieceBytes) {
      yield frame;
      continue;
    }
    piece.raw(frame);
  }
  const trailer = new ByteWriter(4);
  trailer.u32(crc);
  if (piece.position + 4 <= pieceBytes) {
    piece.raw(trailer.finish());
    yield piece.finish();
  } else {
    if (piece.position > 0) yield piece.finish();
    yield trailer.finish();
  }
}

/** The whole encoding of `view` in one buffer. */
export function encodeSnapshotView(view: FsmView): Uint8Array {
  return concatPieces([...encodeSnapshotPieces(view)]);
}

/** The pieces joined in one buffer (the piece itself when there is one). */
function concatPieces(pieces: readonly Uint8Array[]): Uint8Array {
  if (pieces.length === 1) return pieces[0]!;
  let total = 0;
  for (const p of pieces) total += p.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of pieces) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Encodes plain dumps (tests and tools): the same bytes as a live FSM with that state writes. */
export function encodeSnapshot(state: FsmState): Uint8Array {
  const kv = new KvTable();
  kv.load(state.kv);
  return encodeSnapshotView({
    appliedIndex: state.appliedIndex,
    kv: kv.view(),
    events: state.events ?? { index: 0, lastLTime: 0, events: [] },
    catalog: state.catalog ?? EMPTY_CATALOG_DUMP,
    sessions: state.sessions ?? EMPTY_SESSIONS_DUMP,
    ...(state.kvRecovery !== undefined ? { kvRecovery: state.kvRecovery } : {}),
  });
}

/** The header, then every frame, each as its own buffer. */
function* encodeFrames(view: FsmView): Generator<Uint8Array> {
  const header = new ByteWriter(HEADER_BYTES);
  for (const b of MAGIC) header.u8(b);
  header.u16(SNAPSHOT_FORMAT_VERSION);
  header.u64(view.appliedIndex);
  yield header.finish();
  yield frame(TAG_KV_TABLE, 8, (w) => w.u64(view.kv.index));

  yield* recordFrames(TAG_KV_ENTRIES, view.kv.entries, entrySize, writeEntry);
  yield* recordFrames(TAG_KV_TOMBSTONES, view.kv.tombstones, (key) => strSize(key) + 8, (w, key, deleteIndex) => {
    w.str(key);
    w.u64(deleteIndex);
  });

  const events = view.events;
  if (events.index > 0 || events.lastLTime > 0 || events.events.length > 0) yield frame(TAG_EVENTS, eventsSize(events), (w) => writeEvents(w, events));
  if (!isEmptyCatalogDump(view.catalog)) yield bytesFrame(TAG_CATALOG, encodeCatalogSection(view.catalog));
  if (!isEmptySessionsDump(view.sessions)) yield bytesFrame(TAG_SESSIONS, encodeSessionsSection(view.sessions));
  if (view.kvRecovery !== undefined && !isEmptyKvRecoveryDump(view.kvRecovery)) yield* kvRecoveryFrames(view.kvRecovery);
  yield frame(TAG_END, 16, (w) => {
    w.u64(view.kv.entries.size);
    w.u64(view.kv.tombstones.size);
  });
}

/**
 * The records of a sorted map as frames of `tag`: u32 count, then each record, a frame closing at
 * the first record that takes its payload to FRAME_TARGET_BYTES (so bounds depend on the state alone).
 */
function* recordFrames<V>(
  tag: number,
  records: Pick<SortedMapView<V>, 'leaves'>,
  sizeOf: (key: string, value: V) => number,
  write: (w: ByteWriter, key: string, value: V) => void,
): Generator<Uint8Array> {
  let keys: string[] = [];
  let values: V[] = [];
  let size = 4;
  const close = (): Uint8Array =>
    frame(tag, size, (w) => {
      w.u32(keys.length);
      for (let i = 0; i < keys.length; i++) write(w, keys[i]!, values[i]!);
    });
  for (const run of records.leaves()) {
    for (let i = run.offset; i < run.keys.length; i++) {
      keys.push(run.keys[i]!);
      values.push(run.values[i]!);
      size += sizeOf(run.keys[i]!, run.values[i]!);
      if (size >= FRAME_TARGET_BYTES) {
        yield close();
        keys = [];
        values = [];
        size = 4;
      }
    }
  }
  if (keys.length > 0) yield close();
}

function frame(tag: number, payloadBytes: number, write: (w: ByteWriter) => void): Uint8Array {
  const w = new ByteWriter(FRAME_HEADER_BYTES + payloadBytes);
  w.u8(tag);
  w.u32(payloadBytes);
  write(w);
  if (w.position !== FRAME_HEADER_BYTES + payloadBytes) throw new RangeError(`snapshot frame ${tag} size mismatch`);
  return w.finish();
}

function bytesFrame(tag: number, payload: Uint8Array): Uint8Array {
  return frame(tag, payload.length, (w) => w.raw(payload));
}

function writeEntry(w: ByteWriter, key: string, r: KvRecord): void {
  w.str(key);
  w.u64(createIndexOf(r));
  w.u64(modifyIndexOf(r));
  w.u64(lockIndexOf(r));
  w.u64big(flagsOf(r));
  const session = sessionOf(r);
  if (session !== undefined) {
    w.u8(1);
    w.str(session);
  } else {
    w.u8(0);
  }
  w.latin1(r, valueStart(r));
}

function entrySize(key: string, r: KvRecord): number {
  const session = sessionOf(r);
  return strSize(key) + 8 * 4 + 1 + (session !== undefined ? strSize(session) : 0) + 4 + valueLengthOf(r);
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/** Receives the KV table's records as the decoder reads them, in key order (checked by the decoder). */
export interface SnapshotSink {
  kvEntry(key: string, record: KvRecord): void;
  kvTombstone(key: string, index: number): void;
}

/** What a finished decoder answers besides the records it streamed: indexes and the small tables, whole. */
export interface DecodedTables {
  readonly appliedIndex: number;
  readonly kvIndex: number;
  /** How many KV entries and tombstones the snapshot held. */
  readonly kvEntries: number;
  readonly kvTombstones: number;
  /** Absent when the snapshot has no such section (the table was never used). */
  readonly events?: EventsTableDump;
  readonly catalog?: CatalogTableDump;
  readonly sessions?: SessionsTableDump;
  readonly kvRecovery?: KvRecoveryDump;
}

export interface SnapshotDecoderOptions {
  /**
   * Lowers CreateIndex and ModifyIndex above this to it as records are read (a restore into this
   * log's index space, fsm/restore.ts): the record is built once, with the right indexes.
   */
  readonly capIndexesAt?: number;
}

/**
 * Reads a snapshot fed in pieces cut anywhere, one frame at a time: KV records go to a sink as they
 * are read, the small tables are kept and answered by `finish()`, which checks the end and the
 * checksum. Throws SnapshotFormatError as soon as something is wrong; nothing fed to the sink counts
 * until `finish()` has returned. With no sink it only checks (and counts): records are read but not
 * built.
 */
export class SnapshotDecoder {
  private pieces: Uint8Array[] = [];
  private buffered = 0;
  /** Bytes needed before the next parse step can run. */
  private need = HEADER_BYTES;
  private stage: 'header' | 'frames' | 'trailer' | 'legacy' | 'done' = 'header';
  private crc = 0;
  private tables: DecodedTables = { appliedIndex: 0, kvIndex: 0, kvEntries: 0, kvTombstones: 0 };
  private readonly capIndexesAt: number;
  private lastRank = -1;
  private lastTag = -1;
  private lastEntryKey: string | undefined;
  private lastTombstoneKey: string | undefined;
  private entryCount = 0;
  private tombstoneCount = 0;
  /** The kvRecovery header until the end frame, and the versions read so far. */
  private kvRecovery: { index: number; maxBytes: number; rules: KvRecoveryRule[]; count: number } | undefined;
  private kvRecoveryVersions: RetiredVersion[] = [];

  constructor(
    private readonly sink: SnapshotSink | null,
    options: SnapshotDecoderOptions = {},
  ) {
    this.capIndexesAt = options.capIndexesAt ?? Number.POSITIVE_INFINITY;
  }

  /** KV entries read so far (for progress). */
  get kvEntriesRead(): number {
    return this.entryCount;
  }

  write(piece: Uint8Array): void {
    if (this.stage === 'done') throw new SnapshotFormatError('snapshot written after its end');
    if (piece.length === 0) return;
    // A copy: the caller may reuse its buffer.
    this.pieces.push(piece.slice());
    this.buffered += piece.length;
    if (this.stage === 'trailer' && this.buffered > 4) throw new SnapshotFormatError('trailing bytes in snapshot');
    if (this.stage === 'legacy' || this.buffered < this.need) return;
    const data = this.takeBuffered();
    const consumed = this.parse(data);
    if (consumed < data.length) {
      this.pieces.push(data.subarray(consumed));
      this.buffered = data.length - consumed;
    }
  }

  /** Checks that the snapshot ended where and as it should; answers its applied index. */
  finish(): DecodedTables {
    if (this.stage === 'legacy') {
      this.stage = 'done';
      const state = decodeVersion1(this.takeBuffered());
      const cap = this.capIndexesAt;
      for (const e of state.kv.entries) this.sink?.kvEntry(e.Key, recordFromEntry({ ...e, CreateIndex: Math.min(e.CreateIndex, cap), ModifyIndex: Math.min(e.ModifyIndex, cap) }));
      for (const t of state.kv.tombstones) this.sink?.kvTombstone(t.key, Math.min(t.index, cap));
      const { events, catalog, sessions } = state;
      return {
        appliedIndex: state.appliedIndex,
        kvIndex: state.kv.index,
        kvEntries: state.kv.entries.length,
        kvTombstones: state.kv.tombstones.length,
        ...(events ? { events } : {}),
        ...(catalog ? { catalog } : {}),
        ...(sessions ? { sessions } : {}),
      };
    }
    if (this.stage === 'header' && this.buffered < 8) throw new SnapshotFormatError('snapshot too short');
    if (this.stage !== 'trailer' || this.buffered !== 4) throw new SnapshotFormatError('snapshot truncated');
    const trailer = this.takeBuffered();
    const stored = new DataView(trailer.buffer, trailer.byteOffset, 4).getUint32(0);
    if (stored !== this.crc) throw new SnapshotFormatError('snapshot checksum mismatch');
    this.stage = 'done';
    return { ...this.tables, kvEntries: this.entryCount, kvTombstones: this.tombstoneCount };
  }

  private takeBuffered(): Uint8Array {
    const pieces = this.pieces;
    this.pieces = [];
    this.buffered = 0;
    return concatPieces(pieces);
  }

  /** Parses every complete step in `data`; answers how many bytes it consumed. */
  private parse(data: Uint8Array): number {
    let at = 0;
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    for (;;) {
      const available = data.length - at;
      if (this.stage === 'header') {
        if (available < HEADER_BYTES) break;
        const r = new ByteReader(data.subarray(at, at + HEADER_BYTES));
        for (const b of MAGIC) if (r.u8() !== b) throw new SnapshotFormatError('not a Konsul FSM snapshot');
        const version = r.u16();
        if (version === 1) {
          // Version 1 cannot be read in pieces: gather it and decode it whole at the end.
          this.stage = 'legacy';
          this.pieces.push(data.slice(at));
          this.buffered = available;
          return data.length;
        }
        if (version !== SNAPSHOT_FORMAT_VERSION) throw new SnapshotFormatError(`unsupported snapshot format version ${version}`);
        this.tables = { ...this.tables, appliedIndex: r.u64() };
        this.crc = crc32(data.subarray(at, at + HEADER_BYTES), this.crc);
        at += HEADER_BYTES;
        this.stage = 'frames';
        this.need = FRAME_HEADER_BYTES;
        continue;
      }
      if (this.stage !== 'frames') break;
      if (available < FRAME_HEADER_BYTES) {
        this.need = FRAME_HEADER_BYTES;
        break;
      }
      const tag = view.getUint8(at);
      const length = view.getUint32(at + 1);
      // Checked before waiting for (and buffering) the frame: a damaged or crafted length would
      // otherwise make every reader hold gigabytes.
      if (TAG_RANK[tag] === undefined) throw new SnapshotFormatError(`unknown snapshot frame ${tag}`);
      if (length > MAX_FRAME_BYTES) throw new SnapshotFormatError(`snapshot frame of ${length} bytes is over the ${MAX_FRAME_BYTES}-byte limit`);
      if (available < FRAME_HEADER_BYTES + length) {
        this.need = FRAME_HEADER_BYTES + length;
        break;
      }
      const end = at + FRAME_HEADER_BYTES + length;
      this.crc = crc32(data.subarray(at, end), this.crc);
      this.frame(tag, new ByteReader(data.subarray(at + FRAME_HEADER_BYTES, end)));
      at = end;
      if (tag === TAG_END) {
        this.stage = 'trailer';
        this.need = 4;
        if (data.length - at > 4) throw new SnapshotFormatError('trailing bytes in snapshot');
        break;
      }
      this.need = FRAME_HEADER_BYTES;
    }
    return at;
  }

  private frame(tag: number, r: ByteReader): void {
    // Known: parse() checked the tag with the frame's header.
    const rank = TAG_RANK[tag]!;
    if (this.lastTag === -1 && tag !== TAG_KV_TABLE) throw new SnapshotFormatError('snapshot does not start with the KV table');
    if (rank < this.lastRank || (rank === this.lastRank && !REPEATABLE.has(tag))) throw new SnapshotFormatError(`snapshot frame ${tag} out of order`);
    this.lastRank = rank;
    this.lastTag = tag;
    switch (tag) {
      case TAG_KV_TABLE:
        this.tables = { ...this.tables, kvIndex: r.u64() };
        break;
      case TAG_KV_ENTRIES: {
        const count = r.u32();
        for (let i = 0; i < count; i++) {
          const key = r.str();
          if (this.lastEntryKey !== undefined && compareKeys(this.lastEntryKey, key) >= 0) throw new SnapshotFormatError('KV entries out of order');
          this.lastEntryKey = key;
          if (this.sink === null) skipRecord(r);
          else this.sink.kvEntry(key, readRecord(r, this.capIndexesAt));
        }
        this.entryCount += count;
        break;
      }
      case TAG_KV_TOMBSTONES: {
        const count = r.u32();
        for (let i = 0; i < count; i++) {
          const key = r.str();
          if (this.lastTombstoneKey !== undefined && compareKeys(this.lastTombstoneKey, key) >= 0) throw new SnapshotFormatError('KV tombstones out of order');
          this.lastTombstoneKey = key;
          const index = r.u64();
          this.sink?.kvTombstone(key, index > this.capIndexesAt ? this.capIndexesAt : index);
        }
        this.tombstoneCount += count;
        break;
      }
      case TAG_EVENTS:
        this.tables = { ...this.tables, events: readEvents(r) };
        break;
      case TAG_CATALOG:
        this.tables = { ...this.tables, catalog: decodeCatalogSection(r.rest(), formatError) };
        break;
      case TAG_SESSIONS:
        this.tables = { ...this.tables, sessions: decodeSessionsSection(r.rest(), formatError) };
        break;
      case TAG_KV_RECOVERY:
        this.kvRecovery = readKvRecoveryHeader(r);
        break;
      case TAG_KV_RECOVERY_VERSIONS:
        if (this.kvRecovery === undefined) throw new SnapshotFormatError('kvRecovery versions without their header');
        readKvRecoveryVersions(r, this.kvRecoveryVersions);
        break;
      case TAG_END:
        if (r.u64() !== this.entryCount || r.u64() !== this.tombstoneCount) throw new SnapshotFormatError('snapshot entry counts do not match its frames');
        if (this.kvRecovery !== undefined) {
          const { index, maxBytes, rules, count } = this.kvRecovery;
          if (count !== this.kvRecoveryVersions.length) throw new SnapshotFormatError('kvRecovery version count does not match its frames');
          this.tables = { ...this.tables, kvRecovery: { index, maxBytes, rules, versions: this.kvRecoveryVersions } };
        }
        break;
    }
    r.end();
  }
}

/** Parses and checks a whole snapshot (either version) into plain dumps; throws SnapshotFormatError. */
export function decodeSnapshot(data: Uint8Array): FsmState {
  const entries: KvEntry[] = [];
  const tombstones: KvTombstone[] = [];
  const decoder = new SnapshotDecoder({
    kvEntry: (key, record) => entries.push(recordToEntry(key, record)),
    kvTombstone: (key, index) => tombstones.push({ key, index }),
  });
  decoder.write(data);
  const { appliedIndex, kvIndex, kvEntries: _entries, kvTombstones: _tombstones, ...smallTables } = decoder.finish();
  return { appliedIndex, kv: { index: kvIndex, entries, tombstones }, ...smallTables };
}

function formatError(message: string): never {
  throw new SnapshotFormatError(message);
}

function readRecord(r: ByteReader, capIndexesAt: number): KvRecord {
  const createIndex = r.u64();
  const modifyIndex = r.u64();
  const lockIndex = r.u64();
  const flags = r.u64big();
  const hasSession = r.u8();
  if (hasSession > 1) throw new SnapshotFormatError('bad session marker');
  const session = hasSession === 1 ? r.str() : undefined;
  if (session !== undefined && session.length > MAX_SESSION_ID_CHARS) throw new SnapshotFormatError(`session id of ${session.length} characters`);
  const fields = { createIndex: Math.min(createIndex, capIndexesAt), modifyIndex: Math.min(modifyIndex, capIndexesAt), lockIndex, flags, session };
  return packRecord(fields, r.bytes());
}

/** Reads past a record, checking its structure as readRecord does, without building it. */
function skipRecord(r: ByteReader): void {
  r.u64();
  r.u64();
  r.u64();
  r.u64big(); // Flags: any uint64
  const hasSession = r.u8();
  if (hasSession > 1) throw new SnapshotFormatError('bad session marker');
  if (hasSession === 1) r.str();
  r.bytes();
}


// ---------------------------------------------------------------------------------------------
// Version 1: one section per table, read whole.
//   magic "KNSL" | u16 version (1) | u64 applied index | u32 section count
//   section*: str name ("kv", "events", "catalog", "sessions") | u32 payload length | payload
//   u32 CRC-32 of everything before it
// kv payload: u64 table index | u32 entry count | entry* | u32 tombstone count | tombstone*;
// events as in version 2; catalog and sessions: u32 length | their JSON.
// ---------------------------------------------------------------------------------------------

function decodeVersion1(data: Uint8Array): FsmState {
  if (data.length < 4 + 4) throw new SnapshotFormatError('snapshot too short');
  const body = data.subarray(0, data.length - 4);
  const expectedCrc = new DataView(data.buffer, data.byteOffset + data.length - 4, 4).getUint32(0);
  if (crc32(body) !== expectedCrc) throw new SnapshotFormatError('snapshot checksum mismatch');
  const r = new ByteReader(body);
  for (const b of MAGIC) if (r.u8() !== b) throw new SnapshotFormatError('not a Konsul FSM snapshot');
  r.u16();
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
        kv = readKvVersion1(payload);
        break;
      case 'events':
        events = readEvents(payload);
        break;
      case 'catalog':
        catalog = decodeCatalogSection(payload.bytes(), formatError);
        break;
      case 'sessions':
        sessions = decodeSessionsSection(payload.bytes(), formatError);
        break;
      default:
        throw new SnapshotFormatError(`unknown snapshot section ${JSON.stringify(name)}`);
    }
    payload.end();
  }
  r.end();
  return { appliedIndex, kv, ...(events !== undefined ? { events } : {}), ...(catalog !== undefined ? { catalog } : {}), ...(sessions !== undefined ? { sessions } : {}) };
}

function readKvVersion1(r: ByteReader): KvTableDump {
  const index = r.u64();
  const entryCount = r.u32();
  const entries: KvEntry[] = [];
  let previousKey: string | undefined;
  for (let i = 0; i < entryCount; i++) {
    const key = r.str();
    if (previousKey !== undefined && compareKeys(previousKey, key) >= 0) throw new SnapshotFormatError('KV entries out of order');
    previousKey = key;
    entries.push(recordToEntry(key, readRecord(r, Number.POSITIVE_INFINITY)));
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
// Events (both versions)
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Recoverable deletes (fsm/state/kv-recovery.ts): a header frame, then versions in record frames.
// ---------------------------------------------------------------------------------------------

function* kvRecoveryFrames(dump: KvRecoveryDump): Generator<Uint8Array> {
  let size = 8 + 8 + 4 + 8;
  for (const rule of dump.rules) size += strSize(rule.prefix) + 8 + 4;
  yield frame(TAG_KV_RECOVERY, size, (w) => {
    w.u64(dump.index);
    w.u64(dump.maxBytes);
    w.u32(dump.rules.length);
    for (const rule of dump.rules) {
      w.str(rule.prefix);
      w.u64(rule.retentionMs);
      w.u32(rule.maxVersions);
    }
    w.u64(dump.versions.length);
  });
  const run = { keys: dump.versions.map((v) => v.key), values: dump.versions, offset: 0 };
  const versions = { *leaves(): Generator<typeof run> { yield run; } };
  yield* recordFrames(TAG_KV_RECOVERY_VERSIONS, versions, (key, v) => entrySize(key, v.record) + 8 * 3 + 1, (w, key, v) => {
    writeEntry(w, key, v.record);
    w.u64(v.retiredIndex);
    w.u64(v.retiredAtMs);
    w.u64(v.retentionMs);
    w.u8(v.why === 'deleted' ? 0 : 1);
  });
}

function readKvRecoveryHeader(r: ByteReader): { index: number; maxBytes: number; rules: KvRecoveryRule[]; count: number } {
  const index = r.u64();
  const maxBytes = r.u64();
  const ruleCount = r.u32();
  const rules: KvRecoveryRule[] = [];
  for (let i = 0; i < ruleCount && i <= 1024; i++) rules.push({ prefix: r.str(), retentionMs: r.u64(), maxVersions: r.u32() });
  const problem = checkKvRecoveryRules(rules, maxBytes);
  if (problem !== null || rules.length !== ruleCount) throw new SnapshotFormatError(`kvRecovery rules: ${problem ?? 'too many'}`);
  return { index, maxBytes, rules, count: r.u64() };
}

function readKvRecoveryVersions(r: ByteReader, into: RetiredVersion[]): void {
  const count = r.u32();
  for (let i = 0; i < count; i++) {
    const key = r.str();
    const record = readRecord(r, Number.POSITIVE_INFINITY);
    const retiredIndex = r.u64();
    const retiredAtMs = r.u64();
    const retentionMs = r.u64();
    const why = r.u8();
    if (why > 1) throw new SnapshotFormatError('bad kvRecovery reason');
    const previous = into[into.length - 1];
    if (previous !== undefined && previous.retiredIndex > retiredIndex) throw new SnapshotFormatError('kvRecovery versions out of order');
    into.push({ key, record, retiredIndex, retiredAtMs, retentionMs, why: why === 0 ? 'deleted' : 'overwritten' });
  }
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

// ---------------------------------------------------------------------------------------------

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });
const TWO_POW_32 = 2 ** 32;

export class ByteWriter {
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

  /** Bytes as they are, no length prefix. */
  raw(b: Uint8Array): void {
    this.reserve(b.length);
    this.buffer.set(b, this.length);
    this.length += b.length;
  }

  /** Length-prefixed bytes given as latin1 chars (one per byte) of `s` from `from` on: a KV record's value. */
  latin1(s: string, from = 0): void {
    this.u32(s.length - from);
    this.reserve(s.length - from);
    const buffer = this.buffer;
    let at = this.length;
    for (let i = from; i < s.length; i++) buffer[at++] = s.charCodeAt(i);
    this.length = at;
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

export class ByteReader {
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
    // Keys are mostly short ASCII: one fromCharCode call makes a flat string without a TextDecoder
    // call (building it char by char would make a rope of cons strings, costly to keep and compare).
    if (bytes.length <= 256) {
      for (let i = 0; i < bytes.length; i++) if (bytes[i]! >= 0x80) return decodeUtf8(bytes);
      return String.fromCharCode.apply(null, bytes as unknown as number[]);
    }
    return decodeUtf8(bytes);
  }

  /** Everything not read yet (a view). */
  rest(): Uint8Array {
    const b = this.buffer.subarray(this.offset);
    this.offset = this.buffer.length;
    return b;
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

/** CRC-32 (IEEE 802.3, as zlib computes it), eight bytes per step; `previous` continues a running CRC. */
export function crc32(bytes: Uint8Array, previous = 0): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = CRC_TABLES;
  let crc = (previous ^ 0xffffffff) >>> 0;
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
