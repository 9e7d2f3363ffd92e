// The snapshot agent's Prometheus metrics (prom-client), served as text on --metrics-addr at
// /metrics. Every agent serves them, standby or not: `konsul_snapshot_agent_is_leader` tells which
// one writes, and alerting on `time() - konsul_snapshot_agent_last_success_timestamp_seconds`
// (max over the agents) catches a backup that stopped, whoever was meant to take it.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

const PREFIX = 'konsul_snapshot_agent_';

export class SnapshotAgentMetrics {
  readonly registry = new Registry();
  readonly #isLeader = this.#gauge('is_leader', '1 while this agent holds the snapshot lock and takes the snapshots, else 0');
  readonly #lastSuccess = this.#gauge('last_success_timestamp_seconds', 'When the last snapshot was saved and verified (Unix time); 0: never');
  readonly #lastFailure = this.#gauge('last_failure_timestamp_seconds', 'When the last snapshot attempt failed (Unix time); 0: never');
  readonly #lastBytes = this.#gauge('last_snapshot_bytes', 'Size of the last saved snapshot file');
  readonly #lastIndex = this.#gauge('last_snapshot_index', 'Raft index of the last saved snapshot');
  readonly #lastDuration = this.#gauge('last_snapshot_duration_seconds', 'How long the last successful save took (download, sync, verify, rename)');
  readonly #consecutiveFailures = this.#gauge('consecutive_failures', 'Failed attempts since the last success');
  readonly #retained = this.#gauge('retained_snapshots', 'Snapshot files in the directory after the last rotation');
  readonly #successes = new Counter({ name: `${PREFIX}snapshot_successes_total`, help: 'Snapshots saved and verified', registers: [this.registry] });
  readonly #failures = new Counter({ name: `${PREFIX}snapshot_failures_total`, help: 'Snapshot attempts that failed', registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    this.#isLeader.set(0);
    this.#lastSuccess.set(0);
    this.#lastFailure.set(0);
    this.#consecutiveFailures.set(0);
    this.#successes.inc(0);
    this.#failures.inc(0);
  }

  #gauge(name: string, help: string): Gauge {
    return new Gauge({ name: `${PREFIX}${name}`, help, registers: [this.registry] });
  }

  setLeader(leader: boolean): void {
    this.#isLeader.set(leader ? 1 : 0);
  }

  recordSuccess(s: { bytes: number; index: number; durationMs: number; retained: number }, nowMs: number): void {
    this.#successes.inc();
    this.#lastSuccess.set(nowMs / 1000);
    this.#lastBytes.set(s.bytes);
    this.#lastIndex.set(s.index);
    this.#lastDuration.set(s.durationMs / 1000);
    this.#retained.set(s.retained);
    this.#consecutiveFailures.set(0);
  }

  recordFailure(consecutive: number, nowMs: number): void {
    this.#failures.inc();
    this.#lastFailure.set(nowMs / 1000);
    this.#consecutiveFailures.set(consecutive);
  }
}

export interface MetricsServer {
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

/** GET /metrics (Prometheus text format); anything else is 404. */
export async function serveMetrics(metrics: SnapshotAgentMetrics, host: string, port: number): Promise<MetricsServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' || path !== '/metrics') {
      response.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: the metrics are at GET /metrics\n');
      return;
    }
    metrics.registry.metrics().then(
      (text) => response.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(text),
      (err: unknown) => response.writeHead(500, { 'Content-Type': 'text/plain' }).end(`${(err as Error).message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  return {
    address: { host: bound.address, port: bound.port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
