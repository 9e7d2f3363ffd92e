// Go's time.ParseDuration and Duration.String, the one copy Konsul has. Consul parses every duration
// it is sent with them (session TTLs and lock delays, check intervals, ?wait, autopilot settings,
// config files) and prints durations the Go way ("10s", "24h0m0s", "500µs"), in its answers and in
// its error texts.
//
// Durations are nanoseconds. Parsing is exact (BigInt) and refuses what Go refuses, with Go's error
// texts; the result is a JS number, exact up to 2^53 ns (104 days), which covers every duration
// Konsul keeps. The *Ms variants are for callers that count milliseconds.
//
// Pure: no Node built-ins (fsm/ imports it).

const NS_PER_UNIT: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  'µs': 1_000n, // U+00B5 micro sign
  'μs': 1_000n, // U+03BC Greek mu
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

const MAX_DURATION_NS = (1n << 63n) - 1n;
const NS_PER_MS = 1_000_000;

export type ParsedDuration = { readonly ok: true; readonly ns: number } | { readonly ok: false; readonly error: string };

/** Go's strconv.Quote for the texts Konsul quotes (JSON's quoting agrees on printable input). */
function quote(s: string): string {
  return JSON.stringify(s);
}

/**
 * time.ParseDuration: an optional sign, then one or more "<decimal><unit>" ("1h30m", "1.5s",
 * ".5m"); "0" alone needs no unit. Errors carry Go's texts (`time: invalid duration "x"`).
 */
export function parseGoDuration(text: string): ParsedDuration {
  const invalid = (): ParsedDuration => ({ ok: false, error: `time: invalid duration ${quote(text)}` });
  let s = text;
  let negative = false;
  if (s.startsWith('-') || s.startsWith('+')) {
    negative = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return { ok: true, ns: 0 };
  if (s === '') return invalid();
  let total = 0n;
  while (s !== '') {
    const number = /^([0-9]*)(?:\.([0-9]*))?/.exec(s)!;
    const whole = number[1] ?? '';
    const fraction = number[2] ?? '';
    // A dot needs a digit on at least one side; no digits at all is not a number.
    if (whole === '' && fraction === '') return invalid();
    s = s.slice(number[0].length);
    const unitMatch = /^[^0-9.]*/.exec(s)![0];
    if (unitMatch === '') return { ok: false, error: `time: missing unit in duration ${quote(text)}` };
    const unit = NS_PER_UNIT[unitMatch];
    if (unit === undefined) return { ok: false, error: `time: unknown unit ${quote(unitMatch)} in duration ${quote(text)}` };
    s = s.slice(unitMatch.length);
    let value = BigInt(whole === '' ? '0' : whole) * unit;
    if (fraction !== '') {
      // Go keeps the fraction's contribution truncated toward zero, in nanoseconds.
      value += (BigInt(fraction) * unit) / 10n ** BigInt(fraction.length);
    }
    total += value;
    if (total > MAX_DURATION_NS) return invalid();
  }
  return { ok: true, ns: Number(negative ? -total : total) };
}

/** parseGoDuration in milliseconds (fractional below 1 ms), or null where Go reports an error. */
export function parseGoDurationMs(text: string): number | null {
  const parsed = parseGoDuration(text);
  return parsed.ok ? parsed.ns / NS_PER_MS : null;
}

/** formatGoDuration of a duration counted in milliseconds, rounded to the nanosecond. */
export function formatGoDurationMs(ms: number): string {
  return formatGoDuration(Math.round(ms * NS_PER_MS));
}

/** Duration.String: "0s", "1.5ms", "500µs", "10s", "1m30s", "24h0m0s". */
export function formatGoDuration(ns: number): string {
  if (ns === 0) return '0s';
  const negative = ns < 0;
  let u = BigInt(Math.trunc(Math.abs(ns)));
  const sign = negative ? '-' : '';
  if (u < 1_000_000_000n) {
    if (u < 1_000n) return `${sign}${u}ns`;
    if (u < 1_000_000n) return `${sign}${withFraction(u, 3)}µs`;
    return `${sign}${withFraction(u, 6)}ms`;
  }
  const seconds = withFraction(u % 60_000_000_000n, 9);
  u /= 60_000_000_000n;
  if (u === 0n) return `${sign}${seconds}s`;
  const minutes = u % 60n;
  u /= 60n;
  if (u === 0n) return `${sign}${minutes}m${seconds}s`;
  return `${sign}${u}h${minutes}m${seconds}s`;
}

/** `value / 10^digits` as a decimal without trailing zeros ("1.5", "2", "0.25"). */
function withFraction(value: bigint, digits: number): string {
  const scale = 10n ** BigInt(digits);
  const whole = value / scale;
  const fraction = (value % scale).toString().padStart(digits, '0').replace(/0+$/, '');
  return fraction === '' ? whole.toString() : `${whole}.${fraction}`;
}
