// Shared plumbing for the side-by-side benchmarks (bench/kv-vs-etcd.bench.ts,
// bench/watch-fanout.bench.ts): start a fresh Konsul and a single-node etcd on 127.0.0.1, stop
// every process started here by PID (also on error and on SIGINT/SIGTERM), run the shared tools in
// ../shared/bench, and read a process's CPU time from /proc.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, loadavg, cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
export const SHARED_BENCH = resolve(REPO_ROOT, '..', 'shared', 'bench');
export const ETCD_URL = 'http://127.0.0.1:32379';

// ---------- cleanup on exit, error and signals ----------

type Stopper = () => Promise<void>;
const stoppers: { name: string; stop: Stopper }[] = [];
let cleaning: Promise<void> | null = null;

/** Registers something to stop; returns a function that unregisters it (once stopped normally). */
export function onCleanup(name: string, stop: Stopper): () => void {
  const entry = { name, stop };
  stoppers.push(entry);
  return () => {
    const i = stoppers.indexOf(entry);
    if (i >= 0) stoppers.splice(i, 1);
  };
}

/** Stops everything registered, newest first. Safe to call more than once. */
export function cleanupAll(): Promise<void> {
  cleaning ??= (async () => {
    while (stoppers.length > 0) {
      const { name, stop } = stoppers.pop()!;
      try {
        await stop();
      } catch (err) {
        process.stderr.write(`cleanup of ${name} failed: ${(err as Error).message}\n`);
      }
    }
  })();
  return cleaning;
}

/** On SIGINT/SIGTERM: stop every process this benchmark started, then exit 130. */
export function installSignalHandlers(): void {
  const handler = (sig: NodeJS.Signals) => {
    process.stderr.write(`\n${sig}: stopping the servers this benchmark started...\n`);
    void cleanupAll().finally(() => process.exit(130));
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
}

/** Bounds the whole run: after `minutes`, stop everything this benchmark started and exit 2. */
export function installTimeLimit(minutes: number): void {
  const limit = setTimeout(() => {
    process.stderr.write(`\n--time-limit ${minutes} min reached: stopping every server this benchmark started\n`);
    void cleanupAll().finally(() => process.exit(2));
  }, minutes * 60_000);
  limit.unref();
}

/**
 * The end of a benchmark's run: its tables, the run time and load, what did not finish, then the
 * whole result as one JSON line (also written to `jsonFile`); exit code 1 if anything failed.
 */
export function printReport(report: {
  readonly tool: string;
  readonly started: Date;
  readonly header: readonly string[];
  readonly results: readonly { readonly error?: string }[];
  readonly rows: readonly string[];
  /** How a failed result is named in "<name> did not finish". */
  readonly name: (result: never) => string;
  readonly jsonFile?: string | undefined;
}): void {
  const { tool, started, header, results, rows } = report;
  const totalS = (Date.now() - started.getTime()) / 1000;
  console.log('');
  for (const r of rows) console.log(r);
  console.log('');
  console.log(`Whole run: ${(totalS / 60).toFixed(1)} min. Load average at the end: ${machineLine().replace(/.*load average /, '')}.`);
  for (const r of results) if (r.error) console.log(`${report.name(r as never)} did not finish: ${r.error}`);
  const out = { tool, started: started.toISOString(), totalS, header, results, table: rows };
  if (report.jsonFile) writeFileSync(report.jsonFile, `${JSON.stringify(out, null, 2)}\n`);
  console.log(JSON.stringify(out));
  if (results.some((r) => r.error)) process.exitCode = 1;
}

// ---------- /proc ----------

const CLK_TCK = 100; // Linux USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s.

/** User + system CPU time of a process in ms (0 if it is gone). */
export function procCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the ")" that closes the command name: [0] is field 3 (state); utime is field 14, stime 15.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(rest[11]) + Number(rest[12])) * 1000) / CLK_TCK;
  } catch {
    return 0;
  }
}

/** Resident set size of a process in MB (NaN if it is gone). */
export function procRssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** The soft and hard limits on open files of this process. */
export function openFileLimits(): { soft: number; hard: number } {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const m = line ? /Max open files\s+(\S+)\s+(\S+)/.exec(line) : null;
  const num = (s: string | undefined) => (s === undefined || s === 'unlimited' ? Infinity : Number(s));
  return { soft: num(m?.[1]), hard: num(m?.[2]) };
}

// ---------- running commands ----------

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number;
}

export function runCommand(file: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CommandResult> {
  return new Promise((resolvePromise) => {
    let unregister: () => void = () => {};
    const child = execFile(
      file,
      args,
      { cwd: REPO_ROOT, env: options.env ?? process.env, maxBuffer: 64 * 1024 * 1024, timeout: options.timeoutMs ?? 0 },
      (err, stdout, stderr) => {
        unregister();
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
        resolvePromise({ stdout: String(stdout), stderr: String(stderr), code });
      },
    );
    // A tool still running when the benchmark is interrupted is stopped too (by its PID).
    const pid = child.pid;
    if (pid !== undefined && child.exitCode === null) {
      unregister = onCleanup(`${file} pid ${pid}`, async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      });
    }
  });
}

/** The JSON object on the last non-empty stdout line of one of the shared tools. */
export function lastJsonLine(stdout: string): unknown {
  const lines = stdout.trim().split('\n');
  const last = lines[lines.length - 1] ?? '';
  return JSON.parse(last);
}

export async function runSharedTool(script: string, args: readonly string[], timeoutMs = 120_000): Promise<{ json: unknown; stdout: string }> {
  const r = await runCommand(process.execPath, [join(SHARED_BENCH, script), ...args], { timeoutMs });
  if (r.code !== 0) throw new Error(`${script} ${args.join(' ')} exited ${r.code}: ${r.stderr.slice(-2000)}`);
  return { json: lastJsonLine(r.stdout), stdout: r.stdout };
}

// ---------- Konsul ----------

export interface KonsulProcess {
  readonly pid: number;
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  /** The last lines Konsul wrote (warnings and errors: it runs with --log-level warn). */
  logTail(): string[];
  /** How many log lines Konsul wrote so far (after the "listening" line). */
  logLines(): number;
  exitCode(): number | null;
  stop(): Promise<void>;
}

/** Starts a fresh Konsul (--dev, default, durable settings) on a free loopback port and a temp data dir. */
export async function startKonsul(): Promise<KonsulProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), 'konsul-bench-'));
  const child: ChildProcess = spawn(
    process.execPath,
    [join(REPO_ROOT, 'bin', 'konsul.js'), 'server', '--dev', '--data-dir', dataDir, '--http-addr', '127.0.0.1:0', '--node', 'bench', '--log-level', 'warn'],
    { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not spawn konsul');
  const tail: string[] = [];
  let lines = 0;
  let listening: ((url: string) => void) | null = null;
  let exited: number | null = null;
  const exitWaiters: (() => void)[] = [];
  const onLine = (line: string) => {
    const m = /listening on (http:\/\/[^,\s]+)/.exec(line);
    if (m && listening) {
      listening(m[1]!);
      listening = null;
      return;
    }
    if (line.trim() === '') return;
    lines++;
    tail.push(line);
    if (tail.length > 200) tail.shift();
  };
  for (const stream of [child.stdout, child.stderr]) {
    let buf = '';
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      buf += chunk;
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        onLine(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        nl = buf.indexOf('\n');
      }
    });
  }
  child.on('exit', (code, signal) => {
    exited = code ?? (signal ? 128 : 0);
    for (const w of exitWaiters.splice(0)) w();
  });
  const waitExit = (ms: number) =>
    new Promise<boolean>((res) => {
      if (exited !== null) return res(true);
      const t = setTimeout(() => res(false), ms);
      exitWaiters.push(() => {
        clearTimeout(t);
        res(true);
      });
    });
  let stopped: Promise<void> | null = null;
  const stop = () => {
    stopped ??= (async () => {
      if (exited === null) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          /* already gone */
        }
        if (!(await waitExit(15_000))) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* already gone */
          }
          await waitExit(5_000);
        }
      }
      rmSync(dataDir, { recursive: true, force: true });
    })();
    return stopped;
  };
  const unregister = onCleanup(`konsul pid ${pid}`, stop);
  let url: string;
  try {
    url = await new Promise<string>((res, rej) => {
      const t = setTimeout(() => rej(new Error(`konsul did not start within 60 s:\n${tail.join('\n')}`)), 60_000);
      listening = (u) => {
        clearTimeout(t);
        res(u);
      };
      exitWaiters.push(() => {
        clearTimeout(t);
        rej(new Error(`konsul exited with ${exited} before listening:\n${tail.join('\n')}`));
      });
    });
  } catch (err) {
    await stop();
    unregister();
    throw err;
  }
  const parsed = new URL(url);
  return {
    pid,
    url,
    host: parsed.hostname,
    port: Number(parsed.port),
    dataDir,
    logTail: () => [...tail],
    logLines: () => lines,
    exitCode: () => exited,
    stop: async () => {
      await stop();
      unregister();
    },
  };
}

// ---------- etcd (single node, through ../shared/bench/etcd-cluster.sh) ----------

export interface EtcdProcess {
  readonly pid: number;
  readonly url: string;
  readonly version: string;
  stop(): Promise<void>;
}

/**
 * Starts a single-node etcd with default settings (fsync on) through the shared script. Its data
 * and PID files live in a private KBENCH_DIR, so `stop all` stops only what this benchmark started.
 */
export async function startEtcd(): Promise<EtcdProcess> {
  const root = mkdtempSync(join(tmpdir(), 'konsul-etcd-bench-'));
  const env = { ...process.env, KBENCH_DIR: root };
  const script = join(SHARED_BENCH, 'etcd-cluster.sh');
  let stopping: Promise<void> | null = null;
  const stop = () => {
    // Once only: the signal handler and the benchmark's own finally may both ask.
    stopping ??= (async () => {
      const r = await runCommand('bash', [script, 'stop', 'all'], { env, timeoutMs: 60_000 });
      if (r.code !== 0) process.stderr.write(`etcd-cluster.sh stop all exited ${r.code}: ${r.stderr}\n`);
      rmSync(root, { recursive: true, force: true });
    })();
    return stopping;
  };
  const unregister = onCleanup('etcd', stop);
  const started = await runCommand('bash', [script, 'start', 'single'], { env, timeoutMs: 90_000 });
  if (started.code !== 0) {
    await stop();
    unregister();
    throw new Error(`etcd-cluster.sh start single failed (${started.code}):\n${started.stdout}${started.stderr}`);
  }
  const pid = Number(readFileSync(join(root, 'single', 'etcd.pid'), 'utf8').trim());
  const version = (await runCommand('etcd', ['--version'])).stdout.split('\n')[0]?.replace('etcd Version: ', '') ?? '?';
  return {
    pid,
    url: ETCD_URL,
    version,
    stop: async () => {
      await stop();
      unregister();
    },
  };
}

// ---------- small helpers ----------

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export async function gitDescribe(): Promise<string> {
  const head = (await runCommand('git', ['rev-parse', '--short', 'HEAD'])).stdout.trim();
  const dirty = (await runCommand('git', ['status', '--porcelain', '--', 'raft', 'server', 'fsm', 'cli'])).stdout.trim();
  const n = dirty === '' ? 0 : dirty.split('\n').length;
  return n === 0 ? head : `${head} + ${n} uncommitted file(s) in raft/ server/ fsm/ cli/`;
}

export function machineLine(): string {
  const la = loadavg().map((x) => x.toFixed(2)).join(' ');
  return `${cpus().length} cores (${cpus()[0]?.model ?? '?'}), Node ${process.version}, load average ${la}`;
}

/** Waits until a process has been (nearly) idle for `quietPolls` consecutive 100 ms polls. */
export async function waitIdle(pid: number, options: { minMs?: number; maxMs?: number; quietPolls?: number; maxBusyMsPerPoll?: number } = {}): Promise<{ waitedMs: number; settled: boolean }> {
  const { minMs = 500, maxMs = 30_000, quietPolls = 3, maxBusyMsPerPoll = 10 } = options;
  const t0 = performance.now();
  let quiet = 0;
  let last = procCpuMs(pid);
  while (performance.now() - t0 < maxMs) {
    await sleep(100);
    const now = procCpuMs(pid);
    quiet = now - last <= maxBusyMsPerPoll ? quiet + 1 : 0;
    last = now;
    if (quiet >= quietPolls && performance.now() - t0 >= minMs) return { waitedMs: performance.now() - t0, settled: true };
  }
  return { waitedMs: performance.now() - t0, settled: false };
}
