// Settings tables: the defaults, config-file keys, flags, validation and --help text all come from
// one description per setting; and the server's and the agent's tables share their option names.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import t from 'tap';
import { AGENT_SETTINGS, mergeAgentConfig, readAgentConfigFiles } from '../agent/config.ts';
import { bool, ConfigError, hostPort, hostPortOrOff, jsonValue, listOf, hostPortText, positiveInt, text } from '../lib/config-values.ts';
import { DEFAULTS, mergeConfig, readConfigFiles, SERVER_SETTINGS } from '../server/config.ts';
import { BUILTIN_PLUGINS } from './builtin.ts';
import { addConfigFileOptions, configFilesOf } from './common-settings.ts';
import { addProcessFlags } from './loader.ts';
import { addSettingFlags, defaultsOf, describeSettings, fileKeysOf, flagLayer, mergeLayers, readSettingsObject, setting, settingsMarkdown, type ConfigOf } from './settings.ts';

const dir = mkdtempSync(join(tmpdir(), 'konsul-settings-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const TABLE = {
  name: setting({ kind: text('<name>'), default: 'n1', file: 'node_name', flag: '--node', help: 'the name' }),
  port: setting({ kind: positiveInt, default: 80, file: 'port', flag: '--port', help: 'the port' }),
  verbose: setting({ kind: bool, default: false, file: 'verbose', flag: '--verbose', defaultHelp: '', help: 'say more' }),
  listen: setting({ kind: hostPortOrOff, default: { host: '127.0.0.1', port: 53 }, file: 'listen', flag: '--listen', help: 'where' }),
  peers: setting({ kind: listOf(hostPortText, '<host:port>'), default: [] as readonly string[], file: 'peers', flag: '--peer', help: 'a peer' }),
  limits: setting({ kind: jsonValue((v) => v as Record<string, number>), default: {}, file: 'limits', help: 'an object' }),
  secret: setting({ kind: text(), default: '', flag: '--secret', help: 'flag only' }),
};
type Config = ConfigOf<typeof TABLE>;

function parseFlags(argv: string[]): Partial<Config> {
  const command = addSettingFlags(new Command('x').exitOverride().configureOutput({ writeErr: () => undefined }), TABLE);
  command.parse(['node', 'x', ...argv]);
  return flagLayer(TABLE, command.opts());
}

t.test('defaults and file keys come from the table', async (t) => {
  const defaults: Config = defaultsOf(TABLE);
  t.same(defaults, { name: 'n1', port: 80, verbose: false, listen: { host: '127.0.0.1', port: 53 }, peers: [], limits: {}, secret: '' });
  t.equal(defaults.listen, TABLE.listen.default, 'the default object itself, so callers can tell "not given"');
  t.same(fileKeysOf(TABLE), ['node_name', 'port', 'verbose', 'listen', 'peers', 'limits']);
});

t.test('config-file objects: every key read by its kind; unknown keys and bad values name the file and key', async (t) => {
  t.same(readSettingsObject(TABLE, { node_name: 'a', port: '8080', verbose: true, listen: 'off', peers: ['[::1]:1', 'h:2'], limits: { x: 1 } }, 'f.json'), {
    name: 'a',
    port: 8080,
    verbose: true,
    listen: null,
    peers: ['[::1]:1', 'h:2'],
    limits: { x: 1 },
  });
  t.throws(() => readSettingsObject(TABLE, { secret: 'x' }, 'f.json'), new ConfigError('f.json: unknown key "secret" (known: node_name, port, verbose, listen, peers, limits)'));
  t.throws(() => readSettingsObject(TABLE, { port: 0 }, 'f.json'), new ConfigError('f.json: port must be a positive integer'));
  t.throws(() => readSettingsObject(TABLE, { verbose: 'yes' }, 'f.json'), new ConfigError('f.json: verbose must be true or false'));
  t.throws(() => readSettingsObject(TABLE, { listen: 'x' }, 'f.json'), new ConfigError('f.json: listen: expected HOST:PORT or "off", got "x"'));
  t.throws(() => readSettingsObject(TABLE, { peers: 'h:1' }, 'f.json'), new ConfigError('f.json: peers must be a list of strings'));
  t.throws(() => readSettingsObject(TABLE, { peers: ['h'] }, 'f.json'), new ConfigError('f.json: peers: expected HOST:PORT, got "h"'));
  t.throws(() => readSettingsObject(TABLE, [], 'f.json'), new ConfigError('f.json: the config must be a JSON object'));
  const seen: string[] = [];
  t.same(readSettingsObject(TABLE, { service: {}, port: 1 }, 'f.json', { otherKeys: ['service'], onOtherKey: (k) => void seen.push(k) }), { port: 1 });
  t.same(seen, ['service']);
});

t.test('flags: parsed and validated by the same kinds, only the given ones make the layer', async (t) => {
  t.same(parseFlags([]), {});
  t.same(parseFlags(['--node', 'b', '--port', '9', '--verbose', '--listen', 'off', '--peer', 'a:1', '--peer', '[::1]:2', '--secret', 's']), {
    name: 'b',
    port: 9,
    verbose: true,
    listen: null,
    peers: ['a:1', '[::1]:2'],
    secret: 's',
  });
  t.throws(() => parseFlags(['--port', 'x']), /option '--port <n>' argument 'x' is invalid. --port must be a positive integer/);
  t.throws(() => parseFlags(['--peer', 'nope']), /--peer: expected HOST:PORT, got "nope"/);
  t.throws(() => parseFlags(['--limits', '{}']), /unknown option '--limits'/, 'a file-only setting has no flag');
});

t.test('layers: defaults, then files, then flags; undefined leaves the value below', async (t) => {
  const merged = mergeLayers(defaultsOf(TABLE), [{ port: 1, name: 'file' }, { port: 2, name: undefined }]);
  t.equal(merged.port, 2);
  t.equal(merged.name, 'file');
  t.equal(merged.verbose, false);
});

t.test('help rows and the README table come from the same table', async (t) => {
  const rows = describeSettings(TABLE);
  t.same(rows[1], { file: 'port', flag: '--port <n>', default: '80', help: 'the port' });
  t.same(rows[2], { file: 'verbose', flag: '--verbose', default: '', help: 'say more' });
  t.same(rows[5], { file: 'limits', flag: undefined, default: 'none', help: 'an object' });
  t.match(settingsMarkdown(TABLE), /\| `listen` \| `--listen <host:port\|off>` \| 127\.0\.0\.1:53 \| where \|/);
  let out = '';
  addSettingFlags(new Command('x').configureOutput({ writeOut: (s) => (out += s) }), TABLE).outputHelp();
  t.match(out, /--port <n> +the port \(default: 80\)/);
  t.match(out, /--verbose +say more\n/);
});

/** The server's / agent's command as cli/konsul.ts and cli/agent-command.ts build it. */
function command(which: 'server' | 'agent'): Command {
  const c = new Command(which).exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  addConfigFileOptions(c, 'settings');
  return which === 'server' ? addProcessFlags(c, SERVER_SETTINGS, BUILTIN_PLUGINS) : addProcessFlags(c, AGENT_SETTINGS, BUILTIN_PLUGINS);
}

function longFlags(c: Command): string[] {
  return c.options.map((o) => o.long!).sort();
}

t.test('server and agent share option names: --config on both, the shared settings with the same flags and keys', async (t) => {
  const server = longFlags(command('server'));
  const agent = longFlags(command('agent'));
  for (const flag of ['--config', '--config-dir', '--node', '--datacenter', '--data-dir', '--http-addr', '--log-level', '--retry-join', '--rpc-tls-cert', '--plugins', '--dns-addr', '--domain', '--recursor']) {
    t.ok(server.includes(flag) && agent.includes(flag), `${flag} on both`);
  }
  for (const property of ['nodeName', 'datacenter', 'httpAddr', 'logLevel', 'retryJoin', 'rpcTlsCaFile', 'checkReapIntervalMs', 'plugins', 'dnsAddr', 'dnsDomain', 'dnsRecursors', 'dnsConfig'] as const) {
    t.equal(SERVER_SETTINGS[property].file, AGENT_SETTINGS[property].file, `${property}: same file key`);
    t.equal(SERVER_SETTINGS[property].flag, AGENT_SETTINGS[property].flag, `${property}: same flag`);
  }
  t.equal(SERVER_SETTINGS.dnsAddr.default, AGENT_SETTINGS.dnsAddr.default, "the DNS plugin's default object is shared");
  t.equal(DEFAULTS.dnsAddr, SERVER_SETTINGS.dnsAddr.default);
});

t.test('--config repeats on both commands; --config-file is the hidden old agent spelling; --config-dir reads *.json in order', async (t) => {
  writeFileSync(join(dir, 'a.json'), JSON.stringify({ node_name: 'from-a', datacenter: 'dc-a', retry_join: ['127.0.0.1:8300'] }));
  writeFileSync(join(dir, 'b.json'), JSON.stringify({ node_name: 'from-b' }));
  const confDir = mkdtempSync(join(dir, 'd-'));
  writeFileSync(join(confDir, '20-late.json'), JSON.stringify({ datacenter: 'dc-dir' }));
  writeFileSync(join(confDir, '10-early.json'), JSON.stringify({ datacenter: 'dc-early' }));
  writeFileSync(join(confDir, 'notes.txt'), 'ignored');
  const files = (which: 'server' | 'agent', argv: string[]) => {
    const c = command(which);
    c.parse(['node', which, ...argv]);
    return { files: configFilesOf(c.opts()), opts: c.opts() };
  };
  const server = files('server', ['--config', join(dir, 'a.json'), '--config', join(dir, 'b.json'), '--config-dir', confDir, '--node', 'from-flag']);
  t.same(server.files, [join(dir, 'a.json'), join(dir, 'b.json'), join(confDir, '10-early.json'), join(confDir, '20-late.json')]);
  const serverConfig = mergeConfig(readConfigFiles(server.files), flagLayer(SERVER_SETTINGS, server.opts));
  t.equal(serverConfig.nodeName, 'from-flag', 'flags over files');
  t.equal(serverConfig.datacenter, 'dc-dir', 'later files over earlier ones');
  const agent = files('agent', ['--config-file', join(dir, 'a.json'), '--config', join(dir, 'b.json')]);
  t.same(agent.files, [join(dir, 'b.json'), join(dir, 'a.json')]);
  const fromFiles = readAgentConfigFiles(agent.files);
  t.equal(mergeAgentConfig(fromFiles.config, flagLayer(AGENT_SETTINGS, agent.opts)).nodeName, 'from-a');
  let help = '';
  const c = command('agent').configureOutput({ writeOut: (s) => (help += s) });
  c.outputHelp();
  t.notMatch(help, /--config-file/, 'the old spelling is hidden');
  t.match(help, /--config <file>/);
});

t.test('server --help lists the plugins, their flags under their own heading, and the file-only keys', async (t) => {
  let help = '';
  command('server').configureOutput({ writeOut: (s) => (help += s) }).outputHelp();
  t.match(help, /Plugin dns options:\n +--dns-addr <host:port\|off> +address of the DNS interface/);
  // Commander wraps long lines: compare the descriptions with their white space folded.
  const flat = help.replace(/\s+/g, ' ');
  t.match(flat, /--dns-addr <host:port\|off> address of the DNS interface[^(]*\([^)]*\) \(default: 127\.0\.0\.1:8600; with --dev an ephemeral port\)/);
  t.match(help, /Config-file keys without a flag:\n {2}rpc_hold_timeout_ms: /);
  t.match(help, /\n {4}dns_config: Consul's dns_config object/, "a plugin's file-only keys are listed with the plugin");
  t.notMatch(help, /\n {2}dns_config:/);
  t.match(help, /Plugins \(the "plugins" config key or --plugins chooses which run\):\n {2}dns \(on by default\): Consul's DNS interface/);
  t.match(flat, /--plugins <names> plugins to run, comma-separated \(known: dns; '' for none\) \(default: dns\)/);
});

t.test('a flag given twice keeps the last value; the config helpers report ConfigError', async (t) => {
  const c = command('server');
  c.parse(['node', 'server', '--http-addr', '127.0.0.1:1', '--http-addr', ':2']);
  t.same(flagLayer(SERVER_SETTINGS, c.opts()).httpAddr, { host: '127.0.0.1', port: 2 });
  t.throws(() => hostPort.fromJson(8500, 'http_addr'), new ConfigError('http_addr must be a string'));
});

t.test("the README's configuration table covers every config-file key of the server", async (t) => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('### Configuration file'), readme.indexOf('## Running the tests'));
  for (const key of fileKeysOf(SERVER_SETTINGS)) t.match(section, new RegExp(`\`${key}\``), key);
});
