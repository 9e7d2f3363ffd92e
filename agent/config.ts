// Agent configuration: defaults, then JSON config files (Consul's agent keys in snake_case, plus the
// service and check definitions Consul accepts in the same files: {"service": {...}},
// {"services": [...]}, {"check": {...}}, {"checks": [...]}), then command-line flags. Unknown keys
// and malformed values are errors. HCL is not read: JSON with Consul's lowercase / snake_case field
// names ("HCL-like JSON") is, since definitions are decoded case- and underscore-insensitively.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { normaliseDomain, parseDnsAddr, parseRecursors } from '../dns/config.ts';
import { bool, ConfigError, hostPortText, isWildcard, logLevel, parseHostPort, positiveInt, str, strList, type HostPort, type ServerConfig } from '../server/config.ts';

export interface AgentConfig {
  readonly nodeName: string;
  readonly datacenter: string;
  readonly dataDir: string;
  /** Where the HTTP API listens (0.0.0.0 in a DaemonSet). */
  readonly httpAddr: HostPort;
  /** The address the node is registered with in the catalog ('' = the HTTP host, or 127.0.0.1 for a wildcard). */
  readonly advertiseAddr: string;
  /** Servers' RPC addresses ("host:port"): the agent learns every server from any one of them. */
  readonly retryJoin: readonly string[];
  readonly logLevel: ServerConfig['logLevel'];
  readonly enableScriptChecks: boolean;
  /** Full anti-entropy sync period before aeScale (Consul: 1 minute). */
  readonly syncIntervalMs: number;
  /** Check status changes wait this long to be sent together (flaps within it send nothing). */
  readonly statusCoalesceMs: number;
  /** How often the agent tells the servers it is alive (the leader keeps its serfHealth). */
  readonly heartbeatIntervalMs: number;
  readonly cacheMaxEntries: number;
  readonly cacheMaxBytes: number;
  /** A cache entry nobody asked for this long is dropped (its background refresh stops). */
  readonly cacheEntryTtlMs: number;
  /** Serve default-mode blocking queries and ?stale reads of cacheable endpoints from the cache. */
  readonly cacheBlockingQueries: boolean;
  readonly checkReapIntervalMs: number;
  readonly checkDeregisterIntervalMinMs: number;
  /** Mutual TLS towards the servers' RPC port when all three are set (PEM files). */
  readonly rpcTlsCertFile: string;
  readonly rpcTlsKeyFile: string;
  readonly rpcTlsCaFile: string;
  /** The DNS interface (UDP and TCP) answering from the cache; null = off. */
  readonly dnsAddr: HostPort | null;
  readonly dnsDomain: string;
  readonly dnsRecursors: readonly string[];
}

export const AGENT_DEFAULTS: AgentConfig = {
  nodeName: hostname(),
  datacenter: 'dc1',
  dataDir: './agent-data',
  httpAddr: { host: '127.0.0.1', port: 8500 },
  advertiseAddr: '',
  retryJoin: [],
  logLevel: 'info',
  enableScriptChecks: false,
  syncIntervalMs: 60_000,
  statusCoalesceMs: 200,
  heartbeatIntervalMs: 2000,
  cacheMaxEntries: 10_000,
  cacheMaxBytes: 64 * 1024 * 1024,
  cacheEntryTtlMs: 10 * 60 * 1000,
  cacheBlockingQueries: true,
  checkReapIntervalMs: 30_000,
  checkDeregisterIntervalMinMs: 60_000,
  rpcTlsCertFile: '',
  rpcTlsKeyFile: '',
  rpcTlsCaFile: '',
  dnsAddr: { host: '127.0.0.1', port: 8600 },
  dnsDomain: 'consul',
  dnsRecursors: [],
};

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** What a config file holds: agent settings, and service / check definitions (raw, decoded later). */
export interface AgentConfigFile {
  readonly config: Partial<AgentConfig>;
  readonly services: readonly { readonly file: string; readonly definition: unknown }[];
  readonly checks: readonly { readonly file: string; readonly definition: unknown }[];
}

const FILE_KEYS: Record<string, (v: unknown, c: Partial<Mutable<AgentConfig>>) => void> = {
  node_name: (v, c) => (c.nodeName = str(v, 'node_name')),
  datacenter: (v, c) => (c.datacenter = str(v, 'datacenter')),
  data_dir: (v, c) => (c.dataDir = str(v, 'data_dir')),
  http_addr: (v, c) => (c.httpAddr = parseHostPort(str(v, 'http_addr'), 'http_addr')),
  advertise_addr: (v, c) => (c.advertiseAddr = str(v, 'advertise_addr')),
  retry_join: (v, c) => (c.retryJoin = strList(v, 'retry_join').map((a) => hostPortText(a, 'retry_join'))),
  log_level: (v, c) => (c.logLevel = logLevel(v)),
  enable_script_checks: (v, c) => (c.enableScriptChecks = bool(v, 'enable_script_checks')),
  sync_interval_ms: (v, c) => (c.syncIntervalMs = positiveInt(v, 'sync_interval_ms')),
  status_coalesce_ms: (v, c) => (c.statusCoalesceMs = nonNegativeInt(v, 'status_coalesce_ms')),
  heartbeat_interval_ms: (v, c) => (c.heartbeatIntervalMs = positiveInt(v, 'heartbeat_interval_ms')),
  cache_max_entries: (v, c) => (c.cacheMaxEntries = positiveInt(v, 'cache_max_entries')),
  cache_max_bytes: (v, c) => (c.cacheMaxBytes = positiveInt(v, 'cache_max_bytes')),
  cache_entry_ttl_ms: (v, c) => (c.cacheEntryTtlMs = positiveInt(v, 'cache_entry_ttl_ms')),
  cache_blocking_queries: (v, c) => (c.cacheBlockingQueries = bool(v, 'cache_blocking_queries')),
  check_reap_interval_ms: (v, c) => (c.checkReapIntervalMs = positiveInt(v, 'check_reap_interval_ms')),
  check_deregister_interval_min_ms: (v, c) => (c.checkDeregisterIntervalMinMs = positiveInt(v, 'check_deregister_interval_min_ms')),
  rpc_tls_cert_file: (v, c) => (c.rpcTlsCertFile = str(v, 'rpc_tls_cert_file')),
  rpc_tls_key_file: (v, c) => (c.rpcTlsKeyFile = str(v, 'rpc_tls_key_file')),
  rpc_tls_ca_file: (v, c) => (c.rpcTlsCaFile = str(v, 'rpc_tls_ca_file')),
  dns_addr: (v, c) => (c.dnsAddr = parseDnsAddr(str(v, 'dns_addr'))),
  domain: (v, c) => (c.dnsDomain = normaliseDomain(str(v, 'domain'))),
  recursors: (v, c) => (c.dnsRecursors = parseRecursors(v)),
};

/** Parses one config file's JSON object. */
export function parseAgentConfigObject(raw: unknown, file: string): AgentConfigFile {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${file}: the config must be a JSON object`);
  const config: Partial<Mutable<AgentConfig>> = {};
  const services: { file: string; definition: unknown }[] = [];
  const checks: { file: string; definition: unknown }[] = [];
  for (const [key, value] of Object.entries(raw)) {
    if (key === 'service' || key === 'services' || key === 'check' || key === 'checks') {
      const list = key.endsWith('s') ? value : [value];
      if (!Array.isArray(list) || list.some((d) => typeof d !== 'object' || d === null || Array.isArray(d))) {
        throw new ConfigError(`${file}: "${key}" must be ${key.endsWith('s') ? 'a list of objects' : 'an object'}`);
      }
      for (const definition of list) (key.startsWith('service') ? services : checks).push({ file, definition });
      continue;
    }
    const apply = FILE_KEYS[key];
    if (!apply) throw new ConfigError(`${file}: unknown key "${key}" (known: service, services, check, checks, ${Object.keys(FILE_KEYS).join(', ')})`);
    try {
      apply(value, config);
    } catch (err) {
      throw new ConfigError(`${file}: ${(err as Error).message}`);
    }
  }
  return { config, services, checks };
}

export function readAgentConfigFile(path: string): AgentConfigFile {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  return parseAgentConfigObject(raw, path);
}

/** Every *.json file of a directory, in name order (as Consul reads a config dir). */
export function configDirFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    throw new ConfigError(`cannot read config dir ${dir}: ${(err as Error).message}`);
  }
  return names
    .filter((n) => n.endsWith('.json'))
    .sort()
    .map((n) => join(dir, n))
    .filter((p) => statSync(p).isFile());
}

/** Reads config files in order; later files override earlier settings, definitions accumulate. */
export function readAgentConfigFiles(paths: readonly string[]): AgentConfigFile {
  const config: Partial<Mutable<AgentConfig>> = {};
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

export function mergeAgentConfig(...layers: Partial<AgentConfig>[]): AgentConfig {
  const defined = layers.map((l) => Object.fromEntries(Object.entries(l).filter(([, v]) => v !== undefined)) as Partial<AgentConfig>);
  const merged = Object.assign({}, AGENT_DEFAULTS, ...defined) as Mutable<AgentConfig>;
  if (!merged.nodeName) throw new ConfigError('node_name must not be empty');
  if (merged.retryJoin.length === 0) throw new ConfigError('an agent needs at least one server: --retry-join HOST:PORT (a server\'s RPC address)');
  const tls = [merged.rpcTlsCertFile, merged.rpcTlsKeyFile, merged.rpcTlsCaFile].filter((f) => f !== '').length;
  if (tls !== 0 && tls !== 3) throw new ConfigError('rpc TLS needs all three of rpc_tls_cert_file, rpc_tls_key_file and rpc_tls_ca_file');
  if (merged.advertiseAddr !== '' && isWildcard(merged.advertiseAddr)) throw new ConfigError('advertise_addr must be a specific address');
  return merged;
}

/** The address the node is registered with. */
export function nodeAddressOf(config: AgentConfig): string {
  if (config.advertiseAddr !== '') return config.advertiseAddr;
  return isWildcard(config.httpAddr.host) ? '127.0.0.1' : config.httpAddr.host;
}

function nonNegativeInt(v: unknown, key: string): number {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new ConfigError(`${key} must be a non-negative integer`);
  return n;
}
