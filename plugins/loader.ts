// Loads the plugins the config enables: checks the names and dependencies, orders them so that a
// plugin starts after the plugins it depends on, runs their config validation, and starts each as
// a Service of the process's supervisor (which stops them in reverse order).
import type { Command } from 'commander';
import { ConfigError, type ValueKind } from '../lib/config-values.ts';
import type { Supervisor } from '../lib/service.ts';
import type { AnyPlugin, PluginHost, PluginListener, RunningPlugin } from './plugin.ts';
import { addSettingFlags, describeSettings, setting, type SettingSpec, type SettingsTable } from './settings.ts';

/** Plugin names: lowercase letters, digits and dashes. */
const NAME = /^[a-z][a-z0-9-]*$/;

function pluginNames(registry: readonly AnyPlugin[], list: readonly string[], what: string): string[] {
  const known = registry.map((p) => p.name);
  const out: string[] = [];
  for (const raw of list) {
    const name = raw.trim().toLowerCase();
    if (name === '') continue;
    if (!known.includes(name)) throw new ConfigError(`${what}: unknown plugin "${raw}" (known: ${known.join(', ') || 'none'})`);
    if (!out.includes(name)) out.push(name);
  }
  return out;
}

/**
 * The `plugins` setting: which plugins run. A list of names in a config file
 * (`"plugins": ["dns"]`, `[]` for none), a comma-separated list on the command line
 * (`--plugins dns`, `--plugins ''`). Default: the plugins that are on by default.
 */
export function pluginsSetting(registry: readonly AnyPlugin[]): SettingSpec<readonly string[]> {
  const kind: ValueKind<readonly string[]> = {
    placeholder: '<names>',
    fromJson: (v, what) => {
      if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new ConfigError(`${what} must be a list of plugin names`);
      return pluginNames(registry, v as string[], what);
    },
    fromText: (text, what) => pluginNames(registry, text.split(','), what),
    format: (v) => (v.length === 0 ? 'none' : v.join(',')),
  };
  return setting({
    kind,
    default: registry.filter((p) => p.enabledByDefault).map((p) => p.name),
    file: 'plugins',
    flag: '--plugins',
    help: `plugins to run, comma-separated (known: ${registry.map((p) => p.name).join(', ')}; '' for none)`,
  });
}

/**
 * The enabled plugins in start order: every plugin after its dependencies, otherwise in registry
 * order. A dependency that is not enabled, or a cycle, is a ConfigError.
 */
export function resolvePlugins(registry: readonly AnyPlugin[], enabled: readonly string[]): AnyPlugin[] {
  const byName = new Map<string, AnyPlugin>();
  for (const plugin of registry) {
    if (!NAME.test(plugin.name)) throw new Error(`plugin name "${plugin.name}" must be lowercase letters, digits and dashes`);
    if (byName.has(plugin.name)) throw new Error(`two plugins are named "${plugin.name}"`);
    byName.set(plugin.name, plugin);
  }
  const wanted = pluginNames(registry, enabled, 'plugins');
  const ordered: AnyPlugin[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, path: readonly string[]): void => {
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') throw new ConfigError(`plugins: dependency cycle ${[...path, name].join(' -> ')}`);
    const plugin = byName.get(name);
    if (plugin === undefined) throw new ConfigError(`plugins: "${path[path.length - 1]}" depends on unknown plugin "${name}"`);
    if (!wanted.includes(name)) throw new ConfigError(`plugins: "${path[path.length - 1]}" needs plugin "${name}", which is not enabled`);
    state.set(name, 'visiting');
    for (const dependency of plugin.dependencies ?? []) visit(dependency, [...path, name]);
    state.set(name, 'done');
    ordered.push(plugin);
  };
  for (const plugin of registry) if (wanted.includes(plugin.name)) visit(plugin.name, []);
  return ordered;
}

/** A plugin's config section: the properties its settings table describes, read from the process config. */
export function sectionOf<C>(plugin: AnyPlugin, config: C): unknown {
  const section: Record<string, unknown> = {};
  for (const property of Object.keys(plugin.settings)) {
    if (!(property in (config as object))) throw new Error(`the process config has no "${property}" for plugin ${plugin.name}: its settings table was not added`);
    section[property] = (config as Record<string, unknown>)[property];
  }
  return section;
}

/** Runs the plugins' own config checks (before anything starts). */
export function validatePlugins(plugins: readonly AnyPlugin[], config: unknown): void {
  for (const plugin of plugins) plugin.validate?.(sectionOf(plugin, config));
}

export interface StartedPlugins {
  /** The running plugins, by name, in start order. */
  readonly running: ReadonlyMap<string, RunningPlugin>;
  readonly listeners: readonly PluginListener[];
}

/**
 * Starts the plugins in order, each as a Service of `supervisor`. A start that fails stops the
 * plugins already started by this call and throws the plugin's error as it is.
 */
export async function startPlugins(supervisor: Supervisor, plugins: readonly AnyPlugin[], config: unknown, hostFor: (plugin: AnyPlugin) => PluginHost): Promise<StartedPlugins> {
  const running = new Map<string, RunningPlugin>();
  await supervisor.startAll(
    plugins.map((plugin) => ({
      name: `plugin ${plugin.name}`,
      start: async () => {
        running.set(plugin.name, await plugin.start(hostFor(plugin), sectionOf(plugin, config)));
      },
      stop: async () => {
        const plugged = running.get(plugin.name);
        running.delete(plugin.name);
        await plugged?.stop();
      },
    })),
  );
  return { running, listeners: [...running.values()].flatMap((r) => r.listeners) };
}

/** The plugins section of --help: each plugin, whether it is on by default, and its settings. */
export function pluginsHelp(registry: readonly AnyPlugin[]): string {
  const lines = ['Plugins (the "plugins" config key or --plugins chooses which run):'];
  for (const plugin of registry) {
    lines.push(`  ${plugin.name}${plugin.enabledByDefault ? ' (on by default)' : ''}: ${plugin.description}`);
    if (plugin.dependencies?.length) lines.push(`    needs: ${plugin.dependencies.join(', ')}`);
    for (const row of describeSettings(plugin.settings)) {
      const names = [row.file, row.flag].filter((n) => n !== undefined).join(', ');
      lines.push(`    ${names}: ${row.help}${row.default === '' ? '' : ` (default: ${row.default})`}`);
    }
  }
  return lines.join('\n');
}

/**
 * Adds a process table's flags to `command`: the process's own first, then each plugin's under
 * its own --help heading. The process table holds the plugins' settings (with any process-specific
 * help), so the specs come from it.
 */
export function addProcessFlags<C>(command: Command, table: SettingsTable<C>, registry: readonly AnyPlugin[]): Command {
  const pluginProperty = new Map<string, string>();
  for (const plugin of registry) for (const property of Object.keys(plugin.settings)) pluginProperty.set(property, plugin.name);
  const own = Object.fromEntries(Object.entries(table).filter(([property]) => !pluginProperty.has(property))) as SettingsTable<unknown>;
  addSettingFlags(command, own);
  for (const plugin of registry) {
    const section = Object.fromEntries(Object.entries(table).filter(([property]) => pluginProperty.get(property) === plugin.name)) as SettingsTable<unknown>;
    addSettingFlags(command, section, `Plugin ${plugin.name} options:`);
  }
  // The plugins' file-only keys are listed with their plugin.
  const fileOnly = describeSettings(own).filter((row) => row.flag === undefined && row.file !== undefined);
  const lines = fileOnly.map((row) => `  ${row.file}: ${row.help}${row.default === '' ? '' : ` (default: ${row.default})`}`);
  return command.addHelpText('after', `\nConfig-file keys without a flag:\n${lines.join('\n')}\n\n${pluginsHelp(registry)}\n`);
}
