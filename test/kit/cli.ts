// The real command-line programs as child processes: `node bin/konsul.js` and `node bin/konsulctl.js`,
// with a clean environment, bounded in time and killed by PID.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

export const KONSUL_BIN = fileURLToPath(new URL('../../bin/konsul.js', import.meta.url));
export const KONSULCTL_BIN = fileURLToPath(new URL('../../bin/konsulctl.js', import.meta.url));

/**
 * The environment without an address or token a developer may have exported, and without tap's
 * NODE_OPTIONS (its process-tracking loader would slow every start-up for nothing); then `extra`.
 */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of ['KONSUL_HTTP_ADDR', 'CONSUL_HTTP_ADDR', 'KONSUL_HTTP_TOKEN', 'CONSUL_HTTP_TOKEN', 'NODE_OPTIONS']) delete env[name];
  return { ...env, ...extra };
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout as bytes (binary output such as a snapshot). */
  readonly stdoutBytes: Buffer;
}

export interface CliOptions {
  /** Added to the clean environment (see {@link cleanEnv}). */
  readonly env?: NodeJS.ProcessEnv;
  /** Written to stdin, which is then closed (default: stdin is closed at once). */
  readonly input?: string | Buffer;
  /** SIGKILL (by PID) after this long (default 120 s: a loaded machine starts programs slowly). */
  readonly timeoutMs?: number;
  readonly cwd?: string;
}

/** A started program: its child, its exit, what it printed so far. */
export interface CliRun {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  stdout(): string;
  stderr(): string;
}

/**
 * Starts `node bin args...` and returns at once (for programs a test signals or watches while they
 * run). `detached` gives it a process group of its own, so that a signal to -pid reaches its children.
 */
export function spawnCli(bin: string, args: readonly string[], options: CliOptions & { detached?: boolean; stdin?: 'pipe' | 'ignore' } = {}): CliRun {
  const child = spawn(process.execPath, [bin, ...args], {
    env: cleanEnv(options.env),
    stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'],
    ...(options.detached ? { detached: true } : {}),
    ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { child, exited, stdout: () => stdout, stderr: () => stderr };
}

/** Runs `node bin args...` to its end; SIGKILLs it (by PID) if it has not finished within the timeout. */
export async function runCli(bin: string, args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [bin, ...args], {
    env: cleanEnv(options.env),
    stdio: ['pipe', 'pipe', 'pipe'],
    ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
  });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => stdout.push(d));
  child.stderr.on('data', (d: Buffer) => stderr.push(d));
  // A program that exits before reading its input closes the pipe: that is not the test's error.
  child.stdin.on('error', () => undefined);
  child.stdin.end(options.input ?? '');
  const timer = setTimeout(() => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
  }, options.timeoutMs ?? 120_000);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c) => resolve(c));
    });
    const bytes = Buffer.concat(stdout);
    return { code, stdout: bytes.toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8'), stdoutBytes: bytes };
  } finally {
    clearTimeout(timer);
  }
}

/** `konsulctl args...` against `addr` (KONSUL_HTTP_ADDR), to its end. */
export function konsulctl(addr: string, args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  return runCli(KONSULCTL_BIN, args, { ...options, env: { KONSUL_HTTP_ADDR: addr, ...options.env } });
}
