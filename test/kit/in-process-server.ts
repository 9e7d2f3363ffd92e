// A real Konsul server inside the test process: a single-node RaftHost over LevelStorage in a
// temporary directory (MemoryStorage is the Raft core's: it does not keep snapshot files, which a
// RaftHost needs), the real KonsulFsm, cluster manager, leader housekeeping,
// the server's own agent and the real fastify app (server/http/app.ts buildApp). Tests drive it
// with fastify's inject() — no socket, no child process, milliseconds per request — or, for a real
// HTTP client (node-consul), let it listen on an ephemeral port.
//
// The wiring follows server/main.ts (startServer) and is kept in this one file on purpose: when
// the server's assembly changes, only this file follows. What it leaves out is what a single node
// serving tests never uses: the DNS interface (a plugin, tested on its own and through processes)
// and the RPC service for client agents (agents are tested as processes).
import { setMaxListeners } from 'node:events';
import { join } from 'node:path';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { LocalAgent } from '../../agent/core/local-agent.ts';
import { KonsulFsm } from '../../fsm/konsul-fsm.ts';
import { RaftHost } from '../../raft/host/raft-host.ts';
import { LevelStorage } from '../../raft/storage/level-storage.ts';
import { TcpTransport } from '../../rpc/tcp-transport.ts';
import { AddressBook } from '../../server/cluster/address-book.ts';
import { ClusterManager } from '../../server/cluster/cluster-manager.ts';
import { mergeConfig, type ServerConfig } from '../../server/config.ts';
import { buildApp } from '../../server/http/app.ts';
import { KvRecoveryKeeper } from '../../server/kv-recovery-reaper.ts';
import { ServerRegistration, serverAddress } from '../../server/server-registration.ts';
import { SessionTtlTimer } from '../../server/session-ttl.ts';
import { RestoreWatchdog } from '../../server/snapshot-restore.ts';
import { TombstoneReaper } from '../../server/tombstone-reaper.ts';
import { KONSUL_VERSION } from '../../lib/version.ts';
import { removeDir, tempDataDir } from './server-process.ts';
import { waitFor } from './wait.ts';

export interface InProcessServerOptions {
  /**
   * Server settings over the dev defaults (node "test-node", silent logs, no DNS, no fsync). A `dataDir` given
   * here is kept at stop() (to start again on the same data); otherwise a temporary one is removed.
   */
  readonly config?: Partial<ServerConfig>;
  /** Listen on 127.0.0.1 (ephemeral port) for clients that need a socket; `url` is set then. */
  readonly listen?: boolean;
  /** The tap test: stop() is registered with its teardown. */
  readonly t?: { teardown(fn: () => unknown): void };
}

export interface InjectAnswer {
  readonly status: number;
  readonly text: string;
  readonly headers: LightMyRequestResponse['headers'];
  /** The body as bytes (binary answers such as snapshots). */
  readonly raw: Buffer;
  json<T = unknown>(): T;
}

export interface InProcessServer {
  readonly config: ServerConfig;
  readonly app: FastifyInstance;
  readonly raft: RaftHost;
  readonly fsm: KonsulFsm;
  readonly cluster: ClusterManager;
  readonly localAgent: LocalAgent;
  /** http://127.0.0.1:PORT when started with `listen`; '' otherwise. */
  readonly url: string;
  /** The server-to-server address ("host:port"), which /v1/status answers. */
  readonly rpcAddress: string;
  /** One request through fastify's inject(). */
  request(method: string, url: string, body?: string | Buffer | object, headers?: Record<string, string>): Promise<InjectAnswer>;
  get(url: string, headers?: Record<string, string>): Promise<InjectAnswer>;
  /** Waits until at least `count` blocking queries are parked (watchers in the FSM's registry). */
  waitForBlockedQueries(count?: number): Promise<void>;
  put(url: string, body?: string | Buffer | object, headers?: Record<string, string>): Promise<InjectAnswer>;
  /** Stops everything in the order server/main.ts does, and removes the data directory it made. */
  stop(): Promise<void>;
}

export async function startInProcessServer(options: InProcessServerOptions = {}): Promise<InProcessServer> {
  const dataDir = options.config?.dataDir ?? tempDataDir('konsul-inproc-');
  const ownsDataDir = options.config?.dataDir === undefined;
  const config = mergeConfig(
    {
      dev: true,
      nodeName: 'test-node',
      dataDir,
      httpAddr: { host: '127.0.0.1', port: 0 },
      rpcAddr: { host: '127.0.0.1', port: 0 },
      dnsAddr: null,
      logLevel: 'silent',
      // What these tests check is the HTTP side; fsync per write is durability's (process tests).
      syncWrites: false,
    },
    options.config ?? {},
  );
  const founders = { voters: [config.nodeName], learners: [] };
  const storage = await LevelStorage.open(join(config.dataDir, 'raft'), { founders, sync: config.syncWrites, trailingEntries: config.snapshotTrailingEntries });
  const fsm = new KonsulFsm();
  const addresses = new AddressBook(config.dataDir);
  let raftRef: RaftHost | null = null;
  let clusterRef: ClusterManager | null = null;
  let httpAddr = '';
  const transport = new TcpTransport({
    nodeId: config.nodeName,
    listen: config.rpcAddr,
    resolve: (id) => clusterRef?.rpcAddressOf(id) || addresses.get(id)?.rpcAddr,
    onMessage: (m) => raftRef?.receive(m),
    onRequest: async (_from, method, body) => {
      if (!clusterRef) throw Object.assign(new Error('server is starting'), { code: 'notLeader' });
      return clusterRef.handleRequest(method, body);
    },
    onUnreachable: (id) => raftRef?.reportUnreachable(id),
    onSnapshotStatus: (id, ok) => raftRef?.reportSnapshot(id, ok),
    snapshots: storage,
    helloMeta: () => ({ httpAddr }),
  });
  const raft = await RaftHost.open({
    id: config.nodeName,
    storage,
    stateMachine: fsm,
    transport,
    tickMs: config.raftTickMs,
    electionTicks: config.raftElectionTicks,
    snapshotEveryEntries: config.snapshotEveryEntries,
  });
  raftRef = raft;
  const rpcAddress = await transport.start();
  const cluster = new ClusterManager({
    id: config.nodeName,
    raft,
    transport,
    addresses,
    rpcAddr: `${rpcAddress.host}:${rpcAddress.port}`,
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
    log: () => undefined,
  });
  clusterRef = cluster;
  raft.start();
  if (!(await raft.replayed(10_000))) throw new Error(raft.fatalError()?.message ?? 'timed out replaying the Raft log');
  const reaper = new TombstoneReaper({ raft, ttlMs: config.tombstoneTtlMs, checkEveryMs: Math.min(30_000, config.tombstoneTtlMs), hasTombstones: () => fsm.kv.tombstoneCount > 0 });
  const kvRecovery = new KvRecoveryKeeper({ raft, table: fsm.kvRecovery, rules: config.kvRecovery, maxBytes: config.kvRecoveryMaxBytes, checkEveryMs: 1000, onError: () => undefined });
  const restoreWatchdog = new RestoreWatchdog({
    isReadyLeader: () => raft.isReadyLeader(),
    progress: () => fsm.restoreProgress(),
    propose: (command) => raft.propose(command),
    stallTimeoutMs: config.restoreStallTimeoutMs,
    log: () => undefined,
  });
  const sessionTtl = new SessionTtlTimer({ raft, sessions: fsm.sessions, checkEveryMs: Math.max(50, Math.min(1000, Math.floor(config.sessionTtlMinMs / 4))) });
  const registration = new ServerRegistration({
    cluster,
    isReadyLeader: () => raft.isReadyLeader(),
    catalog: fsm.catalog,
    selfId: config.nodeName,
    datacenter: config.datacenter,
    version: KONSUL_VERSION,
    selfHttpHost: config.httpAddr.host,
    log: () => undefined,
  });
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
    log: () => undefined,
  });
  reaper.start();
  kvRecovery.start();
  restoreWatchdog.start();
  sessionTtl.start();
  registration.start();
  // As a dev server: serve once the node and its serfHealth check are in the catalog.
  await registration.waitForSelf(5000);
  localAgent.start();
  const shutdown = new AbortController();
  setMaxListeners(0, shutdown.signal);
  const app = await buildApp({ config, raft, fsm, cluster, version: KONSUL_VERSION, shutdownSignal: shutdown.signal, localAgent }, { logger: false });
  let url = '';
  if (options.listen) {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const addr = app.server.address();
    if (typeof addr === 'object' && addr) {
      httpAddr = `127.0.0.1:${addr.port}`;
      url = `http://${httpAddr}`;
    }
  } else {
    await app.ready();
  }
  cluster.start();

  const request = async (method: string, path: string, body?: string | Buffer | object, headers: Record<string, string> = {}): Promise<InjectAnswer> => {
    const payload = body === undefined || typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    const res = await app.inject({ method: method as InjectOptions['method'], url: path, headers, ...(payload !== undefined ? { payload } : {}) });
    return { status: res.statusCode, text: res.body, headers: res.headers, raw: res.rawPayload, json: <T>() => JSON.parse(res.body) as T };
  };
  let stopping: Promise<void> | null = null;
  const server: InProcessServer = {
    config,
    app,
    raft,
    fsm,
    cluster,
    localAgent,
    url,
    rpcAddress: `${rpcAddress.host}:${rpcAddress.port}`,
    request,
    get: (path, headers) => request('GET', path, undefined, headers),
    waitForBlockedQueries: async (count = 1) => {
      await waitFor(() => fsm.watches.size >= count, { what: `${count} blocked quer${count === 1 ? 'y' : 'ies'} (have ${fsm.watches.size})`, timeoutMs: 5000, intervalMs: 2 });
    },
    put: (path, body, headers) => request('PUT', path, body, headers),
    stop: () => {
      stopping ??= (async () => {
        shutdown.abort();
        reaper.stop();
        kvRecovery.stop();
        restoreWatchdog.stop();
        sessionTtl.stop();
        registration.stop();
        await localAgent.stop();
        cluster.stop();
        await app.close();
        await raft.drain(5000);
        await raft.stop();
        await transport.stop();
        if (ownsDataDir) removeDir(config.dataDir);
      })();
      return stopping;
    },
  };
  options.t?.teardown(() => server.stop());
  return server;
}
