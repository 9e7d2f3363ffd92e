// Snapshot data as it moves between the state machine, the storage and the transport: always in
// pieces, never whole in memory (docs/adr/0003, 0006). The Raft core only ever sees snapshot meta;
// a durable storage keeps the data in files and hands out `Snapshot.data` empty.
import type { SnapshotMeta } from '../core/types.ts';

/**
 * The encoded state, in order, as pieces. A piece must stay unchanged until the consumer asks for
 * the next one (the storage writes or copies it before that).
 */
export type SnapshotDataSource = Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

/** A stored snapshot opened for reading its data. */
export interface SnapshotDataReader {
  readonly meta: SnapshotMeta;
  /** Length of the data (without the file's header and meta). */
  readonly dataBytes: number;
  /**
   * The next piece of data (at most `maxBytes`), or null after the last one. The file's checksum is
   * checked before the last piece is answered: damage throws (StorageCorruptionError) instead, so a
   * consumer that only commits after the last piece never commits damaged data. One call at a time.
   */
  read(maxBytes: number): Promise<Uint8Array | null>;
  /** Closes the file. Idempotent. */
  close(): Promise<void>;
}

/** Receives a snapshot's data (from the leader) into the storage, piece by piece. */
export interface SnapshotDataSink {
  /** Appends a piece; calls may overlap (they are written in call order). The piece must not change until this resolves. */
  write(piece: Uint8Array): Promise<void>;
  /**
   * Makes the received data durable (fsync) and keeps it for the storage to install when a Ready
   * carrying this snapshot is saved. Rejects if fewer or more bytes than announced were written.
   */
  finish(): Promise<void>;
  /** Drops what was received. Idempotent; never rejects. */
  abort(): Promise<void>;
}

/** What the transport needs from the storage to stream snapshots to and from files. */
export interface SnapshotFiles {
  /** Opens the stored snapshot described by `meta` for sending. Rejects if it is no longer stored. */
  openSnapshot(meta: SnapshotMeta): Promise<SnapshotDataReader>;
  /** Starts receiving the data of the snapshot `meta`, announced as `totalBytes` long. */
  receiveSnapshot(meta: SnapshotMeta, totalBytes: number): SnapshotDataSink;
}

/** A snapshot the storage wrote and recorded. */
export interface CreatedSnapshot {
  readonly meta: SnapshotMeta;
  readonly dataBytes: number;
}
