// Server configuration: one settings table (plugins/settings.ts) gives the defaults, the JSON
// config-file keys (Consul-style snake_case), the `konsul server` flags and their --help text.
// Precedence: defaults, then config files in order, then flags. Unknown keys and malformed values
// are errors, never silently ignored.
import { DEFAULT_KV_RECOVERY_MAX_BYTES, type KvRecoveryRule } from '../fsm/state/kv-recovery-commands.ts';
import {
  bool,
  ConfigError,
  hostPort,
  hostPortString,
  isWildcard,
  jsonValue,
  nonNegativeInt,
  positiveInt,
  positiveIntAs,
  type HostPort,
} from '../lib/config-values.ts';
import { DNS_PLUGIN_SETTINGS } from '../dns/config.ts';
import { BUILTIN_PLUGINS } from '../plugins/builtin.ts';
import { checkReapSettings, checkRpcTls, datacenterSetting, dataDirSetting, httpAddrSetting, logLevelSetting, nodeNameSetting, readJsonFile, retryJoinSetting, rpcTlsSettings } from '../plugins/common-settings.ts';
import { pluginsSetting } from '../plugins/loader.ts';
import { defaultsOf, given, mergeLayers, readSettingsObject, setting, type ConfigOf } from '../plugins/settings.ts';
import { parseKvRecoveryMaxBytes, parseKvRecoveryRules } from './kv-recovery-config.ts';

export { ConfigError, hostPortText, isWildcard, parseHostPort, type HostPort } from '../lib/config-values.ts';

/** Every setting of `konsul server`, in --help order. */
export const SERVER_SETTINGS = {
  nodeName: nodeNameSetting(),
  datacenter: datacenterSetting,
  dataDir: dataDirSetting('./data', 'directory for the Raft log, snapshots and state'),
  httpAddr: httpAddrSetting(),
  dev: setting({ kind: bool, default: false, file: 'dev', flag: '--dev', defaultHelp: '', help: 'a single server that bootstraps itself as a one-node cluster' }),
  rpcAddr: setting({
    kind: hostPort,
    default: { host: '127.0.0.1', port: 8300 } as HostPort,
    file: 'rpc_addr',
    flag: '--rpc-addr',
    defaultHelp: '127.0.0.1:8300; dev: an ephemeral port',
    help: 'server-to-server address to bind; outbound connections use its host as source',
  }),
  rpcAdvertise: setting({
    kind: hostPortString,
    default: '',
    file: 'rpc_advertise',
    flag: '--rpc-advertise',
    defaultHelp: 'the bound --rpc-addr',
    help: 'server-to-server address other servers dial',
  }),
  bootstrapExpect: setting({
    kind: positiveInt,
    default: 0,
    file: 'bootstrap_expect',
    flag: '--bootstrap-expect',
    defaultHelp: 'never',
    help: 'form a new cluster once this many servers have found each other',
  }),
  retryJoin: retryJoinSetting("another server's RPC address to join (retried until one answers)"),
  ...rpcTlsSettings,
  rpcHoldTimeoutMs: setting({ kind: positiveIntAs('<ms>'), default: 2000, file: 'rpc_hold_timeout_ms', help: 'how long a request waits for a leader (during an election) before failing with "No cluster leader"' }),
  kvMaxValueSize: setting({ kind: positiveIntAs('<bytes>'), default: 512 * 1024, file: 'kv_max_value_size', flag: '--kv-max-value-size', help: 'largest KV value accepted' }),
  kvMaxKeyLength: setting({ kind: positiveIntAs('<bytes>'), default: 1024, file: 'kv_max_key_length', help: 'longest KV key accepted, in UTF-8 bytes (docs/adr/0005-kv-key-validation.md)' }),
  logLevel: logLevelSetting,
  raftTickMs: setting({ kind: positiveIntAs('<ms>'), default: 50, file: 'raft_tick_ms', help: 'the Raft tick' }),
  raftElectionTicks: setting({ kind: positiveInt, default: 10, file: 'raft_election_ticks', help: 'election timeout in ticks (at least 2)' }),
  snapshotEveryEntries: setting({ kind: positiveInt, default: 16384, file: 'snapshot_every_entries', help: 'a Raft snapshot is taken after this many entries' }),
  snapshotTrailingEntries: setting({
    kind: nonNegativeInt,
    default: 5000, // raft/storage/level-storage.ts DEFAULT_TRAILING_ENTRIES
    file: 'snapshot_trailing_entries',
    help: 'log entries kept below each snapshot, so that a follower a little behind needs no snapshot',
  }),
  syncWrites: setting({ kind: bool, default: true, file: 'sync_writes', help: 'flush writes to disk before acknowledging them (only tests and benchmarks turn this off)' }),
  tombstoneTtlMs: setting({ kind: positiveIntAs('<ms>'), default: 15 * 60 * 1000, file: 'tombstone_ttl_ms', help: "deleted keys' tombstones are reaped after this long (longer than any blocking wait)" }),
  restoreStallTimeoutMs: setting({
    kind: positiveIntAs('<ms>'),
    default: 15_000,
    file: 'restore_stall_timeout_ms',
    help: 'the leader aborts a restore (PUT /v1/snapshot) that received no chunk for this long',
  }),
  sessionTtlMinMs: setting({ kind: positiveIntAs('<ms>'), default: 10_000, file: 'session_ttl_min_ms', help: "shortest session TTL accepted (Consul's session_ttl_min; the maximum stays 86400 s)" }),
  ...checkReapSettings,
  autopilotCleanupDeadServers: setting({ kind: bool, default: true, file: 'autopilot_cleanup_dead_servers', help: 'remove voters that stay unreachable' }),
  autopilotDeadServerAfterMs: setting({
    kind: positiveIntAs('<ms>'),
    default: 30_000,
    file: 'autopilot_dead_server_after_ms',
    help: 'a voter unreachable this long is removed (when enough healthy voters remain)',
  }),
  autopilotLastContactThresholdMs: setting({
    kind: positiveIntAs('<ms>'),
    default: 500,
    file: 'autopilot_last_contact_threshold_ms',
    help: 'a server is unhealthy when the leader has not heard from it for this long',
  }),
  autopilotMinQuorum: setting({ kind: nonNegativeInt, default: 0, file: 'autopilot_min_quorum', help: 'autopilot never removes a voter when fewer than this many would remain' }),
  kvRecovery: setting({
    kind: jsonValue<readonly KvRecoveryRule[]>((v) => parseKvRecoveryRules(v)),
    default: [],
    file: 'kv_recovery',
    help: 'recoverable deletes: [{"prefix", "retention", "max_versions"}] (docs/adr/0017-kv-recovery.md)',
  }),
  kvRecoveryMaxBytes: setting({
    kind: jsonValue<number>((v) => parseKvRecoveryMaxBytes(v), String),
    default: DEFAULT_KV_RECOVERY_MAX_BYTES,
    file: 'kv_recovery_max_bytes',
    help: 'what all retired versions may hold together',
  }),
  plugins: pluginsSetting(BUILTIN_PLUGINS),
  // The DNS plugin's section (dns/plugin.ts), with Consul's key names (docs/adr/0012-dns-interface.md).
  ...DNS_PLUGIN_SETTINGS,
  dnsAddr: { ...DNS_PLUGIN_SETTINGS.dnsAddr, defaultHelp: '127.0.0.1:8600; with --dev an ephemeral port' },
};

export type ServerConfig = ConfigOf<typeof SERVER_SETTINGS>;

/** Built once: a value equal to its default but given explicitly is another object (see dns/plugin.ts). */
export const DEFAULTS: ServerConfig = defaultsOf(SERVER_SETTINGS);

/** One config file's settings (only the keys it sets). */
export function readConfigFile(path: string): Partial<ServerConfig> {
  return readSettingsObject(SERVER_SETTINGS, readJsonFile(path), path);
}

/** Config files in order: later files override earlier ones. */
export function readConfigFiles(paths: readonly string[]): Partial<ServerConfig> {
  return Object.assign({}, ...paths.map(readConfigFile)) as Partial<ServerConfig>;
}

/** Defaults, then the layers in order (files, then flags), then the checks that need several settings. */
export function mergeConfig(...layers: Partial<ServerConfig>[]): ServerConfig {
  const merged = mergeLayers(DEFAULTS, layers);
  if (merged.raftElectionTicks < 2) throw new ConfigError('raft_election_ticks must be at least 2');
  if (!merged.nodeName) throw new ConfigError('node_name must not be empty');
  // A dev server needs no fixed RPC port: nobody joins it, and several may run side by side.
  if (merged.dev && !given(layers, 'rpcAddr')) merged.rpcAddr = { host: '127.0.0.1', port: 0 };
  // Nor a fixed DNS port: dev servers and the tests run side by side without fighting over 8600.
  if (merged.dev && !given(layers, 'dnsAddr')) merged.dnsAddr = { host: '127.0.0.1', port: 0 };
  if (merged.dev && merged.bootstrapExpect > 0) throw new ConfigError('dev and bootstrap_expect cannot be combined: a dev server bootstraps alone');
  if (!merged.rpcAdvertise && isWildcard(merged.rpcAddr.host)) {
    throw new ConfigError(`rpc_addr ${merged.rpcAddr.host} is a wildcard address: set rpc_advertise to the address other servers should dial`);
  }
  checkRpcTls(merged);
  return merged;
}
