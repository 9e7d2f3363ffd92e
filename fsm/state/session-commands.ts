// The sessions' Raft commands (create, destroy, renew) and their validation.
//
// A create carries a complete session: the HTTP layer applies Consul's defaults (node, serfHealth,
// 15 s lock-delay, release), parses the durations and checks the TTL range (it depends on the
// server's session_ttl_min) before proposing, and the proposer generates the UUID. Rules that depend
// on the state (the node and the bound checks must exist) are the table's (sessions.ts).
//
// Time: a destroy carries the proposer's `nowMs`, from which the lock-delays of the keys it
// releases run. This file imports nothing from commands.ts, which imports it.

import { onlyFields } from '../command-shape.ts';
import { parseGoDuration } from '../../lib/duration.ts';

/** PUT /v1/session/create. Field values are final (defaults applied); see SessionSpec. */
export interface SessionCreateCommand {
  readonly type: 'sessionCreate';
  /** The proposer's random UUID (lowercase). */
  readonly id: string;
  readonly name: string;
  readonly node: string;
  /** Nanoseconds, as the client gave it (applied as at most 60 s; 0 or less: no lock-delay). */
  readonly lockDelayNs: number;
  readonly behavior: 'release' | 'delete';
  /** A Go duration as the client wrote it, or '' for none. */
  readonly ttl: string;
  /** null where Consul's slice is nil (JSON null in answers). */
  readonly nodeChecks: readonly string[] | null;
  readonly serviceChecks: readonly { readonly id: string; readonly namespace: string }[] | null;
  /** The deprecated Checks field, kept as Consul keeps it. */
  readonly checks: readonly string[] | null;
  /** The proposer's clock (ms): keeps the FSM's notion of time fresh (SessionsTable.clockMs). */
  readonly nowMs?: number;
}

/**
 * PUT /v1/session/destroy/:id, and the leader's TTL expiry. Releases (or deletes) the session's
 * locks; their lock-delay runs from `nowMs`. With `ifRenewIndex` (an expiry), nothing happens if
 * the session was renewed after that index: a renewal that commits first wins the race.
 */
export interface SessionDestroyCommand {
  readonly type: 'sessionDestroy';
  readonly id: string;
  readonly nowMs: number;
  readonly ifRenewIndex?: number;
}

/** PUT /v1/session/renew/:id: restarts the TTL (the leader's timer watches the renewal's index). */
export interface SessionRenewCommand {
  readonly type: 'sessionRenew';
  readonly id: string;
  /** The proposer's clock (ms), as in sessionCreate. */
  readonly nowMs?: number;
}

export type SessionCommand = SessionCreateCommand | SessionDestroyCommand | SessionRenewCommand;

/** Limits (Konsul's; Consul has none beyond the request size). */
export const SESSION_LIMITS = {
  /** Name, node, check IDs, TTL text, session ids. */
  textLength: 512,
  /** Bound checks per list (NodeChecks, ServiceChecks, Checks). */
  checks: 256,
} as const;

const SESSION_COMMAND_TYPES: ReadonlySet<string> = new Set(['sessionCreate', 'sessionDestroy', 'sessionRenew']);

export function isSessionCommandType(type: unknown): type is SessionCommand['type'] {
  return typeof type === 'string' && SESSION_COMMAND_TYPES.has(type);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Returns why `c` is not a valid session command, or null. */
export function validateSessionCommand(c: Record<string, unknown>): string | null {
  switch (c['type']) {
    case 'sessionCreate': {
      const fields = onlyFields(c, ['type', 'id', 'name', 'node', 'lockDelayNs', 'behavior', 'ttl', 'nodeChecks', 'serviceChecks', 'checks'], ['nowMs']);
      if (fields) return fields;
      if (c['nowMs'] !== undefined && !isNonNegativeInteger(c['nowMs'])) return 'sessionCreate: nowMs must be a non-negative safe integer';
      if (typeof c['id'] !== 'string' || !UUID.test(c['id'])) return 'sessionCreate: id must be a lowercase UUID';
      const name = checkText(c['name'], true);
      if (name) return `sessionCreate: name ${name}`;
      const node = checkText(c['node'], false);
      if (node) return `sessionCreate: node ${node}`;
      const delay = c['lockDelayNs'];
      if (typeof delay !== 'number' || !Number.isSafeInteger(delay)) return 'sessionCreate: lockDelayNs must be a safe integer';
      if (c['behavior'] !== 'release' && c['behavior'] !== 'delete') return 'sessionCreate: behavior must be release or delete';
      const ttl = checkText(c['ttl'], true);
      if (ttl) return `sessionCreate: ttl ${ttl}`;
      if (c['ttl'] !== '' && !parseGoDuration(c['ttl'] as string).ok) return 'sessionCreate: ttl must be a Go duration or empty';
      for (const field of ['nodeChecks', 'checks']) {
        const list = c[field];
        if (list === null) continue;
        if (!Array.isArray(list) || list.length > SESSION_LIMITS.checks) return `sessionCreate: ${field} must be null or an array of at most ${SESSION_LIMITS.checks} check IDs`;
        for (const id of list) {
          const problem = checkText(id, false);
          if (problem) return `sessionCreate: ${field}: check ID ${problem}`;
        }
      }
      const serviceChecks = c['serviceChecks'];
      if (serviceChecks !== null) {
        if (!Array.isArray(serviceChecks) || serviceChecks.length > SESSION_LIMITS.checks) {
          return `sessionCreate: serviceChecks must be null or an array of at most ${SESSION_LIMITS.checks} checks`;
        }
        for (const check of serviceChecks) {
          if (typeof check !== 'object' || check === null || Array.isArray(check)) return 'sessionCreate: serviceChecks: not an object';
          const ref = check as Record<string, unknown>;
          const refFields = onlyFields({ type: 'serviceCheck', ...ref }, ['type', 'id', 'namespace'], []);
          if (refFields) return `sessionCreate: ${refFields}`;
          const id = checkText(ref['id'], false);
          if (id) return `sessionCreate: serviceChecks: ID ${id}`;
          const namespace = checkText(ref['namespace'], true);
          if (namespace) return `sessionCreate: serviceChecks: Namespace ${namespace}`;
        }
      }
      return null;
    }
    case 'sessionDestroy': {
      const fields = onlyFields(c, ['type', 'id', 'nowMs'], ['ifRenewIndex']);
      if (fields) return fields;
      const id = checkText(c['id'], false);
      if (id) return `sessionDestroy: id ${id}`;
      if (!isNonNegativeInteger(c['nowMs'])) return 'sessionDestroy: nowMs must be a non-negative safe integer';
      if (c['ifRenewIndex'] !== undefined && !isNonNegativeInteger(c['ifRenewIndex'])) return 'sessionDestroy: ifRenewIndex must be a non-negative safe integer';
      return null;
    }
    case 'sessionRenew': {
      const fields = onlyFields(c, ['type', 'id'], ['nowMs']);
      if (fields) return fields;
      const id = checkText(c['id'], false);
      if (id) return `sessionRenew: id ${id}`;
      if (c['nowMs'] !== undefined && !isNonNegativeInteger(c['nowMs'])) return 'sessionRenew: nowMs must be a non-negative safe integer';
      return null;
    }
    default:
      return `unknown command type ${JSON.stringify(c['type'])}`;
  }
}

function isNonNegativeInteger(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** A string of well-formed Unicode (it must survive the UTF-8 snapshot) within the length limit. */
function checkText(value: unknown, emptyAllowed: boolean): string | null {
  if (typeof value !== 'string') return 'must be a string';
  if (!emptyAllowed && value === '') return 'must not be empty';
  if (value.length > SESSION_LIMITS.textLength) return `longer than ${SESSION_LIMITS.textLength} characters`;
  if (LONE_SURROGATE.test(value)) return 'is not well-formed Unicode';
  return null;
}
