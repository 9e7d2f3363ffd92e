// Catalog and health on one `konsul server --dev` (durable: fsync per Raft write group):
//
// 1. Registration throughput: PUT /v1/catalog/register (a node, a service and a check per request,
//    distinct nodes, 100 service names), closed loop at each concurrency for --seconds; and
//    PUT /v1/agent/service/register (the server's own agent: the definition file is written and
//    fsynced before the answer, then the catalog write goes through Raft), at concurrency 16.
// 2. Read throughput: GET /v1/health/service/web?passing on a 10-instance service (each with a
//    node check and a service check), closed loop at each concurrency for --seconds (default
//    consistency: a batched ReadIndex round per read), then ?stale at the highest concurrency.
// 3. Watch fan-out: W blocking queries on /v1/health/service/web?passing (raw keep-alive sockets,
//    ?index=<current>&wait=5m); once the server is idle (every watcher registered), one check of one
//    instance changes status (PUT /v1/catalog/register). Time from just before that PUT is sent to
//    each watcher's complete answer: first, p50, p99, last, over --reps repetitions (the check flips
//    passing ↔ critical each time, so every repetition changes the ?passing answer).
//
//   npx tsx bench/catalog.bench.ts [--seconds 5] [--concurrency 1,16,64] [--watchers 1000] [--reps 5]
//
// The load generator runs in this Node process on the same machine as the server.
import http from 'node:http';
import net from 'node:net';
import { parseArgs } from 'node:util';
import { cleanupAll, gitDescribe, installSignalHandlers, machineLine, median, percentile, procCpuMs, sleep, startKonsul, waitIdle, type KonsulProcess } from './lib/servers.ts';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '1,16,64' },
    watchers: { type: 'string', default: '1000' },
    reps: { type: 'string', default: '5' },
  },
  strict: true,
});
const seconds = Number(args.seconds);
const concurrencies = args.concurrency.split(',').map((s) => Number(s.trim()));
const watcherCount = Number(args.watchers);
const reps = Number(args.reps);

interface LoadResult {
  readonly concurrency: number;
  readonly ops: number;
  readonly perSecond: number;
  readonly p50: number;
  readonly p99: number;
  readonly errors: number;
}

/** A closed loop: `concurrency` workers each send `request(i)` back to back for `ms`. */
async function closedLoop(
  server: KonsulProcess,
  concurrency: number,
  ms: number,
  request: (i: number) => { method: string; path: string; body?: string },
): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const deadline = performance.now() + ms;
  const send = (i: number) =>
    new Promise<void>((resolve) => {
      const { method, path, body } = request(i);
      const started = performance.now();
      const req = http.request({ host: server.host, port: server.port, method, path, agent, headers: body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {} }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode !== 200) errors++;
          latencies.push(performance.now() - started);
          resolve();
        });
      });
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end(body);
    });
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) await send(next++);
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { concurrency, ops: latencies.length, perSecond: latencies.length / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99), errors };
}

function registration(i: number, status = 'passing'): string {
  return JSON.stringify({
    Node: `node-${i}`,
    Address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    NodeMeta: { rack: `r${i % 8}` },
    Service: { ID: `svc-${i}`, Service: `bench-${i % 100}`, Tags: ['v1', `shard-${i % 4}`], Port: 8000 + (i % 1000) },
    Check: { CheckID: `svc-${i}-alive`, Name: 'alive', ServiceID: `svc-${i}`, Status: status },
  });
}

async function put(server: KonsulProcess, path: string, body: string): Promise<void> {
  const res = await fetch(`${server.url}${path}`, { method: 'PUT', body });
  if (res.status !== 200) throw new Error(`${path}: ${res.status} ${await res.text()}`);
}

// ---------- fan-out watchers on raw sockets ----------

interface Watcher {
  readonly sock: net.Socket;
  buf: string;
  pending: boolean;
  answeredAt: number;
  status: number;
  index: number;
  early: boolean;
}

function connectWatchers(server: KonsulProcess, count: number, onAnswer: () => void): Promise<Watcher[]> {
  return Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Watcher>((resolve, reject) => {
          const sock = net.connect({ host: server.host, port: server.port, noDelay: true });
          const w: Watcher = { sock, buf: '', pending: false, answeredAt: -1, status: 0, index: 0, early: false };
          sock.setEncoding('latin1');
          sock.once('connect', () => resolve(w));
          sock.once('error', reject);
          sock.on('data', (chunk: string) => {
            w.buf += chunk;
            const end = w.buf.indexOf('\r\n\r\n');
            if (end < 0) return;
            const head = w.buf.slice(0, end);
            const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
            if (w.buf.length < end + 4 + length) return;
            w.status = Number(head.slice(9, 12));
            w.index = Number(/\r\nx-consul-index:\s*(\d+)/i.exec(head)?.[1] ?? 0);
            w.buf = w.buf.slice(end + 4 + length);
            if (!w.pending) {
              w.early = true;
              return;
            }
            w.pending = false;
            w.answeredAt = performance.now();
            onAnswer();
          });
        }),
    ),
  );
}

async function main(): Promise<void> {
  installSignalHandlers();
  console.log(`# catalog.bench: ${machineLine()}; code ${await gitDescribe()}; ${new Date().toISOString()}`);

  // 1. Registration throughput.
  let server = await startKonsul();
  let offset = 0;
  console.log('\n## PUT /v1/catalog/register (node + service + check, distinct nodes), closed loop');
  console.log('| concurrency | registrations | per second | p50 ms | p99 ms | errors |');
  console.log('|---:|---:|---:|---:|---:|---:|');
  for (const c of concurrencies) {
    const base = offset;
    const r = await closedLoop(server, c, seconds * 1000, (i) => ({ method: 'PUT', path: '/v1/catalog/register', body: registration(base + i) }));
    offset += r.ops + c;
    console.log(`| ${c} | ${r.ops} | ${r.perSecond.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.errors} |`);
  }
  const agentResult = await closedLoop(server, 16, seconds * 1000, (i) => ({
    method: 'PUT',
    path: '/v1/agent/service/register',
    body: JSON.stringify({ Name: `agent-svc-${i % 50}`, ID: `agent-${i}`, Port: 9000, Check: { TTL: '1h', Status: 'passing' } }),
  }));
  console.log('\n## PUT /v1/agent/service/register (state file fsynced, then Raft), concurrency 16');
  console.log(`${agentResult.ops} registrations, ${agentResult.perSecond.toFixed(0)}/s, p50 ${agentResult.p50.toFixed(2)} ms, p99 ${agentResult.p99.toFixed(2)} ms, errors ${agentResult.errors}`);
  await server.stop();

  // 2. Read throughput on a 10-instance service.
  server = await startKonsul();
  for (let i = 0; i < 10; i++) {
    await put(server, '/v1/catalog/register', JSON.stringify({
      Node: `web-node-${i}`,
      Address: `10.0.0.${i + 1}`,
      Service: { ID: `web-${i}`, Service: 'web', Tags: ['v1'], Port: 8080 },
      Checks: [
        { CheckID: 'node-alive', Name: 'node', Status: 'passing' },
        { CheckID: `web-${i}-http`, Name: 'http', ServiceID: `web-${i}`, Status: 'passing' },
      ],
    }));
  }
  console.log('\n## GET /v1/health/service/web?passing (10 instances, 2 checks each), closed loop');
  console.log('| concurrency | reads | per second | p50 ms | p99 ms | errors |');
  console.log('|---:|---:|---:|---:|---:|---:|');
  for (const c of concurrencies) {
    const r = await closedLoop(server, c, seconds * 1000, () => ({ method: 'GET', path: '/v1/health/service/web?passing' }));
    console.log(`| ${c} | ${r.ops} | ${r.perSecond.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.errors} |`);
  }
  const stale = await closedLoop(server, Math.max(...concurrencies), seconds * 1000, () => ({ method: 'GET', path: '/v1/health/service/web?passing&stale' }));
  console.log(`| ${stale.concurrency} (?stale) | ${stale.ops} | ${stale.perSecond.toFixed(0)} | ${stale.p50.toFixed(2)} | ${stale.p99.toFixed(2)} | ${stale.errors} |`);

  // 3. Watch fan-out.
  let progress: () => void = () => {};
  const watchers = await connectWatchers(server, watcherCount, () => progress());
  console.log(`\n## Watch fan-out: ${watcherCount} blocking queries on /v1/health/service/web?passing, one check changes`);
  console.log('| rep | change → first ms | p50 ms | p99 ms | last ms | PUT ack ms | non-200 | early |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
  const lasts: number[] = [];
  const p99s: number[] = [];
  const firsts: number[] = [];
  const p50s: number[] = [];
  for (let rep = 1; rep <= reps; rep++) {
    const current = Number((await fetch(`${server.url}/v1/health/service/web?passing`)).headers.get('x-consul-index'));
    for (const w of watchers) {
      w.pending = true;
      w.answeredAt = -1;
      w.early = false;
      w.sock.write(`GET /v1/health/service/web?passing&index=${current}&wait=5m HTTP/1.1\r\nHost: ${server.host}\r\n\r\n`);
    }
    await waitIdle(server.pid, { minMs: 500 });
    const cpuBefore = procCpuMs(server.pid);
    const allAnswered = new Promise<void>((resolve) => {
      let answered = 0;
      progress = () => {
        answered++;
        if (answered === watchers.length) resolve();
      };
    });
    const status = rep % 2 === 1 ? 'critical' : 'passing';
    const sentAt = performance.now();
    const ack = fetch(`${server.url}/v1/catalog/register`, {
      method: 'PUT',
      body: JSON.stringify({ Node: 'web-node-3', Address: '10.0.0.4', Check: { CheckID: 'web-3-http', Name: 'http', ServiceID: 'web-3', Status: status } }),
    }).then(() => performance.now() - sentAt);
    const timeout = sleep(60_000).then(() => 'timeout' as const);
    const outcome = await Promise.race([allAnswered.then(() => 'done' as const), timeout]);
    const ackMs = await ack;
    const times = watchers.filter((w) => w.answeredAt >= 0).map((w) => w.answeredAt - sentAt).sort((a, b) => a - b);
    const non200 = watchers.filter((w) => w.status !== 200).length;
    const early = watchers.filter((w) => w.early).length;
    console.log(
      `| ${rep} | ${percentile(times, 0).toFixed(1)} | ${percentile(times, 50).toFixed(1)} | ${percentile(times, 99).toFixed(1)} | ${percentile(times, 100).toFixed(1)} | ${ackMs.toFixed(1)} | ${non200} | ${early} |` +
        (outcome === 'timeout' ? ` (timed out: ${times.length} answered)` : '') +
        ` <!-- server CPU ${procCpuMs(server.pid) - cpuBefore} ms -->`,
    );
    firsts.push(percentile(times, 0));
    p50s.push(percentile(times, 50));
    p99s.push(percentile(times, 99));
    lasts.push(percentile(times, 100));
  }
  console.log(`| median | ${median(firsts).toFixed(1)} | ${median(p50s).toFixed(1)} | ${median(p99s).toFixed(1)} | ${median(lasts).toFixed(1)} | | | |`);
  for (const w of watchers) w.sock.destroy();
  await server.stop();
  await cleanupAll();
}

main().catch(async (err: unknown) => {
  console.error(err);
  await cleanupAll();
  process.exit(1);
});
