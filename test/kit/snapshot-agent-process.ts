// Real `konsul snapshot agent` child processes: metrics on an ephemeral port, output captured,
// stopped or killed by PID.
import type { ChildProcess } from 'node:child_process';
import { spawnKonsul } from './konsul-process.ts';

const READY_LINE = /Snapshot agent running/;
const METRICS_LINE = /metrics listening on (http:\/\/\S+\/metrics)/;

export interface SnapshotAgentProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly metricsUrl: string;
  output(): string;
  /** The "Saved snapshot <file>" lines so far, as file names in order. */
  saved(): string[];
  /** One metric's value (a line "name value" of the Prometheus text); undefined if absent. */
  metric(name: string): Promise<number | undefined>;
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL (kill -9) and wait for the exit. */
  kill9(): Promise<void>;
}

export async function startSnapshotAgent(args: readonly string[], options: { timeoutMs?: number } = {}): Promise<SnapshotAgentProcess> {
  const p = await spawnKonsul(['snapshot', 'agent', '--metrics-addr', '127.0.0.1:0', ...args], {
    readyLine: READY_LINE,
    what: 'konsul snapshot agent',
    timeoutMs: options.timeoutMs ?? 60_000,
  });
  const metricsUrl = METRICS_LINE.exec(p.output())?.[1] ?? '';
  return {
    child: p.child,
    pid: p.pid,
    metricsUrl,
    output: p.output,
    saved: () => [...p.output().matchAll(/Saved snapshot (\S+)/g)].map((m) => m[1]!),
    metric: async (name) => {
      const response = await fetch(metricsUrl, { signal: AbortSignal.timeout(3000) });
      const line = new RegExp(`^${name} (\\S+)$`, 'm').exec(await response.text());
      return line === null ? undefined : Number(line[1]);
    },
    stop: p.stop,
    kill9: p.kill9,
  };
}
