// The commands that travel through the Raft log and that the FSM applies, and their encoding.
//
// Every write is one of these plain objects, keyed by `type`. They are encoded as UTF-8 JSON: easy
// to read in a log dump, and JSON is enough because every field is a string or a small integer:
// - values travel as canonical base64 strings (bytes are not JSON);
// - Flags, Consul's uint64, travels as a decimal string so that no bit is lost to float rounding;
// - indexes (cas, upToIndex) are Raft indexes, which stay far below 2^53.
// The exceptions carry snapshot bytes: restoreChunk (a piece of a staged restore, up to a few
// megabytes) and snapshotRestore (a whole state in one entry; no longer proposed, still applied
// from old logs). A binary encoding (a 0 byte, a kind byte, the raw bytes) spares every replica
// base64 and JSON over them.
//
// Validation happens on both ends: `encodeCommand` refuses to put an invalid command in the log
// (a bug in the proposer), `decodeCommand`/`tryDecodeCommand` refuse to apply one (a log written
// by another version, or corruption). The FSM turns a refused command into an error result that
// changes nothing, identically on every replica.

import type { EncodedCommand } from './command-results.ts';
import { decodeBase64, encodeBase64 } from './base64.ts';
import { isUuid, MAX_EVENT_FILTER_LENGTH, MAX_EVENT_NAME_LENGTH, MAX_EVENT_PAYLOAD_BYTES } from './state/events.ts';
import { isTxnKvVerb, MAX_TXN_OPS } from './state/kv-txn.ts';
import { validateCatalogCommand, type CatalogCheckStatusCommand, type CatalogDeregisterCommand, type CatalogRegisterCommand } from './state/catalog-commands.ts';

export type { CatalogCheckStatusCommand, CatalogDeregisterCommand, CatalogRegisterCommand } from './state/catalog-commands.ts';
import { validateSessionCommand, type SessionCreateCommand, type SessionDestroyCommand, type SessionRenewCommand } from './state/session-commands.ts';
import { onlyFields } from './command-shape.ts';
import { validateRestoreCommand, type RestoreAbortCommand, type RestoreBeginCommand, type RestoreChunkCommand, type RestoreCommitCommand } from './restore-commands.ts';

export type { RestoreAbortCommand, RestoreBeginCommand, RestoreChunkCommand, RestoreCommand, RestoreCommitCommand } from './restore-commands.ts';

export type { SessionCreateCommand, SessionDestroyCommand, SessionRenewCommand } from './state/session-commands.ts';
import { validateKvRecoveryCommand, type KvRecoveryPurgeCommand, type KvRecoveryReapCommand, type KvRecoveryRulesCommand } from './state/kv-recovery-commands.ts';

export type { KvRecoveryCommand, KvRecoveryPurgeCommand, KvRecoveryReapCommand, KvRecoveryRulesCommand } from './state/kv-recovery-commands.ts';

export const MAX_FLAGS = 0xffff_ffff_ffff_ffffn;

/**
 * PUT /v1/kv/:key. At most one of `cas`, `acquire`, `release` (Consul answers "Conflicting flags"
 * for more; the HTTP layer must reject them, the FSM refuses them as invalid).
 */
export interface KvSetCommand {
  readonly type: 'kvSet';
  readonly key: string;
  /** The value, canonical padded base64. */
  readonly value: string;
  /** Decimal uint64, 0..2^64-1. */
  readonly flags: string;
  /** Check-and-set: 0 = only if the key does not exist; N > 0 = only if its ModifyIndex is N. */
  readonly cas?: number;
  /** Session id taking the lock (and writing the value). */
  readonly acquire?: string;
  /** Session id giving the lock up (and writing the value). */
  readonly release?: string;
  /**
   * The proposer's clock (ms). With acquire, to refuse a key under lock-delay (fsm/state/sessions.ts);
   * on a key kept by recovery rules, the time of what the write retires (fsm/state/kv-recovery.ts).
   */
  readonly nowMs?: number;
}

/** DELETE /v1/kv/:key, optionally check-and-set on the ModifyIndex. */
export interface KvDeleteCommand {
  readonly type: 'kvDelete';
  readonly key: string;
  readonly cas?: number;
  /** On a key kept by recovery rules: the proposer's clock (ms), the time of the retired value. */
  readonly nowMs?: number;
}

/** DELETE /v1/kv/:prefix?recurse. The empty prefix deletes everything. */
export interface KvDeleteTreeCommand {
  readonly type: 'kvDeleteTree';
  readonly prefix: string;
  /** As kvDelete's. */
  readonly nowMs?: number;
}

/** Proposed periodically by the leader: forget KV tombstones with an index <= upToIndex. */
export interface KvReapTombstonesCommand {
  readonly type: 'kvReapTombstones';
  readonly upToIndex: number;
}

/** One KV operation of a transaction, as it travels in the log (value base64, flags decimal). */
export interface TxnKvOpCommand {
  /** One of TXN_KV_WRITE_VERBS / TXN_KV_READ_VERBS (fsm/state/kv-txn.ts). */
  readonly verb: string;
  /** '' only for delete-tree. */
  readonly key: string;
  readonly value?: string;
  readonly flags?: string;
  readonly index?: number;
  readonly session?: string;
}

/** PUT /v1/txn with at least one write: the operations run in order, all or nothing. */
export interface TxnCommand {
  readonly type: 'txn';
  readonly ops: readonly TxnKvOpCommand[];
  /** With a lock op: the proposer's clock (ms), to refuse a key under lock-delay, as kvSet's. */
  readonly nowMs?: number;
}

/** PUT /v1/event/fire/:name: records a user event in the events ring. */
export interface EventFireCommand {
  readonly type: 'eventFire';
  /** The proposer's random UUID; the FSM derives the event's ID from it (fsm/state/events.ts). */
  readonly id: string;
  readonly name: string;
  /** Canonical base64 ('' for none). */
  readonly payload: string;
  readonly nodeFilter: string;
  readonly serviceFilter: string;
  readonly tagFilter: string;
}

/**
 * Replaces the whole state with a snapshot's (fsm/snapshot.ts bytes) in one entry. PUT /v1/snapshot
 * proposed it until restores were staged (restore-commands.ts); logs may still hold it.
 */
export interface SnapshotRestoreCommand {
  readonly type: 'snapshotRestore';
  readonly state: Uint8Array;
}

export type Command =
  | KvSetCommand
  | KvDeleteCommand
  | KvDeleteTreeCommand
  | KvReapTombstonesCommand
  | TxnCommand
  | EventFireCommand
  | SnapshotRestoreCommand
  | RestoreBeginCommand
  | RestoreChunkCommand
  | RestoreCommitCommand
  | RestoreAbortCommand
  | CatalogRegisterCommand
  | CatalogDeregisterCommand
  | CatalogCheckStatusCommand
  | SessionCreateCommand
  | SessionDestroyCommand
  | SessionRenewCommand
  | KvRecoveryRulesCommand
  | KvRecoveryReapCommand
  | KvRecoveryPurgeCommand;

export type CommandType = Command['type'];

/** A command that is malformed or violates a rule of its type. */
export class InvalidCommandError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidCommandError';
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Binary commands start with a 0 byte, which no JSON command does (they start with '{'), then a
 * kind byte: 1 = snapshotRestore, followed by the snapshot bytes; 2 = restoreChunk, followed by the
 * restore id (36 ASCII bytes), the sequence number (uint32, big-endian) and the chunk.
 */
const BINARY_COMMAND = 0x00;
const BINARY_SNAPSHOT_RESTORE = 0x01;
const BINARY_RESTORE_CHUNK = 0x02;
const CHUNK_HEADER_BYTES = 2 + 36 + 4;

/**
 * Encodes a command for the Raft log; throws InvalidCommandError if it is not valid. The bytes
 * remember the command's type, so that proposing them answers its result type (command-results.ts).
 */
export function encodeCommand<C extends Command>(command: C): EncodedCommand<C> {
  return encodeAnyCommand(command) as EncodedCommand<C>;
}

function encodeAnyCommand(command: Command): Uint8Array {
  const problem = validateCommand(command);
  if (problem !== null) throw new InvalidCommandError(problem);
  if (command.type === 'snapshotRestore') {
    const bytes = new Uint8Array(2 + command.state.length);
    bytes[0] = BINARY_COMMAND;
    bytes[1] = BINARY_SNAPSHOT_RESTORE;
    bytes.set(command.state, 2);
    return bytes;
  }
  if (command.type === 'restoreChunk') {
    const bytes = new Uint8Array(CHUNK_HEADER_BYTES + command.data.length);
    bytes[0] = BINARY_COMMAND;
    bytes[1] = BINARY_RESTORE_CHUNK;
    for (let i = 0; i < 36; i++) bytes[2 + i] = command.id.charCodeAt(i);
    new DataView(bytes.buffer).setUint32(38, command.seq);
    bytes.set(command.data, CHUNK_HEADER_BYTES);
    return bytes;
  }
  return encoder.encode(JSON.stringify(command));
}

/** Decodes and validates a command from the log; throws InvalidCommandError. */
export function decodeCommand(bytes: Uint8Array): Command {
  const decoded = tryDecodeCommand(bytes);
  if (!decoded.ok) throw new InvalidCommandError(decoded.error);
  return decoded.command;
}

export type DecodeResult = { readonly ok: true; readonly command: Command } | { readonly ok: false; readonly error: string };

/** Decodes and validates a command from the log without throwing. */
export function tryDecodeCommand(bytes: Uint8Array): DecodeResult {
  if (bytes[0] === BINARY_COMMAND) return decodeBinaryCommand(bytes);
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(bytes));
  } catch {
    return { ok: false, error: 'command is not UTF-8 JSON' };
  }
  const problem = validateCommand(parsed);
  if (problem !== null) return { ok: false, error: problem };
  return { ok: true, command: parsed as Command };
}

function decodeBinaryCommand(bytes: Uint8Array): DecodeResult {
  if (bytes[1] === BINARY_SNAPSHOT_RESTORE && bytes.length > 2) return { ok: true, command: { type: 'snapshotRestore', state: bytes.subarray(2) } };
  if (bytes[1] === BINARY_RESTORE_CHUNK && bytes.length > CHUNK_HEADER_BYTES) {
    const command: RestoreChunkCommand = {
      type: 'restoreChunk',
      id: String.fromCharCode(...bytes.subarray(2, 38)),
      seq: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(38),
      data: bytes.subarray(CHUNK_HEADER_BYTES),
    };
    const problem = validateRestoreCommand(command as unknown as Record<string, unknown>);
    return problem === null ? { ok: true, command } : { ok: false, error: problem };
  }
  return { ok: false, error: 'unknown binary command' };
}

/** Builds a kvSet command from raw bytes (the value is base64-encoded here). */
export function kvSetCommand(params: {
  readonly key: string;
  readonly value: Uint8Array;
  readonly flags?: bigint;
  readonly cas?: number;
  readonly acquire?: string;
  readonly release?: string;
  readonly nowMs?: number;
}): KvSetCommand {
  return {
    type: 'kvSet',
    key: params.key,
    value: encodeBase64(params.value),
    flags: (params.flags ?? 0n).toString(),
    ...(params.cas !== undefined ? { cas: params.cas } : {}),
    ...(params.acquire !== undefined ? { acquire: params.acquire } : {}),
    ...(params.release !== undefined ? { release: params.release } : {}),
    ...(params.nowMs !== undefined ? { nowMs: params.nowMs } : {}),
  };
}

/** Parses a validated command's Flags. */
export function parseFlags(flags: string): bigint {
  return BigInt(flags);
}

/** Decodes a validated command's value. */
export function parseValue(value: string): Uint8Array {
  const bytes = decodeBase64(value);
  if (bytes === null) throw new InvalidCommandError('value is not canonical base64');
  return bytes;
}

/**
 * Returns why `value` is not a valid command, or null if it is. Checks the exact set of fields:
 * an unknown field means a log written by a newer version, which must not be half-applied.
 */
export function validateCommand(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'command is not an object';
  const c = value as Record<string, unknown>;
  switch (c['type']) {
    case 'kvSet': {
      const fieldProblem = onlyFields(c, ['type', 'key', 'value', 'flags'], ['cas', 'acquire', 'release', 'nowMs']);
      if (fieldProblem) return fieldProblem;
      const keyProblem = checkKey(c['key'], 'key', false);
      if (keyProblem) return keyProblem;
      if (typeof c['value'] !== 'string' || decodeBase64(c['value']) === null) return 'kvSet: value must be canonical base64';
      if (!isUint64Decimal(c['flags'])) return 'kvSet: flags must be a decimal string in 0..2^64-1';
      const modes = ['cas', 'acquire', 'release'].filter((f) => c[f] !== undefined);
      if (modes.length > 1) return `kvSet: conflicting flags: ${modes.join(', ')}`;
      if (c['cas'] !== undefined && !isIndex(c['cas'])) return 'kvSet: cas must be a non-negative safe integer';
      if (c['nowMs'] !== undefined && !isIndex(c['nowMs'])) return 'kvSet: nowMs must be a non-negative safe integer';
      for (const field of ['acquire', 'release']) {
        if (c[field] !== undefined && !(typeof c[field] === 'string' && isWellFormed(c[field]))) {
          return `kvSet: ${field} must be a session id string`;
        }
      }
      return null;
    }
    case 'kvDelete': {
      const fieldProblem = onlyFields(c, ['type', 'key'], ['cas', 'nowMs']);
      if (fieldProblem) return fieldProblem;
      const keyProblem = checkKey(c['key'], 'key', false);
      if (keyProblem) return keyProblem;
      if (c['cas'] !== undefined && !isIndex(c['cas'])) return 'kvDelete: cas must be a non-negative safe integer';
      if (c['nowMs'] !== undefined && !isIndex(c['nowMs'])) return 'kvDelete: nowMs must be a non-negative safe integer';
      return null;
    }
    case 'kvDeleteTree': {
      const fieldProblem = onlyFields(c, ['type', 'prefix'], ['nowMs']);
      if (fieldProblem) return fieldProblem;
      if (c['nowMs'] !== undefined && !isIndex(c['nowMs'])) return 'kvDeleteTree: nowMs must be a non-negative safe integer';
      return checkKey(c['prefix'], 'prefix', true);
    }
    case 'kvReapTombstones': {
      const fieldProblem = onlyFields(c, ['type', 'upToIndex'], []);
      if (fieldProblem) return fieldProblem;
      if (!isIndex(c['upToIndex'])) return 'kvReapTombstones: upToIndex must be a non-negative safe integer';
      return null;
    }
    case 'txn': {
      const fieldProblem = onlyFields(c, ['type', 'ops'], ['nowMs']);
      if (fieldProblem) return fieldProblem;
      if (c['nowMs'] !== undefined && !isIndex(c['nowMs'])) return 'txn: nowMs must be a non-negative safe integer';
      const ops = c['ops'];
      if (!Array.isArray(ops) || ops.length === 0 || ops.length > MAX_TXN_OPS) return `txn: ops must be an array of 1..${MAX_TXN_OPS} operations`;
      for (let i = 0; i < ops.length; i++) {
        const problem = checkTxnKvOp(ops[i]);
        if (problem) return `txn: op ${i}: ${problem}`;
      }
      return null;
    }
    case 'eventFire': {
      const fieldProblem = onlyFields(c, ['type', 'id', 'name', 'payload', 'nodeFilter', 'serviceFilter', 'tagFilter'], []);
      if (fieldProblem) return fieldProblem;
      if (typeof c['id'] !== 'string' || !isUuid(c['id'])) return 'eventFire: id must be a lowercase UUID';
      const nameProblem = checkKey(c['name'], 'name', false);
      if (nameProblem) return `eventFire: ${nameProblem}`;
      if ((c['name'] as string).length > MAX_EVENT_NAME_LENGTH) return `eventFire: name longer than ${MAX_EVENT_NAME_LENGTH} characters`;
      const payload = typeof c['payload'] === 'string' ? decodeBase64(c['payload']) : null;
      if (payload === null) return 'eventFire: payload must be canonical base64';
      if (payload.length > MAX_EVENT_PAYLOAD_BYTES) return `eventFire: payload larger than ${MAX_EVENT_PAYLOAD_BYTES} bytes`;
      for (const field of ['nodeFilter', 'serviceFilter', 'tagFilter']) {
        const v = c[field];
        if (typeof v !== 'string' || !isWellFormed(v) || v.length > MAX_EVENT_FILTER_LENGTH) return `eventFire: ${field} must be a string of at most ${MAX_EVENT_FILTER_LENGTH} characters`;
      }
      return null;
    }
    case 'catalogRegister':
    case 'catalogDeregister':
    case 'catalogCheckStatus':
      // fsm/state/catalog-commands.ts: specs, exact fields, limits.
      return validateCatalogCommand(c);
    case 'sessionCreate':
    case 'sessionDestroy':
    case 'sessionRenew':
      // fsm/state/session-commands.ts: exact fields, limits.
      return validateSessionCommand(c);
    case 'kvRecoveryRules':
    case 'kvRecoveryReap':
    case 'kvRecoveryPurge':
      // fsm/state/kv-recovery-commands.ts: recoverable deletes.
      return validateKvRecoveryCommand(c);
    case 'restoreBegin':
    case 'restoreChunk':
    case 'restoreCommit':
    case 'restoreAbort':
      // fsm/restore-commands.ts: exact fields, limits.
      return validateRestoreCommand(c);
    case 'snapshotRestore': {
      const fieldProblem = onlyFields(c, ['type', 'state'], []);
      if (fieldProblem) return fieldProblem;
      // Only the type here: the snapshot itself is checked completely when it is applied.
      if (!(c['state'] instanceof Uint8Array) || c['state'].length === 0) return 'snapshotRestore: state must be non-empty bytes';
      return null;
    }
    default:
      return `unknown command type ${JSON.stringify(c['type'])}`;
  }
}

function checkTxnKvOp(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not an object';
  const op = value as Record<string, unknown>;
  for (const field of Object.keys(op)) {
    if (!['verb', 'key', 'value', 'flags', 'index', 'session'].includes(field)) return `unknown field ${field}`;
  }
  if (typeof op['verb'] !== 'string' || !isTxnKvVerb(op['verb'])) return `unknown verb ${JSON.stringify(op['verb'])}`;
  const keyProblem = checkKey(op['key'], 'key', op['verb'] === 'delete-tree');
  if (keyProblem) return keyProblem;
  if (op['value'] !== undefined && (typeof op['value'] !== 'string' || decodeBase64(op['value']) === null)) return 'value must be canonical base64';
  if (op['flags'] !== undefined && !isUint64Decimal(op['flags'])) return 'flags must be a decimal string in 0..2^64-1';
  if (op['index'] !== undefined && !isIndex(op['index'])) return 'index must be a non-negative safe integer';
  if (op['session'] !== undefined && !(typeof op['session'] === 'string' && isWellFormed(op['session']))) return 'session must be a string';
  return null;
}

function checkKey(key: unknown, name: string, emptyAllowed: boolean): string | null {
  if (typeof key !== 'string') return `${name} must be a string`;
  if (!emptyAllowed && key === '') return `${name} must not be empty`;
  // A lone surrogate would not survive the UTF-8 snapshot encoding: a replica restored from a
  // snapshot would hold a different key than one that replayed the log.
  if (!isWellFormed(key)) return `${name} is not well-formed Unicode`;
  return null;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** True if `s` has no lone surrogate, so it round-trips through UTF-8 unchanged. */
export function isWellFormed(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}

function isIndex(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

function isUint64Decimal(s: unknown): s is string {
  // 20 digits hold 2^64-1; leading zeros are refused so that the log holds one spelling per value.
  return typeof s === 'string' && /^(0|[1-9][0-9]{0,19})$/.test(s) && BigInt(s) <= MAX_FLAGS;
}
