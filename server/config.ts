// Server configuration: defaults, then a JSON config file (Consul-style snake_case keys), then
// command-line flags. Unknown keys and malformed values are errors, never silently ignored.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { DnsConfigError, normaliseDomain, parseDnsAddr, parseDnsConfigObject, parseRecursors, type DnsConfigObject } from '../dns/config.ts';
import { DEFAULT_KV_RECOVERY_MAX_BYTES, type KvRecoveryRule } from '../fsm/state/kv-recovery-commands.ts';
import { KvRecoveryConfigError, parseKvRecoveryMaxBytes, parseKvRecoveryRules } from './kv-recovery-config.ts';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export interface ServerConfig {
  readonly nodeName: string;
  readonly datacenter: string;
  readonly dataDir: string;
  readonly httpAddr: HostPort;
  /** A single server that bootstraps itself as the only voter of a new cluster. */
  readonly dev: boolean;
  readonly kvMaxValueSize: number;
  /** Longest KV key accepted, in UTF-8 bytes (docs/adr/0005-kv-key-validation.md). */
  readonly kvMaxKeyLength: number;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  readonly raftTickMs: number;
  readonly raftElectionTicks: number;
  readonly snapshotEveryEntries: number;
  /** Log entries kept below each snapshot, so a follower a little behind needs no snapshot. */
  readonly snapshotTrailingEntries: number;
  /** Deleted keys' tombstones are reaped after this long (longer than any blocking wait). */
  readonly tombstoneTtlMs: number;
  /** The leader aborts a restore (PUT /v1/snapshot) that received no chunk for this long (its proposer died). */
  readonly restoreStallTimeoutMs: number;
  /**
   * Shortest session TTL accepted (Consul's session_ttl_min, default 10 s). Tests lower it to keep
   * TTL expiries short; the maximum stays Consul's 86400 s.
   */
  readonly sessionTtlMinMs: number;
  /** How often the agent looks for services to remove after DeregisterCriticalServiceAfter (Consul: 30 s). */
  readonly checkReapIntervalMs: number;
  /** The shortest DeregisterCriticalServiceAfter honoured (Consul: 1 minute); tests lower both. */
  readonly checkDeregisterIntervalMinMs: number;
  /** Flush writes to disk before acknowledging them. Only tests and benchmarks turn this off. */
  readonly syncWrites: boolean;
  /** Where the server-to-server listener binds; outbound connections use its host as source. */
  readonly rpcAddr: HostPort;
  /** The RPC address other servers dial ("host:port"); '' = the bound address. */
  readonly rpcAdvertise: string;
  /** Form a new cluster once this many servers know each other (0 = never bootstrap). */
  readonly bootstrapExpect: number;
  /** Other servers' RPC addresses to join (retried until one answers). */
  readonly retryJoin: readonly string[];
  /** Mutual TLS between servers when all three are set (PEM files). */
  readonly rpcTlsCertFile: string;
  readonly rpcTlsKeyFile: string;
  readonly rpcTlsCaFile: string;
  /** How long a request waits for a leader (during an election) before failing with "No cluster leader". */
  readonly rpcHoldTimeoutMs: number;
  readonly autopilotCleanupDeadServers: boolean;
  /** A voter unreachable this long is removed (when enough healthy voters remain). */
  readonly autopilotDeadServerAfterMs: number;
  /** A server is unhealthy when the leader has not heard from it for this long. */
  readonly autopilotLastContactThresholdMs: number;
  /** Autopilot never removes a voter when fewer than this many would remain. */
  readonly autopilotMinQuorum: number;
  /** The DNS interface's UDP+TCP address; null = off (`dns_addr: "off"`). */
  readonly dnsAddr: HostPort | null;
  /** The DNS zone answered (Consul's `domain`), without the trailing dot. */
  readonly dnsDomain: string;
  /** Upstream DNS servers for names outside the zone (Consul's `recursors`). */
  readonly dnsRecursors: readonly string[];
  /** Consul's `dns_config` object (dns/config.ts: TTLs, only_passing, truncation, SOA). */
  readonly dnsConfig: DnsConfigObject;
  /** Recoverable deletes (`kv_recovery`, docs/adr/0017-kv-recovery.md): none by default. */
  readonly kvRecovery: readonly KvRecoveryRule[];
  /** What all retired versions may hold together (`kv_recovery_max_bytes`). */
  readonly kvRecoveryMaxBytes: number;
}

export const DEFAULTS: ServerConfig = {
  nodeName: hostname(),
  datacenter: 'dc1',
  dataDir: './data',
  httpAddr: { host: '127.0.0.1', port: 8500 },
  dev: false,
  kvMaxValueSize: 512 * 1024,
  kvMaxKeyLength: 1024,
  logLevel: 'info',
  raftTickMs: 50,
  raftElectionTicks: 10,
  snapshotEveryEntries: 16384,
  snapshotTrailingEntries: 5000, // raft/storage/level-storage.ts DEFAULT_TRAILING_ENTRIES
  tombstoneTtlMs: 15 * 60 * 1000,
  restoreStallTimeoutMs: 15_000,
  sessionTtlMinMs: 10_000,
  checkReapIntervalMs: 30_000,
  checkDeregisterIntervalMinMs: 60_000,
  syncWrites: true,
  rpcAddr: { host: '127.0.0.1', port: 8300 },
  rpcAdvertise: '',
  bootstrapExpect: 0,
  retryJoin: [],
  rpcTlsCertFile: '',
  rpcTlsKeyFile: '',
  rpcTlsCaFile: '',
  rpcHoldTimeoutMs: 2000,
  autopilotCleanupDeadServers: true,
  autopilotDeadServerAfterMs: 30_000,
  autopilotLastContactThresholdMs: 500,
  autopilotMinQuorum: 0,
  dnsAddr: { host: '127.0.0.1', port: 8600 },
  dnsDomain: 'consul',
  dnsRecursors: [],
  dnsConfig: {},
  kvRecovery: [],
  kvRecoveryMaxBytes: DEFAULT_KV_RECOVERY_MAX_BYTES,
};

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export function parseHostPort(text: string, what: string): HostPort {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new ConfigError(`${what}: expected HOST:PORT, got "${text}"`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

/** The config file's keys and how each maps onto ServerConfig. */
const FILE_KEYS: Record<string, (v: unknown, c: Partial<Mutable<ServerConfig>>) => void> = {
  node_name: (v, c) => (c.nodeName = str(v, 'node_name')),
  datacenter: (v, c) => (c.datacenter = str(v, 'datacenter')),
  data_dir: (v, c) => (c.dataDir = str(v, 'data_dir')),
  http_addr: (v, c) => (c.httpAddr = parseHostPort(str(v, 'http_addr'), 'http_addr')),
  dev: (v, c) => (c.dev = bool(v, 'dev')),
  kv_max_value_size: (v, c) => (c.kvMaxValueSize = positiveInt(v, 'kv_max_value_size')),
  kv_max_key_length: (v, c) => (c.kvMaxKeyLength = positiveInt(v, 'kv_max_key_length')),
  log_level: (v, c) => (c.logLevel = logLevel(v)),
  raft_tick_ms: (v, c) => (c.raftTickMs = positiveInt(v, 'raft_tick_ms')),
  raft_election_ticks: (v, c) => (c.raftElectionTicks = positiveInt(v, 'raft_election_ticks')),
  snapshot_every_entries: (v, c) => (c.snapshotEveryEntries = positiveInt(v, 'snapshot_every_entries')),
  snapshot_trailing_entries: (v, c) => (c.snapshotTrailingEntries = nonNegativeInt(v, 'snapshot_trailing_entries')),
  sync_writes: (v, c) => (c.syncWrites = bool(v, 'sync_writes')),
  tombstone_ttl_ms: (v, c) => (c.tombstoneTtlMs = positiveInt(v, 'tombstone_ttl_ms')),
  restore_stall_timeout_ms: (v, c) => (c.restoreStallTimeoutMs = positiveInt(v, 'restore_stall_timeout_ms')),
  check_reap_interval_ms: (v, c) => (c.checkReapIntervalMs = positiveInt(v, 'check_reap_interval_ms')),
  check_deregister_interval_min_ms: (v, c) => (c.checkDeregisterIntervalMinMs = positiveInt(v, 'check_deregister_interval_min_ms')),
  session_ttl_min_ms: (v, c) => (c.sessionTtlMinMs = positiveInt(v, 'session_ttl_min_ms')),
  rpc_addr: (v, c) => (c.rpcAddr = parseHostPort(str(v, 'rpc_addr'), 'rpc_addr')),
  rpc_advertise: (v, c) => (c.rpcAdvertise = hostPortText(str(v, 'rpc_advertise'), 'rpc_advertise')),
  bootstrap_expect: (v, c) => (c.bootstrapExpect = positiveInt(v, 'bootstrap_expect')),
  retry_join: (v, c) => (c.retryJoin = strList(v, 'retry_join').map((a) => hostPortText(a, 'retry_join'))),
  rpc_tls_cert_file: (v, c) => (c.rpcTlsCertFile = str(v, 'rpc_tls_cert_file')),
  rpc_tls_key_file: (v, c) => (c.rpcTlsKeyFile = str(v, 'rpc_tls_key_file')),
  rpc_tls_ca_file: (v, c) => (c.rpcTlsCaFile = str(v, 'rpc_tls_ca_file')),
  rpc_hold_timeout_ms: (v, c) => (c.rpcHoldTimeoutMs = positiveInt(v, 'rpc_hold_timeout_ms')),
  autopilot_cleanup_dead_servers: (v, c) => (c.autopilotCleanupDeadServers = bool(v, 'autopilot_cleanup_dead_servers')),
  autopilot_dead_server_after_ms: (v, c) => (c.autopilotDeadServerAfterMs = positiveInt(v, 'autopilot_dead_server_after_ms')),
  autopilot_last_contact_threshold_ms: (v, c) => (c.autopilotLastContactThresholdMs = positiveInt(v, 'autopilot_last_contact_threshold_ms')),
  autopilot_min_quorum: (v, c) => (c.autopilotMinQuorum = nonNegativeInt(v, 'autopilot_min_quorum')),
  // The DNS interface, with Consul's key names (docs/adr/0012-dns-interface.md).
  dns_addr: (v, c) => (c.dnsAddr = dnsSetting(() => parseDnsAddr(str(v, 'dns_addr')))),
  domain: (v, c) => (c.dnsDomain = dnsSetting(() => normaliseDomain(str(v, 'domain')))),
  recursors: (v, c) => (c.dnsRecursors = dnsSetting(() => parseRecursors(v))),
  dns_config: (v, c) => (c.dnsConfig = dnsSetting(() => parseDnsConfigObject(v))),
  kv_recovery: (v, c) => (c.kvRecovery = kvRecoverySetting(() => parseKvRecoveryRules(v))),
  kv_recovery_max_bytes: (v, c) => (c.kvRecoveryMaxBytes = kvRecoverySetting(() => parseKvRecoveryMaxBytes(v))),
};

function kvRecoverySetting<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof KvRecoveryConfigError) throw new ConfigError(err.message);
    throw err;
  }
}

function dnsSetting<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof DnsConfigError) throw new ConfigError(err.message);
    throw err;
  }
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export function readConfigFile(path: string): Partial<ServerConfig> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${path}: the config must be a JSON object`);
  const out: Partial<Mutable<ServerConfig>> = {};
  for (const [key, value] of Object.entries(raw)) {
    const apply = FILE_KEYS[key];
    if (!apply) throw new ConfigError(`${path}: unknown key "${key}" (known: ${Object.keys(FILE_KEYS).join(', ')})`);
    apply(value, out);
  }
  return out;
}

export function mergeConfig(...layers: Partial<ServerConfig>[]): ServerConfig {
  const defined = layers.map(dropUndefined);
  const merged = Object.assign({}, DEFAULTS, ...defined) as Mutable<ServerConfig>;
  if (merged.raftElectionTicks < 2) throw new ConfigError('raft_election_ticks must be at least 2');
  if (!merged.nodeName) throw new ConfigError('node_name must not be empty');
  // A dev server needs no fixed RPC port: nobody joins it, and several may run side by side.
  if (merged.dev && !defined.some((l) => l.rpcAddr !== undefined)) merged.rpcAddr = { host: '127.0.0.1', port: 0 };
  // Nor a fixed DNS port: dev servers and the tests run side by side without fighting over 8600.
  if (merged.dev && !defined.some((l) => l.dnsAddr !== undefined)) merged.dnsAddr = { host: '127.0.0.1', port: 0 };
  if (merged.dev && merged.bootstrapExpect > 0) throw new ConfigError('dev and bootstrap_expect cannot be combined: a dev server bootstraps alone');
  if (!merged.rpcAdvertise && isWildcard(merged.rpcAddr.host)) {
    throw new ConfigError(`rpc_addr ${merged.rpcAddr.host} is a wildcard address: set rpc_advertise to the address other servers should dial`);
  }
  const tls = [merged.rpcTlsCertFile, merged.rpcTlsKeyFile, merged.rpcTlsCaFile].filter((f) => f !== '').length;
  if (tls !== 0 && tls !== 3) throw new ConfigError('rpc TLS needs all three of rpc_tls_cert_file, rpc_tls_key_file and rpc_tls_ca_file');
  return merged;
}

export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

/** Validates "host:port" and returns it normalised (IPv6 hosts in brackets). */
export function hostPortText(text: string, what: string): string {
  const { host, port } = parseHostPort(text, what);
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

function dropUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export function str(v: unknown, key: string): string {
  if (typeof v !== 'string') throw new ConfigError(`${key} must be a string`);
  return v;
}

export function strList(v: unknown, key: string): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new ConfigError(`${key} must be a list of strings`);
  return v as string[];
}

function nonNegativeInt(v: unknown, key: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new ConfigError(`${key} must be a non-negative integer`);
  return v;
}

export function bool(v: unknown, key: string): boolean {
  if (typeof v !== 'boolean') throw new ConfigError(`${key} must be true or false`);
  return v;
}

export function positiveInt(v: unknown, key: string): number {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n <= 0) throw new ConfigError(`${key} must be a positive integer`);
  return n;
}

export function logLevel(v: unknown): ServerConfig['logLevel'] {
  const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
  if (typeof v !== 'string' || !levels.includes(v)) throw new ConfigError(`log_level must be one of ${levels.join(', ')}`);
  return v as ServerConfig['logLevel'];
}
