// Agent cache: how fast is a cache hit, and how many requests stop reaching the servers when
// applications read through their local agents?
//
//   npx tsx bench/agent-cache.bench.ts [--agents 5] [--apps 100] [--seconds 10] [--hits 20000]
//                                      [--json FILE]
//
// One durable `konsul server --dev` and A `konsul agent` processes on this machine; the load
// generator (this process) plays the applications with keep-alive connections.
//
// 1. Hit latency: `GET /v1/health/service/web?cached` (10 instances) on one agent, sequentially,
//    after one warm-up miss; p50/p99/max of the client-observed time. For comparison, the same read
//    straight from the server (in rounds interleaved with the hits, so both see the same machine
//    load) and through the agent without ?cached (forwarded).
// 2. 100 applications watching one service while its health changes every 250 ms (a writer flips
//    one instance's TTL check on the server), for S seconds each way:
//    a. polling every 100 ms: directly against the server vs `?cached` through the agents;
//    b. blocking queries (`?index=&wait=30s`, the way Consul clients watch): directly vs through
//       the agents (default mode: the agent's one background watch per entry serves every app).
//    Requests reaching the server = the server's own HTTP request counter (/v1/agent/metrics,
//    konsul.http.requests, minus the benchmark's own reads of it and the writer's writes) plus the
//    RPCs the agents sent (heartbeats, anti-entropy; from each agent's konsul.agent.upstream.rpc).
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { agentDataDir, startAgentProcess, type AgentProcess } from '../test/kit/agent-process.ts';
import { removeDir, startServer, type ServerProcess } from '../test/kit/server-process.ts';
import { gitDescribe, machineLine, percentile } from './lib/servers.ts';

const { values } = parseArgs({
  options: {
    agents: { type: 'string', default: '5' },
    apps: { type: 'string', default: '100' },
    seconds: { type: 'string', default: '10' },
    hits: { type: 'string', default: '20000' },
    json: { type: 'string' },
  },
});
const AGENTS = Number(values.agents);
const APPS = Number(values.apps);
const SECONDS = Number(values.seconds);
const HITS = Number(values.hits);

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 4096 });

function get(url: string, timeoutMs = 60_000): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: keepAlive, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

function put(url: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'PUT', agent: keepAlive }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function counter(url: string, name: string): Promise<number> {
  const r = await get(`${url}/v1/agent/metrics`);
  const m = JSON.parse(r.body) as { Counters: { Name: string; Count: number }[] };
  return m.Counters.find((c) => c.Name === name)?.Count ?? 0;
}

async function latencySamples(url: string, n: number): Promise<{ times: number[]; hits: number }> {
  const times: number[] = [];
  let hits = 0;
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    const r = await get(url);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (r.headers['x-cache'] === 'HIT') hits++;
  }
  return { times, hits };
}

function summary(times: number[]): { p50: number; p99: number; max: number } {
  const sorted = [...times].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[sorted.length - 1]! };
}

async function latency(url: string, n: number): Promise<{ p50: number; p99: number; max: number; hits: number }> {
  const { times, hits } = await latencySamples(url, n);
  return { ...summary(times), hits };
}

async function serverRequests(server: ServerProcess, agents: readonly AgentProcess[], run: () => Promise<number>): Promise<{ http: number; rpc: number; appRequests: number; writes: number }> {
  const h0 = await counter(server.url, 'konsul.http.requests');
  const r0 = await Promise.all(agents.map((a) => counter(a.url, 'konsul.agent.upstream.rpc')));
  const writes = await run();
  const h1 = await counter(server.url, 'konsul.http.requests');
  const r1 = await Promise.all(agents.map((a) => counter(a.url, 'konsul.agent.upstream.rpc')));
  // The first counter read is counted by the second; the writer's PUTs are not application reads.
  const httpCount = h1 - h0 - 1 - writes;
  const rpc = r1.reduce((s, v, i) => s + v - r0[i]!, 0);
  return { http: httpCount, rpc, appRequests: appRequestCount, writes };
}

let appRequestCount = 0;

/** Flips web-0's TTL check every 250 ms until `stop` resolves; returns the number of writes. */
async function writer(server: ServerProcess, until: number): Promise<number> {
  let writes = 0;
  let passing = true;
  while (Date.now() < until) {
    passing = !passing;
    await put(`${server.url}/v1/catalog/register`, JSON.stringify({ Node: 'bench-node', Address: '10.0.0.1', SkipNodeUpdate: true, Check: { CheckID: 'web-0-check', ServiceID: 'web-0', Name: 'c', Status: passing ? 'passing' : 'warning' } }));
    writes++;
    await new Promise((r) => setTimeout(r, 250));
  }
  return writes;
}

async function pollingApps(urls: readonly string[], until: number): Promise<void> {
  await Promise.all(
    Array.from({ length: APPS }, async (_, i) => {
      const url = urls[i % urls.length]!;
      await new Promise((r) => setTimeout(r, Math.random() * 100));
      while (Date.now() < until) {
        const r = await get(url);
        appRequestCount++;
        if (r.status !== 200) throw new Error(`poll ${url}: ${r.status} ${r.body}`);
        await new Promise((res) => setTimeout(res, 100));
      }
    }),
  );
}

async function blockingApps(urls: readonly string[], until: number): Promise<{ wakeups: number }> {
  let wakeups = 0;
  await Promise.all(
    Array.from({ length: APPS }, async (_, i) => {
      const base = urls[i % urls.length]!;
      let index = 0;
      while (Date.now() < until) {
        const sep = base.includes('?') ? '&' : '?';
        const r = await get(index > 0 ? `${base}${sep}index=${index}&wait=${Math.max(1, Math.ceil((until - Date.now()) / 1000))}s` : base);
        appRequestCount++;
        if (r.status !== 200) throw new Error(`watch ${base}: ${r.status} ${r.body}`);
        const next = Number(r.headers['x-consul-index']);
        if (index > 0 && next !== index) wakeups++;
        index = next;
      }
    }),
  );
  return { wakeups };
}

async function main(): Promise<void> {
  console.log(`# agent cache bench — ${machineLine()} — ${await gitDescribe()}`);
  const server = await startServer({ node: 'bench-s1', extraArgs: [] });
  const agents: AgentProcess[] = [];
  const dirs: string[] = [];
  try {
    for (let i = 0; i < 10; i++) {
      const status = await put(
        `${server.url}/v1/catalog/register`,
        JSON.stringify({ Node: i === 0 ? 'bench-node' : `bench-node-${i}`, Address: `10.0.0.${i + 1}`, Service: { ID: `web-${i}`, Service: 'web', Port: 8080 }, Check: { CheckID: `web-${i}-check`, ServiceID: `web-${i}`, Name: 'c', Status: 'passing' } }),
      );
      if (status !== 200) throw new Error(`register: ${status}`);
    }
    for (let i = 0; i < AGENTS; i++) {
      const dir = agentDataDir();
      dirs.push(dir);
      agents.push(await startAgentProcess({ node: `bench-agent-${i}`, retryJoin: [server.rpcAddress], dataDir: dir, logLevel: 'warn' }));
    }
    console.log(`server ${server.url} (pid ${server.pid}); ${AGENTS} agents`);

    // 2. Load on the server: 100 applications, one service whose health keeps changing.
    const scenarios: Record<string, { http: number; rpc: number; appRequests: number; writes: number; wakeups?: number }> = {};
    const run = async (name: string, body: (until: number) => Promise<{ wakeups: number } | void>) => {
      appRequestCount = 0;
      let wakeups: number | undefined;
      const counted = await serverRequests(server, agents, async () => {
        const until = Date.now() + SECONDS * 1000;
        const [writes, result] = await Promise.all([writer(server, until), body(until)]);
        if (result) wakeups = result.wakeups;
        return writes;
      });
      scenarios[name] = { ...counted, ...(wakeups !== undefined ? { wakeups } : {}) };
      console.log(
        `${name.padEnd(27)}: ${counted.writes} changes, ${counted.appRequests} app requests${wakeups !== undefined ? ` (${wakeups} wake-ups)` : ''}, ${counted.http} HTTP + ${counted.rpc} RPC requests reached the server`,
      );
    };
    // Direct runs first, while no agent holds a cache entry (whose refreshes would count too).
    await run('polling, direct', (until) => pollingApps([`${server.url}/v1/health/service/web`], until));
    await run('blocking, direct', (until) => blockingApps([`${server.url}/v1/health/service/web`], until));
    // 1. Hit latency, between the direct runs and the runs through the agents.
    const cachedUrl = `${agents[0]!.url}/v1/health/service/web?cached`;
    const warm = await get(cachedUrl);
    if (warm.headers['x-cache'] !== 'MISS') throw new Error(`expected a warm-up MISS, got ${String(warm.headers['x-cache'])}`);
    await latency(cachedUrl, 2000); // JIT warm-up
    await latency(`${server.url}/v1/health/service/web`, 2000);
    // Interleaved rounds, so that both see the same machine load (other processes come and go).
    const ROUNDS = 4;
    const hitTimes: number[] = [];
    const directTimes: number[] = [];
    let hitCount = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const h = await latencySamples(cachedUrl, Math.ceil(HITS / ROUNDS));
      hitTimes.push(...h.times);
      hitCount += h.hits;
      directTimes.push(...(await latencySamples(`${server.url}/v1/health/service/web`, Math.ceil(HITS / ROUNDS))).times);
    }
    const hit = { ...summary(hitTimes), hits: hitCount };
    const direct = summary(directTimes);
    const forwarded = await latency(`${agents[0]!.url}/v1/health/service/web`, Math.min(HITS, 5000));
    console.log(`cache hit    : p50 ${hit.p50.toFixed(3)} ms, p99 ${hit.p99.toFixed(3)} ms, max ${hit.max.toFixed(2)} ms (${hit.hits}/${HITS} HIT)`);
    console.log(`server direct: p50 ${direct.p50.toFixed(3)} ms, p99 ${direct.p99.toFixed(3)} ms`);
    console.log(`forwarded    : p50 ${forwarded.p50.toFixed(3)} ms, p99 ${forwarded.p99.toFixed(3)} ms`);

    await run('polling, ?cached via agents', (until) => pollingApps(agents.map((a) => `${a.url}/v1/health/service/web?cached`), until));
    await run('blocking, via agents', (until) => blockingApps(agents.map((a) => `${a.url}/v1/health/service/web`), until));
    // Per change of the watched service: the windows see different numbers of changes (the writer
    // shares the CPU), and every change is what makes blocking clients come back.
    const perChange = (name: string) => (scenarios[name]!.http + scenarios[name]!.rpc) / scenarios[name]!.writes;
    const reduction = (a: string, b: string) => 1 - perChange(b) / perChange(a);
    const perApp = (name: string) => (scenarios[name]!.http + scenarios[name]!.rpc) / scenarios[name]!.appRequests;
    const polling = reduction('polling, direct', 'polling, ?cached via agents');
    const blocking = reduction('blocking, direct', 'blocking, via agents');
    console.log(`server requests per change: polling ${perChange('polling, direct').toFixed(1)} → ${perChange('polling, ?cached via agents').toFixed(1)}, blocking ${perChange('blocking, direct').toFixed(1)} → ${perChange('blocking, via agents').toFixed(1)}`);
    console.log(`reduction of requests reaching the server: polling ${(polling * 100).toFixed(1)} %, blocking ${(blocking * 100).toFixed(1)} %`);
    console.log(
      `server requests per application request: polling ${perApp('polling, direct').toFixed(3)} → ${perApp('polling, ?cached via agents').toFixed(3)}, blocking ${perApp('blocking, direct').toFixed(3)} → ${perApp('blocking, via agents').toFixed(3)}`,
    );
    if (values.json) writeFileSync(values.json, JSON.stringify({ hit, direct, forwarded, scenarios, polling, blocking }, null, 2));
  } finally {
    for (const a of agents) await a.kill9();
    await server.kill9();
    for (const d of dirs) removeDir(d);
    removeDir(server.dataDir);
    keepAlive.destroy();
  }
}

await main();
