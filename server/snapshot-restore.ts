// Replicating a restore: a verified state file proposed as restoreBegin, restoreChunk..., restoreCommit
// (fsm/restore-commands.ts; docs/adr/0016-restore-at-any-size.md), and the leader's watchdog that
// aborts a restore whose proposer went away.
import { randomUUID } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { ProposeCommand } from '../fsm/command-results.ts';
import { encodeCommand } from '../fsm/commands.ts';
import type { RestoreCommand } from '../fsm/restore-commands.ts';
import type { StagedRestoreProgress } from '../fsm/staged-restore.ts';
import { PeriodicTask } from '../agent/core/periodic-task.ts';
import type { StateFile } from './snapshot-archive.ts';

/** Bytes of state per restoreChunk entry: a few per append message, ~10 ms of apply each (~2,000 keys). */
export const RESTORE_CHUNK_BYTES = 256 * 1024;
/** Chunks proposed and not yet applied: enough to keep replication busy, few enough to bound memory. */
const CHUNKS_IN_FLIGHT = 4;

/** The restore did not happen; the state is what it was. `conflict`: another restore is in progress. */
export class RestoreFailedError extends Error {
  readonly conflict: boolean;
  constructor(message: string, conflict = false) {
    super(message);
    this.name = 'RestoreFailedError';
    this.conflict = conflict;
  }
}

export interface RestoreProgress {
  readonly sentBytes: number;
  readonly appliedBytes: number;
  readonly totalBytes: number;
}

export interface ReplicateRestoreOptions {
  /** Replicates a command through the leader and answers its FSM result (ClusterAccess.propose). */
  readonly propose: ProposeCommand;
  readonly file: StateFile;
  readonly chunkBytes?: number;
  readonly onProgress?: (progress: RestoreProgress) => void;
}

/**
 * Proposes the whole restore. Resolves once the commit applied (every table replaced, at one
 * index, on every server that applies it); throws RestoreFailedError if any step was refused, or
 * the proposal's error, after proposing an abort so that no half-built restore lingers.
 */
export async function replicateRestore(options: ReplicateRestoreOptions): Promise<void> {
  const { propose, file } = options;
  const chunkBytes = options.chunkBytes ?? RESTORE_CHUNK_BYTES;
  const id = randomUUID();
  const step = async (command: RestoreCommand): Promise<void> => {
    const result = await propose(encodeCommand(command));
    if (result === true) return;
    const error = typeof result === 'object' ? result.error : `${command.type} was refused`;
    throw new RestoreFailedError(error, command.type === 'restoreBegin' && /already in progress/.test(error));
  };
  try {
    await step({ type: 'restoreBegin', id, bytes: file.bytes });
    const handle = await open(file.path, 'r');
    try {
      const inFlight = new Set<Promise<void>>();
      let failure: unknown = null;
      let sentBytes = 0;
      let appliedBytes = 0;
      for (let seq = 0; sentBytes < file.bytes && failure === null; seq++) {
        const data = Buffer.alloc(Math.min(chunkBytes, file.bytes - sentBytes));
        const { bytesRead } = await handle.read(data, 0, data.length, sentBytes);
        if (bytesRead !== data.length) throw new Error(`staged state ${file.path} ended at byte ${sentBytes + bytesRead} of ${file.bytes}`);
        sentBytes += data.length;
        const proposal: Promise<void> = step({ type: 'restoreChunk', id, seq, data }).then(
          () => {
            appliedBytes += data.length;
            options.onProgress?.({ sentBytes, appliedBytes, totalBytes: file.bytes });
          },
          (err: unknown) => {
            failure ??= err;
          },
        ).finally(() => inFlight.delete(proposal));
        inFlight.add(proposal);
        if (inFlight.size >= CHUNKS_IN_FLIGHT) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
      if (failure !== null) throw failure;
    } finally {
      await handle.close();
    }
    await step({ type: 'restoreCommit', id });
  } catch (err) {
    // A lost leader, a read error, a chunk refused as malformed may leave the restore open: end it
    // rather than wait for the watchdog. (Where a refusal already ended it, the abort is refused.)
    await step({ type: 'restoreAbort', id, reason: `the proposer failed: ${(err as Error).message}`.slice(0, 200) }).catch(() => undefined);
    throw err;
  }
}

export interface RestoreWatchdogOptions {
  readonly isReadyLeader: () => boolean;
  readonly progress: () => StagedRestoreProgress | null;
  readonly propose: (command: Uint8Array) => Promise<unknown>;
  readonly stallTimeoutMs: number;
  readonly checkEveryMs?: number;
  readonly log?: (message: string) => void;
}

/**
 * On the leader: aborts a staged restore that received no chunk for `stallTimeoutMs` (its proposer
 * crashed, or lost its connection to the leader). Until then no server takes a Raft snapshot.
 */
export class RestoreWatchdog extends PeriodicTask {
  private seen: { id: string; chunks: number; sinceMs: number } | null = null;
  private aborting = false;

  constructor(private readonly options: RestoreWatchdogOptions) {
    super();
  }

  protected checkEveryMs(): number {
    return this.options.checkEveryMs ?? Math.min(1000, Math.max(50, Math.floor(this.options.stallTimeoutMs / 4)));
  }

  async check(nowMs: number): Promise<void> {
    const progress = this.options.progress();
    if (progress === null || !this.options.isReadyLeader()) {
      // A new leader starts its own clock: it cannot know how long the restore sat before.
      this.seen = null;
      return;
    }
    if (this.seen === null || this.seen.id !== progress.id || this.seen.chunks !== progress.chunks) {
      this.seen = { id: progress.id, chunks: progress.chunks, sinceMs: nowMs };
      return;
    }
    if (nowMs - this.seen.sinceMs < this.options.stallTimeoutMs || this.aborting) return;
    this.aborting = true;
    const reason = `stalled: no chunk for ${Math.round((nowMs - this.seen.sinceMs) / 1000)} s after ${progress.chunks} chunks`;
    this.options.log?.(`aborting restore ${progress.id}: ${reason}`);
    try {
      await this.options.propose(encodeCommand({ type: 'restoreAbort', id: progress.id, reason }));
    } catch {
      // Not the leader any more, or shutting down: the next leader's watchdog takes over.
    } finally {
      this.aborting = false;
      this.seen = null;
    }
  }
}
