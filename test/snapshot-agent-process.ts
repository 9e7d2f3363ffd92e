// Starts real `konsul snapshot agent` child processes for integration tests: metrics on an
// ephemeral port, output captured, stopped or killed by PID. Every agent is killed when the test
// process exits, however the test ended.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitForReadyLine } from './ready-line.ts';

const KONSUL_BIN = fileURLToPath(new URL('../bin/konsul.js', import.meta.url));
const READY_LINE = /Snapshot agent running/;
const METRICS_LINE = /metrics listening on (http:\/\/\S+\/metrics)/;

const live = new Set<number>();
process.once('exit', () => {
  for (const pid of live) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

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
  const env = { ...process.env };
  // tap's loader is for the test process; a developer's address must not leak in.
  for (const name of ['NODE_OPTIONS', 'KONSUL_HTTP_ADDR', 'CONSUL_HTTP_ADDR', 'KONSUL_HTTP_TOKEN', 'CONSUL_HTTP_TOKEN']) delete env[name];
  const child = spawn(process.execPath, [KONSUL_BIN, 'snapshot', 'agent', '--metrics-addr', '127.0.0.1:0', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  const pid = child.pid!;
  live.add(pid);
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      live.delete(pid);
      resolve(code);
    }),
  );
  await waitForReadyLine(child, () => output, exited, READY_LINE, { what: 'konsul snapshot agent', timeoutMs: options.timeoutMs ?? 20000 });
  const metricsUrl = METRICS_LINE.exec(output)?.[1] ?? '';
  const running = () => child.exitCode === null && child.signalCode === null;
  return {
    child,
    pid,
    metricsUrl,
    output: () => output,
    saved: () => [...output.matchAll(/Saved snapshot (\S+)/g)].map((m) => m[1]!),
    metric: async (name) => {
      const response = await fetch(metricsUrl, { signal: AbortSignal.timeout(3000) });
      const line = new RegExp(`^${name} (\\S+)$`, 'm').exec(await response.text());
      return line === null ? undefined : Number(line[1]);
    },
    stop: async () => {
      if (running()) process.kill(pid, 'SIGTERM');
      return exited;
    },
    kill9: async () => {
      if (running()) process.kill(pid, 'SIGKILL');
      await exited;
    },
  };
}
