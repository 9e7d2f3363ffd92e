// Real `konsul agent` child processes: an ephemeral HTTP port on 127.0.0.1 (or a fixed one, to
// restart an agent at the same address), a temporary data directory, stopped or killed by PID.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { spawnKonsul } from './konsul-process.ts';

const READY_LINE = /konsul agent "[^"]*" \(datacenter [^)]*\) listening on http:\/\/([^:\s]+):(\d+)/;

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
  const dataDir = options.dataDir ?? agentDataDir();
  const args = [
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
  const p = await spawnKonsul(args, { readyLine: READY_LINE, what: 'konsul agent', timeoutMs: options.startTimeoutMs ?? 60_000 });
  const port = Number(p.ready[2]);
  return {
    child: p.child,
    pid: p.pid,
    port,
    url: `http://127.0.0.1:${port}`,
    dataDir,
    node: options.node,
    output: p.output,
    stop: p.stop,
    kill9: p.kill9,
  };
}
