// A restore in progress through the log (restore-commands.ts): the new tables are built aside from
// each chunk as it is applied, while the current state keeps answering, and swapped in by the
// commit. Every replica applies the same chunks at the same indexes, so they all build the same
// tables and reach the same verdict.
//
// Indexes: the snapshot's KV indexes above the restoreBegin entry's are lowered to it as records
// are read (fsm/restore.ts explains why); the small tables are moved at the commit's index.

import { SnapshotDecoder, SnapshotFormatError, type DecodedTables } from './snapshot.ts';
import { KvTableBuilder } from './state/kv.ts';

/** The restore cannot go on; the message says why (the restore is dropped). */
export class RestoreRejectedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RestoreRejectedError';
  }
}

/** Where a staged restore stands (for /v1/agent/self and progress). */
export interface StagedRestoreProgress {
  readonly id: string;
  readonly beginIndex: number;
  readonly bytes: number;
  readonly receivedBytes: number;
  readonly chunks: number;
  readonly kvEntries: number;
}

export class StagedRestore {
  readonly kv = new KvTableBuilder();
  private readonly decoder: SnapshotDecoder;
  private receivedBytes = 0;
  private nextSeq = 0;
  private kvEntries = 0;

  constructor(
    readonly id: string,
    /** The restoreBegin entry's index: restored KV indexes above it are lowered to it. */
    readonly beginIndex: number,
    private readonly expectedBytes: number,
  ) {
    this.decoder = new SnapshotDecoder(
      {
        kvEntry: (key, record) => {
          this.kvEntries++;
          this.kv.addEntry(key, record);
        },
        kvTombstone: (key, index) => this.kv.addTombstone(key, index),
      },
      { capIndexesAt: beginIndex },
    );
  }

  progress(): StagedRestoreProgress {
    return { id: this.id, beginIndex: this.beginIndex, bytes: this.expectedBytes, receivedBytes: this.receivedBytes, chunks: this.nextSeq, kvEntries: this.kvEntries };
  }

  /** Reads chunk `seq`. Throws RestoreRejectedError (out of sequence, too long, not a snapshot). */
  write(seq: number, data: Uint8Array): void {
    if (seq !== this.nextSeq) throw new RestoreRejectedError(`restore ${this.id}: chunk ${seq} arrived, chunk ${this.nextSeq} was expected`);
    if (this.receivedBytes + data.length > this.expectedBytes) {
      throw new RestoreRejectedError(`restore ${this.id}: more than the ${this.expectedBytes} bytes announced`);
    }
    this.nextSeq++;
    this.receivedBytes += data.length;
    try {
      this.decoder.write(data);
    } catch (err) {
      throw rejection(this.id, err);
    }
  }

  /**
   * Checks the whole: its length, the snapshot's end, counts and CRC-32 (what catches damage in
   * the log; the proposer checked the archive's SHA-256 before proposing anything). Answers the
   * small tables and indexes.
   */
  finish(): DecodedTables {
    if (this.receivedBytes !== this.expectedBytes) {
      throw new RestoreRejectedError(`restore ${this.id}: ${this.receivedBytes} of the ${this.expectedBytes} bytes announced arrived`);
    }
    try {
      return this.decoder.finish();
    } catch (err) {
      throw rejection(this.id, err);
    }
  }
}

/**
 * Whatever the bytes make the decoder throw (a format error, or a value it cannot hold) refuses the
 * restore: every replica reads the same bytes and so refuses it at the same entry, instead of all
 * of them failing the apply (and again at every restart).
 */
function rejection(id: string, err: unknown): RestoreRejectedError {
  const message = err instanceof SnapshotFormatError ? err.message : `unreadable snapshot (${err instanceof Error ? err.message : String(err)})`;
  return new RestoreRejectedError(`restore ${id}: ${message}`);
}
