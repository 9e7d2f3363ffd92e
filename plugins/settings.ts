// Settings tables: a process (or a plugin) describes each of its settings once — its value kind,
// default, config-file key, flag and help text — and everything else is generated from that one
// description: the defaults object, the config-file reader (unknown keys are errors), the
// commander flags (validated while parsing), the layer the flags make, and the --help and README
// text. The config type itself is derived from the table (ConfigOf), so a setting cannot be added
// to one place and forgotten in another.
//
// Precedence: defaults, then config files in order, then flags. A flag not given leaves the value
// from the files alone.
import { InvalidArgumentError, Option, type Command } from 'commander';
import { ConfigError, type ValueKind } from '../lib/config-values.ts';

export interface SettingSpec<T> {
  readonly kind: ValueKind<T>;
  readonly default: T;
  /** The config-file key (Consul's snake_case name); absent: no file form. */
  readonly file?: string;
  /** The long flag, without its argument ("--http-addr"); absent: no flag. */
  readonly flag?: string;
  /** What the setting does, for --help and the README. */
  readonly help: string;
  /** The default as --help shows it, when printing the value would mislead; '' shows none. */
  readonly defaultHelp?: string;
}

/** One spec per property of the config C. */
export type SettingsTable<C> = { readonly [K in keyof C]: SettingSpec<C[K]> };

/** The config a table describes. */
export type ConfigOf<T> = { readonly [K in keyof T]: T[K] extends SettingSpec<infer V> ? V : never };

/** Declares one setting (lets TypeScript infer the value type from the kind). */
export function setting<T>(spec: SettingSpec<T>): SettingSpec<T> {
  return spec;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function entries<C>(table: SettingsTable<C>): [keyof C & string, SettingSpec<unknown>][] {
  return Object.entries(table) as [keyof C & string, SettingSpec<unknown>][];
}

/** The defaults object (built once per table and kept: callers compare against it by identity). */
export function defaultsOf<C>(table: SettingsTable<C>): C {
  const out: Partial<Mutable<C>> = {};
  for (const [property, spec] of entries(table)) (out as Record<string, unknown>)[property] = spec.default;
  return out as C;
}

/** The config-file keys, in table order. */
export function fileKeysOf<C>(table: SettingsTable<C>): string[] {
  return entries(table).flatMap(([, spec]) => (spec.file === undefined ? [] : [spec.file]));
}

export interface ReadObjectOptions {
  /** Keys the caller handles itself (definitions, sections): listed first among the known keys. */
  readonly otherKeys?: readonly string[];
  /** Called for each of otherKeys. */
  readonly onOtherKey?: (key: string, value: unknown) => void;
}

/**
 * Reads one config file's JSON object into a layer. `source` (the file name) prefixes every error:
 * `f.json: unknown key "x" (known: ...)`, `f.json: http_addr: expected HOST:PORT, got "x"`.
 */
export function readSettingsObject<C>(table: SettingsTable<C>, raw: unknown, source: string, options: ReadObjectOptions = {}): Partial<C> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${source}: the config must be a JSON object`);
  const byFileKey = new Map<string, [string, SettingSpec<unknown>]>();
  for (const [property, spec] of entries(table)) if (spec.file !== undefined) byFileKey.set(spec.file, [property, spec]);
  const other = options.otherKeys ?? [];
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (other.includes(key)) {
      options.onOtherKey?.(key, value);
      continue;
    }
    const found = byFileKey.get(key);
    if (found === undefined) throw new ConfigError(`${source}: unknown key "${key}" (known: ${[...other, ...byFileKey.keys()].join(', ')})`);
    const [property, spec] = found;
    try {
      out[property] = spec.kind.fromJson(value, key);
    } catch (err) {
      if (err instanceof ConfigError) throw new ConfigError(`${source}: ${err.message}`);
      throw err;
    }
  }
  return out as Partial<C>;
}

/** Defaults, then each layer in order; an undefined property in a layer leaves the value below. */
export function mergeLayers<C>(defaults: C, layers: readonly Partial<C>[]): Mutable<C> {
  const merged = { ...defaults } as Mutable<C>;
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer)) if (value !== undefined) (merged as Record<string, unknown>)[key] = value;
  }
  return merged;
}

/** Whether any layer sets `property` (a default is "not given", even when a layer repeats its value). */
export function given<C>(layers: readonly Partial<C>[], property: keyof C): boolean {
  return layers.some((l) => l[property] !== undefined);
}

/** A flag's value as commander keeps it: boxed, since commander drops a null a parser returns ("off"). */
interface Boxed {
  readonly value: unknown;
}

function checked<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof ConfigError) throw new InvalidArgumentError(err.message);
    throw err;
  }
}

/** The flag's line in --help, with the default. */
export function flagDescription(spec: SettingSpec<unknown>): string {
  const shown = spec.defaultHelp ?? spec.kind.format(spec.default);
  return shown === '' ? spec.help : `${spec.help} (default: ${shown})`;
}

/** The commander Option of a setting (undefined when it has no flag). */
export function optionOf(spec: SettingSpec<unknown>): Option | undefined {
  if (spec.flag === undefined) return undefined;
  const { kind, flag } = spec;
  if (kind.itemFromText !== undefined) {
    const item = kind.itemFromText;
    return new Option(`${flag} ${kind.placeholder}`, `${flagDescription(spec)}; repeatable`).argParser((text: string, previous: unknown[] | undefined) => [
      ...(previous ?? []),
      checked(() => item(text, flag)),
    ]);
  }
  if (kind.fromText === undefined) return new Option(flag, flagDescription(spec));
  const fromText = kind.fromText;
  return new Option(`${flag} ${kind.placeholder}`, flagDescription(spec)).argParser((text: string): Boxed => ({ value: checked(() => fromText(text, flag)) }));
}

/** Adds the table's flags to `command`, under `group` in --help when given. */
export function addSettingFlags<C>(command: Command, table: SettingsTable<C>, group?: string): Command {
  for (const [, spec] of entries(table)) {
    const option = optionOf(spec);
    if (option === undefined) continue;
    if (group !== undefined) option.helpGroup(group);
    command.addOption(option);
  }
  return command;
}

/** The layer the flags make: only the flags given. */
export function flagLayer<C>(table: SettingsTable<C>, opts: Record<string, unknown>): Partial<C> {
  const out: Record<string, unknown> = {};
  for (const [property, spec] of entries(table)) {
    const option = optionOf(spec);
    if (option === undefined) continue;
    const raw = opts[option.attributeName()];
    if (raw === undefined) continue;
    if (spec.kind.itemFromText !== undefined) {
      if ((raw as unknown[]).length > 0) out[property] = raw;
    } else if (spec.kind.fromText === undefined) {
      if (raw === true) out[property] = true;
    } else {
      out[property] = (raw as Boxed).value;
    }
  }
  return out as Partial<C>;
}

export interface SettingDescription {
  readonly file: string | undefined;
  /** "--http-addr <host:port>" */
  readonly flag: string | undefined;
  readonly default: string;
  readonly help: string;
}

/** The table as rows (for --help sections and the README). */
export function describeSettings<C>(table: SettingsTable<C>): SettingDescription[] {
  return entries(table).map(([, spec]) => ({
    file: spec.file,
    flag: spec.flag === undefined ? undefined : `${spec.flag}${spec.kind.placeholder ? ` ${spec.kind.placeholder}` : ''}`,
    default: spec.defaultHelp ?? spec.kind.format(spec.default),
    help: spec.help,
  }));
}

/** The rows as a Markdown table (README). */
export function settingsMarkdown<C>(table: SettingsTable<C>): string {
  const cell = (s: string | undefined) => (s === undefined || s === '' ? '' : `\`${s}\``);
  const rows = describeSettings(table).map((d) => `| ${cell(d.file)} | ${cell(d.flag)} | ${d.default === '' ? '' : d.default} | ${d.help} |`);
  return ['| config file | flag | default | |', '|---|---|---|---|', ...rows].join('\n');
}
