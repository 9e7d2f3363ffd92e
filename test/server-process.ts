// Starts real `konsul server` child processes for integration tests: ephemeral ports on 127.0.0.1,
// temporary data directories, and stopping (or killing) by PID.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitForReadyLine } from './ready-line.ts';

const KONSUL_BIN = fileURLToPath(new URL('../bin/konsul.js', import.meta.url));
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
    KONSUL_BIN,
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
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = await waitForReadyLine(child, () => output, exited, READY_LINE, { what: 'konsul', timeoutMs: options.startTimeoutMs ?? 20000 });
  const port = Number(ready[2]);
  const pid = child.pid!;
  const rpcAddress = /rpc listening on (\S+)/.exec(output)?.[1] ?? '';
  const dns = /dns listening on (\S+):(\d+) /.exec(output);
  const dnsAddress = dns ? { host: dns[1]!, port: Number(dns[2]) } : null;
  return {
    child,
    pid,
    port,
    rpcAddress,
    dnsAddress,
    url: `http://127.0.0.1:${port}`,
    dataDir,
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
