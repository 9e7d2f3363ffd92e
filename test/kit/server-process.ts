// Real `konsul server --dev` child processes: ephemeral ports on 127.0.0.1, temporary data
// directories (removed when the test process exits unless the test gave its own), stopped or
// killed by PID.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { spawnKonsul } from './konsul-process.ts';

const READY_LINE = /listening on http:\/\/([^:]+):(\d+)/;

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly url: string;
  readonly port: number;
  /** The server-to-server address ("host:port"), which /v1/status answers. */
  readonly rpcAddress: string;
  /** The DNS interface (UDP and TCP), from the "dns listening on" line; null when it is off. */
  readonly dnsAddress: { readonly host: string; readonly port: number } | null;
  readonly dataDir: string;
  /** Everything the process wrote, for failure messages. */
  output(): string;
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL (kill -9) and wait for the exit. */
  kill9(): Promise<void>;
}

export interface StartOptions {
  readonly dataDir?: string;
  readonly node?: string;
  readonly port?: number;
  readonly extraArgs?: readonly string[];
  readonly startTimeoutMs?: number;
}

export function tempDataDir(prefix = 'konsul-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Data dirs startServer made itself (no dataDir given): removed when the test process exits. */
const madeDataDirs: string[] = [];
process.once('exit', () => {
  for (const dir of madeDataDirs) removeDir(dir);
});

export async function startServer(options: StartOptions = {}): Promise<ServerProcess> {
  let dataDir = options.dataDir;
  if (dataDir === undefined) {
    dataDir = tempDataDir();
    madeDataDirs.push(dataDir);
  }
  const args = [
    'server',
    '--dev',
    '--data-dir',
    dataDir,
    '--http-addr',
    `127.0.0.1:${options.port ?? 0}`,
    '--node',
    options.node ?? 'test-node',
    '--log-level',
    'warn',
    ...(options.extraArgs ?? []),
  ];
  const p = await spawnKonsul(args, { readyLine: READY_LINE, what: 'konsul', timeoutMs: options.startTimeoutMs ?? 60_000 });
  const port = Number(p.ready[2]);
  const output = p.output();
  const rpcAddress = /rpc listening on (\S+)/.exec(output)?.[1] ?? '';
  const dns = /dns listening on (\S+):(\d+) /.exec(output);
  return {
    child: p.child,
    pid: p.pid,
    port,
    rpcAddress,
    dnsAddress: dns ? { host: dns[1]!, port: Number(dns[2]) } : null,
    url: `http://127.0.0.1:${port}`,
    dataDir,
    output: p.output,
    stop: p.stop,
    kill9: p.kill9,
  };
}
