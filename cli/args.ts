// Parsers for command-line values. Each returns the normalized value or throws a UsageError with a
// message naming the option; `commanderParser` adapts them to commander's option parsers.
import { InvalidArgumentError } from 'commander';
import { parseGoDurationMs } from '../lib/duration.ts';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const UINT64_MAX = 18446744073709551615n;

/**
 * An unsigned 64-bit decimal integer (KV flags, Raft indexes), kept as its canonical digit string:
 * a JS number would silently round anything above 2^53.
 */
export function parseUint64(text: string, what: string): string {
  const trimmed = text.trim();
  if (!/^\d+$/.test(trimmed)) throw new UsageError(`${what} must be an unsigned integer (0 to ${UINT64_MAX}), got "${text}"`);
  const value = BigInt(trimmed);
  if (value > UINT64_MAX) throw new UsageError(`${what} must be at most ${UINT64_MAX}, got "${text}"`);
  return value.toString();
}

export function parsePositiveInt(text: string, what: string): number {
  const trimmed = text.trim();
  const value = Number(trimmed);
  if (!/^\d+$/.test(trimmed) || !Number.isSafeInteger(value) || value < 1) {
    throw new UsageError(`${what} must be a positive integer, got "${text}"`);
  }
  return value;
}

/** A positive Go duration ("5m", "30s", "1m30s", "250ms"), as Consul's own flags take them; returns milliseconds. */
export function parseDuration(text: string, what: string): number {
  const ms = parseGoDurationMs(text);
  if (ms === null) throw new UsageError(`${what} must be a duration such as 30s, 5m or 1m30s, got "${text}"`);
  if (ms <= 0) throw new UsageError(`${what} must be greater than zero, got "${text}"`);
  return ms;
}

/** Checks a duration with parseDuration but keeps its text, for a server that parses it itself. */
export function durationText(text: string, what: string): string {
  parseDuration(text, what);
  return text;
}

/** Commander's collector for a repeatable option: every occurrence, in order. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Adapts a parser to commander, which reports InvalidArgumentError as a usage error. */
export function commanderParser<T>(parse: (text: string, what: string) => T): (text: string) => T {
  return (text) => {
    try {
      // Commander's message already names the option: "option '--flags <n>' argument 'x' is invalid."
      return parse(text, 'It');
    } catch (err) {
      if (err instanceof UsageError) throw new InvalidArgumentError(err.message);
      throw err;
    }
  };
}
