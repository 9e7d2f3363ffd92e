// The server process: opens storage, starts Raft and the HTTP API, and shuts down gracefully
// (stop accepting, release blocked watchers, finish in-flight writes, close LevelDB).
import { setMaxListeners } from 'node:events';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { KonsulFsm } from '../fsm/konsul-fsm.ts';
import { RaftHost } from '../raft/host/raft-host.ts';
import { LevelStorage } from '../raft/storage/level-storage.ts';
import { TcpTransport } from '../rpc/tcp-transport.ts';
import { AddressBook } from './cluster/address-book.ts';
import { ClusterManager } from './cluster/cluster-manager.ts';
import type { ServerConfig } from './config.ts';
import { sharedEventLoopLagMonitor } from './event-loop-lag.ts';
import { buildApp } from './http/app.ts';
import { AgentRpc } from './agent-rpc.ts';
import { LocalAgent } from '../agent/core/local-agent.ts';
import { ServerRegistration, serverAddress } from './server-registration.ts';
import { SessionTtlTimer } from './session-ttl.ts';
import { TombstoneReaper } from './tombstone-reaper.ts';
import { RestoreWatchdog } from './snapshot-restore.ts';
import { KvRecoveryKeeper } from './kv-recovery-reaper.ts';
import { KONSUL_VERSION } from '../lib/version.ts';
import { service, Supervisor, type Service } from '../lib/service.ts';
import { BUILTIN_PLUGINS } from '../plugins/builtin.ts';
import { resolvePlugins, startPlugins, validatePlugins } from '../plugins/loader.ts';
import type { PluginListener } from '../plugins/plugin.ts';
import { serverPluginHosts } from './plugin-host.ts';

export interface RunningServer extends Service {
  readonly config: ServerConfig;
  readonly raft: RaftHost;
  /** The address the HTTP API listens on (the real port when 0 was asked for). */
  readonly httpAddress: { host: string; port: number };
  /** The address the server-to-server listener is bound to, and the one other servers are told. */
  readonly rpcAddress: { host: string; port: number };
  readonly rpcAdvertise: string;
  /** The DNS plugin's address (UDP and TCP), or null when it is off. */
  readonly dnsAddress: { host: string; port: number } | null;
  /** What the plugins listen on (dns/plugin.ts: "dns", udp+tcp). */
  readonly pluginListeners: readonly PluginListener[];
  readonly cluster: ClusterManager;
  /** The server's own agent (/v1/agent/*). */
  readonly localAgent: LocalAgent;
  /** The replicated state (tests read its tables and watch registry). */
  readonly fsm: KonsulFsm;
  /** The HTTP API (tests drive it with inject()). */
  readonly app: FastifyInstance;
  stop(): Promise<void>;
}

export async function startServer(config: ServerConfig): Promise<RunningServer> {
  // The plugins and their settings are checked before anything starts.
  const plugins = resolvePlugins(BUILTIN_PLUGINS, config.plugins);
  validatePlugins(plugins, config);
  // Every part started is a Service of this supervisor: a failed start and stop() tear down the
  // same way, in reverse start order.
  const services = new Supervisor();
  try {
    return await startParts(config, services, plugins);
  } catch (err) {
    await services.stop().catch(() => undefined);
    throw err;
  }
}

async function startParts(config: ServerConfig, services: Supervisor, plugins: ReturnType<typeof resolvePlugins>): Promise<RunningServer> {
  // Event-loop lag is watched from the start, so a stall while the log is replayed shows too.
  const eventLoopLag = sharedEventLoopLagMonitor();
  mkdirSync(config.dataDir, { recursive: true });
  const founders = config.dev ? { voters: [config.nodeName], learners: [] } : undefined;
  const storage = await LevelStorage.open(join(config.dataDir, 'raft'), { founders, sync: config.syncWrites, trailingEntries: config.snapshotTrailingEntries });
  const fsm = new KonsulFsm();
  const addresses = new AddressBook(config.dataDir);
  let httpAddr = '';
  let lastTlsWarningMs = 0;
  // The transport and the cluster manager call each other through these late-bound references.
  let raftRef: RaftHost | null = null;
  let clusterRef: ClusterManager | null = null;
  let agentRpcRef: AgentRpc | null = null;
  const transport = new TcpTransport({
    nodeId: config.nodeName,
    listen: config.rpcAddr,
    ...(config.rpcAdvertise ? { advertise: config.rpcAdvertise } : {}),
    ...(config.rpcTlsCertFile ? { tls: readTlsFiles(config) } : {}),
    resolve: (id) => clusterRef?.rpcAddressOf(id) || addresses.get(id)?.rpcAddr,
    onMessage: (m) => raftRef?.receive(m),
    onRequest: async (_from, method, body) => {
      if (!clusterRef) throw Object.assign(new Error('server is starting'), { code: 'notLeader' });
      // Client agents' requests (server/agent-rpc.ts); everything else is server-to-server.
      if (agentRpcRef?.handles(method)) return agentRpcRef.handle(method, body);
      return clusterRef.handleRequest(method, body);
    },
    onUnreachable: (id) => raftRef?.reportUnreachable(id),
    onSnapshotStatus: (id, ok) => raftRef?.reportSnapshot(id, ok),
    // Snapshots stream from the storage's files to followers, and from the leader into files here.
    snapshots: storage,
    helloMeta: () => ({ httpAddr }),
    // Refused TLS handshakes, bad frames, misrouted messages; a peer being down is not an error here.
    onError: (err) => {
      // A damaged snapshot file found while sending it: the operator must hear of it.
      if (err.name === 'StorageCorruptionError' && config.logLevel !== 'silent') {
        process.stderr.write(`konsul: [error] rpc: sending a snapshot: ${err.message}\n`);
        return;
      }
      // A refused TLS peer is a misconfiguration an operator must see (once in a while, not per dial).
      const tls = /TLS/.test(err.message);
      if (tls && Date.now() - lastTlsWarningMs > 10_000 && config.logLevel !== 'silent') {
        lastTlsWarningMs = Date.now();
        process.stderr.write(`konsul: [warn] rpc: ${err.message}\n`);
      } else if (config.logLevel === 'debug' || config.logLevel === 'trace') {
        process.stderr.write(`konsul: [debug] rpc: ${err.message}\n`);
      }
    },
  });
  // Stopped after Raft (services stop in reverse): Raft's last messages go out through it.
  services.adopt('rpc transport', () => transport.stop());
  // Restores the state machine from the latest snapshot (streamed from its file) before anything runs.
  const raft = await RaftHost.open({
    id: config.nodeName,
    storage,
    stateMachine: fsm,
    transport,
    tickMs: config.raftTickMs,
    electionTicks: config.raftElectionTicks,
    snapshotEveryEntries: config.snapshotEveryEntries,
    onSnapshot: (e) => {
      if (config.logLevel === 'info' || config.logLevel === 'debug' || config.logLevel === 'trace') {
        const what = e.kind === 'taken' ? 'taken' : e.kind === 'installed' ? 'installed from the leader' : 'restored at start';
        process.stderr.write(`konsul: [info] raft: snapshot ${what} at index ${e.index} (term ${e.term}): ${formatBytes(e.bytes)} in ${Math.round(e.durationMs)} ms\n`);
      }
    },
  });
  raftRef = raft;
  services.adopt('raft', async () => {
    // In-flight writes finish (bounded) before Raft stops and LevelDB closes.
    await raft.drain(5000);
    await raft.stop();
  });
  let rpcAddress: { host: string; port: number };
  try {
    rpcAddress = await transport.start();
  } catch (err) {
    throw new Error(`cannot listen for servers on ${config.rpcAddr.host}:${config.rpcAddr.port}: ${(err as Error).message}`);
  }
  const rpcAdvertise = config.rpcAdvertise || `${rpcAddress.host}:${rpcAddress.port}`;
  const cluster = new ClusterManager({
    id: config.nodeName,
    raft,
    transport,
    addresses,
    rpcAddr: rpcAdvertise,
    httpAddr: () => httpAddr,
    bootstrapExpect: config.bootstrapExpect,
    retryJoin: config.retryJoin,
    holdTimeoutMs: config.rpcHoldTimeoutMs,
    autopilot: {
      cleanupDeadServers: config.autopilotCleanupDeadServers,
      deadServerAfterMs: config.autopilotDeadServerAfterMs,
      lastContactThresholdMs: config.autopilotLastContactThresholdMs,
      minQuorum: config.autopilotMinQuorum,
    },
    log: (level, message) => {
      if (config.logLevel !== 'silent') process.stderr.write(`konsul: [${level}] ${message}\n`);
    },
  });
  clusterRef = cluster;
  raft.start();
  // Serve only once the log found on disk has been applied again, so no read sees an older state.
  if (!(await raft.replayed(60_000))) {
    throw new Error(raft.fatalError()?.message ?? 'timed out replaying the Raft log');
  }
  const reaper = new TombstoneReaper({
    raft,
    ttlMs: config.tombstoneTtlMs,
    checkEveryMs: Math.min(30_000, config.tombstoneTtlMs),
    hasTombstones: () => fsm.kv.tombstoneCount > 0,
  });
  await services.start(reaper);
  // Recoverable deletes: the leader keeps the FSM's rules equal to the config and reaps expired versions.
  const kvRecovery = new KvRecoveryKeeper({
    raft,
    table: fsm.kvRecovery,
    rules: config.kvRecovery,
    maxBytes: config.kvRecoveryMaxBytes,
    checkEveryMs: 1000,
    onError: (err) => {
      if (config.logLevel !== 'silent') process.stderr.write(`konsul: [warn] kv recovery: ${(err as Error).message}\n`);
    },
  });
  await services.start(kvRecovery);
  // The leader ends a restore (PUT /v1/snapshot) whose proposer went away (server/snapshot-restore.ts).
  const restoreWatchdog = new RestoreWatchdog({
    isReadyLeader: () => raft.isReadyLeader(),
    progress: () => fsm.restoreProgress(),
    propose: (command) => raft.propose(command),
    stallTimeoutMs: config.restoreStallTimeoutMs,
    log: (message) => {
      if (config.logLevel !== 'silent') process.stderr.write(`konsul: [warn] ${message}\n`);
    },
  });
  await services.start(restoreWatchdog);
  // The leader expires sessions not renewed for TTL × 2 (server/session-ttl.ts).
  const sessionTtl = new SessionTtlTimer({
    raft,
    sessions: fsm.sessions,
    checkEveryMs: Math.max(50, Math.min(1000, Math.floor(config.sessionTtlMinMs / 4))),
  });
  await services.start(sessionTtl);
  // The catalog: the leader keeps every server registered with its serfHealth check, and this
  // server's agent keeps its own services and checks (server/server-registration.ts, local-agent.ts).
  const catalogLog = (level: 'warn' | 'info', message: string): void => {
    if (config.logLevel !== 'silent' && (level === 'warn' || config.logLevel === 'info' || config.logLevel === 'debug' || config.logLevel === 'trace')) {
      process.stderr.write(`konsul: [${level}] ${message}\n`);
    }
  };
  const registration = new ServerRegistration({
    cluster,
    isReadyLeader: () => raft.isReadyLeader(),
    catalog: fsm.catalog,
    selfId: config.nodeName,
    datacenter: config.datacenter,
    version: KONSUL_VERSION,
    selfHttpHost: config.httpAddr.host,
    log: catalogLog,
  });
  await services.start(service('server registration', registration));
  const agentRpc = new AgentRpc({
    selfId: config.nodeName,
    datacenter: config.datacenter,
    cluster,
    catalog: fsm.catalog,
    isReadyLeader: () => raft.isReadyLeader(),
    request: async (address, method, body) => (await transport.request(address, method, body, { timeoutMs: 5000 })).body,
    log: catalogLog,
  });
  agentRpcRef = agentRpc;
  await services.start(service('agent rpc', agentRpc));
  const localAgent = new LocalAgent({
    nodeName: config.nodeName,
    datacenter: config.datacenter,
    dataDir: config.dataDir,
    nodeAddress: () => serverAddress(cluster.self(), config.httpAddr.host),
    catalog: fsm.catalog,
    propose: (command) => cluster.propose(command),
    readBarrier: () => cluster.readBarrier(),
    reapIntervalMs: config.checkReapIntervalMs,
    deregisterMinMs: config.checkDeregisterIntervalMinMs,
    log: catalogLog,
  });
  // A dev server leads itself: it serves once its node and serfHealth check are in the catalog, so
  // the first request can create a session (bound to serfHealth by default).
  if (config.dev) await registration.waitForSelf(5000);
  await services.start(service('local agent', localAgent));
  const shutdown = new AbortController();
  // Every waiting blocking query listens for shutdown (and removes itself when it answers).
  setMaxListeners(0, shutdown.signal);
  const app = await buildApp(
    {
      config,
      raft,
      fsm,
      cluster,
      version: KONSUL_VERSION,
      shutdownSignal: shutdown.signal,
      localAgent,
      eventLoopLag,
    },
    { logger: config.logLevel === 'silent' ? false : { level: config.logLevel } },
  );
  // Answered requests close their sockets (see buildApp); a client that never reads its answer is
  // cut off after a bound so that shutdown always ends.
  services.adopt('http api', async () => {
    const cutOff = setTimeout(() => app.server.closeAllConnections(), 5000);
    await app.close();
    clearTimeout(cutOff);
  });
  // Stopped before the API closes: waiting blocking queries answer at once.
  services.adopt('blocking queries', () => shutdown.abort());
  // Plugins (the DNS interface first) read this server's replica, with no round trip.
  const started = await startPlugins(
    services,
    plugins,
    config,
    serverPluginHosts({ nodeName: config.nodeName, datacenter: config.datacenter, logLevel: config.logLevel, fsm, app }),
  );
  await app.listen({ host: config.httpAddr.host, port: config.httpAddr.port });
  const addr = app.server.address();
  const httpAddress = typeof addr === 'object' && addr ? { host: addr.address, port: addr.port } : config.httpAddr;
  httpAddr = `${httpAddress.host}:${httpAddress.port}`;
  await services.start(service('cluster', cluster));
  const dns = started.listeners.find((l) => l.name === 'dns');
  return {
    name: 'server',
    config,
    raft,
    httpAddress,
    rpcAddress,
    rpcAdvertise,
    dnsAddress: dns ? { host: dns.host, port: dns.port } : null,
    pluginListeners: started.listeners,
    cluster,
    localAgent,
    fsm,
    app,
    stop: () => services.stop(),
  };
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
}

function readTlsFiles(config: ServerConfig): { cert: Buffer; key: Buffer; ca: Buffer } {
  const read = (file: string, key: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`${key} ${file}: ${(err as Error).message}`);
    }
  };
  return { cert: read(config.rpcTlsCertFile, 'rpc_tls_cert_file'), key: read(config.rpcTlsKeyFile, 'rpc_tls_key_file'), ca: read(config.rpcTlsCaFile, 'rpc_tls_ca_file') };
}
