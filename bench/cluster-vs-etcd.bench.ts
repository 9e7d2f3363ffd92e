// 3-server durable KV throughput and latency, Konsul vs etcd 3.4, with the same load generator
// (../shared/bench/kvload.mjs) and the same flags; the load is spread over all three members
// (`--url` once per member: workers round-robin over them).
//
//   npx tsx bench/cluster-vs-etcd.bench.ts [--duration 10] [--put-concurrency 16,64,256]
//                                          [--get-concurrency 64] [--runs 1] [--warmup 1]
//                                          [--keys 1000] [--value-size 100] [--json FILE]
//
// Cases: put (100-byte values) at each --put-concurrency; then gets at each --get-concurrency in
// Konsul's default read mode (ReadIndex on the server asked) / etcd's linearizable, and in Konsul's
// ?stale mode (local) / etcd's serializable. The two systems never run at the same time: a fresh
// 3-server Konsul (temp data dirs, default, durable settings) runs every case, is stopped, then a
// fresh 3-member etcd (../shared/bench/etcd-cluster.sh, default settings, fsync on) runs them (with
// --runs > 1, every other run starts with etcd). Keys are written once per cluster by kvload's
// prefill before the first get case (later get cases use --no-prefill).
//
// Server CPU is the three server processes' user+system time over the whole kvload run (incl. its
// warm-up), in % of one core. Prints markdown tables, and one JSON line (the last line).
// Everything this benchmark starts is stopped by PID, also on error and on Ctrl-C.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { startEtcdCluster, startKonsulCluster, type EtcdCluster, type KonsulCluster } from './lib/cluster.ts';
import { cleanupAll, gitDescribe, installSignalHandlers, machineLine, median, runSharedTool, sleep } from './lib/servers.ts';

type Server = 'konsul' | 'etcd';

interface KvloadResult {
  readonly ops_per_sec: number;
  readonly errors: number;
  readonly error_kinds: Record<string, number>;
  readonly error_samples: string[];
  readonly not_found: number;
  readonly latency_ms: { p50: number | null; p90: number | null; p99: number | null; max: number | null };
  readonly generator_cpu_pct: number;
  readonly prefill: { keys: number; seconds: number; errors: number } | null;
}

interface Case {
  readonly op: 'put' | 'get';
  readonly concurrency: number;
  readonly konsulMode: 'default' | 'stale' | null;
  readonly etcdMode: 'linearizable' | 'serializable' | null;
}

interface Sample {
  readonly run: number;
  readonly server: Server;
  readonly result: KvloadResult;
  readonly serverCpuPct: number;
  readonly wallS: number;
}

interface FsyncResult {
  readonly variant: string;
  readonly sync: string;
  readonly p50_ms: number;
  readonly p99_ms: number;
}

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    'put-concurrency': { type: 'string', default: '16,64,256' },
    'get-concurrency': { type: 'string', default: '64' },
    runs: { type: 'string', default: '1' },
    warmup: { type: 'string', default: '1' },
    keys: { type: 'string', default: '1000' },
    'value-size': { type: 'string', default: '100' },
    json: { type: 'string' },
  },
  strict: true,
});

const duration = Number(args.duration);
const list = (s: string) => s.split(',').filter((x) => x.trim() !== '').map((x) => Number.parseInt(x.trim(), 10));
const putConcurrencies = list(args['put-concurrency']);
const getConcurrencies = list(args['get-concurrency']);
const runs = Number.parseInt(args.runs, 10);
const warmup = Number(args.warmup);
const keys = Number.parseInt(args.keys, 10);
const valueSize = Number.parseInt(args['value-size'], 10);
if (!(duration > 0 && duration <= 60)) throw new Error('--duration must be in (0, 60]');
if ([...putConcurrencies, ...getConcurrencies].some((c) => !(c >= 1 && c <= 4096))) throw new Error('concurrencies must be 1..4096');
if (!(runs >= 1)) throw new Error('--runs must be at least 1');

function casesOf(): Case[] {
  const out: Case[] = [];
  for (const c of putConcurrencies) out.push({ op: 'put', concurrency: c, konsulMode: null, etcdMode: null });
  for (const c of getConcurrencies) {
    out.push({ op: 'get', concurrency: c, konsulMode: 'default', etcdMode: 'linearizable' });
    out.push({ op: 'get', concurrency: c, konsulMode: 'stale', etcdMode: 'serializable' });
  }
  return out;
}

const caseName = (k: Case) => (k.op === 'put' ? `put ${valueSize} B` : `get ${k.konsulMode} / ${k.etcdMode}`);
const caseKey = (k: Case) => `${k.op}:${k.konsulMode ?? ''}:${k.concurrency}`;

async function kvload(server: Server, urls: readonly string[], cpuMs: () => number, k: Case, extra: readonly string[]): Promise<Omit<Sample, 'run' | 'server'>> {
  const flags = [
    '--target', server === 'konsul' ? 'consul' : 'etcd',
    ...urls.flatMap((u) => ['--url', u]),
    '--op', k.op,
    '--concurrency', String(k.concurrency),
    '--duration', String(duration),
    '--warmup', String(warmup),
    '--keys', String(keys),
    '--value-size', String(valueSize),
  ];
  if (k.op === 'get') flags.push('--read-mode', (server === 'konsul' ? k.konsulMode : k.etcdMode)!);
  flags.push(...extra);
  const cpu0 = cpuMs();
  const t0 = performance.now();
  const { json } = await runSharedTool('kvload.mjs', flags, (duration + warmup + 120) * 1000);
  const wallMs = performance.now() - t0;
  const cpu = cpuMs() - cpu0;
  return { result: json as KvloadResult, serverCpuPct: (100 * cpu) / wallMs, wallS: wallMs / 1000 };
}

function fmt(x: number, digits = 1): string {
  if (!Number.isFinite(x)) return '–';
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString('en-US');
  if (Math.abs(x) >= 100) return x.toFixed(0);
  if (Math.abs(x) >= 10) return x.toFixed(digits);
  return x.toFixed(digits + 1);
}

interface Summary {
  readonly ops: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly cpu: number;
  readonly genCpu: number;
  readonly errors: number;
  readonly notFound: number;
}

function summarize(samples: readonly Sample[]): Summary {
  return {
    ops: median(samples.map((s) => s.result.ops_per_sec)),
    p50: median(samples.map((s) => s.result.latency_ms.p50 ?? NaN)),
    p99: median(samples.map((s) => s.result.latency_ms.p99 ?? NaN)),
    max: Math.max(...samples.map((s) => s.result.latency_ms.max ?? NaN)),
    cpu: median(samples.map((s) => s.serverCpuPct)),
    genCpu: median(samples.map((s) => s.result.generator_cpu_pct)),
    errors: samples.reduce((a, s) => a + s.result.errors, 0),
    notFound: samples.reduce((a, s) => a + s.result.not_found, 0),
  };
}

async function main(): Promise<void> {
  installSignalHandlers();
  const started = new Date();
  const header = [
    `# Konsul 3 servers vs etcd 3 members, durable — ${started.toISOString()}`,
    `# machine: ${machineLine()}`,
    `# code: ${await gitDescribe()}`,
    `# flags: --duration ${duration} --warmup ${warmup} --keys ${keys} --value-size ${valueSize} --put-concurrency ${putConcurrencies.join(',')} --get-concurrency ${getConcurrencies.join(',')} --runs ${runs}`,
  ];
  for (const l of header) console.log(l);

  const fsync = (await runSharedTool('fsync-floor.mjs', ['--dir', tmpdir(), '--n', '1000', '--sizes', '100'])).json as { df: string; results: FsyncResult[] };
  const append = fsync.results.find((r) => r.variant === 'append' && r.sync === 'fdatasync');
  const fsyncLine = `fsync floor on ${tmpdir()} (${fsync.df.split(/\s+/).slice(0, 2).join(' ')}): 100 B write + fdatasync p50 ${append?.p50_ms} ms (p99 ${append?.p99_ms})`;
  console.log(`# ${fsyncLine}`);

  const cases = casesOf();
  const samples = new Map<string, Sample[]>();
  const konsulLog: string[] = [];
  let konsul: KonsulCluster | null = null;
  let etcd: EtcdCluster | null = null;
  try {
    for (let run = 1; run <= runs; run++) {
      const order: Server[] = run % 2 === 1 ? ['konsul', 'etcd'] : ['etcd', 'konsul'];
      for (const server of order) {
        let urls: readonly string[];
        let cpuMs: () => number;
        let alive: () => string | null = () => null;
        if (server === 'konsul') {
          const t0 = performance.now();
          konsul = await startKonsulCluster();
          const leader = await konsul.waitForLeader();
          const k = konsul;
          console.log(
            `# run ${run}: konsul cluster ${k.members.map((m) => `${m.name} pid ${m.pid()} ${m.httpUrl} rpc ${m.rpcAddr}`).join('; ')}; leader ${leader} after ${((performance.now() - t0) / 1000).toFixed(1)} s`,
          );
          urls = k.urls;
          cpuMs = () => k.cpuMs();
          alive = () => k.members.filter((m) => !m.alive()).map((m) => m.name).join(', ') || null;
        } else {
          etcd = await startEtcdCluster();
          const e = etcd;
          console.log(`# run ${run}: etcd ${e.version} cluster, members m1..m3 pids ${['m1', 'm2', 'm3'].map((m) => e.pid(m)).join(', ')} at ${e.urls.join(', ')}`);
          urls = e.urls;
          cpuMs = () => e.cpuMs();
        }
        let prefilled = false;
        for (const k of cases) {
          const extra = k.op === 'get' && prefilled ? ['--no-prefill'] : [];
          if (k.op === 'get') prefilled = true;
          const r = await kvload(server, urls, cpuMs, k, extra);
          const L = r.result.latency_ms;
          console.log(
            `# run ${run} ${server.padEnd(6)} ${caseName(k).padEnd(28)} c=${String(k.concurrency).padStart(3)}: ${fmt(r.result.ops_per_sec)} ops/s, ` +
              `p50 ${L.p50} p99 ${L.p99} max ${L.max} ms, errors ${r.result.errors}${r.result.errors ? ` ${JSON.stringify(r.result.error_kinds)}` : ''}, ` +
              `servers' cpu ${r.serverCpuPct.toFixed(0)}%, generator cpu ${r.result.generator_cpu_pct}%` +
              (r.result.prefill ? ` (prefill ${r.result.prefill.keys} keys in ${r.result.prefill.seconds.toFixed(2)} s)` : ''),
          );
          if (r.result.errors > 0) console.log(`#   error samples: ${r.result.error_samples.join(' | ')}`);
          const list = samples.get(caseKey(k)) ?? [];
          list.push({ run, server, ...r });
          samples.set(caseKey(k), list);
          const dead = alive();
          if (dead) throw new Error(`konsul server(s) exited: ${dead}\n${konsul!.members.flatMap((m) => m.logTail().slice(-20)).join('\n')}`);
          await sleep(500);
        }
        if (server === 'konsul') {
          const k = konsul!;
          const n = k.members.reduce((a, m) => a + m.logLines(), 0);
          if (n > 0) {
            console.log(`# konsul servers wrote ${n} line(s) (--log-level warn; last 200 per server kept); distinct ones:`);
            const distinct = new Map<string, number>();
            for (const l of k.members.flatMap((m) => m.logTail())) {
              konsulLog.push(l);
              const key = l
                .replace(/\(node:\d+\)/, '(node)')
                .replace(/"(time|pid|hostname|reqId)":("[^"]*"|\d+),?/g, '')
                .replace(/,"stack":.*/, '')
                .slice(0, 240);
              distinct.set(key, (distinct.get(key) ?? 0) + 1);
            }
            for (const [l, c] of distinct) console.log(`#   ${c}× ${l}`);
          }
          await k.stop();
          konsul = null;
        } else {
          await etcd!.stop();
          etcd = null;
        }
        await sleep(1000);
      }
    }
  } finally {
    await (etcd as EtcdCluster | null)?.stop();
    await (konsul as KonsulCluster | null)?.stop();
    await cleanupAll();
  }

  const rows: string[] = [];
  rows.push("| op | c | Konsul ops/s | Konsul p50 / p99 ms | etcd ops/s | etcd p50 / p99 ms | ops/s K/E | p50 K/E | p99 K/E | servers' CPU % K / E | generator CPU % K / E | errors K / E |");
  rows.push('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
  const summaries: { name: string; concurrency: number; konsul: Summary; etcd: Summary }[] = [];
  for (const k of cases) {
    const all = samples.get(caseKey(k)) ?? [];
    const ks = summarize(all.filter((s) => s.server === 'konsul'));
    const es = summarize(all.filter((s) => s.server === 'etcd'));
    summaries.push({ name: caseName(k), concurrency: k.concurrency, konsul: ks, etcd: es });
    rows.push(
      `| ${caseName(k)} | ${k.concurrency} | ${fmt(ks.ops)} | ${fmt(ks.p50)} / ${fmt(ks.p99)} | ${fmt(es.ops)} | ${fmt(es.p50)} / ${fmt(es.p99)} | ` +
        `${(ks.ops / es.ops).toFixed(2)}× | ${(ks.p50 / es.p50).toFixed(2)}× | ${(ks.p99 / es.p99).toFixed(2)}× | ${ks.cpu.toFixed(0)} / ${es.cpu.toFixed(0)} | ` +
        `${ks.genCpu.toFixed(0)} / ${es.genCpu.toFixed(0)} | ${ks.errors} / ${es.errors} |`,
    );
  }
  console.log('');
  console.log(`${runs > 1 ? `Medians of ${runs} runs. ` : ''}${fsyncLine}.`);
  console.log('');
  for (const r of rows) console.log(r);

  const out = {
    tool: 'cluster-vs-etcd',
    started: started.toISOString(),
    header,
    fsync: fsync.results,
    konsulLog,
    summaries,
    cases: cases.map((k) => ({ ...k, name: caseName(k), samples: samples.get(caseKey(k)) ?? [] })),
  };
  if (args.json) writeFileSync(args.json, `${JSON.stringify(out, null, 2)}\n`);
  console.log(JSON.stringify(out));
}

main().catch(async (err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  await cleanupAll();
  process.exit(1);
});
