// Backups that restore at any size (issue 19): save (GET /v1/snapshot) and restore (PUT
// /v1/snapshot) of N keys, with the time, the servers' peak RSS and their event-loop lag while
// each runs.
//
//   npx tsx bench/backup.bench.ts [--keys 100000,1000000] [--servers 1|3] [--json FILE]
//        [--konsul-root DIR] [--time-limit MIN] [--values repeat|random] [--load-clients 8]
//        [--konsulctl on|off] [--server-node-args="ARGS"]
//
// For each key count in turn: a fresh Konsul of --servers servers on 127.0.0.1 with temp data dirs
// (bench/lib/cluster.ts: `--bootstrap-expect <servers>`, `--retry-join` the others, default durable
// settings; one server is `--bootstrap-expect 1`), started from --konsul-root (default: this
// checkout). Then:
//   0. load N keys scale/<8 digits> × 100 B through transactions of 64 sets (`PUT /v1/txn`, 8
//      clients): ../shared/bench/bulk-load-konsul.mjs (values 100 × "x", --values repeat, the
//      default), or with --values random the same requests sent from here with random printable
//      values (an archive of "x" values compresses ~100×, random ones ~1.3×); then wait until every
//      server has applied the leader's commit index and is idle (a Raft snapshot the load started
//      is written before anything is measured);
//   1. SAVE: `GET /v1/snapshot` from the leader streamed to a file: time to the response's first
//      byte (the server encodes its copy-on-write view into a staging file first, then streams the
//      archive), total time, archive bytes, state bytes (meta.json `Size`, read back from the file);
//   2. RESTORE into a fresh cluster of the same shape (new data dirs; the first one is stopped
//      first): `PUT /v1/snapshot` to its leader streaming the file, time until the 200 (and, from
//      the leader's Stats.restore polled every 100 ms, when the staged restore was first and last
//      seen in progress: the upload + check + staging before it, the replicated chunks after); then the
//      time until every server has applied the leader's commit index, and a check that the
//      restored keys are exactly N (`GET /v1/kv/scale/<3 digits>?keys` per 100,000, on the leader)
//      and that the first and last key hold the loaded value (every server, `?stale`);
//   3. at the largest key count only (--konsulctl on): `konsulctl snapshot save` from the first
//      cluster and `konsulctl snapshot restore` into a third fresh cluster (node bin/konsulctl.js
//      --http-addr ...), wall time of the command, each measured like 1 and 2.
// During every measured window (1, 2, 3), on every server:
//   - peak RSS: VmHWM of /proc/PID/status after resetting it (`echo 5 > /proc/PID/clear_refs`) at
//     the window's start, so it is the peak within the window; also VmRSS before, and the highest
//     VmRSS sampled every 50 ms;
//   - event-loop lag: every server runs bench/lib/lag-samples.mjs (node --import), which logs every
//     sample of a 10 ms timer's lateness; a window gets every sample whose stall overlaps it: max
//     and p99 (and p50) per server;
//   - a probe load: one default-consistency `GET /v1/kv/scale/00000000` to the leader every 10 ms
//     (sequential; the next one goes at once when one took longer), its max / p99 latency and
//     failures (no answer in 30 s or 5xx; a 404 before a restore has committed is an answer).
// Also: Stats.snapshot.taken of the leader before and after each window, so a Raft snapshot that
// overlapped a window shows; and, for the longest lag samples, the main thread's CPU time over them
// (bench/lib/lag-samples.mjs): a stall of 200 ms with 200 ms of CPU is the server's own work, one
// with 20 ms is the kernel running other processes (2 cores shared with tests and the other
// servers). --server-node-args="..." passes Node options to every server (e.g. "--cpu-prof
// --cpu-prof-dir DIR": the servers stop with SIGTERM and exit normally, which writes the profile).
//
// Prints progress lines (#), a markdown table, a detail table, and one JSON line (also written to
// --json FILE). Everything started here is stopped by PID, also on error and on Ctrl-C; the whole
// run is bounded by --time-limit minutes. Run it alone on the machine:
//   flock /tmp/konsul-bench.lock npx tsx bench/backup.bench.ts --keys 100000,1000000
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { createGunzip } from 'node:zlib';
import { httpCall, startKonsulCluster, type KonsulCluster } from './lib/cluster.ts';
import { cleanupAll, gitDescribe, installSignalHandlers, installTimeLimit, machineLine, onCleanup, percentile, printReport, procCpuMs, REPO_ROOT, runCommand, runSharedTool, sleep } from './lib/servers.ts';

const { values: args } = parseArgs({
  options: {
    keys: { type: 'string', default: '100000,1000000' },
    servers: { type: 'string', default: '1' },
    json: { type: 'string' },
    'konsul-root': { type: 'string', default: REPO_ROOT },
    'time-limit': { type: 'string', default: '60' },
    values: { type: 'string', default: 'repeat' },
    'load-clients': { type: 'string', default: '8' },
    konsulctl: { type: 'string', default: 'on' },
    'server-node-args': { type: 'string', default: '' },
  },
  strict: true,
});

const keyCounts = args.keys.split(',').map((x) => Number.parseInt(x.trim(), 10));
const servers = Number.parseInt(args.servers, 10);
const konsulRoot = resolve(args['konsul-root']);
const timeLimitMin = Number(args['time-limit']);
const randomValues = args.values === 'random';
const loadClients = Number.parseInt(args['load-clients'], 10);
const withKonsulctl = args.konsulctl === 'on';
/** Extra Node options of every server process (e.g. "--cpu-prof --cpu-prof-dir /tmp/prof"). */
const serverNodeArgs = args['server-node-args'].split(' ').filter((x) => x !== '');
const LAG_SAMPLES = join(REPO_ROOT, 'bench', 'lib', 'lag-samples.mjs');
const VALUE_SIZE = 100;
const PROBE_KEY = 'scale/00000000';
const PROBE_EVERY_MS = 10;
const RSS_EVERY_MS = 50;
const COUNT_BLOCK = 100_000;

if (keyCounts.length === 0 || keyCounts.some((k) => !(Number.isInteger(k) && k > 0 && k <= 99_999_999))) throw new Error('--keys: comma-separated key counts, 1..99,999,999');
if (servers !== 1 && servers !== 3) throw new Error('--servers 1 or 3');
if (!existsSync(join(konsulRoot, 'bin', 'konsul.js'))) throw new Error(`--konsul-root ${konsulRoot}: no bin/konsul.js`);
if (!(timeLimitMin > 0)) throw new Error('--time-limit must be > 0 minutes');
if (!['repeat', 'random'].includes(args.values)) throw new Error('--values repeat|random');
if (!(loadClients >= 1 && loadClients <= 64)) throw new Error('--load-clients 1..64');
if (!['on', 'off'].includes(args.konsulctl)) throw new Error('--konsulctl on|off');

// ---------- what is measured ----------

interface LagFigures {
  readonly maxMs: number;
  readonly p99Ms: number;
  readonly p50Ms: number;
  readonly samples: number;
  /**
   * The longest samples (up to 5, ≥ 20 ms): s from the window's start to the stall's start, its
   * length, and the main thread's CPU ms over it (≈ the length: the loop was busy; far below: the
   * process was not scheduled).
   */
  readonly worst: { atS: number; lagMs: number; cpuMs: number | null }[];
}

interface ProbeFigures {
  readonly requests: number;
  readonly failures: number;
  readonly maxMs: number;
  readonly p99Ms: number;
  readonly p50Ms: number;
  readonly statuses: Record<string, number>;
}

interface WindowStats {
  readonly wallMs: number;
  /** Per server (n1, n2, ...): VmRSS at the start, highest sampled VmRSS, VmHWM since the start (MB). */
  readonly rssBeforeMb: Record<string, number>;
  readonly rssMaxSampledMb: Record<string, number>;
  readonly peakRssMb: Record<string, number>;
  /** Whether VmHWM could be reset (else peakRssMb is the peak since the process started). */
  readonly hwmReset: boolean;
  readonly lag: Record<string, LagFigures>;
  readonly probe: ProbeFigures;
  /** Servers' user + system CPU over the window, % of one core. */
  readonly serversCpuPct: number;
  /** The leader's Stats.snapshot.taken before → after (a Raft snapshot taken meanwhile). */
  readonly raftSnapshots: [number, number];
}

interface SaveResult {
  readonly ttfbMs: number;
  readonly totalMs: number;
  readonly archiveBytes: number;
  readonly stateBytes: number;
  readonly index: number;
  readonly consulIndex: string;
  readonly window: WindowStats;
}

interface RestoreResult {
  readonly status: number;
  readonly body: string;
  readonly totalMs: number;
  /** From the 200 until every server applied the leader's commit index. */
  readonly allAppliedMs: number | null;
  readonly keysCounted: number;
  readonly valuesOk: boolean;
  /**
   * From the leader's Stats.restore, polled every 100 ms: ms from the PUT's start until the staged
   * restore was first seen in progress (the archive was uploaded, checked and staged: restoreBegin
   * applied) and until it was last seen in progress (the last chunks applying; the commit follows).
   */
  readonly stagedAfterMs: number | null;
  readonly lastInProgressMs: number | null;
  readonly window: WindowStats;
}

interface CliResult {
  readonly command: string;
  readonly code: number;
  readonly wallMs: number;
  readonly stdout: string;
  readonly stderrTail: string;
  readonly window: WindowStats;
  readonly keysCounted?: number;
}

interface RunResult {
  readonly keys: number;
  readonly servers: number;
  readonly values: string;
  readonly load?: { keys: number; errors: number; firstError: string; secs: number; keysPerSec: number };
  readonly settleS?: number;
  readonly idleS?: number;
  readonly rssAfterLoadMb?: Record<string, number>;
  readonly save?: SaveResult;
  readonly restore?: RestoreResult;
  readonly cliSave?: CliResult;
  readonly cliRestore?: CliResult;
  readonly logTail: string[];
  readonly error?: string;
}

// ---------- /proc ----------

function procStatusKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** Resets the process's VmHWM to its current RSS (Linux ≥ 4.0); false if not allowed. */
function resetHwm(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

const mb = (kb: number) => Math.round(kb / 1024);

// ---------- a started cluster ----------

interface Bench {
  readonly cluster: KonsulCluster;
  readonly lagDir: string;
  leader: string;
  readonly agent: http.Agent;
  url(name?: string): string;
  pids(): Record<string, number>;
  stop(): Promise<void>;
}

async function startBench(label: string): Promise<Bench> {
  const lagDir = mkdtempSync(join(tmpdir(), 'konsul-backup-lag-'));
  const t0 = performance.now();
  const cluster = await startKonsulCluster({
    nodes: servers,
    root: konsulRoot,
    nodeArgs: [...serverNodeArgs, '--import', pathToFileURL(LAG_SAMPLES).href],
    env: { ...process.env, KONSUL_BENCH_LAG_SAMPLES_DIR: lagDir },
    startTimeoutMs: 180_000,
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const bench: Bench = {
    cluster,
    lagDir,
    leader: '',
    agent,
    url: (name) => cluster.member(name ?? bench.leader).httpUrl,
    pids: () => Object.fromEntries(cluster.members.map((m) => [m.name, m.pid()])),
    async stop() {
      agent.destroy();
      await cluster.stop();
      rmSync(lagDir, { recursive: true, force: true });
    },
  };
  bench.leader = await cluster.waitForLeader(60_000);
  console.log(`# ${label}: ${cluster.members.map((m) => `${m.name} pid ${m.pid()} ${m.httpUrl}`).join('; ')}; leader ${bench.leader} after ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return bench;
}

interface RaftView {
  readonly ok: boolean;
  readonly applied: number;
  readonly commit: number;
  readonly snapshotsTaken: number;
}

async function raftView(b: Bench, name: string): Promise<RaftView> {
  const r = await httpCall('GET', `${b.url(name)}/v1/agent/self`, { agent: b.agent, timeoutMs: 10_000, maxBytes: 256 * 1024 });
  if (!r.ok) return { ok: false, applied: 0, commit: 0, snapshotsTaken: 0 };
  try {
    const stats = (JSON.parse(r.text) as { Stats?: Record<string, Record<string, string> | undefined> }).Stats ?? {};
    return { ok: true, applied: Number(stats.raft?.applied_index ?? 0), commit: Number(stats.raft?.commit_index ?? 0), snapshotsTaken: Number(stats.snapshot?.taken ?? 0) };
  } catch {
    return { ok: false, applied: 0, commit: 0, snapshotsTaken: 0 };
  }
}

/** Waits until every server has applied what the leader has committed now; ms, or null. */
async function settle(b: Bench, timeoutMs: number): Promise<number | null> {
  const t0 = performance.now();
  const target = (await raftView(b, b.leader)).commit;
  while (performance.now() - t0 < timeoutMs) {
    const views = await Promise.all(b.cluster.members.map((m) => raftView(b, m.name)));
    if (views.every((v) => v.ok && v.applied >= target)) return performance.now() - t0;
    await sleep(100);
  }
  return null;
}

/** Waits until every server used under 10 ms of CPU per 100 ms for 5 polls in a row; ms. */
async function waitIdle(b: Bench, maxMs: number): Promise<number> {
  const t0 = performance.now();
  let quiet = 0;
  let last = b.cluster.cpuMs();
  while (performance.now() - t0 < maxMs) {
    await sleep(100);
    const now = b.cluster.cpuMs();
    quiet = now - last <= 10 * servers ? quiet + 1 : 0;
    last = now;
    if (quiet >= 5) break;
  }
  return performance.now() - t0;
}

// ---------- the measured window ----------

/** The lag samples of one process: [epoch ms at the sample's end, lag ms, main-thread CPU ms or NaN]. */
function lagSamples(dir: string, pid: number): [number, number, number][] {
  let text = '';
  try {
    text = readFileSync(join(dir, `lag-${pid}.log`), 'utf8');
  } catch {
    return [];
  }
  const out: [number, number, number][] = [];
  for (const line of text.split('\n')) {
    const parts = line.split(' ');
    const base = Number(parts[0]);
    if (!Number.isFinite(base)) continue;
    for (let i = 1; i < parts.length; i++) {
      const [t, lag, cpu] = parts[i]!.split(':').map(Number);
      if (t !== undefined && lag !== undefined && Number.isFinite(t) && Number.isFinite(lag)) out.push([base + t, lag, cpu ?? NaN]);
    }
  }
  return out;
}

/** Max / p99 / p50 of the samples whose stall overlaps [fromMs, toMs] (epoch ms). */
function lagIn(dir: string, pid: number, fromMs: number, toMs: number): LagFigures {
  const inWindow = lagSamples(dir, pid).filter(([t, lag]) => t >= fromMs && t - lag <= toMs);
  const xs = inWindow.map(([, lag]) => lag).sort((a, b) => a - b);
  const worst = inWindow
    .filter(([, lag]) => lag >= 20)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5)
    .map(([t, lag, cpu]) => ({ atS: Math.round((t - lag - 10 - fromMs) / 10) / 100, lagMs: lag, cpuMs: Number.isFinite(cpu) ? cpu : null }));
  return { maxMs: xs.length ? xs[xs.length - 1]! : NaN, p99Ms: percentile(xs, 99), p50Ms: percentile(xs, 50), samples: xs.length, worst };
}

/** One default read of PROBE_KEY every PROBE_EVERY_MS on `url` until stopped. */
function startProbe(url: string): { stop(): Promise<ProbeFigures> } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let failures = 0;
  let stopped = false;
  const loop = (async () => {
    let next = performance.now();
    while (!stopped) {
      const r = await httpCall('GET', `${url}/v1/kv/${PROBE_KEY}`, { agent, timeoutMs: 30_000, maxBytes: 1024 });
      latencies.push(r.ms);
      const s = r.status === 0 ? r.text : String(r.status);
      statuses[s] = (statuses[s] ?? 0) + 1;
      if (r.status === 0 || r.status >= 500) failures++;
      next += PROBE_EVERY_MS;
      const wait = next - performance.now();
      if (wait > 0) await sleep(wait);
      else next = performance.now();
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      agent.destroy();
      const xs = [...latencies].sort((a, b) => a - b);
      return { requests: xs.length, failures, maxMs: xs.length ? xs[xs.length - 1]! : NaN, p99Ms: percentile(xs, 99), p50Ms: percentile(xs, 50), statuses };
    },
  };
}

/** Runs `body` while measuring every server's RSS, lag and CPU, and a probe load on the leader. */
async function measured<T>(b: Bench, body: () => Promise<T>): Promise<{ result: T; window: WindowStats }> {
  const pids = b.pids();
  const names = Object.keys(pids);
  const snapshotsBefore = (await raftView(b, b.leader)).snapshotsTaken;
  const rssBeforeMb: Record<string, number> = {};
  const rssMaxKb: Record<string, number> = {};
  let hwmReset = true;
  for (const n of names) {
    const kb = procStatusKb(pids[n]!, 'VmRSS');
    rssBeforeMb[n] = mb(kb);
    rssMaxKb[n] = kb;
    hwmReset = resetHwm(pids[n]!) && hwmReset;
  }
  const sampler = setInterval(() => {
    for (const n of names) rssMaxKb[n] = Math.max(rssMaxKb[n]!, procStatusKb(pids[n]!, 'VmRSS') || 0);
  }, RSS_EVERY_MS);
  const cpu0 = names.reduce((a, n) => a + procCpuMs(pids[n]!), 0);
  const probe = startProbe(b.url());
  const fromMs = Date.now();
  const t0 = performance.now();
  let result: T;
  try {
    result = await body();
  } catch (err) {
    clearInterval(sampler);
    await probe.stop();
    throw err;
  }
  const wallMs = performance.now() - t0;
  clearInterval(sampler);
  const toMs = Date.now();
  const cpu1 = names.reduce((a, n) => a + procCpuMs(pids[n]!), 0);
  const probeFigures = await probe.stop();
  const peakRssMb: Record<string, number> = {};
  const rssMaxSampledMb: Record<string, number> = {};
  for (const n of names) {
    peakRssMb[n] = mb(procStatusKb(pids[n]!, 'VmHWM'));
    rssMaxSampledMb[n] = mb(rssMaxKb[n]!);
  }
  // The probe flushes about once a second: wait for the line that holds the window's end.
  await sleep(1600);
  const lag = Object.fromEntries(names.map((n) => [n, lagIn(b.lagDir, pids[n]!, fromMs, toMs)]));
  const snapshotsAfter = (await raftView(b, b.leader)).snapshotsTaken;
  return {
    result,
    window: { wallMs, rssBeforeMb, rssMaxSampledMb, peakRssMb, hwmReset, lag, probe: probeFigures, serversCpuPct: (100 * (cpu1 - cpu0)) / wallMs, raftSnapshots: [snapshotsBefore, snapshotsAfter] },
  };
}

function windowLine(w: WindowStats): string {
  const per = (r: Record<string, number>) => Object.entries(r).map(([n, v]) => `${n} ${v}`).join(' / ');
  const worst = (l: LagFigures) => (l.worst.length ? `, longest [s: ms (CPU ms)] ${l.worst.map((x) => `${x.atS}: ${fmt(x.lagMs)} (${x.cpuMs ?? '?'})`).join(', ')}` : '');
  const lag = Object.entries(w.lag).map(([n, l]) => `${n} max ${fmt(l.maxMs)} p99 ${fmt(l.p99Ms)} p50 ${fmt(l.p50Ms)} (${l.samples} samples${worst(l)})`).join('; ');
  return (
    `RSS MB before ${per(w.rssBeforeMb)}, peak (VmHWM${w.hwmReset ? '' : ' since start'}) ${per(w.peakRssMb)}, max sampled ${per(w.rssMaxSampledMb)}; lag ms ${lag}; ` +
    `probe ${w.probe.requests} GETs, max ${fmt(w.probe.maxMs)} p99 ${fmt(w.probe.p99Ms)} p50 ${fmt(w.probe.p50Ms)} ms, failures ${w.probe.failures} ${JSON.stringify(w.probe.statuses)}; ` +
    `servers' CPU ${fmt(w.serversCpuPct, 0)}%; Raft snapshots taken ${w.raftSnapshots[0]} → ${w.raftSnapshots[1]}`
  );
}

// ---------- load ----------

/** Scale keys with random printable values, as bulk-load-konsul.mjs sends them (64 per txn, C clients). */
async function loadRandom(url: string, n: number, clients: number): Promise<RunResult['load']> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  let next = 0;
  let done = 0;
  let errors = 0;
  let firstError = '';
  const t0 = performance.now();
  const worker = async () => {
    while (next < n) {
      const base = next;
      next += 64;
      const ops = [];
      for (let i = base; i < Math.min(base + 64, n); i++) {
        const value = randomBytes(75).toString('base64'); // 100 printable bytes
        ops.push({ KV: { Verb: 'set', Key: `scale/${String(i).padStart(8, '0')}`, Value: Buffer.from(value).toString('base64') } });
      }
      const body = JSON.stringify(ops);
      for (let attempt = 0; attempt < 3; attempt++) {
        const r = await httpCall('PUT', `${url}/v1/txn`, { body, agent, timeoutMs: 30_000 });
        if (r.status === 200) {
          done += ops.length;
          break;
        }
        errors++;
        if (!firstError) firstError = `${r.status} ${r.text.slice(0, 120)}`;
      }
    }
  };
  await Promise.all(Array.from({ length: clients }, worker));
  agent.destroy();
  const secs = (performance.now() - t0) / 1000;
  return { keys: done, errors, firstError, secs, keysPerSec: Math.round(done / secs) };
}

// ---------- save, restore, check ----------

/** meta.json of an archive file: the first tar entry inside the gzip. */
async function archiveMeta(file: string): Promise<{ Size: number; Index: number }> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  const gunzip = createGunzip();
  const source = createReadStream(file, { highWaterMark: 64 * 1024 });
  source.pipe(gunzip);
  for await (const c of gunzip) {
    chunks.push(c as Buffer);
    bytes += (c as Buffer).length;
    if (bytes >= 64 * 1024) break;
  }
  source.destroy();
  gunzip.destroy();
  const tar = Buffer.concat(chunks);
  const name = tar.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
  const size = Number.parseInt(tar.subarray(124, 136).toString('ascii').replace(/\0.*$/s, '').trim(), 8);
  if (name !== 'meta.json' || !(size > 0)) throw new Error(`${file}: first tar entry is ${JSON.stringify(name)} (${size} B), not meta.json`);
  return JSON.parse(tar.subarray(512, 512 + size).toString('utf8')) as { Size: number; Index: number };
}

async function saveTo(b: Bench, file: string): Promise<Omit<SaveResult, 'window' | 'stateBytes' | 'index'>> {
  const u = new URL(`${b.url()}/v1/snapshot`);
  const t0 = performance.now();
  return new Promise((resolvePromise, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method: 'GET', path: u.pathname, agent: false }, (res) => {
      if (res.statusCode !== 200) {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => reject(new Error(`GET /v1/snapshot: ${res.statusCode} ${text.slice(0, 500)}`)));
        return;
      }
      let ttfbMs = NaN;
      let archiveBytes = 0;
      res.on('data', (c: Buffer) => {
        if (archiveBytes === 0) ttfbMs = performance.now() - t0;
        archiveBytes += c.length;
      });
      pipeline(res, createWriteStream(file)).then(
        () => resolvePromise({ ttfbMs, totalMs: performance.now() - t0, archiveBytes, consulIndex: String(res.headers['x-consul-index'] ?? '') }),
        reject,
      );
    });
    req.setTimeout(30 * 60_000, () => req.destroy(new Error('GET /v1/snapshot: no data for 30 min')));
    req.on('error', reject);
    req.end();
  });
}

/** Polls the leader's Stats.restore every 100 ms until stopped: when a restore was first and last seen in progress. */
function watchRestore(b: Bench, t0: number): { stop(): Promise<{ firstMs: number | null; lastMs: number | null }> } {
  let stopped = false;
  let firstMs: number | null = null;
  let lastMs: number | null = null;
  const loop = (async () => {
    while (!stopped) {
      const r = await httpCall('GET', `${b.url()}/v1/agent/self`, { agent: b.agent, timeoutMs: 10_000, maxBytes: 256 * 1024 });
      try {
        const inProgress = (JSON.parse(r.text) as { Stats?: { restore?: { in_progress?: string } } }).Stats?.restore?.in_progress === 'true';
        if (inProgress) {
          const at = performance.now() - t0;
          firstMs ??= at;
          lastMs = at;
        }
      } catch {
        /* no answer: nothing seen */
      }
      await sleep(100);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return { firstMs, lastMs };
    },
  };
}

async function restoreFrom(b: Bench, file: string): Promise<{ status: number; body: string; totalMs: number; stagedAfterMs: number | null; lastInProgressMs: number | null }> {
  const t0 = performance.now();
  const watch = watchRestore(b, t0);
  try {
    const r = await putSnapshot(b, file, t0);
    const seen = await watch.stop();
    return { ...r, stagedAfterMs: seen.firstMs, lastInProgressMs: seen.lastMs };
  } catch (err) {
    await watch.stop();
    throw err;
  }
}

async function putSnapshot(b: Bench, file: string, t0: number): Promise<{ status: number; body: string; totalMs: number }> {
  const u = new URL(`${b.url()}/v1/snapshot`);
  const size = statSync(file).size;
  return new Promise((resolvePromise, reject) => {
    const req = http.request(
      { host: u.hostname, port: u.port, method: 'PUT', path: u.pathname, agent: false, headers: { 'content-type': 'application/octet-stream', 'content-length': size } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body: text.slice(0, 1000), totalMs: performance.now() - t0 }));
        res.on('error', reject);
      },
    );
    req.setTimeout(30 * 60_000, () => req.destroy(new Error('PUT /v1/snapshot: no answer for 30 min')));
    req.on('error', reject);
    pipeline(createReadStream(file, { highWaterMark: 1024 * 1024 }), req).catch(reject);
  });
}

/** Keys under scale/ on the leader, counted per block of 100,000 (each answer stays a few MB). */
async function countKeys(b: Bench, n: number): Promise<number> {
  let total = 0;
  const blocks = Math.ceil(n / COUNT_BLOCK) + 1; // one more: nothing beyond N
  for (let i = 0; i < blocks; i++) {
    const prefix = `scale/${String(i).padStart(3, '0')}`;
    const r = await httpCall('GET', `${b.url()}/v1/kv/${prefix}?keys`, { agent: b.agent, timeoutMs: 120_000, maxBytes: 16 * 1024 * 1024 });
    if (r.status === 404) continue;
    if (!r.ok) throw new Error(`GET /v1/kv/${prefix}?keys: ${r.status} ${r.text.slice(0, 200)}`);
    total += (JSON.parse(r.text) as string[]).length;
  }
  return total;
}

/** The first and last key answer the value loaded (repeat) or a 100-byte value (random), on every server. */
async function checkValues(b: Bench, n: number): Promise<boolean> {
  const keys = [PROBE_KEY, `scale/${String(n - 1).padStart(8, '0')}`];
  for (const m of b.cluster.members) {
    for (const key of keys) {
      const r = await httpCall('GET', `${m.httpUrl}/v1/kv/${key}?stale&raw`, { agent: b.agent, timeoutMs: 10_000 });
      if (r.status !== 200) return false;
      if (randomValues ? r.text.length !== VALUE_SIZE : r.text !== 'x'.repeat(VALUE_SIZE)) return false;
    }
  }
  return true;
}

async function konsulctl(b: Bench, sub: string[]): Promise<{ code: number; wallMs: number; stdout: string; stderrTail: string }> {
  const addr = b.url().replace('http://', '');
  const t0 = performance.now();
  const r = await runCommand(process.execPath, [join(konsulRoot, 'bin', 'konsulctl.js'), '--http-addr', addr, 'snapshot', ...sub], { timeoutMs: 30 * 60_000 });
  return { code: r.code, wallMs: performance.now() - t0, stdout: r.stdout.trim(), stderrTail: r.stderr.trim().split('\n').slice(-3).join(' | ') };
}

// ---------- one key count ----------

async function runOne(n: number, largest: boolean, workDir: string): Promise<RunResult> {
  const file = join(workDir, `backup-${n}.snap`);
  const cliFile = join(workDir, `backup-${n}-konsulctl.snap`);
  const logTail: string[] = [];
  let partial: Partial<RunResult> = {};
  let b: Bench | null = null;
  try {
    // ---- the source cluster: load, save ----
    b = await startBench(`${n.toLocaleString('en-US')} keys, source`);
    const loaded = randomValues
      ? await loadRandom(b.url(), n, loadClients)
      : ((await runSharedTool('bulk-load-konsul.mjs', [b.url(), String(n), String(loadClients)], Math.max(300_000, n) + 60_000)).json as RunResult['load']);
    console.log(`# load: ${JSON.stringify(loaded)}`);
    if (!loaded || loaded.keys !== n) throw new Error(`the load stored ${loaded?.keys} of ${n} keys: ${loaded?.firstError}`);
    const settleMs = await settle(b, 300_000);
    if (settleMs === null) throw new Error('the servers did not apply the load within 300 s');
    const idleMs = await waitIdle(b, 120_000);
    const rssAfterLoadMb = Object.fromEntries(Object.entries(b.pids()).map(([name, pid]) => [name, mb(procStatusKb(pid, 'VmRSS'))]));
    console.log(`# all applied after ${(settleMs / 1000).toFixed(1)} s, idle after ${(idleMs / 1000).toFixed(1)} s more; RSS MB ${JSON.stringify(rssAfterLoadMb)}`);
    partial = { load: loaded, settleS: settleMs / 1000, idleS: idleMs / 1000, rssAfterLoadMb };

    const saved = await measured(b, () => saveTo(b!, file));
    const meta = await archiveMeta(file);
    const save: SaveResult = { ...saved.result, stateBytes: meta.Size, index: meta.Index, window: saved.window };
    partial = { ...partial, save };
    console.log(
      `# SAVE ${n}: first byte after ${fmt(save.ttfbMs / 1000, 2)} s, done after ${fmt(save.totalMs / 1000, 2)} s; archive ${fmt(save.archiveBytes / 1e6, 2)} MB, ` +
        `state ${fmt(save.stateBytes / 1e6, 1)} MB at index ${save.index} (X-Consul-Index ${save.consulIndex})`,
    );
    console.log(`#   ${windowLine(save.window)}`);

    let cliSave: CliResult | undefined;
    if (largest && withKonsulctl) {
      await waitIdle(b, 30_000);
      const r = await measured(b, () => konsulctl(b!, ['save', cliFile]));
      cliSave = { command: 'konsulctl snapshot save', ...r.result, window: r.window };
      partial = { ...partial, cliSave };
      console.log(`# konsulctl snapshot save: exit ${r.result.code} in ${fmt(r.result.wallMs / 1000, 2)} s: ${r.result.stdout.split('\n')[0]} (${r.result.stderrTail})`);
      console.log(`#   ${windowLine(r.window)}`);
      if (r.result.code !== 0) throw new Error(`konsulctl snapshot save exited ${r.result.code}: ${r.result.stdout} ${r.result.stderrTail}`);
    }
    logTail.push(...b.cluster.members.flatMap((m) => m.logTail()));
    await b.stop();
    b = null;

    // ---- a fresh cluster: restore ----
    b = await startBench(`${n.toLocaleString('en-US')} keys, restore target`);
    await waitIdle(b, 10_000);
    const restored = await measured(b, () => restoreFrom(b!, file));
    const seenS = (x: number | null) => (x === null ? 'never' : `${fmt(x / 1000, 2)} s`);
    console.log(
      `# RESTORE ${n}: ${restored.result.status} ${JSON.stringify(restored.result.body.slice(0, 200))} after ${fmt(restored.result.totalMs / 1000, 2)} s ` +
        `(Stats.restore in progress first seen after ${seenS(restored.result.stagedAfterMs)}, last after ${seenS(restored.result.lastInProgressMs)})`,
    );
    console.log(`#   ${windowLine(restored.window)}`);
    if (restored.result.status !== 200) throw new Error(`PUT /v1/snapshot answered ${restored.result.status}: ${restored.result.body}`);
    const allAppliedMs = await settle(b, 300_000);
    const keysCounted = await countKeys(b, n);
    const valuesOk = await checkValues(b, n);
    const restore: RestoreResult = { ...restored.result, allAppliedMs, keysCounted, valuesOk, window: restored.window };
    partial = { ...partial, restore };
    console.log(`# restored: every server applied ${allAppliedMs === null ? 'NOT within 300 s' : `after ${fmt(allAppliedMs / 1000, 2)} s more`}; keys counted ${keysCounted} (${keysCounted === n ? 'ok' : `WRONG, expected ${n}`}); values ${valuesOk ? 'ok' : 'WRONG'}`);
    logTail.push(...b.cluster.members.flatMap((m) => m.logTail()));
    await b.stop();
    b = null;

    // ---- konsulctl restore into another fresh cluster ----
    if (cliSave) {
      b = await startBench(`${n.toLocaleString('en-US')} keys, konsulctl restore target`);
      await waitIdle(b, 10_000);
      const r = await measured(b, () => konsulctl(b!, ['restore', cliFile]));
      console.log(`# konsulctl snapshot restore: exit ${r.result.code} in ${fmt(r.result.wallMs / 1000, 2)} s: ${r.result.stdout.split('\n')[0]} (${r.result.stderrTail})`);
      console.log(`#   ${windowLine(r.window)}`);
      await settle(b, 300_000);
      const counted = r.result.code === 0 ? await countKeys(b, n) : 0;
      console.log(`# konsulctl-restored keys counted ${counted} (${counted === n ? 'ok' : `WRONG, expected ${n}`})`);
      partial = { ...partial, cliRestore: { command: 'konsulctl snapshot restore', ...r.result, window: r.window, keysCounted: counted } };
      logTail.push(...b.cluster.members.flatMap((m) => m.logTail()));
      await b.stop();
      b = null;
    }
    return { keys: n, servers, values: args.values, ...partial, logTail };
  } catch (err) {
    console.log(`# ${n} keys FAILED: ${(err as Error).stack ?? String(err)}`);
    if (b) logTail.push(...b.cluster.members.flatMap((m) => m.logTail()));
    if (logTail.length > 0) console.log(`# last server lines:\n${logTail.slice(-30).map((l) => `#   ${l}`).join('\n')}`);
    return { keys: n, servers, values: args.values, ...partial, logTail, error: String((err as Error).message ?? err) };
  } finally {
    if (b) await b.stop();
    rmSync(file, { force: true });
    rmSync(cliFile, { force: true });
  }
}

// ---------- the tables ----------

function fmt(x: number | null | undefined, digits = 1): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  if (x === 0) return '0';
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString('en-US');
  if (Math.abs(x) >= 100) return x.toFixed(0);
  if (Math.abs(x) >= 10) return x.toFixed(digits);
  return x.toFixed(digits + 1);
}

const maxOf = (xs: number[]) => (xs.length ? Math.max(...xs) : NaN);
const lagCell = (w: WindowStats | undefined) => (w ? `${fmt(maxOf(Object.values(w.lag).map((l) => l.maxMs)))} / ${fmt(maxOf(Object.values(w.lag).map((l) => l.p99Ms)))}` : '–');
const rssCell = (w: WindowStats | undefined) => (w ? Object.values(w.peakRssMb).map((v) => fmt(v, 0)).join(' / ') : '–');

function tables(results: readonly RunResult[]): string[] {
  const rows = [
    '| keys | servers | save s | archive MB | save max lag ms / p99 | save peak RSS MB | restore s | restore max lag ms / p99 | restore peak RSS MB | probe max ms (save / restore) |',
    '|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const r of results) {
    rows.push(
      `| ${r.keys.toLocaleString('en-US')} | ${r.servers} | ${fmt(r.save ? r.save.totalMs / 1000 : null, 2)} | ${fmt(r.save ? r.save.archiveBytes / 1e6 : null, 2)} | ${lagCell(r.save?.window)} | ${rssCell(r.save?.window)} | ` +
        `${r.restore ? `${fmt(r.restore.totalMs / 1000, 2)}${r.restore.status === 200 && r.restore.keysCounted === r.keys && r.restore.valuesOk ? '' : ' (FAILED)'}` : r.error ? 'FAILED' : '–'} | ${lagCell(r.restore?.window)} | ${rssCell(r.restore?.window)} | ` +
        `${fmt(r.save?.window.probe.maxMs)} / ${fmt(r.restore?.window.probe.maxMs)} |`,
    );
  }
  rows.push('');
  rows.push('| keys | servers | load keys/s | RSS after load MB | save: first byte s | state MB | save: RSS before → peak (max sampled) MB | save: probe p99 ms / failures | restore: RSS before → peak MB | restore: all applied +s | restore: probe p99 ms / failures | keys restored | konsulctl save / restore s |');
  rows.push('|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
  const beforePeak = (w: WindowStats | undefined) =>
    w ? Object.keys(w.peakRssMb).map((n) => `${w.rssBeforeMb[n]} → ${w.peakRssMb[n]} (${w.rssMaxSampledMb[n]})`).join(' / ') : '–';
  for (const r of results) {
    const cli = r.cliSave || r.cliRestore ? `${fmt(r.cliSave ? r.cliSave.wallMs / 1000 : null, 2)} / ${fmt(r.cliRestore ? r.cliRestore.wallMs / 1000 : null, 2)}` : '–';
    rows.push(
      `| ${r.keys.toLocaleString('en-US')} | ${r.servers} | ${fmt(r.load?.keysPerSec)} | ${r.rssAfterLoadMb ? Object.values(r.rssAfterLoadMb).join(' / ') : '–'} | ${fmt(r.save ? r.save.ttfbMs / 1000 : null, 2)} | ${fmt(r.save ? r.save.stateBytes / 1e6 : null)} | ` +
        `${beforePeak(r.save?.window)} | ${r.save ? `${fmt(r.save.window.probe.p99Ms)} / ${r.save.window.probe.failures}` : '–'} | ${beforePeak(r.restore?.window)} | ` +
        `${fmt(r.restore?.allAppliedMs != null ? r.restore.allAppliedMs / 1000 : null, 2)} | ${r.restore ? `${fmt(r.restore.window.probe.p99Ms)} / ${r.restore.window.probe.failures}` : '–'} | ${r.restore ? r.restore.keysCounted.toLocaleString('en-US') : '–'} | ${cli} |`,
    );
  }
  return rows;
}

// ---------- main ----------

async function main(): Promise<void> {
  installSignalHandlers();
  installTimeLimit(timeLimitMin);
  const workDir = mkdtempSync(join(tmpdir(), 'konsul-backup-bench-'));
  const unregister = onCleanup('backup files', async () => rmSync(workDir, { recursive: true, force: true }));
  const started = new Date();
  const header = [
    `# backup: save and restore of ${keyCounts.map((k) => k.toLocaleString('en-US')).join(', ')} keys × ${VALUE_SIZE} B (${args.values} values), ${servers} server${servers > 1 ? 's' : ''} — ${started.toISOString()}`,
    `# machine: ${machineLine()}`,
    `# benchmark code: ${await gitDescribe()}; Konsul servers from ${konsulRoot}${konsulRoot === REPO_ROOT ? '' : ` (${(await runCommand('git', ['-C', konsulRoot, 'log', '-1', '--format=%h %s'])).stdout.trim()})`}`,
    `# flags: --keys ${keyCounts.join(',')} --servers ${servers} --values ${args.values} --load-clients ${loadClients} --konsulctl ${args.konsulctl} --time-limit ${timeLimitMin}${serverNodeArgs.length ? ` --server-node-args "${serverNodeArgs.join(' ')}"` : ''}`,
  ];
  for (const l of header) console.log(l);
  const results: RunResult[] = [];
  const largest = Math.max(...keyCounts);
  try {
    for (const n of keyCounts) {
      const t0 = performance.now();
      results.push(await runOne(n, n === largest, workDir));
      console.log(`# ${n.toLocaleString('en-US')} keys done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    }
  } finally {
    await cleanupAll();
    unregister();
  }
  printReport({ tool: 'backup', started, header, results, rows: tables(results), name: (r: (typeof results)[number]) => `${r.keys} keys`, jsonFile: args.json });
}

main().catch(async (err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  await cleanupAll();
  process.exit(1);
});
