// The one set of config value parsers. A setting's value arrives either as JSON from a config file
// or as text from a command-line flag; a ValueKind knows how to read both, how to print a value
// (the default shown by --help) and what the flag's argument looks like. Every failure is a
// ConfigError naming what was being read: the file key ("http_addr") or the flag ("--http-addr").
//
// Integers accept a JSON number or a string of digits in both places (config files written by
// templating tools quote numbers).
//
// Pure: no Node built-ins, no project imports outside lib/.
import { joinHostPort, parseAddress, type HostPort } from './host-port.ts';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface ValueKind<T> {
  /** The flag's argument in --help ("<host:port>"); '' for a switch (a flag without argument). */
  readonly placeholder: string;
  /** Reads a config-file value. `what` names the key in error messages. */
  fromJson(value: unknown, what: string): T;
  /** Reads a flag's text; absent for kinds that have no flag form (objects). A switch gets no text. */
  readonly fromText?: (text: string, what: string) => T;
  /** For list kinds: the flag repeats, each occurrence read by this; the value is the list. */
  readonly itemFromText?: (text: string, what: string) => unknown;
  /** How a value reads in --help and the README. */
  format(value: T): string;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type { HostPort } from './host-port.ts';

export function text(placeholder = '<text>'): ValueKind<string> {
  return {
    placeholder,
    fromJson: (v, what) => {
      if (typeof v !== 'string') throw new ConfigError(`${what} must be a string`);
      return v;
    },
    fromText: (t) => t,
    format: (v) => (v === '' ? 'none' : v),
  };
}

/** true or false in a file; a switch on the command line (its presence means true). */
export const bool: ValueKind<boolean> = {
  placeholder: '',
  fromJson: (v, what) => {
    if (typeof v !== 'boolean') throw new ConfigError(`${what} must be true or false`);
    return v;
  },
  format: (v) => String(v),
};

function integer(min: number, describe: string): ValueKind<number> {
  const read = (v: unknown, what: string): number => {
    const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min) throw new ConfigError(`${what} must be ${describe}`);
    return n;
  };
  return { placeholder: '<n>', fromJson: read, fromText: read, format: (v) => String(v) };
}

export const positiveInt = integer(1, 'a positive integer');
export const nonNegativeInt = integer(0, 'a non-negative integer');
/** An integer of at least `min` (the DNS settings' wording). */
export const intAtLeast = (min: number): ValueKind<number> => integer(min, `an integer of at least ${min}`);

/** A positiveInt with its own placeholder ("<bytes>", "<ms>"). */
export function positiveIntAs(placeholder: string): ValueKind<number> {
  return { ...positiveInt, placeholder };
}

export const logLevel: ValueKind<LogLevel> = {
  placeholder: '<level>',
  fromJson: (v) => {
    if (typeof v !== 'string' || !(LOG_LEVELS as readonly string[]).includes(v)) throw new ConfigError(`log_level must be one of ${LOG_LEVELS.join(', ')}`);
    return v as LogLevel;
  },
  fromText: (t) => logLevel.fromJson(t, '--log-level'),
  format: (v) => v,
};

export function stringList(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new ConfigError(`${what} must be a list of strings`);
  return v as string[];
}

/** A list of strings in a file, each read by `item`; a repeatable flag on the command line. */
export function listOf(item: (text: string, what: string) => string, placeholder: string): ValueKind<readonly string[]> {
  return {
    placeholder,
    fromJson: (v, what) => stringList(v, what).map((x) => item(x, what)),
    itemFromText: item,
    format: (v) => (v.length === 0 ? 'none' : v.join(', ')),
  };
}

/** A kind whose file value goes through a parser of its own (objects, lists of objects): no flag. */
export function jsonValue<T>(parse: (v: unknown, what: string) => T, format: (v: T) => string = () => 'none'): ValueKind<T> {
  return { placeholder: '', fromJson: parse, format };
}

/** "host:port", "[v6]:port" or ":port" (host 127.0.0.1); null when it is none of them. */
function matchHostPort(input: string): HostPort | null {
  const parsed = parseAddress(input.trim());
  return parsed === null ? null : { host: parsed.host || '127.0.0.1', port: parsed.port };
}

export function parseHostPort(input: string, what: string): HostPort {
  const parsed = matchHostPort(input);
  if (parsed === null) throw new ConfigError(`${what}: expected HOST:PORT, got "${input}"`);
  return parsed;
}

/** Validates "host:port" and returns it normalised (IPv6 hosts in brackets). */
export function hostPortText(input: string, what: string): string {
  const { host, port } = parseHostPort(input, what);
  return joinHostPort(host, port);
}

/** "HOST:PORT", or "off" for a listener that is not wanted (null). */
export function parseHostPortOrOff(input: string, what: string): HostPort | null {
  if (input.trim().toLowerCase() === 'off') return null;
  const parsed = matchHostPort(input);
  if (parsed === null) throw new ConfigError(`${what}: expected HOST:PORT or "off", got "${input}"`);
  return parsed;
}

export function formatHostPort(address: HostPort): string {
  return joinHostPort(address.host, address.port);
}

export const hostPort: ValueKind<HostPort> = {
  placeholder: '<host:port>',
  fromJson: (v, what) => parseHostPort(text().fromJson(v, what), what),
  fromText: parseHostPort,
  format: formatHostPort,
};

/** A "host:port" kept as normalised text (an address to dial, '' = unset). */
export const hostPortString: ValueKind<string> = {
  placeholder: '<host:port>',
  fromJson: (v, what) => hostPortText(text().fromJson(v, what), what),
  fromText: hostPortText,
  format: (v) => (v === '' ? 'none' : v),
};

export const hostPortOrOff: ValueKind<HostPort | null> = {
  placeholder: '<host:port|off>',
  fromJson: (v, what) => parseHostPortOrOff(text().fromJson(v, what), what),
  fromText: parseHostPortOrOff,
  format: (v) => (v === null ? 'off' : formatHostPort(v)),
};

/** Wildcard listen addresses: other machines cannot dial them. */
export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}
