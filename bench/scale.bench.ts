// State that scales (issue 11): a 3-server Konsul and a 3-member etcd 3.4 holding N keys, back to
// back on this machine.
//
//   npx tsx bench/scale.bench.ts [--keys 1000000] [--duration 40] [--short-duration 20]
//        [--targets konsul,etcd] [--put-concurrency 16,64] [--get-concurrency 16,64]
//        [--skip-load] [--skip-restart] [--konsul-root DIR] [--lag-probe on|off]
//        [--wrk-timeout 5] [--load-clients 8] [--time-limit 60] [--json FILE]
//
// For each target in turn (never both at once): a fresh cluster on 127.0.0.1 with its data in
// temp dirs — Konsul: three `konsul server` processes formed as in the README (--bootstrap-expect 3,
// --retry-join the two others, default, durable settings; bench/lib/cluster.ts), started from
// --konsul-root (default: this checkout); etcd: three members with ../shared/bench/etcd-cluster.sh's
// flags and layout (default settings, fsync on), spawned from here so that their PIDs are known at
// once (bench/lib/cluster.ts startEtcdCluster({ direct: true })), the script waiting for their
// health and stopping them. Then, every request to the leader found at the start of the phase:
//   1. load N keys scale/<8 digits> × 100 B through transactions of 64 (`/v1/txn`, `/v3/kv/txn`),
//      --load-clients clients (../shared/bench/bulk-load-*.mjs): keys/s; then until every member
//      has applied the leader's commit index;
//   2. wrk (Debian `wrk`, one thread, bench/wrk/scale.lua): PUT 100 B to bench/k<i % 1000> at each
//      --put-concurrency (the first for --duration s, the others --short-duration s), then default
//      reads of the same keys at each --get-concurrency (Konsul default = ReadIndex; etcd
//      linearizable): throughput, p50 / p99 / max, non-2xx answers, socket errors, client timeouts
//      (--wrk-timeout s; wrk leaves timed-out requests out of its latencies);
//   3. restart: kill -9 one follower holding the N keys, start it again on its data dir: time until
//      it listens, until it answers a `?stale` read of a loaded key (etcd: serializable range), and
//      until it has applied the commit index the leader had at the kill.
// For every phase: elections (highest term over the members before → after; members are also
// polled every 2 s for who leads), the servers' RSS at its end, their CPU, the longest event-loop
// stall of each Konsul server, and Konsul's snapshot figures (`Stats.snapshot` of
// /v1/agent/self) when the servers report them.
//
// Event-loop lag: with --lag-probe on (default) every Konsul server runs bench/lib/lag-probe.mjs
// (node --import), which writes its loop's lag every second to a file, so each phase gets every
// stall that overlapped it (a stall that straddles two phases counts in both), the same way for any
// --konsul-root; the JSON keeps every line. Servers that report `Stats.runtime.event_loop_lag_*`
// themselves (server/event-loop-lag.ts) are read too, every 2 s, and shown as "Stats ≥ x": a lower
// bound, since their window (the last 5–10 s) only counts once it lies within the phase.
//
// Prints progress lines (#), then a markdown table with Konsul/etcd ratios, then one JSON line
// (also written to --json FILE). Everything started here is stopped by PID, also on error and on
// Ctrl-C; the whole run is bounded by --time-limit minutes. Run it alone on the machine:
//   flock /tmp/konsul-bench.lock npx tsx bench/scale.bench.ts
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ETCD_CLUSTER_URLS, ETCD_MEMBERS, httpCall, pidAlive, startEtcdCluster, startKonsulCluster, type EtcdCluster, type KonsulCluster } from './lib/cluster.ts';
import { cleanupAll, gitDescribe, installSignalHandlers, installTimeLimit, machineLine, printReport, procCpuMs, procRssMb, REPO_ROOT, runCommand, runSharedTool, SHARED_BENCH, sleep } from './lib/servers.ts';

type Target = 'konsul' | 'etcd';

const { values: args } = parseArgs({
  options: {
    keys: { type: 'string', default: '1000000' },
    duration: { type: 'string', default: '40' },
    'short-duration': { type: 'string', default: '20' },
    targets: { type: 'string', default: 'konsul,etcd' },
    'put-concurrency': { type: 'string', default: '16,64' },
    'get-concurrency': { type: 'string', default: '16,64' },
    'skip-load': { type: 'boolean', default: false },
    'skip-restart': { type: 'boolean', default: false },
    'konsul-root': { type: 'string', default: REPO_ROOT },
    'lag-probe': { type: 'string', default: 'on' },
    'wrk-timeout': { type: 'string', default: '5' },
    'load-clients': { type: 'string', default: '8' },
    'time-limit': { type: 'string', default: '60' },
    json: { type: 'string' },
  },
  strict: true,
});

const list = (s: string) => s.split(',').map((x) => x.trim()).filter((x) => x !== '');
const keys = Number.parseInt(args.keys, 10);
const duration = Number(args.duration);
const shortDuration = Number(args['short-duration']);
const targets = list(args.targets) as Target[];
const putConcurrencies = list(args['put-concurrency']).map(Number);
const getConcurrencies = list(args['get-concurrency']).map(Number);
const skipLoad = args['skip-load'];
const skipRestart = args['skip-restart'];
const konsulRoot = resolve(args['konsul-root']);
const lagProbe = args['lag-probe'] === 'on';
const wrkTimeoutS = Number(args['wrk-timeout']);
const loadClients = Number.parseInt(args['load-clients'], 10);
const timeLimitMin = Number(args['time-limit']);
const POLL_MS = 2000;
const VALUE_SIZE = 100; // what ../shared/bench/bulk-load-*.mjs write
const WRK_SCRIPT = join(REPO_ROOT, 'bench', 'wrk', 'scale.lua');
const LAG_PROBE = join(REPO_ROOT, 'bench', 'lib', 'lag-probe.mjs');

if (!(keys >= 0)) throw new Error('--keys must be a number ≥ 0');
if (!(duration > 0 && duration <= 600 && shortDuration > 0 && shortDuration <= 600)) throw new Error('--duration and --short-duration must be in (0, 600] s');
if (targets.length === 0 || targets.some((x) => x !== 'konsul' && x !== 'etcd')) throw new Error('--targets: konsul, etcd or both');
if ([...putConcurrencies, ...getConcurrencies].some((c) => !(Number.isInteger(c) && c >= 1 && c <= 1024))) throw new Error('concurrencies must be 1..1024');
if (!['on', 'off'].includes(args['lag-probe'])) throw new Error('--lag-probe on|off');
if (!existsSync(join(konsulRoot, 'bin', 'konsul.js'))) throw new Error(`--konsul-root ${konsulRoot}: no bin/konsul.js`);
if (!(wrkTimeoutS > 0 && loadClients >= 1 && timeLimitMin > 0)) throw new Error('bad --wrk-timeout, --load-clients or --time-limit');

// ---------- what is measured ----------

interface WrkResult {
  readonly requests: number;
  readonly duration_us: number;
  readonly connect: number;
  readonly read: number;
  readonly write: number;
  readonly status: number;
  readonly timeout: number;
  readonly p50_us: number;
  readonly p90_us: number;
  readonly p99_us: number;
  readonly max_us: number;
  readonly mean_us: number;
  readonly codes: Record<string, number>;
  readonly sample: string;
}

interface LoadResult {
  readonly keys: number;
  readonly errors: number;
  readonly firstError: string;
  readonly secs: number;
  readonly keysPerSec: number;
}

/** One member's answer to a poll. */
interface MemberView {
  readonly name: string;
  readonly ok: boolean;
  readonly term: number;
  readonly leader: boolean;
  readonly applied: number;
  readonly commit: number;
  /** Konsul with its own lag monitor: Stats.runtime window max, ms, and the span it covers. */
  readonly lagWindowMaxMs: number | null;
  readonly lagWindowSpanMs: number | null;
  readonly lagSinceStartMaxMs: number | null;
  /** Konsul: Stats.runtime.uptime_s. */
  readonly uptimeS: number | null;
  readonly snapshot: Record<string, string> | null;
}

interface PhaseResult {
  readonly name: string;
  readonly kind: 'load' | 'put' | 'get' | 'settle' | 'restart';
  readonly concurrency: number;
  readonly startedAt: string;
  readonly wallS: number;
  readonly leaderAtStart: string;
  readonly termBefore: number;
  readonly termAfter: number;
  /** Leaders seen by the 2 s polls, consecutive duplicates removed ('' = a poll with none). */
  readonly leadersSeen: string[];
  readonly pollsWithoutLeader: number;
  readonly polls: number;
  readonly rssMb: Record<string, number>;
  readonly serversCpuPct: number;
  /** Longest stall per Konsul server that overlapped the phase (lag probe), ms. */
  readonly lagMaxMs: Record<string, number> | null;
  /** Every stall of 200 ms or more that overlapped the phase (lag probe): s from the phase's start. */
  readonly stalls: { member: string; fromS: number; ms: number }[] | null;
  /** The phase's span (epoch ms) and every PID each member had in it, for the lag probe's lines. */
  readonly span: { fromMs: number; toMs: number; pids: Record<string, number[]> };
  /** Highest Stats.runtime.event_loop_lag_max_ms per Konsul server seen by the polls, ms. */
  readonly statsLagMaxMs: Record<string, number> | null;
  readonly snapshot: Record<string, Record<string, string>> | null;
  readonly dataMb: Record<string, number> | null;
  readonly load?: LoadResult;
  readonly wrk?: WrkResult;
  readonly restart?: RestartResult;
  readonly settleS?: number;
  readonly note?: string;
}

interface RestartResult {
  readonly member: string;
  readonly rssBeforeMb: number;
  readonly rssAfterMb: number;
  /** ms from the start of the new process (etcd: of the restart command). */
  readonly listenMs: number | null;
  readonly firstReadMs: number | null;
  readonly caughtUpMs: number | null;
  readonly targetIndex: number;
  readonly readFailures: number;
  /** How many times the member had to be started (more than 1: it exited before serving). */
  readonly starts: number;
}

interface TargetResult {
  readonly target: Target;
  /** The lag probe's lines per server process (PID): [epoch ms, max lag ms of the slice]. */
  readonly lagLines?: Record<string, [number, number][]>;
  readonly version: string;
  readonly members: { name: string; url: string; pid: number }[];
  readonly startS: number;
  readonly phases: PhaseResult[];
  readonly logLines: string[];
  readonly error?: string;
}

// ---------- the two systems behind one face ----------

interface System {
  readonly target: Target;
  readonly version: string;
  names(): string[];
  url(name: string): string;
  pid(name: string): number;
  dataDir(name: string): string;
  poll(): Promise<MemberView[]>;
  /** A read of `key` on `name` that does not need the leader. */
  localRead(name: string, key: string): Promise<boolean>;
  /** Answers HTTP at all. */
  listening(name: string): Promise<boolean>;
  kill9(name: string): Promise<void>;
  /** Starts the member again; resolves when the start command returned (Konsul: when it listens). */
  restart(name: string): Promise<void>;
  /** The member's process is running. */
  alive(name: string): boolean;
  loadTool: string;
  /** Where the lag probe writes (Konsul), or null. */
  readonly lagDir: string | null;
  logLines(): string[];
  stop(): Promise<void>;
}

const pollAgent = new http.Agent({ keepAlive: true, maxSockets: 8 });

function num(s: string | undefined): number {
  const n = Number(s);
  return Number.isFinite(n) ? n : 0;
}

async function konsulSystem(): Promise<System> {
  const lagDir = mkdtempSync(join(tmpdir(), 'konsul-scale-lag-'));
  const cluster: KonsulCluster = await startKonsulCluster({
    root: konsulRoot,
    nodeArgs: lagProbe ? ['--import', pathToFileURL(LAG_PROBE).href] : [],
    env: { ...process.env, KONSUL_BENCH_LAG_DIR: lagDir },
    // A server restarted on a large data dir replays it before it listens.
    startTimeoutMs: 180_000,
  });
  const version = (await runCommand('git', ['-C', konsulRoot, 'rev-parse', '--short', 'HEAD'])).stdout.trim();
  const member = (name: string) => cluster.member(name);
  return {
    target: 'konsul',
    version: `konsul ${version} (${konsulRoot})`,
    names: () => cluster.members.map((m) => m.name),
    url: (name) => member(name).httpUrl,
    pid: (name) => member(name).pid(),
    dataDir: (name) => member(name).dataDir,
    async poll() {
      return Promise.all(
        cluster.members.map(async (m): Promise<MemberView> => {
          const r = m.alive() ? await httpCall('GET', `${m.httpUrl}/v1/agent/self`, { agent: pollAgent, timeoutMs: 4000, maxBytes: 64 * 1024 }) : null;
          if (!r?.ok) return { name: m.name, ok: false, term: 0, leader: false, applied: 0, commit: 0, lagWindowMaxMs: null, lagWindowSpanMs: null, lagSinceStartMaxMs: null, uptimeS: null, snapshot: null };
          let stats: Record<string, Record<string, string> | undefined> = {};
          try {
            stats = (JSON.parse(r.text) as { Stats?: typeof stats }).Stats ?? {};
          } catch {
            /* not JSON: counted as an answer without figures */
          }
          const raft = stats.raft ?? {};
          const runtime = stats.runtime;
          return {
            name: m.name,
            ok: true,
            term: num(raft.term),
            leader: raft.state === 'Leader',
            applied: num(raft.applied_index),
            commit: num(raft.commit_index),
            lagWindowMaxMs: runtime?.event_loop_lag_max_ms !== undefined ? num(runtime.event_loop_lag_max_ms) : null,
            lagWindowSpanMs: runtime?.event_loop_lag_window_ms !== undefined ? num(runtime.event_loop_lag_window_ms) : null,
            lagSinceStartMaxMs: runtime?.event_loop_lag_since_start_max_ms !== undefined ? num(runtime.event_loop_lag_since_start_max_ms) : null,
            uptimeS: runtime?.uptime_s !== undefined ? num(runtime.uptime_s) : null,
            snapshot: stats.snapshot ?? null,
          };
        }),
      );
    },
    async localRead(name, key) {
      const r = await httpCall('GET', `${member(name).httpUrl}/v1/kv/${key}?stale`, { timeoutMs: 2000 });
      return r.status === 200 && r.text.includes(`"Key":"${key}"`);
    },
    async listening(name) {
      const r = await httpCall('GET', `${member(name).httpUrl}/v1/status/leader`, { timeoutMs: 1000 });
      return r.status !== 0;
    },
    async kill9(name) {
      cluster.kill9(name);
      const deadline = performance.now() + 10_000;
      while (member(name).alive() && performance.now() < deadline) await sleep(5);
    },
    restart: (name) => cluster.restart(name),
    alive: (name) => member(name).alive(),
    loadTool: 'bulk-load-konsul.mjs',
    lagDir: lagProbe ? lagDir : null,
    logLines: () => cluster.members.flatMap((m) => m.logTail()),
    async stop() {
      await cluster.stop();
      rmSync(lagDir, { recursive: true, force: true });
    },
  };
}

async function etcdSystem(): Promise<System> {
  // Members spawned directly with etcd-cluster.sh's flags and layout (see startEtcdCluster).
  const cluster: EtcdCluster = await startEtcdCluster({ direct: true });
  const script = join(SHARED_BENCH, 'etcd-cluster.sh');
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const idToName = new Map<string, string>();
  const url = (name: string) => ETCD_CLUSTER_URLS[name as (typeof ETCD_MEMBERS)[number]];
  const json = { 'content-type': 'application/json' };
  return {
    target: 'etcd',
    version: `etcd ${cluster.version}`,
    names: () => [...ETCD_MEMBERS],
    url,
    pid: (name) => cluster.pid(name),
    dataDir: (name) => join(cluster.root, name, 'data'),
    async poll() {
      return Promise.all(
        ETCD_MEMBERS.map(async (name): Promise<MemberView> => {
          const r = await httpCall('POST', `${url(name)}/v3/maintenance/status`, { body: '{}', agent: pollAgent, timeoutMs: 4000, headers: json });
          const field = (f: string) => new RegExp(`"${f}":"?(\\d+)`).exec(r.text)?.[1];
          const id = field('member_id');
          if (!r.ok || id === undefined) return { name, ok: false, term: 0, leader: false, applied: 0, commit: 0, lagWindowMaxMs: null, lagWindowSpanMs: null, lagSinceStartMaxMs: null, uptimeS: null, snapshot: null };
          idToName.set(id, name);
          return {
            name,
            ok: true,
            term: num(field('raftTerm') ?? field('raft_term')),
            leader: field('leader') === id,
            applied: num(field('raftAppliedIndex') ?? field('raftIndex')),
            commit: num(field('raftIndex')),
            lagWindowMaxMs: null,
            lagWindowSpanMs: null,
            lagSinceStartMaxMs: null,
            uptimeS: null,
            snapshot: null,
          };
        }),
      );
    },
    async localRead(name, key) {
      const r = await httpCall('POST', `${url(name)}/v3/kv/range`, { body: JSON.stringify({ key: b64(key), serializable: true }), timeoutMs: 2000, headers: json });
      return r.ok && r.text.includes(`"key":"${b64(key)}"`);
    },
    async listening(name) {
      const r = await httpCall('GET', `${url(name)}/version`, { timeoutMs: 1000 });
      return r.status !== 0;
    },
    async kill9(name) {
      const pid = cluster.pid(name);
      const r = await runCommand('bash', [script, 'kill9', name.slice(1)], { env: cluster.env, timeoutMs: 10_000 });
      if (r.code !== 0) throw new Error(`etcd-cluster.sh kill9 ${name}: ${r.stderr}`);
      const deadline = performance.now() + 10_000;
      while (pidAlive(pid) && performance.now() < deadline) await sleep(5);
      // A killed Go process shows as a zombie while its other threads still exit and hold its sockets:
      // wait until its ports can be bound again, or the restarted member fails with EADDRINUSE.
      const ports = Object.values(ETCD_PORTS_OF(name));
      while (performance.now() < deadline && !(await portsFree(ports))) await sleep(20);
    },
    async restart(name) {
      // As etcd-cluster.sh's `restart N`, spawned directly (its PID check races setsid's exec under load).
      cluster.startMember(name);
    },
    alive: (name) => pidAlive(cluster.pid(name)),
    loadTool: 'bulk-load-etcd.mjs',
    lagDir: null,
    logLines: () => [],
    stop: () => cluster.stop(),
  };
}

// ---------- helpers ----------

const ETCD_PORTS_OF = (name: string): { client: number; peer: number } => {
  const client = Number(new URL(ETCD_CLUSTER_URLS[name as (typeof ETCD_MEMBERS)[number]]).port);
  return { client, peer: client + 1 };
};

/** Every port can be bound on 127.0.0.1 right now. */
async function portsFree(ports: readonly number[]): Promise<boolean> {
  for (const port of ports) {
    const free = await new Promise<boolean>((res) => {
      const s = net.createServer();
      s.once('error', () => res(false));
      s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
    });
    if (!free) return false;
  }
  return true;
}

function leaderOf(views: readonly MemberView[]): string {
  return views.find((v) => v.ok && v.leader)?.name ?? '';
}

const maxTerm = (views: readonly MemberView[]) => Math.max(0, ...views.map((v) => v.term));

async function waitForLeader(sys: System, timeoutMs = 60_000): Promise<string> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const leader = leaderOf(await sys.poll());
    if (leader) return leader;
    await sleep(200);
  }
  throw new Error(`${sys.target}: no leader within ${timeoutMs} ms`);
}

function rssOf(sys: System): Record<string, number> {
  return Object.fromEntries(sys.names().map((n) => [n, Math.round(procRssMb(sys.pid(n)))]));
}

/** CPU time of each member's current process, ms, by member and PID. */
function cpuOf(sys: System): Map<string, { pid: number; ms: number }> {
  return new Map(sys.names().map((n) => [n, { pid: sys.pid(n), ms: procCpuMs(sys.pid(n)) }]));
}

/** CPU used between two cpuOf() readings, ms (a member restarted in between: its new process's). */
function cpuBetween(a: Map<string, { pid: number; ms: number }>, b: Map<string, { pid: number; ms: number }>): number {
  let total = 0;
  for (const [name, now] of b) {
    const then = a.get(name);
    total += then && then.pid === now.pid ? now.ms - then.ms : now.ms;
  }
  return total;
}

function dirMb(dir: string): number {
  let bytes = 0;
  const walk = (d: string) => {
    let entries: string[];
    try {
      entries = readdirSync(d);
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(d, e);
      try {
        const st = statSync(p);
        if (st.isDirectory()) walk(p);
        else bytes += st.size;
      } catch {
        /* removed meanwhile (compaction) */
      }
    }
  };
  walk(dir);
  return Math.round(bytes / 1e5) / 10;
}

/** The lag probe's lines of one process: [epoch ms written, max lag ms of the slice since the line before]. */
function probeLines(dir: string, pid: number): [number, number][] {
  let text = '';
  try {
    text = readFileSync(join(dir, `lag-${pid}.log`), 'utf8');
  } catch {
    return [];
  }
  const out: [number, number][] = [];
  for (const line of text.split('\n')) {
    const [ts, lag] = line.split(' ').map(Number);
    if (ts !== undefined && lag !== undefined && Number.isFinite(ts) && Number.isFinite(lag)) out.push([ts, lag]);
  }
  return out;
}

/**
 * The longest stall per Konsul server that overlapped [fromMs, toMs] (epoch ms), and every stall of
 * 200 ms or more among them, from the lag probe's files; `pids` lists every process a member had in
 * the phase (a restarted one has two). A line's stall lies in its slice (from the line before to
 * it) and ends when the line is written (the probe runs as soon as the loop is free again), so it
 * spans [written - lag, written]: it counts for every phase that interval overlaps. A stall that
 * straddles two phases counts in both.
 */
function lagIn(sys: System, pids: Record<string, number[]>, fromMs: number, toMs: number): { max: Record<string, number>; stalls: { member: string; fromS: number; ms: number }[] } | null {
  const dir = sys.lagDir;
  if (!dir) return null;
  const max: Record<string, number> = {};
  const stalls: { member: string; fromS: number; ms: number }[] = [];
  for (const [name, list] of Object.entries(pids)) {
    let m = 0;
    for (const pid of new Set(list)) {
      for (const [ts, lag] of probeLines(dir, pid)) {
        if (ts - lag > toMs || ts < fromMs) continue;
        m = Math.max(m, lag);
        if (lag >= 200) stalls.push({ member: name, fromS: Math.round((ts - lag - fromMs) / 100) / 10, ms: lag });
      }
    }
    max[name] = m;
  }
  stalls.sort((a, b) => a.fromS - b.fromS);
  return { max, stalls };
}

/**
 * Polls the members every 2 s while a phase runs: leaders seen, and Konsul's own lag figures. A
 * server's stall counts for the phase when the window it was reported in lies within the phase, or
 * when it raised the server's since-start maximum during the phase: a lower bound of the phase's
 * longest stall (a stall in its first seconds that is not a new maximum is missed).
 */
class Watch {
  readonly leaders: string[] = [];
  pollsWithoutLeader = 0;
  polls = 0;
  readonly statsLag: Record<string, number> = {};
  sawStatsLag = false;
  private stopped = false;
  private readonly loop: Promise<void>;
  private readonly startedMs = performance.now();
  private readonly sinceStartBefore = new Map<string, number>();

  constructor(
    private readonly sys: System,
    before: readonly MemberView[],
  ) {
    for (const v of before) if (v.lagSinceStartMaxMs !== null) this.sinceStartBefore.set(v.name, v.lagSinceStartMaxMs);
    this.observe(before, false);
    this.loop = this.run();
  }

  observe(views: readonly MemberView[], inPhase = true): void {
    this.polls++;
    const leader = leaderOf(views);
    if (!leader) this.pollsWithoutLeader++;
    if (this.leaders[this.leaders.length - 1] !== leader) this.leaders.push(leader);
    if (!inPhase) return;
    const elapsed = performance.now() - this.startedMs;
    for (const v of views) {
      if (v.lagWindowMaxMs === null) continue;
      this.sawStatsLag = true;
      const seen: number[] = [];
      if (v.lagWindowSpanMs !== null && v.lagWindowSpanMs <= elapsed) seen.push(v.lagWindowMaxMs);
      // A server (re)started in the phase: all its life counts; otherwise a raised since-start maximum.
      const startedInPhase = v.uptimeS !== null && v.uptimeS * 1000 < elapsed - 1000;
      const before = startedInPhase ? 0 : this.sinceStartBefore.get(v.name);
      if (v.lagSinceStartMaxMs !== null && before !== undefined && v.lagSinceStartMaxMs > before) seen.push(v.lagSinceStartMaxMs);
      if (seen.length > 0) this.statsLag[v.name] = Math.max(this.statsLag[v.name] ?? 0, ...seen);
    }
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const t0 = performance.now();
      this.observe(await this.sys.poll());
      const wait = POLL_MS - (performance.now() - t0);
      let waited = 0;
      while (!this.stopped && waited < wait) {
        await sleep(Math.min(100, wait - waited));
        waited += 100;
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

/** Runs one phase with the bookkeeping every phase has. */
async function phase(
  sys: System,
  name: string,
  kind: PhaseResult['kind'],
  concurrency: number,
  body: (leader: string) => Promise<Partial<PhaseResult>>,
): Promise<PhaseResult> {
  const before = await sys.poll();
  const leaderAtStart = leaderOf(before) || (await waitForLeader(sys));
  const pids = Object.fromEntries(sys.names().map((n) => [n, sys.pid(n)]));
  const startedAt = new Date();
  const cpu0 = cpuOf(sys);
  const t0 = performance.now();
  const watch = new Watch(sys, before);
  let extra: Partial<PhaseResult>;
  try {
    extra = await body(leaderAtStart);
  } finally {
    await watch.stop();
  }
  const wallMs = performance.now() - t0;
  const endedAtMs = Date.now();
  const cpuPct = (100 * cpuBetween(cpu0, cpuOf(sys))) / wallMs;
  await sleep(2000); // the lag probe's slice that ends the phase
  const after = await sys.poll();
  watch.observe(after);
  const snapshots = Object.fromEntries(after.filter((v) => v.snapshot).map((v) => [v.name, v.snapshot!]));
  // A restarted member has a new PID: its stalls are looked up under both. (Looked up again when the
  // target's run ends, for stalls still going on now: see runTarget.)
  const span = { fromMs: startedAt.getTime(), toMs: endedAtMs, pids: Object.fromEntries(sys.names().map((n) => [n, [...new Set([pids[n] ?? 0, sys.pid(n)])]])) };
  const lag = lagIn(sys, span.pids, span.fromMs, span.toMs);
  const result: PhaseResult = {
    name,
    kind,
    concurrency,
    startedAt: startedAt.toISOString(),
    wallS: wallMs / 1000,
    leaderAtStart,
    termBefore: maxTerm(before),
    termAfter: maxTerm(after),
    leadersSeen: watch.leaders,
    pollsWithoutLeader: watch.pollsWithoutLeader,
    polls: watch.polls,
    rssMb: rssOf(sys),
    serversCpuPct: cpuPct,
    lagMaxMs: lag?.max ?? null,
    stalls: lag?.stalls ?? null,
    span,
    statsLagMaxMs: watch.sawStatsLag ? { ...watch.statsLag } : null,
    snapshot: Object.keys(snapshots).length > 0 ? snapshots : null,
    dataMb: null,
    ...extra,
  };
  const lagText = (r: Record<string, number> | null) => (r ? Object.entries(r).map(([n, v]) => `${n} ${Math.round(v)}`).join(' / ') : '–');
  console.log(
    `# ${sys.target} ${name}: ${(wallMs / 1000).toFixed(1)} s, leader ${leaderAtStart}, term ${result.termBefore} → ${result.termAfter}, leaders seen ${JSON.stringify(result.leadersSeen)}, ` +
      `RSS MB ${JSON.stringify(result.rssMb)}, servers' CPU ${cpuPct.toFixed(0)}%, max lag ms (probe) ${lagText(result.lagMaxMs)}, (Stats) ${lagText(result.statsLagMaxMs)}` +
      (result.snapshot ? `, snapshot ${JSON.stringify(result.snapshot)}` : ''),
  );
  if (result.stalls && result.stalls.length > 0) {
    console.log(`#   stalls ≥ 200 ms (s from the phase's start: member ms): ${result.stalls.map((x) => `${x.fromS} ${x.member} ${Math.round(x.ms)}`).join(', ')}`);
  }
  return result;
}

async function runWrk(sys: System, url: string, op: 'put' | 'get', c: number, seconds: number): Promise<WrkResult> {
  const env = { ...process.env, SCALE_TARGET: sys.target, SCALE_OP: op, SCALE_KEYS: '1000', SCALE_VALUE_SIZE: String(VALUE_SIZE) };
  const r = await runCommand('wrk', ['-t1', `-c${c}`, `-d${seconds}s`, '--timeout', `${wrkTimeoutS}s`, '--latency', '-s', WRK_SCRIPT, url], {
    env,
    timeoutMs: (seconds + wrkTimeoutS + 60) * 1000,
  });
  const line = r.stdout.split('\n').find((l) => l.startsWith('SCALEJSON '));
  if (!line) throw new Error(`wrk exited ${r.code} without a result:\n${r.stdout}\n${r.stderr}`);
  return JSON.parse(line.slice('SCALEJSON '.length)) as WrkResult;
}

/** Waits until every member has applied what the leader had committed when asked; seconds, or null. */
async function settle(sys: System, timeoutMs: number): Promise<number | null> {
  const t0 = performance.now();
  const views = await sys.poll();
  const target = Math.max(0, ...views.map((v) => v.commit));
  while (performance.now() - t0 < timeoutMs) {
    const now = await sys.poll();
    if (now.every((v) => v.ok && v.applied >= target)) return (performance.now() - t0) / 1000;
    await sleep(250);
  }
  return null;
}

async function restartFollower(sys: System, key: string): Promise<RestartResult> {
  const views = await sys.poll();
  const leader = leaderOf(views) || (await waitForLeader(sys));
  const victim = sys.names().find((n) => n !== leader)!;
  const targetIndex = Math.max(0, ...views.map((v) => v.commit));
  const rssBeforeMb = Math.round(procRssMb(sys.pid(victim)));
  await sys.kill9(victim);
  console.log(`# ${sys.target} restart: killed ${victim} (kill -9, RSS ${rssBeforeMb} MB); starting it again on its data dir`);
  const t0 = performance.now();
  let listenMs: number | null = null;
  let firstReadMs: number | null = null;
  let caughtUpMs: number | null = null;
  let readFailures = 0;
  const limitMs = 180_000;
  // Konsul's restart resolves when it listens; etcd's when its process runs: both then poll.
  const start: { done: boolean; error: Error | null } = { done: false, error: null };
  const restarting = sys.restart(victim).then(
    () => {
      start.done = true;
    },
    (err: unknown) => {
      start.done = true;
      start.error = err as Error;
    },
  );
  let starts = 1;
  while (performance.now() - t0 < limitMs) {
    if (start.error) throw start.error;
    if (start.done && listenMs === null && !sys.alive(victim)) {
      // It exited before serving (etcd: EADDRINUSE if a port was still held): start it again.
      if (starts >= 3) throw new Error(`${sys.target} ${victim} exited ${starts} times before serving after its restart`);
      starts++;
      console.log(`# ${sys.target} restart: ${victim} exited before serving; starting it again (start ${starts})`);
      await sys.restart(victim);
      continue;
    }
    if (start.done) {
      if (listenMs === null && (await sys.listening(victim))) listenMs = performance.now() - t0;
      if (listenMs !== null && firstReadMs === null) {
        if (await sys.localRead(victim, key)) firstReadMs = performance.now() - t0;
        else readFailures++;
      }
      if (firstReadMs !== null) {
        const v = (await sys.poll()).find((x) => x.name === victim);
        if (v?.ok && v.applied >= targetIndex) {
          caughtUpMs = performance.now() - t0;
          break;
        }
      }
    }
    await sleep(20);
  }
  await restarting;
  const rssAfterMb = Math.round(procRssMb(sys.pid(victim)));
  const fmtMs = (x: number | null) => (x === null ? 'never' : `${(x / 1000).toFixed(2)} s`);
  console.log(
    `# ${sys.target} restart of ${victim}: listening after ${fmtMs(listenMs)}, first ${sys.target === 'konsul' ? '?stale' : 'serializable'} read of ${key} after ${fmtMs(firstReadMs)}, ` +
      `applied index ${targetIndex} after ${fmtMs(caughtUpMs)}; RSS ${rssBeforeMb} → ${rssAfterMb} MB`,
  );
  return { member: victim, rssBeforeMb, rssAfterMb, listenMs, firstReadMs, caughtUpMs, targetIndex, readFailures, starts };
}

// ---------- one target ----------

/** The phases with their stalls looked up again now (a stall that outlasted its phase is complete now). */
function withFinalLag(sys: System, phases: readonly PhaseResult[]): PhaseResult[] {
  return phases.map((p) => {
    const lag = lagIn(sys, p.span.pids, p.span.fromMs, p.span.toMs);
    return lag ? { ...p, lagMaxMs: lag.max, stalls: lag.stalls } : p;
  });
}

function lagLinesOf(sys: System, phases: readonly PhaseResult[]): { lagLines?: Record<string, [number, number][]> } {
  const dir = sys.lagDir;
  if (!dir) return {};
  const pids = new Set(phases.flatMap((p) => Object.values(p.span.pids).flat()));
  for (const n of sys.names()) pids.add(sys.pid(n));
  return { lagLines: Object.fromEntries([...pids].map((pid) => [String(pid), probeLines(dir, pid)])) };
}

async function runTarget(target: Target): Promise<TargetResult> {
  const t0 = performance.now();
  let sys: System;
  try {
    sys = target === 'konsul' ? await konsulSystem() : await etcdSystem();
  } catch (err) {
    console.log(`# ${target} FAILED to start: ${(err as Error).stack ?? String(err)}`);
    return { target, version: '?', members: [], startS: 0, phases: [], logLines: [], error: String((err as Error).message ?? err) };
  }
  const phases: PhaseResult[] = [];
  const members = () => sys.names().map((n) => ({ name: n, url: sys.url(n), pid: sys.pid(n) }));
  try {
    const leader = await waitForLeader(sys);
    const startS = (performance.now() - t0) / 1000;
    console.log(`# ${sys.version}: ${members().map((m) => `${m.name} pid ${m.pid} ${m.url}`).join('; ')}; leader ${leader} after ${startS.toFixed(1)} s`);
    const dataMb = () => Object.fromEntries(sys.names().map((n) => [n, dirMb(sys.dataDir(n))]));

    if (!skipLoad && keys > 0) {
      phases.push(
        await phase(sys, `load ${keys.toLocaleString('en-US')} keys`, 'load', loadClients, async (leaderName) => {
          const timeoutMs = Math.max(300_000, keys) + 60_000;
          const { json } = await runSharedTool(sys.loadTool, [sys.url(leaderName), String(keys), String(loadClients)], timeoutMs);
          const load = json as LoadResult;
          console.log(`# ${sys.target} load: ${JSON.stringify(load)}`);
          return { load };
        }),
      );
      phases.push(
        await phase(sys, 'catch-up after load', 'settle', 0, async () => {
          const s = await settle(sys, 120_000);
          return { settleS: s ?? undefined, dataMb: dataMb(), note: s === null ? 'members not caught up within 120 s' : '' };
        }),
      );
    }

    const ops: { op: 'put' | 'get'; c: number; seconds: number }[] = [
      ...putConcurrencies.map((c, i) => ({ op: 'put' as const, c, seconds: i === 0 ? duration : shortDuration })),
      ...getConcurrencies.map((c) => ({ op: 'get' as const, c, seconds: shortDuration })),
    ];
    for (const { op, c, seconds } of ops) {
      phases.push(
        await phase(sys, `${op === 'put' ? 'puts' : 'reads'} c=${c} ${seconds} s`, op, c, async (leaderName) => {
          const wrk = await runWrk(sys, sys.url(leaderName), op, c, seconds);
          const rate = wrk.requests / (wrk.duration_us / 1e6);
          console.log(
            `# ${sys.target} ${op} c=${c}: ${Math.round(rate)}/s, p50 ${(wrk.p50_us / 1000).toFixed(2)} p99 ${(wrk.p99_us / 1000).toFixed(2)} max ${(wrk.max_us / 1000).toFixed(1)} ms, ` +
              `codes ${JSON.stringify(wrk.codes)}, socket errors ${wrk.connect + wrk.read + wrk.write}, timeouts ${wrk.timeout}${wrk.sample ? `, first non-2xx: ${wrk.sample}` : ''}`,
          );
          return { wrk, ...(op === 'put' ? { dataMb: dataMb() } : {}) };
        }),
      );
    }

    if (!skipRestart) {
      const key = !skipLoad && keys > 0 ? `scale/${String(0).padStart(8, '0')}` : 'bench/k1';
      phases.push(await phase(sys, 'restart a follower (kill -9)', 'restart', 0, async () => ({ restart: await restartFollower(sys, key) })));
    }
    return { target, version: sys.version, members: members(), startS, phases: withFinalLag(sys, phases), logLines: sys.logLines(), ...lagLinesOf(sys, phases) };
  } catch (err) {
    console.log(`# ${target} FAILED: ${(err as Error).stack ?? String(err)}`);
    const tail = sys.logLines().slice(-40);
    if (tail.length > 0) console.log(`# last server lines:\n${tail.map((l) => `#   ${l}`).join('\n')}`);
    return { target, version: sys.version, members: members(), startS: 0, phases: withFinalLag(sys, phases), logLines: sys.logLines(), error: String((err as Error).message ?? err), ...lagLinesOf(sys, phases) };
  } finally {
    await sys.stop();
  }
}

// ---------- the table ----------

function fmt(x: number | null | undefined, digits = 1): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  if (x === 0) return '0';
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString('en-US');
  if (Math.abs(x) >= 100) return x.toFixed(0);
  if (Math.abs(x) >= 10) return x.toFixed(digits);
  return x.toFixed(digits + 1);
}

const ratio = (k: number | null | undefined, e: number | null | undefined) =>
  k === null || k === undefined || e === null || e === undefined || !Number.isFinite(k) || !Number.isFinite(e) || e === 0 ? '' : `${(k / e).toFixed(2)}×`;

function table(results: readonly TargetResult[]): string[] {
  const K = results.find((r) => r.target === 'konsul');
  const E = results.find((r) => r.target === 'etcd');
  const rows: string[] = ['| measure | Konsul | etcd 3.4 | Konsul/etcd |', '|---|--:|--:|--:|'];
  const row = (name: string, k: string, e: string, r = '') => rows.push(`| ${name} | ${k} | ${e} | ${r} |`);
  const find = (res: TargetResult | undefined, kind: PhaseResult['kind'], c?: number) => res?.phases.find((p) => p.kind === kind && (c === undefined || p.concurrency === c));
  const maxOf = (r: Record<string, number> | null | undefined) => (r ? Math.max(...Object.values(r)) : null);
  const perMember = (r: Record<string, number> | null | undefined) => (r ? Object.values(r).map((v) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '–')).join(' / ') : '–');
  const lagCell = (p: PhaseResult | undefined) => {
    const stats = p?.statsLagMaxMs && Object.keys(p.statsLagMaxMs).length > 0 ? fmt(maxOf(p.statsLagMaxMs)) : null;
    if (!p || p.lagMaxMs === null) return stats !== null ? `≥ ${stats} (Stats)` : '–';
    const long = (p.stalls ?? []).filter((x) => x.ms >= 1000).length;
    // Counted per server: one snapshot that stalls all three servers is 3 stalls.
    const probe = `${fmt(maxOf(p.lagMaxMs))}${long > 0 ? ` (${long} server stall${long > 1 ? 's' : ''} ≥ 1 s)` : ''}`;
    return stats !== null ? `${probe} (Stats ≥ ${stats})` : probe;
  };
  const elections = (p: PhaseResult | undefined) => {
    if (!p) return '–';
    const changes = p.termAfter - p.termBefore;
    const noLeader = p.pollsWithoutLeader > 0 ? `, ${p.pollsWithoutLeader}/${p.polls} polls without leader` : '';
    return `${changes} (term ${p.termBefore} → ${p.termAfter}${noLeader})`;
  };
  const snapshotCell = (p: PhaseResult | undefined) => {
    if (!p?.snapshot) return '–';
    const s = Object.values(p.snapshot);
    const taken = Math.max(...s.map((x) => num(x.taken)));
    const maxDur = Math.max(...s.map((x) => num(x.max_duration_ms)));
    return `${taken} taken, longest ${fmt(maxDur)} ms`;
  };

  const kl = find(K, 'load');
  const el = find(E, 'load');
  if (kl || el) {
    const keysText = fmt(kl?.load?.keys ?? el?.load?.keys);
    row(`load ${keysText} keys × 100 B (txn of 64, ${loadClients} clients): keys/s`, fmt(kl?.load?.keysPerSec), fmt(el?.load?.keysPerSec), ratio(kl?.load?.keysPerSec, el?.load?.keysPerSec));
    row('load: keys stored / failed txn attempts', kl?.load ? `${fmt(kl.load.keys)} / ${kl.load.errors}` : '–', el?.load ? `${fmt(el.load.keys)} / ${el.load.errors}` : '–');
    row('load: elections', elections(kl), elections(el));
    row('load: max event-loop lag, ms', lagCell(kl), '–');
    const ks = find(K, 'settle');
    const es = find(E, 'settle');
    row('after load: all members applied, s', fmt(ks?.settleS), fmt(es?.settleS));
    row('after load: elections / max event-loop lag, ms (catch-up)', `${elections(ks)} / ${lagCell(ks)}`, elections(es));
    row('after load: RSS per server, MB', perMember(ks?.rssMb), perMember(es?.rssMb), ratio(maxOf(ks?.rssMb), maxOf(es?.rssMb)));
    row('after load: data dir per server, MB', perMember(ks?.dataMb), perMember(es?.dataMb), ratio(maxOf(ks?.dataMb), maxOf(es?.dataMb)));
    row('after load: snapshots (Stats.snapshot)', snapshotCell(ks), '–');
  }
  const kinds: { kind: 'put' | 'get'; cs: number[] }[] = [
    { kind: 'put', cs: putConcurrencies },
    { kind: 'get', cs: getConcurrencies },
  ];
  for (const { kind, cs } of kinds) {
    for (const c of cs) {
      const kp = find(K, kind, c);
      const ep = find(E, kind, c);
      const label = `${kind === 'put' ? 'puts' : 'default reads'} c=${c} (${fmt(kp?.wrk ? kp.wrk.duration_us / 1e6 : ep?.wrk ? ep.wrk.duration_us / 1e6 : null, 0)} s)`;
      const rate = (p: PhaseResult | undefined) => (p?.wrk ? p.wrk.requests / (p.wrk.duration_us / 1e6) : null);
      const ms = (us: number | undefined) => (us === undefined ? null : us / 1000);
      row(`${label}: requests/s`, fmt(rate(kp)), fmt(rate(ep)), ratio(rate(kp), rate(ep)));
      const lat = (p: PhaseResult | undefined) => (p?.wrk ? `${fmt(ms(p.wrk.p50_us))} / ${fmt(ms(p.wrk.p99_us))} / ${fmt(ms(p.wrk.max_us))}` : '–');
      row(`${label}: p50 / p99 / max ms`, lat(kp), lat(ep), kp?.wrk && ep?.wrk ? `${ratio(kp.wrk.p50_us, ep.wrk.p50_us)} / ${ratio(kp.wrk.p99_us, ep.wrk.p99_us)} / ${ratio(kp.wrk.max_us, ep.wrk.max_us)}` : '');
      const errs = (p: PhaseResult | undefined) => {
        if (!p?.wrk) return '–';
        const non2xx = Object.entries(p.wrk.codes).filter(([code]) => !(Number(code) >= 200 && Number(code) < 300));
        const n = non2xx.reduce((a, [, v]) => a + v, 0);
        const detail = non2xx.length > 0 ? ` (${non2xx.map(([code, v]) => `${v}× ${code}`).join(', ')})` : '';
        return `${n}${detail} / ${p.wrk.connect + p.wrk.read + p.wrk.write} / ${p.wrk.timeout}`;
      };
      row(`${label}: non-2xx / socket errors / timeouts`, errs(kp), errs(ep));
      row(`${label}: elections`, elections(kp), elections(ep));
      row(`${label}: max event-loop lag, ms`, lagCell(kp), '–');
      row(`${label}: servers' CPU %`, fmt(kp?.serversCpuPct, 0), fmt(ep?.serversCpuPct, 0));
      row(`after ${label}: RSS per server, MB`, perMember(kp?.rssMb), perMember(ep?.rssMb), ratio(maxOf(kp?.rssMb), maxOf(ep?.rssMb)));
      if (kind === 'put') row(`after ${label}: snapshots (Stats.snapshot)`, snapshotCell(kp), '–');
    }
  }
  const kr = find(K, 'restart');
  const er = find(E, 'restart');
  if (kr || er) {
    const s = (x: number | null | undefined) => (x === undefined ? '–' : x === null ? 'never' : fmt(x / 1000));
    const who = (p: PhaseResult | undefined) => (p?.restart ? `${p.restart.member}: ` : '');
    row('restart (kill -9 a follower): listening after, s', `${who(kr)}${s(kr?.restart?.listenMs)}`, `${who(er)}${s(er?.restart?.listenMs)}`, ratio(kr?.restart?.listenMs, er?.restart?.listenMs));
    row('restart: first local read (Konsul ?stale, etcd serializable) after, s', s(kr?.restart?.firstReadMs), s(er?.restart?.firstReadMs), ratio(kr?.restart?.firstReadMs, er?.restart?.firstReadMs));
    row("restart: applied the leader's commit index after, s", s(kr?.restart?.caughtUpMs), s(er?.restart?.caughtUpMs), ratio(kr?.restart?.caughtUpMs, er?.restart?.caughtUpMs));
    row('restart: RSS before kill → after catch-up, MB', kr?.restart ? `${kr.restart.rssBeforeMb} → ${kr.restart.rssAfterMb}` : '–', er?.restart ? `${er.restart.rssBeforeMb} → ${er.restart.rssAfterMb}` : '–');
    row('restart: elections / max event-loop lag, ms', `${elections(kr)} / ${lagCell(kr)}`, elections(er));
  }
  return rows;
}

// ---------- main ----------

async function main(): Promise<void> {
  installSignalHandlers();
  installTimeLimit(timeLimitMin);
  for (const tool of ['wrk', 'etcd', 'etcdctl']) {
    if (tool !== 'wrk' && !targets.includes('etcd')) continue;
    if ((await runCommand('sh', ['-c', `command -v ${tool}`])).code !== 0) throw new Error(`${tool} is not installed (apt-get install -y wrk etcd-server etcd-client)`);
  }
  const started = new Date();
  const header = [
    `# scale: Konsul 3 servers vs etcd 3 members, ${keys.toLocaleString('en-US')} keys — ${started.toISOString()}`,
    `# machine: ${machineLine()}`,
    `# benchmark code: ${await gitDescribe()}; Konsul servers from ${konsulRoot}${konsulRoot === REPO_ROOT ? '' : ` (${(await runCommand('git', ['-C', konsulRoot, 'log', '-1', '--format=%h %s'])).stdout.trim()})`}`,
    `# flags: --keys ${keys} --duration ${duration} --short-duration ${shortDuration} --targets ${targets.join(',')} --put-concurrency ${putConcurrencies.join(',')} --get-concurrency ${getConcurrencies.join(',')} --wrk-timeout ${wrkTimeoutS} --load-clients ${loadClients} --lag-probe ${args['lag-probe']}${skipLoad ? ' --skip-load' : ''}${skipRestart ? ' --skip-restart' : ''}`,
  ];
  for (const l of header) console.log(l);
  const results: TargetResult[] = [];
  try {
    for (const target of targets) {
      const t0 = performance.now();
      results.push(await runTarget(target));
      console.log(`# ${target} done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
      await sleep(2000);
    }
  } finally {
    await cleanupAll();
  }
  printReport({ tool: 'scale', started, header, results, rows: table(results), name: (r: (typeof results)[number]) => r.target, jsonFile: args.json });
}

main().catch(async (err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  await cleanupAll();
  process.exit(1);
});
