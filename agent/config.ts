// Agent configuration: one settings table (plugins/settings.ts) gives the defaults, the JSON
// config-file keys (Consul's agent keys in snake_case), the `konsul agent` flags and their --help
// text. Config files also hold the service and check definitions Consul accepts in the same files:
// {"service": {...}}, {"services": [...]}, {"check": {...}}, {"checks": [...]}. Precedence:
// defaults, then config files in order, then flags. Unknown keys and malformed values are errors.
// HCL is not read: JSON with Consul's lowercase / snake_case field names ("HCL-like JSON") is,
// since definitions are decoded case- and underscore-insensitively.
import { bool, ConfigError, isWildcard, nonNegativeInt, positiveInt, positiveIntAs, text } from '../lib/config-values.ts';
import { DNS_PLUGIN_SETTINGS } from '../dns/config.ts';
import { BUILTIN_PLUGINS } from '../plugins/builtin.ts';
import { checkReapSettings, checkRpcTls, datacenterSetting, dataDirSetting, httpAddrSetting, logLevelSetting, nodeNameSetting, readJsonFile, retryJoinSetting, rpcTlsSettings } from '../plugins/common-settings.ts';
import { pluginsSetting } from '../plugins/loader.ts';
import { defaultsOf, mergeLayers, readSettingsObject, setting, type ConfigOf } from '../plugins/settings.ts';

export { configDirFiles } from '../plugins/common-settings.ts';

/** Every setting of `konsul agent`, in --help order. */
export const AGENT_SETTINGS = {
  nodeName: nodeNameSetting(),
  datacenter: datacenterSetting,
  dataDir: dataDirSetting('./agent-data', "directory for the agent's services, checks and state"),
  httpAddr: httpAddrSetting('address of the HTTP API (0.0.0.0:8500 in a DaemonSet)'),
  advertiseAddr: setting({
    kind: text('<ip>'),
    default: '',
    file: 'advertise_addr',
    flag: '--advertise-addr',
    defaultHelp: 'the HTTP host, or 127.0.0.1 for a wildcard',
    help: 'the address the node is registered with in the catalog',
  }),
  retryJoin: retryJoinSetting("a server's RPC address (one is enough to learn them all)"),
  ...rpcTlsSettings,
  logLevel: logLevelSetting,
  enableScriptChecks: setting({
    kind: bool,
    default: false,
    file: 'enable_script_checks',
    flag: '--enable-script-checks',
    defaultHelp: '',
    help: 'allow script checks (Args/ScriptArgs): they run commands on this host',
  }),
  syncIntervalMs: setting({ kind: positiveIntAs('<ms>'), default: 60_000, file: 'sync_interval_ms', help: 'full anti-entropy sync period before scaling with the cluster size (Consul: 1 minute)' }),
  statusCoalesceMs: setting({
    kind: { ...nonNegativeInt, placeholder: '<ms>' },
    default: 200,
    file: 'status_coalesce_ms',
    help: 'check status changes wait this long to be sent together (flaps within it send nothing)',
  }),
  heartbeatIntervalMs: setting({ kind: positiveIntAs('<ms>'), default: 2000, file: 'heartbeat_interval_ms', help: 'how often the agent tells the servers it is alive' }),
  cacheMaxEntries: setting({ kind: positiveInt, default: 10_000, file: 'cache_max_entries', help: 'most entries in the read cache' }),
  cacheMaxBytes: setting({ kind: positiveIntAs('<bytes>'), default: 64 * 1024 * 1024, file: 'cache_max_bytes', help: 'most bytes in the read cache' }),
  cacheEntryTtlMs: setting({
    kind: positiveIntAs('<ms>'),
    default: 10 * 60 * 1000,
    file: 'cache_entry_ttl_ms',
    help: 'a cache entry nobody asked for this long is dropped (its background refresh stops)',
  }),
  cacheBlockingQueries: setting({
    kind: bool,
    default: true,
    file: 'cache_blocking_queries',
    help: 'serve default-mode blocking queries and ?stale reads of cacheable endpoints from the cache',
  }),
  ...checkReapSettings,
  plugins: pluginsSetting(BUILTIN_PLUGINS),
  // The DNS plugin's section (dns/plugin.ts), answering from the agent's cache.
  ...DNS_PLUGIN_SETTINGS,
};

export type AgentConfig = ConfigOf<typeof AGENT_SETTINGS>;

export const AGENT_DEFAULTS: AgentConfig = defaultsOf(AGENT_SETTINGS);

/** What a config file holds: agent settings, and service / check definitions (raw, decoded later). */
export interface AgentConfigFile {
  readonly config: Partial<AgentConfig>;
  readonly services: readonly { readonly file: string; readonly definition: unknown }[];
  readonly checks: readonly { readonly file: string; readonly definition: unknown }[];
}

const DEFINITION_KEYS = ['service', 'services', 'check', 'checks'];

/** Parses one config file's JSON object. */
export function parseAgentConfigObject(raw: unknown, file: string): AgentConfigFile {
  const services: { file: string; definition: unknown }[] = [];
  const checks: { file: string; definition: unknown }[] = [];
  const config = readSettingsObject(AGENT_SETTINGS, raw, file, {
    otherKeys: DEFINITION_KEYS,
    onOtherKey: (key, value) => {
      const list = key.endsWith('s') ? value : [value];
      if (!Array.isArray(list) || list.some((d) => typeof d !== 'object' || d === null || Array.isArray(d))) {
        throw new ConfigError(`${file}: "${key}" must be ${key.endsWith('s') ? 'a list of objects' : 'an object'}`);
      }
      for (const definition of list) (key.startsWith('service') ? services : checks).push({ file, definition });
    },
  });
  return { config, services, checks };
}

export function readAgentConfigFile(path: string): AgentConfigFile {
  return parseAgentConfigObject(readJsonFile(path), path);
}

/** Reads config files in order; later files override earlier settings, definitions accumulate. */
export function readAgentConfigFiles(paths: readonly string[]): AgentConfigFile {
  const config: Partial<AgentConfig> = {};
  const services: AgentConfigFile['services'][number][] = [];
  const checks: AgentConfigFile['checks'][number][] = [];
  for (const path of paths) {
    const file = readAgentConfigFile(path);
    Object.assign(config, file.config);
    services.push(...file.services);
    checks.push(...file.checks);
  }
  return { config, services, checks };
}

/** Defaults, then the layers in order (files, then flags), then the checks that need several settings. */
export function mergeAgentConfig(...layers: Partial<AgentConfig>[]): AgentConfig {
  const merged = mergeLayers(AGENT_DEFAULTS, layers);
  if (!merged.nodeName) throw new ConfigError('node_name must not be empty');
  if (merged.retryJoin.length === 0) throw new ConfigError("an agent needs at least one server: --retry-join HOST:PORT (a server's RPC address)");
  checkRpcTls(merged);
  if (merged.advertiseAddr !== '' && isWildcard(merged.advertiseAddr)) throw new ConfigError('advertise_addr must be a specific address');
  return merged;
}

/** The address the node is registered with. */
export function nodeAddressOf(config: AgentConfig): string {
  if (config.advertiseAddr !== '') return config.advertiseAddr;
  return isWildcard(config.httpAddr.host) ? '127.0.0.1' : config.httpAddr.host;
}
