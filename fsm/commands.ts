// The commands that travel through the Raft log and that the FSM applies, and their encoding.
//
// Every write is one of these plain objects, keyed by `type`. They are encoded as UTF-8 JSON: easy
// to read in a log dump, and JSON is enough because every field is a string or a small integer:
// - values travel as canonical base64 strings (bytes are not JSON);
// - Flags, Consul's uint64, travels as a decimal string so that no bit is lost to float rounding;
// - indexes (cas, upToIndex) are Raft indexes, which stay far below 2^53.
//
// Validation happens on both ends: `encodeCommand` refuses to put an invalid command in the log
// (a bug in the proposer), `decodeCommand`/`tryDecodeCommand` refuse to apply one (a log written
// by another version, or corruption). The FSM turns a refused command into an error result that
// changes nothing, identically on every replica.

import { decodeBase64, encodeBase64 } from './base64.ts';

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
}

/** DELETE /v1/kv/:key, optionally check-and-set on the ModifyIndex. */
export interface KvDeleteCommand {
  readonly type: 'kvDelete';
  readonly key: string;
  readonly cas?: number;
}

/** DELETE /v1/kv/:prefix?recurse. The empty prefix deletes everything. */
export interface KvDeleteTreeCommand {
  readonly type: 'kvDeleteTree';
  readonly prefix: string;
}

/** Proposed periodically by the leader: forget KV tombstones with an index <= upToIndex. */
export interface KvReapTombstonesCommand {
  readonly type: 'kvReapTombstones';
  readonly upToIndex: number;
}

export type Command = KvSetCommand | KvDeleteCommand | KvDeleteTreeCommand | KvReapTombstonesCommand;

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

/** Encodes a command for the Raft log; throws InvalidCommandError if it is not valid. */
export function encodeCommand(command: Command): Uint8Array {
  const problem = validateCommand(command);
  if (problem !== null) throw new InvalidCommandError(problem);
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

/** Builds a kvSet command from raw bytes (the value is base64-encoded here). */
export function kvSetCommand(params: {
  readonly key: string;
  readonly value: Uint8Array;
  readonly flags?: bigint;
  readonly cas?: number;
  readonly acquire?: string;
  readonly release?: string;
}): KvSetCommand {
  return {
    type: 'kvSet',
    key: params.key,
    value: encodeBase64(params.value),
    flags: (params.flags ?? 0n).toString(),
    ...(params.cas !== undefined ? { cas: params.cas } : {}),
    ...(params.acquire !== undefined ? { acquire: params.acquire } : {}),
    ...(params.release !== undefined ? { release: params.release } : {}),
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
      const fieldProblem = onlyFields(c, ['type', 'key', 'value', 'flags'], ['cas', 'acquire', 'release']);
      if (fieldProblem) return fieldProblem;
      const keyProblem = checkKey(c['key'], 'key', false);
      if (keyProblem) return keyProblem;
      if (typeof c['value'] !== 'string' || decodeBase64(c['value']) === null) return 'kvSet: value must be canonical base64';
      if (!isUint64Decimal(c['flags'])) return 'kvSet: flags must be a decimal string in 0..2^64-1';
      const modes = ['cas', 'acquire', 'release'].filter((f) => c[f] !== undefined);
      if (modes.length > 1) return `kvSet: conflicting flags: ${modes.join(', ')}`;
      if (c['cas'] !== undefined && !isIndex(c['cas'])) return 'kvSet: cas must be a non-negative safe integer';
      for (const field of ['acquire', 'release']) {
        if (c[field] !== undefined && !(typeof c[field] === 'string' && isWellFormed(c[field]))) {
          return `kvSet: ${field} must be a session id string`;
        }
      }
      return null;
    }
    case 'kvDelete': {
      const fieldProblem = onlyFields(c, ['type', 'key'], ['cas']);
      if (fieldProblem) return fieldProblem;
      const keyProblem = checkKey(c['key'], 'key', false);
      if (keyProblem) return keyProblem;
      if (c['cas'] !== undefined && !isIndex(c['cas'])) return 'kvDelete: cas must be a non-negative safe integer';
      return null;
    }
    case 'kvDeleteTree': {
      const fieldProblem = onlyFields(c, ['type', 'prefix'], []);
      if (fieldProblem) return fieldProblem;
      return checkKey(c['prefix'], 'prefix', true);
    }
    case 'kvReapTombstones': {
      const fieldProblem = onlyFields(c, ['type', 'upToIndex'], []);
      if (fieldProblem) return fieldProblem;
      if (!isIndex(c['upToIndex'])) return 'kvReapTombstones: upToIndex must be a non-negative safe integer';
      return null;
    }
    default:
      return `unknown command type ${JSON.stringify(c['type'])}`;
  }
}

function onlyFields(c: Record<string, unknown>, required: readonly string[], optional: readonly string[]): string | null {
  for (const field of required) {
    if (c[field] === undefined) return `${String(c['type'])}: missing field ${field}`;
  }
  for (const field of Object.keys(c)) {
    if (!required.includes(field) && !optional.includes(field)) return `${String(c['type'])}: unknown field ${field}`;
  }
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
