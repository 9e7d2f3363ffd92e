// `konsul snapshot agent`: the command line and config file of the snapshot agent
// (cli/snapshot-agent.ts, docs/adr/0019-snapshot-agent.md). Flags override the file; the file
// follows Consul's snapshot agent config (a "snapshot_agent" object with "snapshot" and
// "local_storage" blocks) with Konsul's additions (retain_days, session_ttl, lock_delay, id,
// metrics_addr).
import { mkdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { InvalidArgumentError, type Command } from 'commander';
import { joinHostPort } from '../lib/host-port.ts';
import { parseDuration, UsageError } from './args.ts';
import { parseHttpAddress, resolveHttpAddress, resolveToken } from './http-client.ts';
import { SnapshotAgent, type LogLevel, type SnapshotAgentConfig } from './snapshot-agent.ts';
import { ConfigError, parseHostPort } from '../server/config.ts';

export interface SnapshotAgentSettings extends SnapshotAgentConfig {
  readonly metricsAddr: { host: string; port: number } | undefined;
}

/** Consul's defaults, with Konsul's names. */
const DEFAULTS = {
  interval: '1h',
  retain: 30,
  retainDays: 0,
  stale: false,
  lockKey: 'konsul-snapshot/lock',
  sessionTtl: '15s',
  lockDelay: '15s',
  maxFailures: 3,
  service: 'konsul-snapshot',
  deregisterAfter: '72h',
  dir: '.',
} as const;

/** What the flags and the file may set; undefined: not set there. */
interface Settings {
  httpAddrs?: string[];
  token?: string;
  interval?: string;
  dir?: string;
  retain?: number;
  retainDays?: number;
  stale?: boolean;
  lockKey?: string;
  sessionTtl?: string;
  lockDelay?: string;
  maxFailures?: number;
  service?: string;
  instanceId?: string;
  deregisterAfter?: string;
  metricsAddr?: string;
}

function checked<T>(parse: (v: string) => T): (v: string) => T {
  return (v) => {
    try {
      return parse(v);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];
const count = (what: string) => (v: string): number => nonNegativeInt(v, what);
const days = (v: string): number => nonNegativeNumber(v, '--retain-days');
const duration = (what: string) => (v: string): string => validDuration(v, what);

export function addSnapshotAgentCommand(program: Command): void {
  const snapshot = program.command('snapshot').description('snapshot tools that run next to a Konsul cluster');
  snapshot
    .command('agent')
    .description('take a snapshot every interval into a directory, one writer at a time among several agents (Consul\'s snapshot agent)')
    .option('--http-addr <address>', 'a Konsul server or agent: host:port or http(s)://host:port (repeatable: tried in order; default: KONSUL_HTTP_ADDR, then 127.0.0.1:8500)', collect)
    .option('--config <file>', 'JSON config file: {"snapshot_agent": {"http_addr", "snapshot": {...}, "local_storage": {"path"}}}')
    .option('--interval <duration>', `time between snapshots (default: ${DEFAULTS.interval})`, checked(duration('--interval')))
    .option('--dir <dir>', `directory the snapshots are written to, created if missing (default: ${DEFAULTS.dir})`)
    .option('--retain <n>', `newest snapshots kept; 0 keeps all (default: ${DEFAULTS.retain})`, checked(count('--retain')))
    .option('--retain-days <days>', 'delete snapshots older than this; 0: no age limit (default: 0)', checked(days))
    .option('--stale', 'let any server answer from its own state (spares the leader; may miss the last writes)')
    .option('--lock-key <key>', `KV key of the leadership lock (default: ${DEFAULTS.lockKey})`)
    .option('--session-ttl <duration>', `TTL of the lock's session; a dead leader is replaced within about 2 x TTL + lock-delay (default: ${DEFAULTS.sessionTtl})`, checked(duration('--session-ttl')))
    .option('--lock-delay <duration>', `the session's lock-delay (default: ${DEFAULTS.lockDelay})`, checked(duration('--lock-delay')))
    .option('--max-failures <n>', `failures in a row after which the leader lets another agent try; 0: never (default: ${DEFAULTS.maxFailures})`, checked(count('--max-failures')))
    .option('--service <name>', `service name every agent registers (default: ${DEFAULTS.service})`)
    .option('--id <id>', 'this agent\'s name among the agents: its service ID, check IDs and session name (default: the host name)')
    .option('--deregister-after <duration>', `remove a dead agent's service after its alive check is critical this long (default: ${DEFAULTS.deregisterAfter})`, checked(duration('--deregister-after')))
    .option('--metrics-addr <host:port>', 'serve Prometheus metrics at http://host:port/metrics (default: none)')
    .addHelpText('after', `
Files are named konsul-<UTC time>-<Raft index>.snap (e.g. konsul-20261122T153012.345Z-1234.snap);
each is written to a hidden temporary file, synced, verified (as a restore checks it) and renamed
into place, so every such file is complete. Rotation deletes only files named this way.

Health: every agent registers the service (ID <service>:<id>) with a TTL check "Konsul Snapshot
Agent Alive"; the agent holding the lock adds the check "konsul-snapshot-agent" (ID
konsul-snapshot-agent:<id>): passing with the last file saved, critical with the last error.
SIGINT or SIGTERM: releases the lock, destroys the session, deregisters the service, exits 0.
`)
    .action(async (opts: Record<string, unknown>) => {
      let settings: SnapshotAgentSettings;
      try {
        const fromFile = typeof opts.config === 'string' ? readSnapshotAgentConfigFile(opts.config) : {};
        settings = resolveSettings(fromFile, flagSettings(opts), process.env);
        mkdirSync(settings.dir, { recursive: true });
      } catch (err) {
        if (err instanceof ConfigError || err instanceof UsageError || (err as NodeJS.ErrnoException).code !== undefined) {
          process.stderr.write(`konsul: ${(err as Error).message}\n`);
          process.exit(2);
        }
        throw err;
      }
      await runSnapshotAgent(settings);
    });
}

function flagSettings(opts: Record<string, unknown>): Settings {
  return dropUndefined({
    httpAddrs: opts.httpAddr as string[] | undefined,
    interval: opts.interval as string | undefined,
    dir: opts.dir as string | undefined,
    retain: opts.retain as number | undefined,
    retainDays: opts.retainDays as number | undefined,
    stale: opts.stale === true ? true : undefined,
    lockKey: opts.lockKey as string | undefined,
    sessionTtl: opts.sessionTtl as string | undefined,
    lockDelay: opts.lockDelay as string | undefined,
    maxFailures: opts.maxFailures as number | undefined,
    service: opts.service as string | undefined,
    instanceId: opts.id as string | undefined,
    deregisterAfter: opts.deregisterAfter as string | undefined,
    metricsAddr: opts.metricsAddr as string | undefined,
  });
}

/** Defaults, then the file, then the flags; the address from the environment when neither names one. */
export function resolveSettings(fromFile: Settings, fromFlags: Settings, env: Readonly<Record<string, string | undefined>>): SnapshotAgentSettings {
  const s = { ...fromFile, ...fromFlags };
  const httpAddrs = s.httpAddrs !== undefined ? s.httpAddrs.map((a) => httpAddress(a)) : [resolveHttpAddress(undefined, env)];
  const lockKey = (s.lockKey ?? DEFAULTS.lockKey).replace(/^\/+/, '');
  if (lockKey === '') throw new ConfigError('lock_key must not be empty');
  const instanceId = s.instanceId ?? hostname();
  if (instanceId === '' || /[/\s]/.test(instanceId)) throw new ConfigError(`id must be a name without slashes or spaces, got "${instanceId}"`);
  const metrics = s.metricsAddr !== undefined ? parseHostPort(s.metricsAddr, 'metrics_addr') : undefined;
  return {
    httpAddrs,
    token: resolveToken(s.token, env),
    intervalMs: parseDuration(s.interval ?? DEFAULTS.interval, 'interval'),
    dir: s.dir ?? DEFAULTS.dir,
    retain: s.retain ?? DEFAULTS.retain,
    retainDays: s.retainDays ?? DEFAULTS.retainDays,
    stale: s.stale ?? DEFAULTS.stale,
    lockKey,
    sessionTtl: s.sessionTtl ?? DEFAULTS.sessionTtl,
    lockDelay: s.lockDelay ?? DEFAULTS.lockDelay,
    maxFailures: s.maxFailures ?? DEFAULTS.maxFailures,
    service: s.service ?? DEFAULTS.service,
    instanceId,
    deregisterAfter: s.deregisterAfter ?? DEFAULTS.deregisterAfter,
    metricsAddr: metrics,
  };
}

function httpAddress(text: string): string {
  try {
    return parseHttpAddress(text);
  } catch (err) {
    throw new ConfigError(`http_addr: ${(err as Error).message}`);
  }
}

/** Reads the JSON config file; unknown keys and values of the wrong type are errors. */
export function readSnapshotAgentConfigFile(file: string): Settings {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
  }
  return snapshotAgentConfig(json, file);
}

export function snapshotAgentConfig(json: unknown, where: string): Settings {
  const top = objectOf(json, where);
  known(top, ['snapshot_agent'], where);
  const agent = objectOf(top.snapshot_agent ?? {}, `${where}: snapshot_agent`);
  known(agent, ['http_addr', 'token', 'id', 'metrics_addr', 'snapshot', 'local_storage'], `${where}: snapshot_agent`);
  const snap = objectOf(agent.snapshot ?? {}, `${where}: snapshot_agent.snapshot`);
  known(snap, ['interval', 'retain', 'retain_days', 'stale', 'service', 'deregister_after', 'lock_key', 'max_failures', 'session_ttl', 'lock_delay'], `${where}: snapshot_agent.snapshot`);
  const storage = objectOf(agent.local_storage ?? {}, `${where}: snapshot_agent.local_storage`);
  known(storage, ['path'], `${where}: snapshot_agent.local_storage`);
  const at = (key: string) => `${where}: ${key}`;
  const httpAddr = agent.http_addr;
  let httpAddrs: string[] | undefined;
  if (typeof httpAddr === 'string') httpAddrs = [httpAddr];
  else if (Array.isArray(httpAddr) && httpAddr.length > 0 && httpAddr.every((a) => typeof a === 'string')) httpAddrs = httpAddr as string[];
  else if (httpAddr !== undefined) throw new ConfigError(`${at('http_addr')} must be an address or a list of addresses`);
  return dropUndefined({
    httpAddrs,
    token: str(agent.token, at('token')),
    instanceId: str(agent.id, at('id')),
    metricsAddr: str(agent.metrics_addr, at('metrics_addr')),
    interval: dur(snap.interval, at('snapshot.interval')),
    retain: int(snap.retain, at('snapshot.retain')),
    retainDays: num(snap.retain_days, at('snapshot.retain_days')),
    stale: bool(snap.stale, at('snapshot.stale')),
    service: str(snap.service, at('snapshot.service')),
    deregisterAfter: dur(snap.deregister_after, at('snapshot.deregister_after')),
    lockKey: str(snap.lock_key, at('snapshot.lock_key')),
    maxFailures: int(snap.max_failures, at('snapshot.max_failures')),
    sessionTtl: dur(snap.session_ttl, at('snapshot.session_ttl')),
    lockDelay: dur(snap.lock_delay, at('snapshot.lock_delay')),
    dir: str(storage.path, at('local_storage.path')),
  });
}

function objectOf(v: unknown, where: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(`${where} must be a JSON object`);
  return v as Record<string, unknown>;
}

function known(o: Record<string, unknown>, keys: readonly string[], where: string): void {
  for (const key of Object.keys(o)) if (!keys.includes(key)) throw new ConfigError(`${where}: unknown key "${key}" (known: ${keys.join(', ')})`);
}

function str(v: unknown, where: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new ConfigError(`${where} must be a string`);
  return v;
}

function bool(v: unknown, where: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw new ConfigError(`${where} must be true or false`);
  return v;
}

function int(v: unknown, where: string): number | undefined {
  if (v === undefined) return undefined;
  return nonNegativeInt(typeof v === 'number' ? String(v) : '-', where);
}

function num(v: unknown, where: string): number | undefined {
  if (v === undefined) return undefined;
  return nonNegativeNumber(typeof v === 'number' ? String(v) : '-', where);
}

function dur(v: unknown, where: string): string | undefined {
  const text = str(v, where);
  return text === undefined ? undefined : validDuration(text, where);
}

function nonNegativeInt(text: string, what: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n)) throw new ConfigError(`${what} must be a whole number (0 or more), got "${text}"`);
  return n;
}

function nonNegativeNumber(text: string, what: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < 0) throw new ConfigError(`${what} must be a number (0 or more), got "${text}"`);
  return n;
}

function validDuration(text: string, what: string): string {
  try {
    parseDuration(text, what);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  return text;
}

function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function log(level: LogLevel, message: string): void {
  const line = `${new Date().toISOString()} [${level}] snapshot agent: ${message}\n`;
  if (level === 'INFO') process.stdout.write(line);
  else process.stderr.write(line);
}

async function runSnapshotAgent(settings: SnapshotAgentSettings): Promise<void> {
  // Loaded here, not with the program: `konsul server` does not need prom-client.
  const { serveMetrics, SnapshotAgentMetrics } = await import('./snapshot-agent-metrics.ts');
  const metrics = new SnapshotAgentMetrics();
  let metricsServer;
  if (settings.metricsAddr !== undefined) {
    try {
      metricsServer = await serveMetrics(metrics, settings.metricsAddr.host, settings.metricsAddr.port);
    } catch (err) {
      process.stderr.write(`konsul: cannot serve metrics on ${settings.metricsAddr.host}:${settings.metricsAddr.port}: ${(err as Error).message}\n`);
      process.exit(1);
    }
    const { host, port } = metricsServer.address;
    process.stdout.write(`konsul: snapshot agent metrics listening on http://${joinHostPort(host, port)}/metrics\n`);
  }
  const agent = new SnapshotAgent(settings, { metrics, log });
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) process.exit(130);
    log('INFO', `${sig} received: releasing the lock and stopping`);
    void agent.stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  await agent.run();
  await metricsServer?.close();
  process.exit(0);
}
