// Consul's query options shared by every read endpoint, in the server and in the agent: blocking
// (?index, ?wait) and consistency (?stale, ?consistent), parsed strictly with Consul's error texts.
// ?wait is a Go duration (lib/duration.ts), as Consul's parseWait reads it.
import { parseGoDurationMs } from '../lib/duration.ts';
import { badRequest } from '../lib/errors.ts';

export type Consistency = 'default' | 'stale' | 'consistent';

export interface QueryOptions {
  /** Block until the result's index exceeds this (0 = answer at once). */
  readonly minIndex: number;
  /** How long a blocking query may wait, already capped and jittered. */
  readonly waitMs: number;
  /**
   * The wait before the jitter (capped): `waitMs` lies in [waitBaseMs, waitBaseMs + waitBaseMs / 16),
   * the window in which Consul answers a blocking query that nothing woke.
   */
  readonly waitBaseMs: number;
  readonly consistency: Consistency;
}

/** A parsed query string: fastify's parser gives a string, or an array for a repeated name. */
export type Query = Record<string, string | string[] | undefined>;

/**
 * A request's query string as fastify's parser leaves it (strings, lists for repeated names): for
 * helpers that take any route's request. Routes type theirs with `{ Querystring: Query }`.
 */
export function queryOf(request: { readonly query: unknown }): Query {
  return request.query as Query;
}

export const DEFAULT_WAIT_MS = 5 * 60 * 1000;
export const MAX_WAIT_MS = 10 * 60 * 1000;

export function has(query: Query, name: string): boolean {
  return Object.prototype.hasOwnProperty.call(query, name);
}

/** The first value of a query parameter ('' when present without a value). */
export function param(query: Query, name: string): string | undefined {
  const v = query[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Every value of a repeated query parameter (Prometheus repeats ?tag). */
export function paramList(query: Query, name: string): string[] {
  const v = query[name];
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

/** Parses an unsigned decimal integer as Go's ParseUint does; null if invalid or unsafe. */
export function parseUint(text: string): number | null {
  if (!/^\d+$/.test(text)) return null;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : null;
}

/**
 * Consul's ?wait: absent or empty is the default (5 minutes), zero or negative too, and more than
 * 10 minutes is 10 minutes; null when it is not a Go duration ("Invalid wait time"). No jitter.
 */
export function parseWaitMs(text: string | null | undefined): number | null {
  if (text === undefined || text === null || text === '') return DEFAULT_WAIT_MS;
  const ms = parseGoDurationMs(text);
  if (ms === null) return null;
  return ms <= 0 ? DEFAULT_WAIT_MS : Math.min(ms, MAX_WAIT_MS);
}

export function parseQueryOptions(query: Query, random: () => number = Math.random): QueryOptions {
  let minIndex = 0;
  const index = param(query, 'index');
  if (index !== undefined && index !== '') {
    const n = parseUint(index);
    if (n === null) throw badRequest('Invalid index');
    minIndex = n;
  }
  const waitBaseMs = parseWaitMs(param(query, 'wait'));
  if (waitBaseMs === null) throw badRequest('Invalid wait time');
  // Spread the wake-ups of many watchers that started together, as Consul does (at most wait/16).
  const waitMs = waitBaseMs + Math.floor(random() * (waitBaseMs / 16));
  const stale = has(query, 'stale');
  const consistent = has(query, 'consistent');
  if (stale && consistent) throw badRequest('Cannot specify ?stale with ?consistent, conflicting semantics.');
  return { minIndex, waitMs, waitBaseMs, consistency: stale ? 'stale' : consistent ? 'consistent' : 'default' };
}
