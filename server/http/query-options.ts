// Consul's query options shared by every read endpoint: blocking (?index, ?wait) and consistency
// (?stale, ?consistent), parsed strictly with Consul's error texts.
import { badRequest } from '../errors.ts';

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

export type Query = Record<string, string | string[] | undefined>;

const DEFAULT_WAIT_MS = 5 * 60 * 1000;
const MAX_WAIT_MS = 10 * 60 * 1000;

export function has(query: Query, name: string): boolean {
  return Object.prototype.hasOwnProperty.call(query, name);
}

/** The first value of a query parameter ('' when present without a value). */
export function param(query: Query, name: string): string | undefined {
  const v = query[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Parses Go-style durations as Consul does ("5m", "1.5s", "300ms", "1h2m"); null if invalid. */
export function parseDurationMs(text: string): number | null {
  if (text === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  const unitMs: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let matched = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * unitMs[m[2]!]!;
    matched = re.lastIndex;
  }
  return matched === text.length && matched > 0 ? total : null;
}

/** Parses an unsigned decimal integer as Go's ParseUint does; null if invalid or unsafe. */
export function parseUint(text: string): number | null {
  if (!/^\d+$/.test(text)) return null;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : null;
}

export function parseQueryOptions(query: Query, random: () => number = Math.random): QueryOptions {
  let minIndex = 0;
  const index = param(query, 'index');
  if (index !== undefined && index !== '') {
    const n = parseUint(index);
    if (n === null) throw badRequest('Invalid index');
    minIndex = n;
  }
  let waitMs = DEFAULT_WAIT_MS;
  const wait = param(query, 'wait');
  if (wait !== undefined && wait !== '') {
    const ms = parseDurationMs(wait);
    if (ms === null) throw badRequest('Invalid wait time');
    waitMs = ms;
  }
  if (waitMs <= 0 || waitMs > MAX_WAIT_MS) waitMs = waitMs <= 0 ? DEFAULT_WAIT_MS : MAX_WAIT_MS;
  const waitBaseMs = waitMs;
  // Spread the wake-ups of many watchers that started together, as Consul does (at most wait/16).
  waitMs += Math.floor(random() * (waitMs / 16));
  const stale = has(query, 'stale');
  const consistent = has(query, 'consistent');
  if (stale && consistent) throw badRequest('Cannot specify ?stale with ?consistent, conflicting semantics.');
  return { minIndex, waitMs, waitBaseMs, consistency: stale ? 'stale' : consistent ? 'consistent' : 'default' };
}
