// The one way tests start `node bin/konsul.js ...` (server, agent, snapshot agent): output captured,
// a ready line awaited (bounded), stopped or killed by PID, and never outliving the test process.
import { spawn, type ChildProcess } from 'node:child_process';
import { KONSUL_BIN, cleanEnv } from './cli.ts';
import { tail } from './wait.ts';

/**
 * Preloaded into every process: it has an IPC channel to the test process and kills itself when
 * the channel closes, i.e. when the test process is gone however it died (tap's timeout ends with
 * SIGKILL, which runs no handler in the test process). The channel is unref'd so that it never
 * keeps either side alive or changes how the child shuts down.
 */
const PARENT_GUARD = "if (process.channel) { process.channel.unref(); process.on('disconnect', () => process.kill(process.pid, 'SIGKILL')); }";
export const GUARD_ARGS: readonly string[] = ['--import', `data:text/javascript,${encodeURIComponent(PARENT_GUARD)}`];

const livePids = new Set<number>();
let exitHookInstalled = false;

/** Remembers a child PID until it exits; on a normal exit of the test process, SIGKILLs what is left. */
export function trackPid(pid: number | undefined): void {
  if (pid === undefined) return;
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const p of livePids) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    });
  }
  livePids.add(pid);
}

export function untrackPid(pid: number | undefined): void {
  if (pid !== undefined) livePids.delete(pid);
}

export interface KonsulProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** The ready line's match. */
  readonly ready: RegExpExecArray;
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
  /** Everything the process wrote (stdout and stderr), for assertions and failure messages. */
  output(): string;
  running(): boolean;
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL (kill -9) and wait for the exit. */
  kill9(): Promise<void>;
}

export interface SpawnKonsulOptions {
  /** Printed once the process serves. */
  readonly readyLine: RegExp;
  /** For error messages ("konsul agent"). */
  readonly what: string;
  readonly timeoutMs?: number;
  /** Added to the clean environment (see cleanEnv in cli.ts). */
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * Starts `node [guard] bin/konsul.js args...` and waits for the ready line. Rejects, with everything
 * the process printed, when it exits first or the timeout passes (then it is killed by PID).
 */
export async function spawnKonsul(args: readonly string[], options: SpawnKonsulOptions): Promise<KonsulProcess> {
  const child = spawn(process.execPath, [...GUARD_ARGS, KONSUL_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env: cleanEnv(options.env) });
  child.channel?.unref();
  const pid = child.pid!;
  trackPid(pid);
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      untrackPid(pid);
      resolve(code);
    }),
  );
  const running = () => child.exitCode === null && child.signalCode === null;
  // Generous: only a start that hangs waits it out, and a loaded machine starts slowly.
  const timeoutMs = options.timeoutMs ?? 60_000;
  const ready = await new Promise<RegExpExecArray>((resolve, reject) => {
    let settled = false;
    const finish = (m: RegExpExecArray | null, err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.stdout!.off('data', check);
      child.stderr!.off('data', check);
      if (m) resolve(m);
      else reject(err);
    };
    const timer = setTimeout(() => {
      if (running()) process.kill(pid, 'SIGKILL');
      finish(null, new Error(`${options.what} did not start within ${timeoutMs} ms:\n${tail(output)}`));
    }, timeoutMs);
    const check = () => {
      const m = options.readyLine.exec(output);
      if (m) finish(m);
    };
    child.stdout!.on('data', check);
    child.stderr!.on('data', check);
    void exited.then((code) => finish(null, new Error(`${options.what} exited with ${code} before it was ready:\n${tail(output)}`)));
  });
  return {
    child,
    pid,
    ready,
    exited,
    output: () => output,
    running,
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
