// The plugin loader: which plugins run (the `plugins` setting), in what order (dependencies
// first), config checks before anything starts, start failures and the reverse stop.
import { Command } from 'commander';
import t from 'tap';
import { ConfigError, positiveInt, text } from '../lib/config-values.ts';
import { Supervisor } from '../lib/service.ts';
import { addProcessFlags, pluginsHelp, pluginsSetting, resolvePlugins, startPlugins, validatePlugins } from './loader.ts';
import type { AnyPlugin, Plugin, PluginHost } from './plugin.ts';
import { defaultsOf, flagLayer, readSettingsObject, setting } from './settings.ts';

const events: string[] = [];

function plugin(name: string, options: { dependencies?: string[]; enabledByDefault?: boolean; failStart?: boolean } = {}): Plugin<{ greeting: string }> {
  return {
    name,
    description: `the ${name} plugin`,
    enabledByDefault: options.enabledByDefault ?? false,
    ...(options.dependencies ? { dependencies: options.dependencies } : {}),
    settings: {},
    async start() {
      events.push(`start ${name}`);
      if (options.failStart) throw new Error(`${name} cannot start`);
      return { listeners: [{ name, host: '127.0.0.1', port: 1, protocols: 'tcp' }], stop: async () => void events.push(`stop ${name}`) };
    },
  } as unknown as Plugin<{ greeting: string }>;
}

const names = (plugins: readonly AnyPlugin[]) => plugins.map((p) => p.name);
/** A host is not used by these plugins: the loader only hands it over. */
const noHost = () => ({}) as PluginHost;

t.test('start order: dependencies first, otherwise registry order', async (t) => {
  const registry = [plugin('cloudflare', { dependencies: ['dns', 'acl'] }), plugin('dns'), plugin('acl'), plugin('metrics')];
  t.same(names(resolvePlugins(registry, ['cloudflare', 'dns', 'acl'])), ['dns', 'acl', 'cloudflare']);
  t.same(names(resolvePlugins(registry, ['metrics', 'dns'])), ['dns', 'metrics']);
  t.same(names(resolvePlugins(registry, [])), []);
  t.same(names(resolvePlugins(registry, [' DNS ', 'dns'])), ['dns'], 'names are trimmed, lowercased, deduplicated');
});

t.test('unknown plugins, missing dependencies and cycles are ConfigErrors', async (t) => {
  const registry = [plugin('a', { dependencies: ['b'] }), plugin('b', { dependencies: ['c'] }), plugin('c', { dependencies: ['a'] }), plugin('d', { dependencies: ['ghost'] }), plugin('e')];
  t.throws(() => resolvePlugins(registry, ['e', 'nope']), new ConfigError('plugins: unknown plugin "nope" (known: a, b, c, d, e)'));
  t.throws(() => resolvePlugins(registry, ['a']), new ConfigError('plugins: "a" needs plugin "b", which is not enabled'));
  t.throws(() => resolvePlugins(registry, ['a', 'b', 'c']), new ConfigError('plugins: dependency cycle a -> b -> c -> a'));
  t.throws(() => resolvePlugins(registry, ['d']), new ConfigError('plugins: "d" depends on unknown plugin "ghost"'));
  t.throws(() => resolvePlugins([plugin('x'), plugin('x')], []), /two plugins are named "x"/);
  t.throws(() => resolvePlugins([plugin('Bad Name')], []), /must be lowercase/);
});

t.test('the plugins setting: a list in files, comma-separated on the command line, on-by-default ones by default', async (t) => {
  const registry = [plugin('dns', { enabledByDefault: true }), plugin('acl')];
  const table = { plugins: pluginsSetting(registry) };
  t.same(defaultsOf(table).plugins, ['dns']);
  t.same(readSettingsObject(table, { plugins: ['acl', 'dns'] }, 'f.json'), { plugins: ['acl', 'dns'] });
  t.same(readSettingsObject(table, { plugins: [] }, 'f.json'), { plugins: [] });
  t.throws(() => readSettingsObject(table, { plugins: 'dns' }, 'f.json'), new ConfigError('f.json: plugins must be a list of plugin names'));
  t.throws(() => readSettingsObject(table, { plugins: ['dsn'] }, 'f.json'), new ConfigError('f.json: plugins: unknown plugin "dsn" (known: dns, acl)'));
  const parse = (argv: string[]) => {
    const command = addProcessFlags(new Command('x').exitOverride().configureOutput({ writeErr: () => undefined }), table, registry);
    command.parse(['node', 'x', ...argv]);
    return flagLayer(table, command.opts());
  };
  t.same(parse(['--plugins', 'acl,dns']), { plugins: ['acl', 'dns'] });
  t.same(parse(['--plugins', '']), { plugins: [] });
  t.same(parse([]), {});
  t.throws(() => parse(['--plugins', 'nope']), /--plugins: unknown plugin "nope"/);
});

t.test('config sections: each plugin validates its own properties of the process config', async (t) => {
  const checked: unknown[] = [];
  const ttl: Plugin<{ ttlSeconds: number }> = {
    name: 'ttl',
    description: 'x',
    enabledByDefault: true,
    settings: { ttlSeconds: setting({ kind: positiveInt, default: 5, file: 'ttl_seconds', help: 'a TTL' }) },
    validate(config) {
      checked.push(config);
      if (config.ttlSeconds > 60) throw new ConfigError('ttl_seconds must be at most 60');
    },
    start: async () => ({ listeners: [], stop: async () => undefined }),
  };
  validatePlugins([ttl], { nodeName: 'n', ttlSeconds: 30 });
  t.same(checked, [{ ttlSeconds: 30 }], 'the plugin sees only its section');
  t.throws(() => validatePlugins([ttl], { ttlSeconds: 61 }), new ConfigError('ttl_seconds must be at most 60'));
  t.throws(() => validatePlugins([ttl], { nodeName: 'n' }), /no "ttlSeconds" for plugin ttl: its settings table was not added/);
});

t.test('startPlugins: in order, each a service stopped in reverse; a failed start stops the ones started', async (t) => {
  events.length = 0;
  const registry = [plugin('b', { dependencies: ['a'] }), plugin('a'), plugin('c')];
  const supervisor = new Supervisor();
  const started = await startPlugins(supervisor, resolvePlugins(registry, ['a', 'b', 'c']), {}, noHost);
  t.same([...started.running.keys()], ['a', 'b', 'c']);
  t.same(started.listeners.map((l) => l.name), ['a', 'b', 'c']);
  t.same(supervisor.names(), ['plugin a', 'plugin b', 'plugin c']);
  await supervisor.stop();
  t.same(events, ['start a', 'start b', 'start c', 'stop c', 'stop b', 'stop a']);

  events.length = 0;
  const failing = new Supervisor();
  await t.rejects(startPlugins(failing, [plugin('a'), plugin('bad', { failStart: true }), plugin('c')], {}, noHost), /bad cannot start/);
  t.same(events, ['start a', 'start bad', 'stop a']);
  t.same(failing.names(), []);
});

t.test('--help lists every plugin, whether it is on by default, and its settings with flags and file keys', async (t) => {
  const dns: Plugin<{ addr: string }> = {
    name: 'dns',
    description: 'the DNS interface',
    enabledByDefault: true,
    settings: { addr: setting({ kind: text('<host:port>'), default: '127.0.0.1:8600', file: 'dns_addr', flag: '--dns-addr', help: 'where it listens' }) },
    start: async () => ({ listeners: [], stop: async () => undefined }),
  };
  const help = pluginsHelp([dns, plugin('acl', { dependencies: ['dns'] }) as AnyPlugin]);
  t.match(help, /dns \(on by default\): the DNS interface\n {4}dns_addr, --dns-addr <host:port>: where it listens \(default: 127\.0\.0\.1:8600\)/);
  t.match(help, /acl: the acl plugin\n {4}needs: dns/);
  const table = { nodeName: setting({ kind: text('<name>'), default: 'n1', file: 'node_name', flag: '--node', help: 'the name' }), ...dns.settings };
  let out = '';
  const command = addProcessFlags(new Command('server').configureOutput({ writeOut: (s) => (out += s) }), table, [dns]);
  command.outputHelp();
  t.match(out, /--node <name> +the name \(default: n1\)/);
  t.match(out, /Plugin dns options:\n +--dns-addr <host:port> +where it listens \(default: 127\.0\.0\.1:8600\)/);
  t.match(out, /Plugins \(the "plugins" config key or --plugins chooses which run\):/);
});
