// The agent process (`konsul agent`): no Raft. It learns the servers from a retry-join address,
// keeps its node alive in the catalog (heartbeats), owns its services and checks (persisted in
// <data dir>/agent-local.json, synced by anti-entropy), runs their health checks, and serves the
// /v1 API on its own address, answering cacheable reads from its cache (docs/adr/0013-agent-mode.md).
import { setMaxListeners } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { CheckStatus } from '../fsm/state/catalog-commands.ts';
import { codeOfStatus } from '../http/status.ts';
import { checkRegistrationFrom, serviceRegistrationFrom } from '../http/routes/agent.ts';
import { LocalAgent, type LocalCheck } from './core/local-agent.ts';
import { catalogNodeSpec } from './core/node-registration.ts';
import { KONSUL_VERSION } from '../lib/version.ts';
import { Heartbeat, RemoteCatalogBackend } from './anti-entropy.ts';
import { buildAgentApp, type AgentMetrics } from './app.ts';
import { AgentCache, type CachedResult } from './cache.ts';
import { CheckRunner, RUNNABLE_CHECK_TYPES, validateCheckDefinition } from './checks/index.ts';
import { nodeAddressOf, type AgentConfig, type AgentConfigFile } from './config.ts';
import { agentPluginHosts } from './plugin-host.ts';
import { KonsulError } from '../lib/errors.ts';
import { service, Supervisor, type Service } from '../lib/service.ts';
import { BUILTIN_PLUGINS } from '../plugins/builtin.ts';
import { resolvePlugins, startPlugins, validatePlugins } from '../plugins/loader.ts';
import type { PluginListener } from '../plugins/plugin.ts';
import { ServerPool } from './servers.ts';

export interface RunningAgent extends Service {
  readonly config: AgentConfig;
  readonly httpAddress: { host: string; port: number };
  readonly pool: ServerPool;
  readonly localAgent: LocalAgent;
  readonly app: FastifyInstance;
  /** The DNS plugin's address, or null when it is off. */
  readonly dnsAddress: { host: string; port: number } | null;
  /** What the plugins listen on (dns/plugin.ts: "dns", udp+tcp). */
  readonly pluginListeners: readonly PluginListener[];
  stop(): Promise<void>;
}

/** IDs of the services and checks that came from config files at the last start (removed from config = deregistered). */
const CONFIG_SOURCED_FILE = 'agent-config-sourced.json';
const REFRESH_WAIT_S = 60;

export async function startAgent(config: AgentConfig, definitions: Pick<AgentConfigFile, 'services' | 'checks'> = { services: [], checks: [] }): Promise<RunningAgent> {
  // The plugins and their settings are checked before anything starts.
  const plugins = resolvePlugins(BUILTIN_PLUGINS, config.plugins);
  validatePlugins(plugins, config);
  // Every part started is a Service of this supervisor: a failed start and stop() tear down the
  // same way, in reverse start order.
  const services = new Supervisor();
  try {
    return await startParts(config, definitions, services, plugins);
  } catch (err) {
    await services.stop().catch(() => undefined);
    throw err;
  }
}

async function startParts(
  config: AgentConfig,
  definitions: Pick<AgentConfigFile, 'services' | 'checks'>,
  services: Supervisor,
  plugins: ReturnType<typeof resolvePlugins>,
): Promise<RunningAgent> {
  mkdirSync(config.dataDir, { recursive: true });
  const log = (level: 'warn' | 'info' | 'debug', message: string): void => {
    const order = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];
    if (config.logLevel === 'silent' || order.indexOf(level) < order.indexOf(config.logLevel)) return;
    process.stderr.write(`konsul: [${level}] ${message}\n`);
  };
  // Definitions from config files are checked before anything starts: a bad one stops the agent.
  const fromConfig = decodeDefinitions(definitions);

  const metrics: AgentMetrics = { requests: 0, upstreamHttp: 0, upstreamRpc: 0 };
  let localAgentRef: LocalAgent | null = null;
  const pool = new ServerPool({
    nodeName: config.nodeName,
    retryJoin: config.retryJoin,
    ...(config.rpcTlsCertFile ? { tls: readTls(config) } : {}),
    log,
    countUpstream: (kind) => (kind === 'rpc' ? metrics.upstreamRpc++ : metrics.upstreamHttp++),
    onChange: (reason) => {
      log('info', `agent: ${reason}; syncing`);
      void localAgentRef?.syncNow();
    },
  });
  // Servers not reachable yet (a DaemonSet starting before them): serve the local API anyway.
  await services.start({ name: 'server pool', start: () => pool.start(10_000), stop: () => pool.stop() });

  const nodeAddress = nodeAddressOf(config);
  const datacenter = pool.servers().length > 0 ? pool.datacenter() || config.datacenter : config.datacenter;
  if (datacenter !== config.datacenter) throw new Error(`the servers serve datacenter "${datacenter}", not "${config.datacenter}"`);
  const backend = new RemoteCatalogBackend(pool);
  const runner = new CheckRunner({
    onResult: (checkId: string, status: CheckStatus, output: string) => void localAgentRef?.reportCheckResult(checkId, status, output),
    enableScriptChecks: config.enableScriptChecks,
    deregisterMinMs: config.checkDeregisterIntervalMinMs,
    logger: (level, message) => log(level, `check: ${message}`),
  });
  const localAgent = new LocalAgent({
    nodeName: config.nodeName,
    datacenter: config.datacenter,
    dataDir: config.dataDir,
    nodeAddress: () => nodeAddress,
    backend,
    ownsNode: true,
    statusCoalesceMs: config.statusCoalesceMs,
    syncIntervalMs: config.syncIntervalMs,
    reapIntervalMs: config.checkReapIntervalMs,
    deregisterMinMs: config.checkDeregisterIntervalMinMs,
    checkHooks: {
      added: (check) => addToRunner(runner, check, log),
      removed: (checkId) => void runner.remove(checkId),
    },
    // What the runner would refuse (script checks while disabled, malformed targets) is refused
    // at registration, with the runner's status and Consul's text.
    validateCheck: (check) => {
      if (!isRunnable(check)) return;
      const problem = validateCheckDefinition(runnerDefinition(check), { enableScriptChecks: config.enableScriptChecks });
      if (problem !== null) throw new KonsulError(codeOfStatus(problem.httpStatus), problem.message);
    },
    log,
  });
  localAgentRef = localAgent;
  services.adopt('local agent', async () => {
    // Pending status changes go out before the agent leaves.
    await localAgent.flushStatus().catch(() => undefined);
    await localAgent.stop();
  });
  // Stopped before the local agent it reports to.
  services.adopt('check runner', () => runner.stop());
  await applyConfigDefinitions(localAgent, config.dataDir, fromConfig, log);

  const heartbeat = new Heartbeat({
    pool,
    node: () => catalogNodeSpec(config.nodeName, nodeAddress, config.datacenter),
    intervalMs: config.heartbeatIntervalMs,
    localCounts: () => localAgent.counts(),
    onDrift: (why) => {
      log('info', `agent: ${why}; syncing`);
      void localAgent.syncNow();
    },
    log,
  });
  const cache = new AgentCache({
    maxEntries: config.cacheMaxEntries,
    maxBytes: config.cacheMaxBytes,
    entryTtlMs: config.cacheEntryTtlMs,
    fetch: async (key, minIndex, signal): Promise<CachedResult> => {
      // Background reads are stale reads (any server answers, no leader needed: "fail static"), as in Consul's cache types.
      const sep = key.includes('?') ? '&' : '?';
      const path = minIndex > 0 ? `${key}${sep}stale&index=${minIndex}&wait=${REFRESH_WAIT_S}s` : `${key}${sep}stale`;
      const answer = await pool.http({ method: 'GET', path, timeoutMs: minIndex > 0 ? REFRESH_WAIT_S * 1000 + 20_000 : 15_000, signal });
      const index = Number(answer.headers['x-consul-index'] ?? 0);
      return { status: answer.status, headers: answer.headers, body: answer.body, index: Number.isFinite(index) ? index : 0 };
    },
  });
  services.adopt('cache', () => cache.stop());
  const shutdown = new AbortController();
  setMaxListeners(0, shutdown.signal);
  const app = await buildAgentApp(
    {
      config,
      localAgent,
      pool,
      cache,
      metrics,
      version: KONSUL_VERSION,
      nodeAddress,
      shutdownSignal: shutdown.signal,
      startedAtMs: Date.now(),
      checkHistory: (checkId) => {
        // Check IDs match case-insensitively, as everywhere in the agent API.
        const id = runner.checkIds().find((known) => known.toLowerCase() === checkId.toLowerCase());
        return id === undefined ? null : runner.history(id);
      },
    },
    { logger: config.logLevel === 'silent' ? false : { level: config.logLevel } },
  );
  // Answered requests close their sockets; a client that never reads its answer is cut off after a
  // bound so that shutdown always ends.
  services.adopt('http api', async () => {
    const cutOff = setTimeout(() => app.server.closeAllConnections(), 5000);
    await app.close();
    clearTimeout(cutOff);
  });
  // Stopped before the API closes: waiting blocking queries answer at once (forwarded ones with
  // "Agent is shutting down", cached ones with what the cache holds once it stops).
  services.adopt('blocking queries', () => {
    shutdown.abort();
    cache.stop();
  });
  await services.start(service('heartbeat', heartbeat));
  localAgent.start();
  // Plugins (the DNS interface first) read through the agent's cache.
  const hosts = await services.start(
    agentPluginHosts({ nodeName: config.nodeName, datacenter: config.datacenter, logLevel: config.logLevel, cache, app, cacheEntryTtlMs: config.cacheEntryTtlMs }),
  );
  const started = await startPlugins(services, plugins, config, (plugin) => hosts.hostFor(plugin));
  await app.listen({ host: config.httpAddr.host, port: config.httpAddr.port });
  const addr = app.server.address();
  const httpAddress = typeof addr === 'object' && addr ? { host: addr.address, port: addr.port } : config.httpAddr;
  const dns = started.listeners.find((l) => l.name === 'dns');
  return {
    name: 'agent',
    config,
    httpAddress,
    pool,
    localAgent,
    app,
    dnsAddress: dns ? { host: dns.host, port: dns.port } : null,
    pluginListeners: started.listeners,
    stop: () => services.stop(),
  };
}

interface DecodedDefinitions {
  readonly services: { service: ReturnType<typeof serviceRegistrationFrom>['service']; checks: LocalCheck[] }[];
  readonly checks: LocalCheck[];
}

function decodeDefinitions(definitions: Pick<AgentConfigFile, 'services' | 'checks'>): DecodedDefinitions {
  const wrap = <T>(file: string, what: string, decode: () => T): T => {
    try {
      return decode();
    } catch (err) {
      // The decoders' refusals (KonsulErrors, as the HTTP API answers them) name the file here.
      if (err instanceof KonsulError) throw new Error(`${file}: invalid ${what} definition: ${err.message}`);
      throw err;
    }
  };
  return {
    services: definitions.services.map((d) => wrap(d.file, 'service', () => serviceRegistrationFrom(d.definition))),
    checks: definitions.checks.map((d) => wrap(d.file, 'check', () => checkRegistrationFrom(d.definition))),
  };
}

/**
 * Registers the config files' definitions (every start, as Consul loads them), and removes those a
 * previous start registered from a config file that no longer holds them.
 */
async function applyConfigDefinitions(agent: LocalAgent, dataDir: string, defs: DecodedDefinitions, log: (level: 'warn' | 'info', m: string) => void): Promise<void> {
  const file = join(dataDir, CONFIG_SOURCED_FILE);
  let previous: { services: string[]; checks: string[] } = { services: [], checks: [] };
  try {
    previous = JSON.parse(readFileSync(file, 'utf8')) as typeof previous;
  } catch {
    // first start, or nothing from config before
  }
  const services = defs.services.map((d) => d.service.ID);
  const checks = defs.checks.map((c) => c.spec.CheckID);
  for (const { service, checks: serviceChecks } of defs.services) await agent.registerService(service, serviceChecks, true);
  for (const check of defs.checks) await agent.registerCheck(check);
  const fold = (s: string) => s.toLowerCase();
  for (const id of previous.services ?? []) {
    if (services.some((s) => fold(s) === fold(id)) || agent.getService(id) === undefined) continue;
    log('info', `agent: service ${id} is no longer in the config files, deregistering it`);
    await agent.deregisterService(id);
  }
  for (const id of previous.checks ?? []) {
    if (checks.some((c) => fold(c) === fold(id)) || agent.getCheck(id) === undefined) continue;
    log('info', `agent: check ${id} is no longer in the config files, deregistering it`);
    await agent.deregisterCheck(id);
  }
  writeFileSync(`${file}.tmp`, JSON.stringify({ services, checks }));
  renameSync(`${file}.tmp`, file);
}

/** Checks the runner runs: every runnable type but TTL (TTL checks are timed by the LocalAgent). */
function isRunnable(check: LocalCheck): boolean {
  const type = check.spec.Type;
  return type !== 'ttl' && (RUNNABLE_CHECK_TYPES as readonly string[]).includes(type);
}

/** The check as the runner takes it (Consul's CheckDefinition). */
function runnerDefinition(check: LocalCheck): Record<string, unknown> {
  return {
    ...check.spec.Definition,
    ...(check.thresholds ?? {}),
    CheckID: check.spec.CheckID,
    Name: check.spec.Name,
    ServiceID: check.spec.ServiceID,
    Notes: check.spec.Notes,
    Interval: check.spec.Interval,
    ...(check.spec.Timeout !== '' ? { Timeout: check.spec.Timeout } : {}),
  };
}

/** Hands a runnable check to the runner. */
function addToRunner(runner: CheckRunner, check: LocalCheck, log: (level: 'warn', m: string) => void): void {
  if (!isRunnable(check)) return;
  try {
    runner.add(runnerDefinition(check), { status: check.spec.Status, output: check.spec.Output });
  } catch (err) {
    log('warn', `agent: cannot run check ${check.spec.CheckID}: ${(err as Error).message}`);
  }
}

function readTls(config: AgentConfig): { cert: Buffer; key: Buffer; ca: Buffer } {
  return { cert: readFileSync(config.rpcTlsCertFile), key: readFileSync(config.rpcTlsKeyFile), ca: readFileSync(config.rpcTlsCaFile) };
}
