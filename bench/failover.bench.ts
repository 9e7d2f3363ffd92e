// Leader failover under a light write load, Konsul 3 servers vs etcd 3.4 3 members.
//
//   npx tsx bench/failover.bench.ts [--runs 10] [--systems konsul,etcd] [--poll-ms 10]
//                                   [--probe-interval-ms 10] [--attempt-timeout-ms 3000]
//                                   [--writer-timeout-ms 15000] [--settle-ms 2000] [--json FILE]
//
// Konsul: one 3-server cluster (bench/lib/cluster.ts) for all runs. Each run: wait until all three
// servers name the same leader L, let the writers run for --settle-ms, kill -9 L (by PID), then
// measure until writes flow again; restart L on its data dir and ports, wait until all three
// agree on a leader again, next run.
// etcd: a 3-member cluster (../shared/bench/etcd-cluster.sh) driven by ../shared/bench/etcd-failover.mjs
// --rounds <runs> (it finds the leader, kill -9s it, probes, restarts it, waits 3 s); this
// benchmark watches the same things from the side while the tool runs. The tool's rounds are read
// from its per-round lines as they come: if it fails part-way (on a loaded machine
// etcd-cluster.sh's restart can report a member that is still exec'ing as "failed to start"), the
// rounds it finished are kept, any member not running is restarted, and it runs again for the
// remaining rounds (at most 4 times); the failure is printed and kept in the JSON.
//
// What is measured, the same way for both systems:
// - Light write load: one closed-loop writer per server that is not the leader (one per survivor
//   of the coming kill), each on its own key and keep-alive connection, no client timeout short of
//   --writer-timeout-ms, retrying at once after an error. A writer pauses while its server is the
//   leader that all three running servers agree on, so the killed leader has no writer.
// - Leader polls: every --poll-ms on each running server (Konsul: GET /v1/status/leader and
//   /v1/agent/self for state and term; etcd: POST /v3/maintenance/status for leader and term).
// - The kill instant: Konsul, performance.now() just before kill -9; etcd, when this process
//   first sees the leader's PID gone or a zombie (checked every 1 ms, so up to ~1–2 ms late).
// - (a) "leader seen": kill → first poll answer from a survivor naming a new leader.
//   "detection": kill → first poll answer from a survivor that no longer follows the killed leader
//   (no leader, a higher term, or a candidate state): the survivor's election timer fired.
//   "election": leader seen − detection (resolution: one poll interval).
// - (b) "first put": kill → the first successful put through a survivor, probing like
//   etcd-failover.mjs (a new put every --probe-interval-ms, alternating survivors, each with an
//   --attempt-timeout-ms client timeout; the first success ends the probe). etcd: the tool's figure.
//   "writers' first put": kill → first success of a writer's put sent after the kill.
// - (c) the window is kill → first put (b). Every writer request in flight during the window:
//   the longest one, and how each ended (succeeded after waiting, or failed with which status
//   and text), and the longest writer request from the kill to the end of the run.
// Prints a line per run, tables of median and max, the goal checks, and one JSON line (last).
// Everything this benchmark starts is stopped by PID, also on error and on Ctrl-C.
import { spawn } from 'node:child_process';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  ETCD_CLUSTER_URLS,
  ETCD_MEMBERS,
  etcdStatus,
  httpCall,
  pidAlive,
  startEtcdCluster,
  startKonsulCluster,
  type EtcdCluster,
  type HttpResult,
  type KonsulCluster,
} from './lib/cluster.ts';
import { cleanupAll, gitDescribe, installSignalHandlers, lastJsonLine, machineLine, median, onCleanup, REPO_ROOT, runCommand, SHARED_BENCH, sleep } from './lib/servers.ts';

type System = 'konsul' | 'etcd';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '10' },
    systems: { type: 'string', default: 'konsul,etcd' },
    'poll-ms': { type: 'string', default: '10' },
    'probe-interval-ms': { type: 'string', default: '10' },
    'attempt-timeout-ms': { type: 'string', default: '3000' },
    'writer-timeout-ms': { type: 'string', default: '15000' },
    'settle-ms': { type: 'string', default: '2000' },
    json: { type: 'string' },
  },
  strict: true,
});
const runs = Number.parseInt(args.runs, 10);
const systems = args.systems.split(',').map((s) => s.trim()) as System[];
const pollMs = Number(args['poll-ms']);
const probeIntervalMs = Number(args['probe-interval-ms']);
const attemptTimeoutMs = Number(args['attempt-timeout-ms']);
const writerTimeoutMs = Number(args['writer-timeout-ms']);
const settleMs = Number(args['settle-ms']);
if (!(runs >= 1 && runs <= 20)) throw new Error('--runs must be 1..20 (etcd-failover.mjs does at most 20 rounds)');
if (systems.some((s) => s !== 'konsul' && s !== 'etcd')) throw new Error('--systems: konsul and/or etcd');

// ---------- the side watcher: leader polls, writers, deaths ----------

interface PollAnswer {
  /** Member name of the leader it follows, '' for none, '?' for one it does not know. */
  readonly leader: string;
  readonly term: number;
  /** Raft role when the system tells it (Konsul), else null. */
  readonly state: string | null;
}

interface MemberAdapter {
  readonly name: string;
  alive(): boolean;
  /** PID of the current process (for the log). */
  pid(): number;
  poll(agent: http.Agent): Promise<PollAnswer | null>;
  put(key: string, value: string, agent: http.Agent | undefined, timeoutMs: number): Promise<HttpResult>;
}

interface Observation {
  readonly t: number;
  readonly member: string;
  readonly answer: PollAnswer;
}

interface WriteRecord {
  readonly member: string;
  readonly start: number;
  readonly end: number;
  readonly ok: boolean;
  readonly status: number;
  readonly text: string;
}

interface Death {
  readonly member: string;
  readonly pid: number;
  readonly t: number;
}

class Watcher {
  readonly observations: Observation[] = [];
  readonly writes: WriteRecord[] = [];
  readonly deaths: Death[] = [];
  /** The leader all three running members named in their latest answers ('' until they agree). */
  stableLeader = '';
  private running = true;
  private readonly latest = new Map<string, Observation>();
  private readonly loops: Promise<void>[] = [];
  private readonly deathTimer: NodeJS.Timeout;
  private readonly known = new Map<string, number>();

  constructor(private readonly members: readonly MemberAdapter[]) {
    for (const m of members) this.known.set(m.name, m.pid());
    this.deathTimer = setInterval(() => {
      const t = performance.now();
      for (const m of members) {
        const pid = m.pid();
        if (pid === this.known.get(m.name) && pid !== 0 && !m.alive() && !this.deaths.some((d) => d.pid === pid)) this.deaths.push({ member: m.name, pid, t });
        if (pid !== this.known.get(m.name) && m.alive()) this.known.set(m.name, pid);
      }
    }, 1);
    for (const m of members) {
      this.loops.push(this.pollLoop(m));
      this.loops.push(this.writeLoop(m));
    }
  }

  private updateStable(): void {
    if (!this.members.every((m) => m.alive())) return;
    const now = performance.now();
    const answers = this.members.map((m) => this.latest.get(m.name));
    if (answers.some((o) => !o || now - o.t > 10 * pollMs + 100)) return;
    const first = answers[0]!.answer.leader;
    if (first !== '' && first !== '?' && answers.every((o) => o!.answer.leader === first)) this.stableLeader = first;
  }

  private async pollLoop(m: MemberAdapter): Promise<void> {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
    while (this.running) {
      const t0 = performance.now();
      if (m.alive()) {
        const answer = await m.poll(agent);
        if (answer) {
          const o = { t: performance.now(), member: m.name, answer };
          this.observations.push(o);
          this.latest.set(m.name, o);
          this.updateStable();
        }
      }
      const wait = pollMs - (performance.now() - t0);
      if (wait > 0) await sleep(wait);
    }
    agent.destroy();
  }

  private async writeLoop(m: MemberAdapter): Promise<void> {
    let agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    let i = 0;
    while (this.running) {
      if (!m.alive() || this.stableLeader === '' || this.stableLeader === m.name) {
        await sleep(5);
        continue;
      }
      const start = performance.now();
      const r = await m.put(`failover/w-${m.name}`, `v${i++}`, agent, writerTimeoutMs);
      this.writes.push({ member: m.name, start, end: performance.now(), ok: r.ok, status: r.status, text: r.ok ? '' : errorText(r.text) });
      if (r.status === 0) {
        agent.destroy();
        agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        await sleep(5);
      }
    }
    agent.destroy();
  }

  /** Waits until all three agree on a leader and every non-leader's writer has completed a write since. */
  async steady(timeoutMs = 60_000): Promise<string> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const l = this.stableLeader;
      if (l !== '' && this.members.every((m) => m.alive())) {
        const since = performance.now();
        await sleep(200);
        const writers = this.members.filter((m) => m.name !== l).map((m) => m.name);
        if (this.stableLeader === l && writers.every((w) => this.writes.some((x) => x.member === w && x.start >= since && x.ok))) return l;
      } else {
        await sleep(20);
      }
    }
    throw new Error(`no steady leader with flowing writes within ${timeoutMs} ms (stable leader "${this.stableLeader}")`);
  }

  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.deathTimer);
    await Promise.all(this.loops);
  }
}

// ---------- the probe (etcd-failover.mjs's method) ----------

interface ProbeResult {
  /** Completion of the first successful put, ms after the kill (null: none within 30 s). */
  readonly firstOkMs: number | null;
  readonly firstOkVia: string | null;
  readonly attempts: number;
  readonly errors: Record<string, { n: number; firstAtMs: number }>;
}

async function probe(survivors: readonly MemberAdapter[], killAt: number): Promise<ProbeResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  const errors: ProbeResult['errors'] = {};
  let first: { ms: number; via: string } | null = null;
  let inflight = 0;
  let attempts = 0;
  const pending: Promise<void>[] = [];
  while (first === null && performance.now() - killAt < 30_000) {
    if (inflight < 1000) {
      const i = attempts++;
      const m = survivors[i % survivors.length]!;
      inflight++;
      pending.push(
        m.put('failover/probe', `v${i}`, agent, attemptTimeoutMs).then((r) => {
          inflight--;
          const t = performance.now() - killAt;
          if (r.ok) {
            if (first === null) first = { ms: t, via: m.name };
          } else {
            const k = `${r.status || ''} ${errorText(r.text)}`.trim();
            errors[k] ??= { n: 0, firstAtMs: Math.round(t) };
            errors[k].n++;
          }
        }),
      );
    }
    await sleep(probeIntervalMs);
  }
  await Promise.all(pending);
  agent.destroy();
  const f = first as { ms: number; via: string } | null;
  return { firstOkMs: f?.ms ?? null, firstOkVia: f?.via ?? null, attempts, errors };
}

/** Opens a keep-alive connection to each survivor with one put, so the probe pays no connect (as etcd-failover.mjs does). */
async function warmProbe(survivors: readonly MemberAdapter[]): Promise<void> {
  await Promise.all(survivors.map((m, i) => m.put('failover/probe', `warm${i}`, undefined, 2000)));
}

// ---------- one run's figures ----------

interface RunFigures {
  readonly run: number;
  readonly killed: string;
  readonly killedPid: number;
  readonly newLeader: string | null;
  readonly detectMs: number | null;
  readonly leaderMs: number | null;
  readonly electionMs: number | null;
  readonly firstPutMs: number | null;
  readonly firstPutVia: string | null;
  readonly writersFirstOkMs: number | null;
  readonly windowWrites: number;
  readonly windowMaxMs: number | null;
  /** How the writes in flight during the window ended: duration range, and end time range in ms after the kill. */
  readonly windowOutcomes: Record<string, { n: number; maxMs: number; minMs: number; firstEndMs: number; lastEndMs: number }>;
  readonly roundMaxWriteMs: number | null;
  readonly probeErrors: Record<string, { n: number; firstAtMs: number }> | null;
}

function analyse(
  w: Watcher,
  run: number,
  killed: string,
  killedPid: number,
  killAt: number,
  firstPutMs: number | null,
  firstPutVia: string | null,
  roundEnd: number,
  probeErrors: RunFigures['probeErrors'],
): RunFigures {
  const before = new Map<string, Observation>();
  for (const o of w.observations) if (o.t < killAt && o.member !== killed) before.set(o.member, o);
  const after = w.observations.filter((o) => o.t >= killAt && o.t <= roundEnd && o.member !== killed);
  const detect = after.find((o) => {
    const b = before.get(o.member);
    return o.answer.leader !== killed || (b !== undefined && o.answer.term > b.answer.term) || (o.answer.state !== null && o.answer.state !== 'Follower');
  });
  const leader = after.find((o) => o.answer.leader !== '' && o.answer.leader !== '?' && o.answer.leader !== killed);
  const windowEnd = firstPutMs === null ? roundEnd : killAt + firstPutMs;
  const survivorsWrites = w.writes.filter((x) => x.member !== killed);
  const inWindow = survivorsWrites.filter((x) => x.start < windowEnd && x.end > killAt);
  const inRound = survivorsWrites.filter((x) => x.start < roundEnd && x.end > killAt);
  const outcomes: RunFigures['windowOutcomes'] = {};
  for (const x of inWindow) {
    const d = x.end - x.start;
    const k = x.ok ? 'ok' : `${x.status || 'no answer'} ${x.text}`;
    const e = (outcomes[k] ??= { n: 0, maxMs: 0, minMs: Infinity, firstEndMs: Infinity, lastEndMs: -Infinity });
    e.n++;
    e.maxMs = Math.max(e.maxMs, d);
    e.minMs = Math.min(e.minMs, d);
    e.firstEndMs = Math.min(e.firstEndMs, x.end - killAt);
    e.lastEndMs = Math.max(e.lastEndMs, x.end - killAt);
  }
  const writersFirst = survivorsWrites.find((x) => x.start >= killAt && x.ok);
  const maxOf = (xs: readonly WriteRecord[]) => (xs.length ? Math.max(...xs.map((x) => x.end - x.start)) : null);
  return {
    run,
    killed,
    killedPid,
    newLeader: leader?.answer.leader ?? null,
    detectMs: detect ? detect.t - killAt : null,
    leaderMs: leader ? leader.t - killAt : null,
    electionMs: detect && leader ? leader.t - detect.t : null,
    firstPutMs,
    firstPutVia,
    writersFirstOkMs: writersFirst ? writersFirst.end - killAt : null,
    windowWrites: inWindow.length,
    windowMaxMs: maxOf(inWindow),
    windowOutcomes: outcomes,
    roundMaxWriteMs: maxOf(inRound),
    probeErrors,
  };
}

/** An error body, shortened: etcd's gateway answers JSON with an "error" field, Konsul plain text. */
function errorText(text: string): string {
  try {
    const j = JSON.parse(text) as { error?: unknown };
    if (typeof j.error === 'string') return j.error;
  } catch {
    /* not JSON */
  }
  return text.replace(/\s+/g, ' ').trim().slice(0, 120);
}

const ms = (x: number | null | undefined) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : `${Math.round(x)}`);

function runLine(system: System, f: RunFigures): string {
  const outcomes = Object.entries(f.windowOutcomes)
    .map(([k, v]) => `${v.n}× ${k} (took ${Math.round(v.minMs)}–${Math.round(v.maxMs)} ms, ended ${Math.round(v.firstEndMs)}–${Math.round(v.lastEndMs)} ms after the kill)`)
    .join('; ');
  return (
    `# ${system} run ${f.run}: killed ${f.killed} (pid ${f.killedPid}) → new leader ${f.newLeader ?? '?'}; detection ${ms(f.detectMs)} ms, leader seen ${ms(f.leaderMs)} ms ` +
    `(election ${ms(f.electionMs)} ms after detection); first put ${ms(f.firstPutMs)} ms via ${f.firstPutVia ?? '?'}; writers' first put ${ms(f.writersFirstOkMs)} ms; ` +
    `window writes ${f.windowWrites}, longest ${ms(f.windowMaxMs)} ms: ${outcomes || 'none'}; longest write kill→end of run ${ms(f.roundMaxWriteMs)} ms` +
    (f.probeErrors && Object.keys(f.probeErrors).length ? `; probe errors ${JSON.stringify(f.probeErrors)}` : '')
  );
}

// ---------- Konsul ----------

function konsulAdapters(c: KonsulCluster): MemberAdapter[] {
  return c.members.map((m) => ({
    name: m.name,
    alive: () => m.alive(),
    pid: () => m.pid(),
    async poll(agent) {
      const [l, s] = await Promise.all([
        httpCall('GET', `${m.httpUrl}/v1/status/leader`, { agent, timeoutMs: 1000 }),
        httpCall('GET', `${m.httpUrl}/v1/agent/self`, { agent, timeoutMs: 1000 }),
      ]);
      if (!l.ok || !s.ok) return null;
      const addr = JSON.parse(l.text) as string;
      const raft = (JSON.parse(s.text) as { Stats: { raft: { state: string; term: string } } }).Stats.raft;
      return { leader: addr === '' ? '' : c.nameOfRpc(addr) || '?', term: Number(raft.term), state: raft.state };
    },
    put: (key, value, agent, timeoutMs) => httpCall('PUT', `${m.httpUrl}/v1/kv/${key}`, { body: value, agent, timeoutMs }),
  }));
}

async function konsulRuns(): Promise<{ figures: RunFigures[]; log: string[]; writes: number; writeErrors: number }> {
  const cluster = await startKonsulCluster();
  let watcher: Watcher | null = null;
  const figures: RunFigures[] = [];
  try {
    const t0 = performance.now();
    const first = await cluster.waitForLeader();
    console.log(
      `# konsul cluster ${cluster.members.map((m) => `${m.name} pid ${m.pid()} ${m.httpUrl} rpc ${m.rpcAddr}`).join('; ')}; leader ${first} after ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    const adapters = konsulAdapters(cluster);
    watcher = new Watcher(adapters);
    const kills: { run: number; leader: string; pid: number; atMs: number; probe: ProbeResult }[] = [];
    for (let run = 1; run <= runs; run++) {
      const leader = await watcher.steady();
      await sleep(settleMs);
      if (watcher.stableLeader !== leader) {
        run--;
        continue;
      }
      const survivors = adapters.filter((a) => a.name !== leader);
      await warmProbe(survivors);
      const { pid, atMs } = cluster.kill9(leader);
      const p = await probe(survivors, atMs);
      kills.push({ run, leader, pid, atMs, probe: p });
      console.log(`#   konsul run ${run}: killed ${leader} (pid ${pid}); first successful put after ${ms(p.firstOkMs)} ms via ${p.firstOkVia ?? '?'}; probe errors ${JSON.stringify(p.errors)}`);
      // Bring the killed server back (as etcd-failover.mjs does once its probe is done), wait for
      // all three to agree on a leader again; the run ends at the next kill.
      await cluster.restart(leader);
      await cluster.waitForLeader();
    }
    await watcher.steady();
    await sleep(settleMs);
    const end = performance.now();
    for (const [i, k] of kills.entries()) {
      const f = analyse(watcher, k.run, k.leader, k.pid, k.atMs, k.probe.firstOkMs, k.probe.firstOkVia, kills[i + 1]?.atMs ?? end, k.probe.errors);
      figures.push(f);
      console.log(runLine('konsul', f));
    }
  } finally {
    await watcher?.stop();
    await cluster.stop();
  }
  const log = cluster.members.flatMap((m) => m.logTail());
  return { figures, log, writes: watcher?.writes.length ?? 0, writeErrors: watcher?.writes.filter((x) => !x.ok).length ?? 0 };
}

// ---------- etcd ----------

function etcdAdapters(e: EtcdCluster, idToName: Map<string, string>): MemberAdapter[] {
  return ETCD_MEMBERS.map((name) => {
    const url = ETCD_CLUSTER_URLS[name];
    return {
      name,
      alive: () => {
        const pid = e.pid(name);
        return pid !== 0 && pidAlive(pid);
      },
      pid: () => e.pid(name),
      async poll(agent) {
        const s = await etcdStatus(url, agent, 1000);
        if (!s) return null;
        return { leader: s.leader === '0' ? '' : (idToName.get(s.leader) ?? '?'), term: s.term, state: null };
      },
      put: (key, value, agent, timeoutMs) =>
        httpCall('POST', `${url}/v3/kv/put`, {
          body: JSON.stringify({ key: Buffer.from(key).toString('base64'), value: Buffer.from(value).toString('base64') }),
          headers: { 'content-type': 'application/json' },
          agent,
          timeoutMs,
        }).then((r) => (r.ok && !r.text.includes('"header"') ? { ...r, ok: false } : r)),
    };
  });
}

/** One round as etcd-failover.mjs prints it ("# round N: killed m2 (pid P); first successful put after X ms ..."). */
interface EtcdToolRound {
  readonly round: number;
  readonly killed: string;
  readonly killedPid: number;
  readonly failoverMs: number | null;
  readonly via: string | null;
  readonly newLeader: string | null;
  readonly errors: Record<string, { n: number; first_at_ms: number }>;
  readonly line: string;
}

const ROUND_LINE = /^# round (\d+): killed (\S+) \(pid (\d+)\); first successful put after (\S+) ms \(sent at \S+ ms\) via (\S+); new leader (\S+); errors (.*)$/;

function parseRoundLine(line: string): EtcdToolRound | null {
  const m = ROUND_LINE.exec(line);
  if (!m) return null;
  let errors: EtcdToolRound['errors'] = {};
  try {
    errors = JSON.parse(m[7]!) as EtcdToolRound['errors'];
  } catch {
    /* keep {} */
  }
  const nul = (x: string) => (x === 'null' ? null : x);
  return {
    round: Number(m[1]),
    killed: m[2]!,
    killedPid: Number(m[3]),
    failoverMs: m[4] === 'null' ? null : Number(m[4]),
    via: nul(m[5]!),
    newLeader: nul(m[6]!),
    errors,
    line,
  };
}

/**
 * Runs etcd-failover.mjs --rounds n, passing on its per-round lines as they come (so the rounds it
 * finished are kept even if it fails later); resolves with its exit code, stderr and last JSON line.
 */
function runEtcdFailoverTool(e: EtcdCluster, n: number, onRound: (r: EtcdToolRound) => void): Promise<{ code: number; stderr: string; json: unknown }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [join(SHARED_BENCH, 'etcd-failover.mjs'), '--rounds', String(n), '--interval-ms', String(probeIntervalMs), '--attempt-timeout-ms', String(attemptTimeoutMs)],
      { cwd: REPO_ROOT, env: e.env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const pid = child.pid;
    const unregister =
      pid === undefined
        ? () => {}
        : onCleanup(`etcd-failover.mjs pid ${pid}`, async () => {
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
          });
    let out = '';
    let err = '';
    let buf = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      buf += chunk;
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const r = parseRoundLine(buf.slice(0, nl));
        if (r) onRound(r);
        buf = buf.slice(nl + 1);
        nl = buf.indexOf('\n');
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c: string) => (err += c));
    const timer = setTimeout(() => child.kill('SIGTERM'), n * 90_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      unregister();
      let json: unknown = null;
      try {
        json = lastJsonLine(out);
      } catch {
        /* failed before its summary */
      }
      resolve({ code: code ?? (signal ? 128 : 0), stderr: err, json });
    });
  });
}

/** Restarts any member that is not running (through etcd-cluster.sh), then waits until all are healthy. */
async function makeEtcdWhole(e: EtcdCluster, adapters: readonly MemberAdapter[]): Promise<void> {
  const script = join(SHARED_BENCH, 'etcd-cluster.sh');
  for (const a of adapters) {
    if (a.alive()) continue;
    const r = await runCommand('bash', [script, 'restart', a.name.slice(1)], { env: e.env, timeoutMs: 60_000 });
    const deadline = performance.now() + 5000;
    while (!a.alive() && performance.now() < deadline) await sleep(50);
    console.log(`#   restarted etcd ${a.name}: etcd-cluster.sh exited ${r.code}, member ${a.alive() ? `running as pid ${a.pid()}` : 'NOT running'}`);
  }
  const w = await runCommand('bash', [script, 'wait', 'cluster'], { env: e.env, timeoutMs: 60_000 });
  if (w.code !== 0) throw new Error(`etcd cluster not healthy: ${w.stdout}${w.stderr}`);
}

async function etcdRuns(): Promise<{ figures: RunFigures[]; tool: unknown[]; toolFailures: string[]; writes: number; writeErrors: number }> {
  const e = await startEtcdCluster();
  let watcher: Watcher | null = null;
  const figures: RunFigures[] = [];
  const tool: unknown[] = [];
  const toolFailures: string[] = [];
  try {
    const idToName = new Map<string, string>();
    for (const name of ETCD_MEMBERS) {
      const s = await etcdStatus(ETCD_CLUSTER_URLS[name]);
      if (!s) throw new Error(`etcd member ${name} does not answer /v3/maintenance/status`);
      idToName.set(s.memberId, name);
    }
    console.log(`# etcd ${e.version} cluster, members ${ETCD_MEMBERS.map((m) => `${m} pid ${e.pid(m)} ${ETCD_CLUSTER_URLS[m]}`).join('; ')}`);
    const adapters = etcdAdapters(e, idToName);
    watcher = new Watcher(adapters);
    const rounds: EtcdToolRound[] = [];
    for (let attempt = 1; rounds.length < runs && attempt <= 4; attempt++) {
      await makeEtcdWhole(e, adapters);
      await watcher.steady();
      await sleep(settleMs);
      const r = await runEtcdFailoverTool(e, runs - rounds.length, (round) => {
        rounds.push(round);
        console.log(`#   etcd-failover.mjs: ${round.line.slice(2)}`);
      });
      if (r.json) tool.push(r.json);
      if (r.code !== 0) {
        // Keep the first lines of its error (the end is etcd's own log, which the shared script prints).
        const note = `etcd-failover.mjs exited ${r.code} after ${rounds.length} of ${runs} rounds: ${r.stderr.slice(0, 1500)}`;
        toolFailures.push(note);
        console.log(`# ${note.replace(/\n/g, '\n#   ')}`);
      }
    }
    await sleep(500);
    const end = performance.now();
    for (const [i, r] of rounds.entries()) {
      const death = watcher.deaths.find((d) => d.pid === r.killedPid);
      if (!death) {
        console.log(`# etcd round ${i + 1}: the watcher did not see pid ${r.killedPid} die; skipped`);
        continue;
      }
      // A run ends at the next kill (after the tool's restart, health check and 3 s settle).
      const next = watcher.deaths.find((d) => d.t > death.t);
      const errors = Object.fromEntries(Object.entries(r.errors).map(([k, v]) => [k, { n: v.n, firstAtMs: v.first_at_ms }]));
      const f = analyse(watcher, i + 1, r.killed, r.killedPid, death.t, r.failoverMs, r.via, next ? next.t : end, errors);
      figures.push(f);
      console.log(runLine('etcd', f));
    }
  } finally {
    await watcher?.stop();
    await e.stop();
  }
  return { figures, tool, toolFailures, writes: watcher?.writes.length ?? 0, writeErrors: watcher?.writes.filter((x) => !x.ok).length ?? 0 };
}

// ---------- summary ----------

function stats(xs: readonly (number | null)[]): { median: number; max: number; n: number; missing: number } {
  const v = xs.filter((x): x is number => x !== null);
  return { median: median(v), max: v.length ? Math.max(...v) : NaN, n: v.length, missing: xs.length - v.length };
}

function medMax(xs: readonly (number | null)[]): string {
  const s = stats(xs);
  return `${ms(s.median)} / ${ms(s.max)}${s.missing ? ` (${s.missing} missing)` : ''}`;
}

function outcomeTotals(figures: readonly RunFigures[]): string {
  const tot = new Map<string, { n: number; runs: number; maxMs: number; minMs: number; firstEndMs: number; lastEndMs: number }>();
  for (const f of figures) {
    for (const [k, v] of Object.entries(f.windowOutcomes)) {
      const e = tot.get(k) ?? { n: 0, runs: 0, maxMs: 0, minMs: Infinity, firstEndMs: Infinity, lastEndMs: -Infinity };
      e.n += v.n;
      e.runs++;
      e.maxMs = Math.max(e.maxMs, v.maxMs);
      e.minMs = Math.min(e.minMs, v.minMs);
      e.firstEndMs = Math.min(e.firstEndMs, v.firstEndMs);
      e.lastEndMs = Math.max(e.lastEndMs, v.lastEndMs);
      tot.set(k, e);
    }
  }
  return (
    [...tot.entries()]
      .map(([k, v]) => `${v.n}× ${k} (in ${v.runs} runs; took ${Math.round(v.minMs)}–${Math.round(v.maxMs)} ms, ended ${Math.round(v.firstEndMs)}–${Math.round(v.lastEndMs)} ms after the kill)`)
      .join('; ') || 'none'
  );
}

async function main(): Promise<void> {
  installSignalHandlers();
  const started = new Date();
  const header = [
    `# Leader failover, Konsul 3 servers vs etcd 3 members — ${started.toISOString()}`,
    `# machine: ${machineLine()}`,
    `# code: ${await gitDescribe()}`,
    `# flags: --runs ${runs} --systems ${systems.join(',')} --poll-ms ${pollMs} --probe-interval-ms ${probeIntervalMs} --attempt-timeout-ms ${attemptTimeoutMs} --writer-timeout-ms ${writerTimeoutMs} --settle-ms ${settleMs}`,
  ];
  for (const l of header) console.log(l);
  const results: Partial<Record<System, { figures: RunFigures[]; writes: number; writeErrors: number }>> = {};
  let konsulLog: string[] = [];
  let etcdTool: unknown[] = [];
  let etcdToolFailures: string[] = [];
  try {
    for (const s of systems) {
      if (s === 'konsul') {
        const r = await konsulRuns();
        results.konsul = r;
        konsulLog = r.log;
        if (r.log.length) {
          console.log(`# konsul servers wrote ${r.log.length} line(s) (last 200 per server kept); distinct ones:`);
          const distinct = new Map<string, number>();
          for (const l of r.log) {
            const key = l
              .replace(/\(node:\d+\)/, '(node)')
              .replace(/"(time|pid|hostname|reqId)":("[^"]*"|\d+),?/g, '')
              .replace(/,"stack":.*/, '')
              .slice(0, 240);
            distinct.set(key, (distinct.get(key) ?? 0) + 1);
          }
          for (const [l, n] of distinct) console.log(`#   ${n}× ${l}`);
        }
      } else {
        const r = await etcdRuns();
        results.etcd = r;
        etcdTool = r.tool;
        etcdToolFailures = r.toolFailures;
      }
      await sleep(1000);
    }
  } finally {
    await cleanupAll();
  }

  console.log('');
  console.log(`Median / max over ${runs} runs, ms from the kill -9 of the leader.`);
  console.log('');
  console.log("| system | runs | detection | leader seen | election after detection | first put (probe) | writers' first put | longest write in window | longest write, kill → end of run | writes in window |");
  console.log('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
  for (const s of systems) {
    const f = results[s]?.figures ?? [];
    console.log(
      `| ${s === 'konsul' ? 'Konsul' : 'etcd'} | ${f.length} | ${medMax(f.map((x) => x.detectMs))} | ${medMax(f.map((x) => x.leaderMs))} | ${medMax(f.map((x) => x.electionMs))} | ` +
        `${medMax(f.map((x) => x.firstPutMs))} | ${medMax(f.map((x) => x.writersFirstOkMs))} | ${medMax(f.map((x) => x.windowMaxMs))} | ${medMax(f.map((x) => x.roundMaxWriteMs))} | ` +
        `${f.reduce((a, x) => a + x.windowWrites, 0)} |`,
    );
  }
  console.log('');
  for (const s of systems) {
    const r = results[s];
    if (!r) continue;
    console.log(`- ${s} writes in the windows: ${outcomeTotals(r.figures)}. Writers in total: ${r.writes} writes, ${r.writeErrors} failed.`);
  }

  const goals: { goal: string; met: boolean | null; detail: string }[] = [];
  const kf = results.konsul?.figures;
  if (kf && kf.length) {
    const el = stats(kf.map((x) => x.electionMs));
    goals.push({ goal: 'new leader within 300 ms after the failure is detected (every run)', met: el.missing === 0 && el.max <= 300, detail: `election after detection median ${ms(el.median)} ms, max ${ms(el.max)} ms (poll every ${pollMs} ms)` });
    const fp = stats(kf.map((x) => x.firstPutMs));
    goals.push({ goal: 'writes flowing end-to-end: median < 1.0 s', met: fp.missing === 0 && fp.median < 1000, detail: `median ${ms(fp.median)} ms` });
    goals.push({ goal: 'writes flowing end-to-end: max < 1.5 s', met: fp.missing === 0 && fp.max < 1500, detail: `max ${ms(fp.max)} ms` });
    const lw = stats(kf.map((x) => x.roundMaxWriteMs));
    goals.push({ goal: 'no write hangs (~7 s): every write during a failover ends within 3 s', met: lw.missing === 0 && lw.max < 3000, detail: `longest write ${ms(lw.max)} ms` });
    console.log('');
    for (const g of goals) console.log(`- ${g.met === null ? 'NOT MEASURED' : g.met ? 'MET' : 'NOT MET'}: ${g.goal} — ${g.detail}`);
  }

  if (etcdToolFailures.length) console.log(`- etcd-failover.mjs failed ${etcdToolFailures.length} time(s); its finished rounds were kept and it was run again for the rest (see above).`);
  const out = { tool: 'failover', started: started.toISOString(), header, results, etcdTool, etcdToolFailures, konsulLog, goals };
  if (args.json) writeFileSync(args.json, `${JSON.stringify(out, null, 2)}\n`);
  console.log(JSON.stringify(out));
}

main().catch(async (err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  await cleanupAll();
  process.exit(1);
});
