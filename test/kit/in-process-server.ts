// A real Konsul server inside the test process: `startServer` (server/main.ts), the same assembly
// `konsul server` runs (LevelDB log in a temporary directory, Raft, the FSM, the cluster manager,
// leader housekeeping, the server's own agent, the fastify app), on ephemeral ports, with no DNS
// and no fsync. Tests drive it with fastify's inject() — no child process, milliseconds per request
// — or through a real HTTP client (node-consul) on `url`.
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { mergeConfig, type ServerConfig } from '../../server/config.ts';
import { startServer, type RunningServer } from '../../server/main.ts';
import { removeDir, tempDataDir } from './server-process.ts';
import { waitFor } from './wait.ts';

export interface InProcessServerOptions {
  /**
   * Server settings over the dev defaults (node "test-node", silent logs, no DNS, no fsync). A `dataDir` given
   * here is kept at stop() (to start again on the same data); otherwise a temporary one is removed.
   */
  readonly config?: Partial<ServerConfig>;
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

export interface InProcessServer extends Pick<RunningServer, 'config' | 'app' | 'raft' | 'fsm' | 'cluster' | 'localAgent'> {
  /** http://127.0.0.1:PORT: the HTTP API, for clients that need a socket. */
  readonly url: string;
  /** The server-to-server address ("host:port"), which /v1/status answers. */
  readonly rpcAddress: string;
  /** One request through fastify's inject(). */
  request(method: string, url: string, body?: string | Buffer | object, headers?: Record<string, string>): Promise<InjectAnswer>;
  get(url: string, headers?: Record<string, string>): Promise<InjectAnswer>;
  /** Waits until at least `count` blocking queries are parked (watchers in the FSM's registry). */
  waitForBlockedQueries(count?: number): Promise<void>;
  put(url: string, body?: string | Buffer | object, headers?: Record<string, string>): Promise<InjectAnswer>;
  /** Stops the server as `konsul server` stops, and removes the data directory it made. */
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
      plugins: [],
      logLevel: 'silent',
      // What these tests check is the HTTP side; fsync per write is durability's (process tests).
      syncWrites: false,
    },
    options.config ?? {},
  );
  const running = await startServer(config);
  const { app, fsm } = running;
  const request = async (method: string, path: string, body?: string | Buffer | object, headers: Record<string, string> = {}): Promise<InjectAnswer> => {
    const payload = body === undefined || typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    const res = await app.inject({ method: method as InjectOptions['method'], url: path, headers, ...(payload !== undefined ? { payload } : {}) });
    return { status: res.statusCode, text: res.body, headers: res.headers, raw: res.rawPayload, json: <T>() => JSON.parse(res.body) as T };
  };
  let stopping: Promise<void> | null = null;
  const server: InProcessServer = {
    config: running.config,
    app,
    raft: running.raft,
    fsm,
    cluster: running.cluster,
    localAgent: running.localAgent,
    url: `http://127.0.0.1:${running.httpAddress.port}`,
    rpcAddress: `${running.rpcAddress.host}:${running.rpcAddress.port}`,
    request,
    get: (path, headers) => request('GET', path, undefined, headers),
    waitForBlockedQueries: async (count = 1) => {
      await waitFor(() => fsm.watches.size >= count, { what: `${count} blocked quer${count === 1 ? 'y' : 'ies'} (have ${fsm.watches.size})`, timeoutMs: 5000, intervalMs: 2 });
    },
    put: (path, body, headers) => request('PUT', path, body, headers),
    stop: () => {
      stopping ??= (async () => {
        await running.stop();
        if (ownsDataDir) removeDir(config.dataDir);
      })();
      return stopping;
    },
  };
  options.t?.teardown(() => server.stop());
  return server;
}
