// Blocking-query fan-out: W clients wait on one KV prefix, one write under the prefix wakes them
// all. How long until the first, the median, the 99th percentile and the last of them hears it?
// Konsul (Consul-style long polls) side by side with etcd 3.4 (watch streams on the JSON gateway).
//
//   ulimit -n 20000   # each watcher is one socket in this process and one in the server
//   npx tsx bench/watch-fanout.bench.ts [--watchers 1000,10000] [--reps 5] [--targets konsul,floor,etcd]
//                                       [--timeout 60] [--json FILE]
//
// Konsul: W keep-alive connections (raw sockets, reused from one repetition to the next). Each
// repetition reads the prefix's current index (GET /v1/kv/fan/?recurse → X-Consul-Index), sends
// `GET /v1/kv/fan/?recurse&index=<current>&wait=5m` on every connection, waits until every request
// is written and the Konsul process has been idle (≤ 10 ms CPU per 100 ms, 3 polls in a row, at
// least 500 ms: it has parsed every request and registered its watcher; a response before the
// write is counted as "early"), then PUTs fan/k and times, from just before the PUT is sent, the
// complete response (headers and body) on each connection.
//
// floor: the same long polls against bench/lib/long-poll-floor.mjs, a bare node:http server that
// holds them and answers all of them with one pre-built header list and Buffer (writeHead + end):
// what any Node HTTP server pays per answer, without Konsul. Same client, same figures.
//
// etcd: W connections, each one `POST /v3/watch` stream on the prefix (base64 key "fan/",
// range_end "fan0"), opened once per W; registration is exact (etcd answers "created": true on each
// stream). Each repetition PUTs fan/k (POST /v3/kv/put) and times, from just before the PUT is sent,
// the arrival of the event on each stream.
//
// Per repetition: time to the first, p50, p99 and last watcher answered, and the PUT's own ack
// time; the tables show the median over the repetitions. All of W's repetitions run on Konsul, then
// all on etcd (holding both sets of sockets at once would need 2·W descriptors here). The
// client runs in this one Node process and shares the machine with the server: its own time to
// read W responses is part of "last".
//
// "Answered" is the arrival of the answer's first bytes on the watcher's socket, as this process
// reads them; "last parsed" is when the last answer was complete (Konsul: headers and the
// Content-Length body; etcd: a message with "events"). Reading is cheap on purpose (2026-12-07):
// each socket reads into one shared buffer (`onread`, no Buffer and no string per read) and a
// response is parsed from those bytes. The earlier client (a latin1 string per chunk, concatenated,
// a regex per response) spent 280–370 ms of CPU on 10,000 answers, about 30 µs each, on a core the
// server also needs; this one 200–310 ms (bench/RESULTS.md, 2026-12-07).
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  cleanupAll,
  gitDescribe,
  installSignalHandlers,
  machineLine,
  median,
  onCleanup,
  openFileLimits,
  percentile,
  procCpuMs,
  procRssMb,
  REPO_ROOT,
  sleep,
  startEtcd,
  startKonsul,
  waitIdle,
  type EtcdProcess,
  type KonsulProcess,
} from './lib/servers.ts';

type Target = 'konsul' | 'floor' | 'etcd';

const { values: args } = parseArgs({
  options: {
    watchers: { type: 'string', default: '1000,10000' },
    reps: { type: 'string', default: '5' },
    targets: { type: 'string', default: 'konsul,floor,etcd' },
    timeout: { type: 'string', default: '60' },
    json: { type: 'string' },
  },
  strict: true,
});
const watcherCounts = args.watchers.split(',').map((s) => Number.parseInt(s.trim(), 10));
const reps = Number.parseInt(args.reps, 10);
const targets = args.targets.split(',').map((s) => s.trim()) as Target[];
const timeoutMs = Number(args.timeout) * 1000;
if (watcherCounts.some((w) => !(w >= 1))) throw new Error('--watchers must be a list of positive integers');
if (targets.some((t) => t !== 'konsul' && t !== 'floor' && t !== 'etcd')) throw new Error('--targets: konsul, floor and/or etcd');

const PREFIX = 'fan/';
const KEY = 'fan/k';
const CONNECT_BATCH = 250;
const FD_MARGIN = 200;

// ---------- raw-socket watchers ----------

interface Watcher {
  readonly sock: net.Socket;
  buf: string;
  /** Konsul: where the response being read is (idle between responses). */
  state: 'idle' | 'head' | 'body';
  /** Konsul: body bytes still to come. */
  bodyLeft: number;
  /** Waiting for an answer in the current repetition. */
  pending: boolean;
  /** performance.now() when the answer's first bytes arrived, or -1. */
  arrivedAt: number;
  /** performance.now() when the answer was complete, or -1. */
  answeredAt: number;
  status: number;
  /** etcd: the stream's "created" message has arrived. */
  created: boolean;
  closed: boolean;
  error: string | null;
  early: boolean;
}

interface Fleet {
  readonly watchers: Watcher[];
  /** Called after each answer or failure. */
  onProgress: (() => void) | null;
  connectErrors: Map<string, number>;
}

function countError(map: Map<string, number>, kind: string): void {
  map.set(kind, (map.get(kind) ?? 0) + 1);
}

/** Every socket reads into this one buffer; a read is parsed before the next one can arrive. */
const READ_BUFFER = Buffer.alloc(256 * 1024);

type OnBytes = (w: Watcher, fleet: Fleet, buf: Buffer, n: number) => void;

async function connectFleet(port: number, count: number, onBytes: OnBytes): Promise<Fleet> {
  const fleet: Fleet = { watchers: [], onProgress: null, connectErrors: new Map() };
  for (let i = 0; i < count; i += CONNECT_BATCH) {
    const batch: Promise<void>[] = [];
    for (let j = i; j < Math.min(count, i + CONNECT_BATCH); j++) {
      batch.push(
        new Promise<void>((resolve) => {
          let w: Watcher | null = null;
          const sock = net.connect({
            host: '127.0.0.1',
            port,
            noDelay: true,
            onread: {
              buffer: READ_BUFFER,
              callback: (n: number, buf: Uint8Array) => {
                if (w !== null) onBytes(w, fleet, buf as Buffer, n);
                return true;
              },
            },
          });
          const watcher: Watcher = { sock, buf: '', state: 'idle', bodyLeft: 0, pending: false, arrivedAt: -1, answeredAt: -1, status: 0, created: false, closed: false, error: null, early: false };
          w = watcher;
          sock.once('connect', () => {
            fleet.watchers.push(watcher);
            resolve();
          });
          sock.on('error', (err: NodeJS.ErrnoException) => {
            watcher.error = err.code ?? err.message;
            if (!fleet.watchers.includes(watcher)) {
              countError(fleet.connectErrors, watcher.error);
              resolve();
            }
          });
          sock.on('close', () => {
            watcher.closed = true;
            fleet.onProgress?.();
          });
        }),
      );
    }
    await Promise.all(batch);
  }
  return fleet;
}

function closeFleet(fleet: Fleet): Promise<void> {
  return Promise.all(
    fleet.watchers.map(
      (w) =>
        new Promise<void>((resolve) => {
          if (w.closed) return resolve();
          w.sock.once('close', () => resolve());
          w.sock.destroy();
        }),
    ),
  ).then(() => undefined);
}

/** Konsul: HTTP/1.1 responses with a Content-Length, parsed from the bytes as they arrive. */
function onKonsulBytes(w: Watcher, fleet: Fleet, buf: Buffer, n: number): void {
  const now = performance.now();
  let off = 0;
  while (off < n) {
    if (w.state === 'idle') {
      // The first bytes of a response: its arrival.
      w.state = 'head';
      w.buf = '';
      if (w.pending && w.arrivedAt < 0) w.arrivedAt = now;
    }
    if (w.state === 'head') {
      const before = w.buf.length;
      w.buf += buf.toString('latin1', off, n);
      const end = w.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      off += end + 4 - before;
      const head = w.buf.slice(0, end);
      const lengthAt = head.toLowerCase().indexOf('\r\ncontent-length:');
      w.bodyLeft = lengthAt < 0 ? 0 : Number.parseInt(head.slice(lengthAt + 17), 10);
      w.status = Number(head.slice(9, 12));
      w.buf = '';
      w.state = 'body';
    }
    const take = Math.min(w.bodyLeft, n - off);
    w.bodyLeft -= take;
    off += take;
    if (w.bodyLeft > 0) return;
    w.state = 'idle';
    if (!w.pending) {
      w.early = true; // an answer nobody was waiting for
      continue;
    }
    w.pending = false;
    w.answeredAt = now;
    fleet.onProgress?.();
  }
}

/** etcd: a chunked stream of JSON messages; the first says "created", later ones carry "events". */
function onEtcdBytes(w: Watcher, fleet: Fleet, buf: Buffer, n: number): void {
  const now = performance.now();
  if (w.created && w.pending && w.arrivedAt < 0) w.arrivedAt = now;
  w.buf += buf.toString('latin1', 0, n);
  if (!w.created) {
    if (!w.buf.includes('"created":true')) return;
    w.created = true;
    w.status = Number(w.buf.slice(9, 12));
    w.buf = '';
    fleet.onProgress?.();
    return;
  }
  if (!w.buf.includes('"events"')) return;
  w.buf = '';
  if (!w.pending) {
    w.early = true;
    return;
  }
  w.pending = false;
  w.answeredAt = now;
  fleet.onProgress?.();
}

/** Resolves when `done()` holds (checked after each answer) or after `ms`. */
function waitFor(fleet: Fleet, done: () => boolean, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (done()) return resolve(true);
    const timer = setTimeout(() => {
      fleet.onProgress = null;
      resolve(false);
    }, ms);
    fleet.onProgress = () => {
      if (done()) {
        clearTimeout(timer);
        fleet.onProgress = null;
        resolve(true);
      }
    };
  });
}

// ---------- control requests ----------

const controlAgent = new http.Agent({ keepAlive: true, maxSockets: 4 });

function request(port: number, method: string, path: string, body?: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method, path, agent: controlAgent, headers: body === undefined ? {} : { 'content-length': Buffer.byteLength(body), 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
        res.on('error', reject);
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${path}: timeout`)));
    req.on('error', reject);
    req.end(body);
  });
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
const value = (rep: number) => `v${rep}-`.padEnd(100, 'x');

// ---------- one repetition's figures ----------

interface RepResult {
  readonly rep: number;
  readonly watchers: number;
  readonly answered: number;
  readonly missing: number;
  readonly early: number;
  readonly non200: number;
  readonly closed: number;
  readonly firstMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly lastMs: number;
  /** The last answer complete (parsed), where "last" is its first bytes' arrival. */
  readonly lastParsedMs: number;
  readonly putAckMs: number;
  /** Konsul: from the first watcher request written to the end of the settle wait. */
  readonly registerMs: number;
  readonly serverCpuMs: number;
  readonly clientCpuMs: number;
}

function repFigures(
  fleet: Fleet,
  t0: number,
  base: Omit<RepResult, 'answered' | 'missing' | 'early' | 'non200' | 'closed' | 'firstMs' | 'p50Ms' | 'p99Ms' | 'lastMs' | 'lastParsedMs'>,
): RepResult {
  const answered = fleet.watchers.filter((w) => w.answeredAt >= 0);
  // An answer's time is its arrival (first bytes); its parse completes in the same read or a later one.
  const lat = Float64Array.from(answered.map((w) => (w.arrivedAt >= 0 ? w.arrivedAt : w.answeredAt) - t0)).sort();
  const parsed = answered.reduce((max, w) => Math.max(max, w.answeredAt - t0), Number.NEGATIVE_INFINITY);
  return {
    ...base,
    answered: lat.length,
    missing: fleet.watchers.length - lat.length,
    early: fleet.watchers.filter((w) => w.early).length,
    non200: fleet.watchers.filter((w) => w.answeredAt >= 0 && w.status !== 200).length,
    closed: fleet.watchers.filter((w) => w.closed).length,
    firstMs: lat.length ? lat[0]! : NaN,
    p50Ms: percentile(lat, 50),
    p99Ms: percentile(lat, 99),
    lastMs: lat.length ? lat[lat.length - 1]! : NaN,
    lastParsedMs: lat.length ? parsed : NaN,
  };
}

function cpuMsOfThisProcess(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

// ---------- Konsul ----------

/** A server answering Consul long polls: Konsul, or the bare Node floor (bench/lib/long-poll-floor.mjs). */
interface LongPollServer {
  readonly pid: number;
  readonly port: number;
}

async function konsulRound(konsul: LongPollServer, W: number, target: 'konsul' | 'floor' = 'konsul'): Promise<{ reps: RepResult[]; note: string }> {
  const fleet = await connectFleet(konsul.port, W, onKonsulBytes);
  const connected = fleet.watchers.length;
  const notes: string[] = [];
  if (connected < W) notes.push(`only ${connected} of ${W} connections opened: ${JSON.stringify(Object.fromEntries(fleet.connectErrors))}`);
  const results: RepResult[] = [];
  try {
    await request(konsul.port, 'PUT', `/v1/kv/${KEY}`, value(0));
    for (let rep = 1; rep <= reps; rep++) {
      const live = fleet.watchers.filter((w) => !w.closed);
      const index = (await request(konsul.port, 'GET', `/v1/kv/${PREFIX}?recurse`)).headers['x-consul-index'];
      const req = `GET /v1/kv/${PREFIX}?recurse&index=${String(index)}&wait=5m HTTP/1.1\r\nHost: 127.0.0.1:${konsul.port}\r\n\r\n`;
      const tReg = performance.now();
      await Promise.all(
        live.map((w) => {
          w.pending = true;
          w.answeredAt = -1;
          w.arrivedAt = -1;
          w.early = false;
          return new Promise<void>((resolve) => w.sock.write(req, () => resolve()));
        }),
      );
      const settle = await waitIdle(konsul.pid, { minMs: 500, maxMs: 60_000 });
      if (!settle.settled) notes.push(`rep ${rep}: Konsul did not go idle within 60 s after the requests were written`);
      const registerMs = performance.now() - tReg;
      const cpuServer0 = procCpuMs(konsul.pid);
      const cpuClient0 = cpuMsOfThisProcess();
      const t0 = performance.now();
      const put = request(konsul.port, 'PUT', `/v1/kv/${KEY}`, value(rep)).then((r) => {
        if (r.status !== 200 || r.body !== 'true') notes.push(`rep ${rep}: PUT answered ${r.status} ${r.body.slice(0, 200)}`);
        return performance.now() - t0;
      });
      const all = await waitFor(fleet, () => live.every((w) => !w.pending || w.closed), timeoutMs);
      const putAckMs = await put;
      const r = repFigures(fleet, t0, {
        rep,
        watchers: live.length,
        putAckMs,
        registerMs,
        serverCpuMs: procCpuMs(konsul.pid) - cpuServer0,
        clientCpuMs: cpuMsOfThisProcess() - cpuClient0,
      });
      if (!all) notes.push(`rep ${rep}: ${r.missing} watcher(s) not answered within ${timeoutMs / 1000} s`);
      results.push(r);
      printRep(target, r);
      // Watchers that are still waiting would answer in the next repetition: reconnect is simpler.
      if (!all) break;
      await sleep(300);
    }
  } finally {
    await closeFleet(fleet);
  }
  return { reps: results, note: notes.join('; ') };
}

// ---------- the floor: a bare node:http server answering the same long polls ----------

interface FloorProcess extends LongPollServer {
  stop(): Promise<void>;
}

async function startFloor(): Promise<FloorProcess> {
  const child = spawn(process.execPath, [join(REPO_ROOT, 'bench', 'lib', 'long-poll-floor.mjs')], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not spawn the long-poll floor');
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await Promise.race([exited, sleep(5000)]);
  };
  const unregister = onCleanup(`long-poll floor pid ${pid}`, stop);
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    void exited.then(() => reject(new Error(`the long-poll floor exited: ${out}`)));
  });
  return {
    pid,
    port,
    stop: async () => {
      await stop();
      unregister();
    },
  };
}

// ---------- etcd ----------

async function etcdRound(etcdPid: number, W: number): Promise<{ reps: RepResult[]; note: string; registerAllMs: number }> {
  const port = 32379;
  const notes: string[] = [];
  const tReg = performance.now();
  const fleet = await connectFleet(port, W, onEtcdBytes);
  const connected = fleet.watchers.length;
  if (connected < W) notes.push(`only ${connected} of ${W} connections opened: ${JSON.stringify(Object.fromEntries(fleet.connectErrors))}`);
  const body = JSON.stringify({ create_request: { key: b64(PREFIX), range_end: b64(PREFIX.slice(0, -1) + String.fromCharCode(PREFIX.charCodeAt(PREFIX.length - 1) + 1)) } });
  const req = `POST /v3/watch HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  const results: RepResult[] = [];
  let registerAllMs = NaN;
  try {
    for (const w of fleet.watchers) w.sock.write(req);
    const created = await waitFor(fleet, () => fleet.watchers.every((w) => w.created || w.closed), 120_000);
    registerAllMs = performance.now() - tReg;
    const nCreated = fleet.watchers.filter((w) => w.created).length;
    if (!created || nCreated < fleet.watchers.length) notes.push(`${nCreated} of ${fleet.watchers.length} watch streams created`);
    console.log(`# etcd: ${nCreated} watch streams created in ${registerAllMs.toFixed(0)} ms (connect + create)`);
    await waitIdle(etcdPid, { minMs: 500, maxMs: 30_000 });
    for (let rep = 1; rep <= reps; rep++) {
      const live = fleet.watchers.filter((w) => w.created && !w.closed);
      for (const w of live) {
        w.pending = true;
        w.answeredAt = -1;
        w.arrivedAt = -1;
        w.early = false;
      }
      const cpuServer0 = procCpuMs(etcdPid);
      const cpuClient0 = cpuMsOfThisProcess();
      const t0 = performance.now();
      const put = request(port, 'POST', '/v3/kv/put', JSON.stringify({ key: b64(KEY), value: b64(value(rep)) })).then((r) => {
        if (r.status !== 200) notes.push(`rep ${rep}: put answered ${r.status} ${r.body.slice(0, 200)}`);
        return performance.now() - t0;
      });
      const all = await waitFor(fleet, () => live.every((w) => !w.pending || w.closed), timeoutMs);
      const putAckMs = await put;
      const r = repFigures(fleet, t0, {
        rep,
        watchers: live.length,
        putAckMs,
        registerMs: NaN,
        serverCpuMs: procCpuMs(etcdPid) - cpuServer0,
        clientCpuMs: cpuMsOfThisProcess() - cpuClient0,
      });
      if (!all) notes.push(`rep ${rep}: ${r.missing} watcher(s) not answered within ${timeoutMs / 1000} s`);
      results.push(r);
      printRep('etcd', r);
      if (!all) break;
      await sleep(300);
      await waitIdle(etcdPid, { minMs: 300, maxMs: 30_000 });
    }
  } finally {
    await closeFleet(fleet);
  }
  return { reps: results, note: notes.join('; '), registerAllMs };
}

// ---------- output ----------

const f = (x: number) => (Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x.toFixed(1)) : '–');

function printRep(target: Target, r: RepResult): void {
  console.log(
    `# ${target.padEnd(6)} W=${r.watchers} rep ${r.rep}: answered ${r.answered}/${r.watchers}, first ${f(r.firstMs)} p50 ${f(r.p50Ms)} p99 ${f(r.p99Ms)} last ${f(r.lastMs)} (parsed ${f(r.lastParsedMs)}) ms, ` +
      `put ack ${f(r.putAckMs)} ms${Number.isFinite(r.registerMs) ? `, register+settle ${f(r.registerMs)} ms` : ''}, server cpu ${f(r.serverCpuMs)} ms, client cpu ${f(r.clientCpuMs)} ms` +
      `${r.early ? `, EARLY ${r.early}` : ''}${r.non200 ? `, NON-200 ${r.non200}` : ''}${r.closed ? `, CLOSED ${r.closed}` : ''}`,
  );
}

const TARGET_NAMES: Record<Target, string> = { konsul: 'Konsul (long poll)', floor: 'floor: bare node:http (long poll)', etcd: 'etcd (watch stream)' };

interface Row {
  readonly target: Target;
  readonly W: number;
  readonly reps: RepResult[];
  readonly note: string;
  readonly registerAllMs?: number;
}

function medianOf(rs: readonly RepResult[], key: keyof RepResult): number {
  return median(rs.map((r) => r[key]).filter((x) => Number.isFinite(x)));
}

async function main(): Promise<void> {
  installSignalHandlers();
  const started = new Date();
  const limits = openFileLimits();
  const header = [
    `# Blocking-query fan-out — ${started.toISOString()}`,
    `# machine: ${machineLine()}`,
    `# code: ${await gitDescribe()}`,
    `# open files limit (soft/hard): ${limits.soft}/${limits.hard}; flags: --watchers ${watcherCounts.join(',')} --reps ${reps} --targets ${targets.join(',')} --timeout ${timeoutMs / 1000}`,
  ];
  for (const l of header) console.log(l);
  const rows: Row[] = [];
  const skipped: string[] = [];
  let konsul: KonsulProcess | null = null;
  let floor: FloorProcess | null = null;
  let etcd: EtcdProcess | null = null;
  try {
    if (targets.includes('konsul')) konsul = await startKonsul();
    if (targets.includes('floor')) floor = await startFloor();
    if (targets.includes('etcd')) etcd = await startEtcd();
    if (konsul) console.log(`# konsul pid ${konsul.pid} at ${konsul.url}`);
    if (floor) console.log(`# long-poll floor (bare node:http) pid ${floor.pid} on port ${floor.port}`);
    if (etcd) console.log(`# etcd ${etcd.version} pid ${etcd.pid} at ${etcd.url}`);
    for (const W of watcherCounts) {
      if (W + FD_MARGIN > limits.soft) {
        const msg = `W=${W} skipped: needs about ${W + FD_MARGIN} open files in this process, the soft limit is ${limits.soft} (raise it with \`ulimit -n\`)`;
        console.log(`# ${msg}`);
        skipped.push(msg);
        continue;
      }
      if (konsul) {
        const rssBefore = procRssMb(konsul.pid);
        const r = await konsulRound(konsul, W);
        console.log(`# konsul RSS ${rssBefore.toFixed(0)} → ${procRssMb(konsul.pid).toFixed(0)} MB${r.note ? `; ${r.note}` : ''}`);
        rows.push({ target: 'konsul', W, ...r });
        if (konsul.exitCode() !== null) throw new Error(`konsul exited with ${konsul.exitCode()}:\n${konsul.logTail().join('\n')}`);
      }
      if (floor) {
        const r = await konsulRound(floor, W, 'floor');
        if (r.note) console.log(`# floor: ${r.note}`);
        rows.push({ target: 'floor', W, ...r });
      }
      if (etcd) {
        const rssBefore = procRssMb(etcd.pid);
        const r = await etcdRound(etcd.pid, W);
        console.log(`# etcd RSS ${rssBefore.toFixed(0)} → ${procRssMb(etcd.pid).toFixed(0)} MB${r.note ? `; ${r.note}` : ''}`);
        rows.push({ target: 'etcd', W, ...r });
      }
      await sleep(1000);
    }
    if (konsul && konsul.logLines() > 0) {
      const distinct = new Map<string, number>();
      for (const l of konsul.logTail()) {
        const key = l.replace(/\(node:\d+\)/, '(node)').replace(/"time":\d+/, '').replace(/"reqId":"[^"]*"/, '').slice(0, 300);
        distinct.set(key, (distinct.get(key) ?? 0) + 1);
      }
      console.log(`# konsul wrote ${konsul.logLines()} log line(s) at level warn or above; distinct among the last 200:`);
      for (const [l, n] of distinct) console.log(`#   ${n}× ${l}`);
    }
  } finally {
    await etcd?.stop();
    await floor?.stop();
    await konsul?.stop();
    controlAgent.destroy();
    await cleanupAll();
  }

  console.log('');
  console.log(`Median of ${reps} repetitions; ms from just before the PUT is sent to each answer's arrival.`);
  console.log('');
  console.log('| server | W | answered | first | p50 | p99 | last | last parsed | PUT ack | server CPU ms / event | client CPU ms / event | notes |');
  console.log('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|');
  for (const row of rows) {
    const answered = row.reps.map((r) => `${r.answered}`).join(', ');
    const allAnswered = row.reps.every((r) => r.answered === r.watchers && r.watchers === row.W);
    console.log(
      `| ${TARGET_NAMES[row.target]} | ${row.W.toLocaleString('en-US')} | ${allAnswered ? 'all' : answered} | ` +
        `${f(medianOf(row.reps, 'firstMs'))} | ${f(medianOf(row.reps, 'p50Ms'))} | ${f(medianOf(row.reps, 'p99Ms'))} | ${f(medianOf(row.reps, 'lastMs'))} | ` +
        `${f(medianOf(row.reps, 'lastParsedMs'))} | ${f(medianOf(row.reps, 'putAckMs'))} | ${f(medianOf(row.reps, 'serverCpuMs'))} | ${f(medianOf(row.reps, 'clientCpuMs'))} | ${row.note || (row.registerAllMs ? `streams created in ${f(row.registerAllMs)} ms` : `register+settle ${f(medianOf(row.reps, 'registerMs'))} ms`)} |`,
    );
  }
  for (const s of skipped) console.log(`- ${s}`);
  console.log(JSON.stringify({ tool: 'watch-fanout', started: started.toISOString(), header, rows, skipped }));
  if (args.json) writeFileSync(args.json, `${JSON.stringify({ header, rows, skipped }, null, 2)}\n`);
}

main().catch(async (err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  await cleanupAll();
  process.exit(1);
});
