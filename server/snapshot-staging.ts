// Files a save or a restore of the whole state goes through (docs/adr/0016-restore-at-any-size.md),
// in `<data dir>/snapshot-staging/`, so that neither holds the state in memory:
// - a save encodes the FSM's copy-on-write view into a file in time slices (the server keeps
//   answering), then streams the archive around it;
// - a restore writes the uploaded archive's state.bin into a file while it checks every byte, and
//   proposes from that file only once the archive verified completely.
// The files are temporary: removed when done, and all of them when the server starts.
import { randomUUID } from 'node:crypto';
import { createHash } from 'node:crypto';
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { StateMachineSnapshot } from '../raft/host/state-machine.ts';
import { timeSlicedPieces } from '../raft/host/time-slices.ts';
import { readSnapshotArchiveStream, type StateFile, type StreamReadOptions, type VerifiedArchive } from './snapshot-archive.ts';

/** Pieces asked of the view: small, so each is well under a time slice. */
const ENCODE_PIECE_BYTES = 64 * 1024;
/** Pieces are gathered into writes of this size. */
const WRITE_BYTES = 1024 * 1024;

export class SnapshotStaging {
  readonly dir: string;

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'snapshot-staging');
  }

  /** Removes what a previous run left (a crash mid-save or mid-restore) and makes the directory. */
  async reset(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
    await mkdir(this.dir, { recursive: true });
  }

  /** Encodes `view` into a new file, yielding to the event loop between slices of work. */
  async writeView(view: StateMachineSnapshot): Promise<StateFile> {
    return this.writeFile('save', async (write) => {
      for await (const piece of timeSlicedPieces(view, ENCODE_PIECE_BYTES)) await write(piece);
    });
  }

  /**
   * Reads an uploaded archive, writing its state.bin into a new file as it checks everything
   * (readSnapshotArchiveStream); the file is removed if the archive does not verify.
   */
  async stageArchive(source: AsyncIterable<Uint8Array>, options: Omit<StreamReadOptions, 'onState'>): Promise<{ file: StateFile; archive: VerifiedArchive }> {
    let archive: VerifiedArchive | undefined;
    const file = await this.writeFile('restore', async (write) => {
      archive = await readSnapshotArchiveStream(source, { ...options, onState: write });
    });
    if (archive!.stateSha256 !== file.sha256 || archive!.stateBytes !== file.bytes) {
      await this.remove(file);
      throw new Error(`staged state ${file.path} does not match the archive read`);
    }
    return { file, archive: archive! };
  }

  async remove(file: StateFile): Promise<void> {
    await rm(file.path, { force: true });
  }

  private async writeFile(kind: string, produce: (write: (piece: Uint8Array) => Promise<void>) => Promise<void>): Promise<StateFile> {
    await mkdir(this.dir, { recursive: true });
    const path = join(this.dir, `${kind}-${randomUUID()}.state`);
    const hash = createHash('sha256');
    let bytes = 0;
    let pending: Uint8Array[] = [];
    let pendingBytes = 0;
    let handle: FileHandle | null = null;
    const flush = async (): Promise<void> => {
      if (pendingBytes === 0) return;
      const pieces = pending;
      pending = [];
      pendingBytes = 0;
      // writev: one system call for the pieces, without copying them into one buffer first.
      await handle!.writev(pieces);
    };
    try {
      handle = await open(path, 'wx', 0o600);
      await produce(async (piece) => {
        hash.update(piece);
        bytes += piece.length;
        pending.push(piece);
        pendingBytes += piece.length;
        if (pendingBytes >= WRITE_BYTES) await flush();
      });
      await flush();
      await handle.close();
      handle = null;
      return { path, bytes, sha256: hash.digest('hex') };
    } catch (err) {
      await handle?.close().catch(() => undefined);
      await rm(path, { force: true });
      throw err;
    }
  }
}
