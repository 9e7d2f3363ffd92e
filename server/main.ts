// The server process: opens storage, starts Raft and the HTTP API, and shuts down gracefully
// (stop accepting, release blocked watchers, finish in-flight writes, close LevelDB).
import { setMaxListeners } from 'node:events';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { KonsulFsm } from '../fsm/konsul-fsm.ts';
import { RaftHost } from '../raft/host/raft-host.ts';
import { LevelStorage } from '../raft/storage/level-storage.ts';
import type { ServerConfig } from './config.ts';
import { buildApp } from './http/app.ts';
import { TombstoneReaper } from './tombstone-reaper.ts';
import { KONSUL_VERSION } from './version.ts';

export interface RunningServer {
  readonly config: ServerConfig;
  readonly raft: RaftHost;
  /** The address the HTTP API listens on (the real port when 0 was asked for). */
  readonly httpAddress: { host: string; port: number };
  stop(): Promise<void>;
}

export async function startServer(config: ServerConfig): Promise<RunningServer> {
  mkdirSync(config.dataDir, { recursive: true });
  const founders = config.dev ? { voters: [config.nodeName], learners: [] } : undefined;
  const storage = await LevelStorage.open(join(config.dataDir, 'raft'), { founders, sync: config.syncWrites });
  const fsm = new KonsulFsm();
  const raft = new RaftHost({
    id: config.nodeName,
    storage,
    stateMachine: fsm,
    tickMs: config.raftTickMs,
    electionTicks: config.raftElectionTicks,
    snapshotEveryEntries: config.snapshotEveryEntries,
  });
  raft.start();
  // Serve only once the log found on disk has been applied again, so no read sees an older state.
  if (!(await raft.replayed(60_000))) {
    await raft.stop();
    throw new Error(raft.fatalError()?.message ?? 'timed out replaying the Raft log');
  }
  const reaper = new TombstoneReaper({
    raft,
    ttlMs: config.tombstoneTtlMs,
    checkEveryMs: Math.min(30_000, config.tombstoneTtlMs),
    hasTombstones: () => fsm.kv.tombstoneCount > 0,
  });
  reaper.start();
  const shutdown = new AbortController();
  // Every waiting blocking query listens for shutdown (and removes itself when it answers).
  setMaxListeners(0, shutdown.signal);
  let boundAddress = `${config.httpAddr.host}:${config.httpAddr.port}`;
  const app = await buildApp(
    {
      config,
      raft,
      fsm,
      // Until servers talk to each other (multi-server clusters), a server's address is its HTTP address.
      serverAddress: () => boundAddress,
      version: KONSUL_VERSION,
      shutdownSignal: shutdown.signal,
    },
    { logger: config.logLevel === 'silent' ? false : { level: config.logLevel } },
  );
  try {
    await app.listen({ host: config.httpAddr.host, port: config.httpAddr.port });
  } catch (err) {
    await raft.stop();
    throw err;
  }
  const addr = app.server.address();
  const httpAddress = typeof addr === 'object' && addr ? { host: addr.address, port: addr.port } : config.httpAddr;
  boundAddress = `${httpAddress.host}:${httpAddress.port}`;
  let stopping: Promise<void> | null = null;
  return {
    config,
    raft,
    httpAddress,
    stop: () => {
      stopping ??= (async () => {
        shutdown.abort();
        reaper.stop();
        await app.close();
        await raft.drain(5000);
        await raft.stop();
      })();
      return stopping;
    },
  };
}
