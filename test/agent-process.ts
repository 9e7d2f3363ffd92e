// Starts real `konsul agent` child processes for integration tests: an ephemeral HTTP port on
// 127.0.0.1 (or a fixed one, to restart an agent at the same address), a temporary data directory,
// stopping (or killing) by PID. An agent kills itself when the test process goes away (the same
// guard as the cluster harness), and every agent still running at exit is killed.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitForReadyLine } from './ready-line.ts';

const KONSUL_BIN = fileURLToPath(new URL('../bin/konsul.js', import.meta.url));
const READY_LINE = /konsul agent "[^"]*" \(datacenter [^)]*\) listening on http:\/\/([^:\s]+):(\d+)/;
const PARENT_GUARD = "if (process.channel) { process.channel.unref(); process.on('disconnect', () => process.kill(process.pid, 'SIGKILL')); }";
const GUARD_ARGS = ['--import', `data:text/javascript,${encodeURIComponent(PARENT_GUARD)}`];

const livePids = new Set<number>();
let exitHookInstalled = false;

export interface AgentProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  readonly url: string;
  readonly dataDir: string;
  readonly node: string;
  output(): string;
  stop(): Promise<number | null>;
  kill9(): Promise<void>;
}

export interface AgentStartOptions {
  readonly node: string;
  /** Server RPC addresses ("host:port"). */
  readonly retryJoin: readonly string[];
  readonly dataDir?: string;
  readonly port?: number;
  readonly configFiles?: readonly string[];
  readonly extraArgs?: readonly string[];
  readonly logLevel?: string;
  readonly startTimeoutMs?: number;
}

export function agentDataDir(): string {
  return mkdtempSync(join(tmpdir(), 'konsul-agent-'));
}

export async function startAgentProcess(options: AgentStartOptions): Promise<AgentProcess> {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const pid of livePids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    });
  }
  const dataDir = options.dataDir ?? agentDataDir();
  const args = [
    ...GUARD_ARGS,
    KONSUL_BIN,
    'agent',
    '--node',
    options.node,
    '--data-dir',
    dataDir,
    '--http-addr',
    `127.0.0.1:${options.port ?? 0}`,
    '--log-level',
    options.logLevel ?? 'warn',
    ...options.retryJoin.flatMap((a) => ['--retry-join', a]),
    ...(options.configFiles ?? []).flatMap((f) => ['--config-file', f]),
    // No DNS unless a test asks for it: many agents (and servers) share this host.
    ...((options.extraArgs ?? []).includes('--dns-addr') ? [] : ['--dns-addr', 'off']),
    ...(options.extraArgs ?? []),
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  const pid = child.pid!;
  livePids.add(pid);
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      livePids.delete(pid);
      resolve(code);
    }),
  );
  const timeoutMs = options.startTimeoutMs ?? 30_000;
  const ready = await waitForReadyLine(child, () => output, exited, READY_LINE, { what: 'konsul agent', timeoutMs });
  const port = Number(ready[2]);
  return {
    child,
    pid,
    port,
    url: `http://127.0.0.1:${port}`,
    dataDir,
    node: options.node,
    output: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGTERM');
      return exited;
    },
    kill9: async () => {
      if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
      await exited;
    },
  };
}
