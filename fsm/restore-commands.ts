// The commands of a staged restore (PUT /v1/snapshot; docs/adr/0016-restore-at-any-size.md).
//
// A restore replaces the whole state, which may be hundreds of megabytes: too much for one log
// entry. So it travels as a sequence, like InstallSnapshot's chunks, but through the log, so that
// every server applies it at the same indexes and a crash anywhere leaves the old state or the new:
//   restoreBegin   opens restore `id`: the encoded state will be `bytes` long
//   restoreChunk   the next `data` of it, numbered from 0 (binary, see fsm/commands.ts)
//   restoreCommit  checks the whole (length, the snapshot's own CRC-32 and structure) and swaps
//                  the built tables in, in one step
//   restoreAbort   drops it (the proposer failed, or the leader found it stalled)
// Until the commit nothing visible changes: the chunks build the new tables aside (fsm/staged-restore.ts).

import { onlyFields } from './command-shape.ts';
import { isUuid } from './state/events.ts';

export interface RestoreBeginCommand {
  readonly type: 'restoreBegin';
  /** A lowercase UUID chosen by the proposer; every later command of this restore names it. */
  readonly id: string;
  /** Length of the encoded state (fsm/snapshot.ts bytes). */
  readonly bytes: number;
}

export interface RestoreChunkCommand {
  readonly type: 'restoreChunk';
  readonly id: string;
  /** 0, 1, 2, ...: a chunk out of sequence is refused (and ends the restore). */
  readonly seq: number;
  readonly data: Uint8Array;
}

export interface RestoreCommitCommand {
  readonly type: 'restoreCommit';
  readonly id: string;
}

export interface RestoreAbortCommand {
  readonly type: 'restoreAbort';
  readonly id: string;
  /** Why, for the log and the result (at most 200 characters). */
  readonly reason: string;
}

export type RestoreCommand = RestoreBeginCommand | RestoreChunkCommand | RestoreCommitCommand | RestoreAbortCommand;

/** The largest chunk a restoreChunk may carry: well inside one append message and one transport frame. */
export const MAX_RESTORE_CHUNK_BYTES = 4 * 1024 * 1024;
const MAX_ABORT_REASON = 200;

export function validateRestoreCommand(c: Record<string, unknown>): string | null {
  const type = c['type'] as RestoreCommand['type'];
  let problem: string | null;
  switch (type) {
    case 'restoreBegin':
      problem = onlyFields(c, ['type', 'id', 'bytes'], []);
      if (problem) return problem;
      if (!Number.isSafeInteger(c['bytes']) || (c['bytes'] as number) <= 0) return 'restoreBegin: bytes must be a positive integer';
      break;
    case 'restoreChunk':
      problem = onlyFields(c, ['type', 'id', 'seq', 'data'], []);
      if (problem) return problem;
      if (!Number.isSafeInteger(c['seq']) || (c['seq'] as number) < 0 || (c['seq'] as number) > 0xffffffff) return 'restoreChunk: seq must be an integer in 0..2^32-1';
      if (!(c['data'] instanceof Uint8Array) || c['data'].length === 0 || c['data'].length > MAX_RESTORE_CHUNK_BYTES) {
        return `restoreChunk: data must be 1..${MAX_RESTORE_CHUNK_BYTES} bytes`;
      }
      break;
    case 'restoreCommit':
      problem = onlyFields(c, ['type', 'id'], []);
      if (problem) return problem;
      break;
    case 'restoreAbort':
      problem = onlyFields(c, ['type', 'id', 'reason'], []);
      if (problem) return problem;
      if (typeof c['reason'] !== 'string' || c['reason'].length > MAX_ABORT_REASON) return `restoreAbort: reason must be a string of at most ${MAX_ABORT_REASON} characters`;
      break;
    default:
      return `unknown command type ${JSON.stringify(type)}`;
  }
  if (typeof c['id'] !== 'string' || !isUuid(c['id'])) return `${type}: id must be a lowercase UUID`;
  return null;
}
