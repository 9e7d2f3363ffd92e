// Konsul's replicated state machine: applies committed Raft entries to the tables, in log order,
// deterministically. Every replica that applies the same entries holds the same state and answers
// the same results; nothing here reads a clock, randomness or the environment.
//
// One index space: the Raft log index of the entry being applied. It becomes the CreateIndex and
// ModifyIndex of what the entry writes, and each table remembers the last index that changed it
// (for blocking queries). The host (raft/host) calls `apply` for normal entries with data and
// `applyNoop` for empty entries and membership changes: every index once, in order.

import { parseFlags, parseValue, tryDecodeCommand, validateCommand, type Command } from './commands.ts';
import { decodeSnapshot, encodeSnapshot } from './snapshot.ts';
import { KvTable, NO_SESSIONS, type KvWriteOutcome, type SessionLookup } from './state/kv.ts';
import { WatchRegistry, type WatcherErrorHandler } from './watch.ts';

/** Why a command was not applied (the state is unchanged). */
export type ApplyErrorCode =
  /** The bytes are not a valid command (corruption, or a command from an unknown version). */
  | 'invalidCommand'
  /** acquire/release with an empty session id (Consul: "missing session", HTTP 500). */
  | 'missingSession'
  /** acquire with a session that does not exist (Consul: `invalid session "<id>"`, HTTP 500). */
  | 'invalidSession';

export interface ApplyError {
  readonly ok: false;
  readonly code: ApplyErrorCode;
  /** For missingSession/invalidSession, Consul's exact error text (clients match on it). */
  readonly error: string;
}

/**
 * What applying a command answers: Consul's true/false for a KV write (kvDeleteTree and
 * kvReapTombstones always true), or an error that changed nothing.
 */
export type ApplyResult = boolean | ApplyError;

/** A broken contract between the host and the FSM (a bug, never an expected outcome). */
export class FsmInvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FsmInvariantError';
  }
}

export interface KonsulFsmOptions {
  /** Which sessions exist (for KV lock acquisition). Until the sessions table exists: none. */
  readonly sessions?: SessionLookup;
  /** Receives exceptions thrown by watcher callbacks; see WatchRegistry. */
  readonly onWatcherError?: WatcherErrorHandler;
}

export class KonsulFsm {
  readonly kv = new KvTable();
  readonly watches: WatchRegistry;
  private readonly sessions: SessionLookup;
  private lastApplied = 0;

  constructor(options: KonsulFsmOptions = {}) {
    this.sessions = options.sessions ?? NO_SESSIONS;
    this.watches = new WatchRegistry(options.onWatcherError ? { onWatcherError: options.onWatcherError } : {});
  }

  /** The index of the last entry applied (or restored from a snapshot); 0 initially. */
  get appliedIndex(): number {
    return this.lastApplied;
  }

  /**
   * Applies the command in the log entry at `index`. Never throws because of the command: an
   * invalid one answers an ApplyError and changes nothing but the applied index (every replica
   * does the same, so replaying the log cannot crash them all). Throws FsmInvariantError if the
   * host applies out of order; rethrows a watcher callback's exception after the apply completed.
   */
  apply(index: number, command: Uint8Array): ApplyResult {
    this.checkNextIndex(index);
    const decoded = tryDecodeCommand(command);
    if (!decoded.ok) {
      this.lastApplied = index;
      return { ok: false, code: 'invalidCommand', error: decoded.error };
    }
    return this.execute(index, decoded.command);
  }

  /** Applies an already decoded command (validated here too): for in-process use and tests. */
  applyCommand(index: number, command: Command): ApplyResult {
    this.checkNextIndex(index);
    const problem = validateCommand(command);
    if (problem !== null) {
      this.lastApplied = index;
      return { ok: false, code: 'invalidCommand', error: problem };
    }
    return this.execute(index, command);
  }

  /** An entry without a command (empty normal entry, membership change): only advances the index. */
  applyNoop(index: number): void {
    this.checkNextIndex(index);
    this.lastApplied = index;
  }

  /** The whole state as deterministic bytes (see snapshot.ts). */
  snapshot(): Uint8Array {
    return encodeSnapshot({ appliedIndex: this.lastApplied, kv: this.kv.dump() });
  }

  /**
   * Replaces the whole state with a snapshot's. Parses and checks everything first (throws
   * SnapshotFormatError, leaving the state untouched), then wakes every watcher.
   */
  restore(data: Uint8Array): void {
    const state = decodeSnapshot(data);
    this.kv.load(state.kv);
    this.lastApplied = state.appliedIndex;
    this.watches.notifyAll(state.appliedIndex);
  }

  private execute(index: number, command: Command): ApplyResult {
    let outcome: KvWriteOutcome;
    switch (command.type) {
      case 'kvSet': {
        const write = { key: command.key, value: parseValue(command.value), flags: parseFlags(command.flags) };
        if (command.acquire !== undefined) outcome = this.kv.acquire(index, write, command.acquire, this.sessions);
        else if (command.release !== undefined) outcome = this.kv.release(index, write, command.release);
        else if (command.cas !== undefined) outcome = this.kv.setCas(index, write, command.cas);
        else outcome = this.kv.set(index, write);
        break;
      }
      case 'kvDelete':
        outcome = this.kv.delete(index, command.key, command.cas);
        break;
      case 'kvDeleteTree':
        outcome = this.kv.deleteTree(index, command.prefix);
        break;
      case 'kvReapTombstones':
        this.kv.reapTombstones(command.upToIndex);
        outcome = { kind: 'done', result: true, changedKeys: [] };
        break;
      default:
        return assertNever(command);
    }
    this.lastApplied = index;
    if (outcome.kind === 'rejected') return { ok: false, code: outcome.code, error: outcome.error };
    // Last: the state is complete before any watcher looks at it (and a throwing watcher cannot
    // leave the apply half done).
    this.watches.notify('kv', index, outcome.changedKeys);
    return outcome.result;
  }

  private checkNextIndex(index: number): void {
    // Raft hands over every committed entry exactly once, in order: a gap would mean a lost
    // write (this replica diverges), a repeat a write applied twice.
    if (index !== this.lastApplied + 1) {
      throw new FsmInvariantError(`apply at index ${index} after index ${this.lastApplied}: entries must be applied once each, in order`);
    }
  }
}

function assertNever(command: never): never {
  throw new FsmInvariantError(`unhandled command ${JSON.stringify(command)}`);
}
