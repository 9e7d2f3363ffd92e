// Single-node durable KV throughput and latency, Konsul vs etcd 3.4, measured back to back with
// the same load generator (../shared/bench/kvload.mjs) and the same flags.
//
//   npx tsx bench/kv-vs-etcd.bench.ts [--duration 10] [--concurrency 1,16,64,256] [--runs 1]
//                                     [--warmup 1] [--keys 1000] [--value-size 100] [--json FILE]
//                                     [--fresh-konsul-gets]
//
// Starts a fresh Konsul (temp data dir, default settings: every write synced before the ack) and a
// single-node etcd (../shared/bench/etcd-cluster.sh, default settings, fsync on), both on 127.0.0.1.
// For each concurrency: put (100-byte values), then get (Konsul: default read mode; etcd:
// linearizable), and at c=64 also stale (Konsul) / serializable (etcd) gets. Each case runs on
// Konsul and on etcd one right after the other (K, E, K, E, ...); with --runs > 1 every other run
// starts with etcd (E, K, ...), so a slow drift of the machine cannot favour either side, and the
// tables show the median of each figure over the runs. Both servers stay up for the whole
// benchmark; the idle one only ticks. Keys are written once per server before the first get run
// (kvload's prefill), so get runs use --no-prefill.
//
// --fresh-konsul-gets: restart Konsul (new process, new data dir, keys written again by kvload's
// prefill) before each of its get runs, so that every get run starts on a process that has served
// no earlier GET. Without it, Konsul's get figures depend on how many GETs it served before (see
// bench/RESULTS.md: each GET leaves a listener behind, and adding one costs O(listeners)).
//
// Before the servers start, ../shared/bench/fsync-floor.mjs runs once on the temp directory's disk
// (where both servers keep their data): the floor of one durable write.
//
// Server CPU is the server process's user+system time over the whole kvload run (incl. its warm-up),
// in % of one core. Prints markdown tables, the goal checks, and one JSON line (the last line).
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import {
  cleanupAll,
  gitDescribe,
  installSignalHandlers,
  machineLine,
  median,
  procCpuMs,
  procRssMb,
  runSharedTool,
  sleep,
  startEtcd,
  startKonsul,
  type EtcdProcess,
  type KonsulProcess,
} from './lib/servers.ts';

type Server = 'konsul' | 'etcd';

interface KvloadResult {
  readonly ops_per_sec: number;
  readonly errors: number;
  readonly error_kinds: Record<string, number>;
  readonly error_samples: string[];
  readonly not_found: number;
  readonly latency_ms: { p50: number | null; p90: number | null; p99: number | null; max: number | null };
  readonly generator_cpu_pct: number;
}

interface Case {
  readonly op: 'put' | 'get';
  readonly concurrency: number;
  /** Konsul's read mode and etcd's, for gets. */
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
  readonly size: number;
  readonly sync: string;
  readonly p50_ms: number;
  readonly p99_ms: number;
}

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '1,16,64,256' },
    runs: { type: 'string', default: '1' },
    warmup: { type: 'string', default: '1' },
    keys: { type: 'string', default: '1000' },
    'value-size': { type: 'string', default: '100' },
    json: { type: 'string' },
    'fresh-konsul-gets': { type: 'boolean', default: false },
  },
  strict: true,
});

const duration = Number(args.duration);
const concurrencies = args.concurrency.split(',').map((s) => Number.parseInt(s.trim(), 10));
const runs = Number.parseInt(args.runs, 10);
const warmup = Number(args.warmup);
const keys = Number.parseInt(args.keys, 10);
const valueSize = Number.parseInt(args['value-size'], 10);
if (!(duration > 0 && duration <= 60)) throw new Error('--duration must be in (0, 60]');
if (concurrencies.some((c) => !(c >= 1 && c <= 4096))) throw new Error('--concurrency must be a list of 1..4096');
if (!(runs >= 1)) throw new Error('--runs must be at least 1');

const freshKonsulGets = args['fresh-konsul-gets'];
const STALE_AT = 64;

function casesOf(): Case[] {
  const out: Case[] = [];
  for (const c of concurrencies) {
    out.push({ op: 'put', concurrency: c, konsulMode: null, etcdMode: null });
    out.push({ op: 'get', concurrency: c, konsulMode: 'default', etcdMode: 'linearizable' });
    if (c === STALE_AT) out.push({ op: 'get', concurrency: c, konsulMode: 'stale', etcdMode: 'serializable' });
  }
  return out;
}

function caseName(k: Case): string {
  return k.op === 'put' ? `put ${valueSize} B` : `get ${k.konsulMode} / ${k.etcdMode}`;
}

function caseKey(k: Case): string {
  return `${k.op}:${k.konsulMode ?? ''}:${k.concurrency}`;
}

async function kvload(server: Server, url: string, pid: number, k: Case, extra: readonly string[] = []): Promise<{ result: KvloadResult; serverCpuPct: number; wallS: number }> {
  const flags = [
    '--target', server === 'konsul' ? 'consul' : 'etcd',
    '--url', url,
    '--op', k.op,
    '--concurrency', String(k.concurrency),
    '--duration', String(duration),
    '--warmup', String(warmup),
    '--keys', String(keys),
    '--value-size', String(valueSize),
  ];
  if (k.op === 'get') flags.push('--read-mode', (server === 'konsul' ? k.konsulMode : k.etcdMode)!);
  flags.push(...extra);
  const cpu0 = procCpuMs(pid);
  const t0 = performance.now();
  const { json } = await runSharedTool('kvload.mjs', flags, (duration + warmup + 120) * 1000);
  const wallMs = performance.now() - t0;
  const cpuMs = procCpuMs(pid) - cpu0;
  return { result: json as KvloadResult, serverCpuPct: (100 * cpuMs) / wallMs, wallS: wallMs / 1000 };
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
  readonly cpu: number;
  readonly errors: number;
  readonly notFound: number;
}

function summarize(samples: readonly Sample[]): Summary {
  return {
    ops: median(samples.map((s) => s.result.ops_per_sec)),
    p50: median(samples.map((s) => s.result.latency_ms.p50 ?? NaN)),
    p99: median(samples.map((s) => s.result.latency_ms.p99 ?? NaN)),
    cpu: median(samples.map((s) => s.serverCpuPct)),
    errors: samples.reduce((a, s) => a + s.result.errors, 0),
    notFound: samples.reduce((a, s) => a + s.result.not_found, 0),
  };
}

async function main(): Promise<void> {
  installSignalHandlers();
  const started = new Date();
  const header = [
    `# Konsul vs etcd, single node, durable — ${started.toISOString()}`,
    `# machine: ${machineLine()}`,
    `# code: ${await gitDescribe()}`,
    `# flags: --duration ${duration} --warmup ${warmup} --keys ${keys} --value-size ${valueSize} --concurrency ${concurrencies.join(',')} --runs ${runs}${freshKonsulGets ? ' --fresh-konsul-gets' : ''}`,
  ];
  for (const l of header) console.log(l);

  // 1. The disk: one small durable write.
  const fsync = (await runSharedTool('fsync-floor.mjs', ['--dir', tmpdir(), '--n', '1000', '--sizes', '100'])).json as { df: string; results: FsyncResult[] };
  const floor = (variant: string, sync = 'fdatasync') => fsync.results.find((r) => r.variant === variant && r.sync === sync);
  const fsyncLine =
    `fsync floor on ${tmpdir()} (${fsync.df.split(/\s+/).slice(0, 2).join(' ')}): 100 B write + fdatasync p50 ${floor('append')?.p50_ms} ms ` +
    `(p99 ${floor('append')?.p99_ms}) appending, p50 ${floor('prealloc')?.p50_ms} ms (p99 ${floor('prealloc')?.p99_ms}) preallocated; ` +
    `+ fsync p50 ${floor('append', 'fsync')?.p50_ms} ms`;
  console.log(`# ${fsyncLine}`);

  let konsul: KonsulProcess | null = null;
  let etcd: EtcdProcess | null = null;
  const samples = new Map<string, Sample[]>();
  let rss: { start: Record<Server, number>; end: Record<Server, number> } | null = null;
  let konsulLog: string[] = [];
  const cases = casesOf();
  try {
    konsul = await startKonsul();
    etcd = await startEtcd();
    console.log(`# konsul pid ${konsul.pid} at ${konsul.url} (data ${konsul.dataDir}); etcd ${etcd.version} pid ${etcd.pid} at ${etcd.url}`);
    const target = (s: Server) => (s === 'konsul' ? { url: konsul!.url, pid: konsul!.pid } : { url: etcd!.url, pid: etcd!.pid });

    const rssAtStart = { konsul: procRssMb(konsul.pid), etcd: procRssMb(etcd.pid) };
    const prefilled = new Set<Server>();
    for (let run = 1; run <= runs; run++) {
      const order: Server[] = run % 2 === 1 ? ['konsul', 'etcd'] : ['etcd', 'konsul'];
      for (const k of cases) {
        for (const server of order) {
          if (server === 'konsul' && k.op === 'get' && freshKonsulGets) {
            await konsul.stop();
            konsul = await startKonsul();
            prefilled.delete('konsul');
          }
          const { url, pid } = target(server);
          // kvload writes every key once before the first get run on each server; later get runs skip it.
          const extra = k.op === 'get' && prefilled.has(server) ? ['--no-prefill'] : [];
          if (k.op === 'get') prefilled.add(server);
          const r = await kvload(server, url, pid, k, extra);
          const L = r.result.latency_ms;
          console.log(
            `# run ${run} ${server.padEnd(6)} ${caseName(k).padEnd(28)} c=${String(k.concurrency).padStart(3)}: ${fmt(r.result.ops_per_sec)} ops/s, ` +
              `p50 ${L.p50} p99 ${L.p99} max ${L.max} ms, errors ${r.result.errors}${r.result.errors ? ` ${JSON.stringify(r.result.error_kinds)}` : ''}, ` +
              `server cpu ${r.serverCpuPct.toFixed(0)}%, generator cpu ${r.result.generator_cpu_pct}%`,
          );
          if (r.result.errors > 0) console.log(`#   error samples: ${r.result.error_samples.join(' | ')}`);
          const list = samples.get(caseKey(k)) ?? [];
          list.push({ run, server, ...r });
          samples.set(caseKey(k), list);
          if (konsul.exitCode() !== null) throw new Error(`konsul exited with ${konsul.exitCode()}:\n${konsul.logTail().join('\n')}`);
          await sleep(500);
        }
      }
    }
    rss = { start: rssAtStart, end: { konsul: procRssMb(konsul.pid), etcd: procRssMb(etcd.pid) } };
    console.log(
      `# RSS at start / end: konsul ${rss.start.konsul.toFixed(0)} / ${rss.end.konsul.toFixed(0)} MB, etcd ${rss.start.etcd.toFixed(0)} / ${rss.end.etcd.toFixed(0)} MB`,
    );
    if (konsul.logLines() > 0) {
      console.log(`# konsul wrote ${konsul.logLines()} log line(s) at level warn or above; the last ones:`);
      konsulLog = konsul.logTail();
      const distinct = new Map<string, number>();
      for (const l of konsulLog) {
        const key = l.replace(/\(node:\d+\)/, '(node)').replace(/"time":\d+/, '').replace(/"reqId":"[^"]*"/, '').slice(0, 300);
        distinct.set(key, (distinct.get(key) ?? 0) + 1);
      }
      for (const [l, n] of distinct) console.log(`#   ${n}× ${l}`);
    }
  } finally {
    await etcd?.stop();
    await konsul?.stop();
    await cleanupAll();
  }

  // 2. Tables.
  const rows: string[] = [];
  rows.push('| op | c | Konsul ops/s | Konsul p50 / p99 ms | etcd ops/s | etcd p50 / p99 ms | ops/s K/E | p50 K/E | p99 K/E | CPU % K / E | errors K / E |');
  rows.push('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
  const summaries = new Map<string, { k: Summary; e: Summary }>();
  for (const k of cases) {
    const list = samples.get(caseKey(k)) ?? [];
    const ks = summarize(list.filter((s) => s.server === 'konsul'));
    const es = summarize(list.filter((s) => s.server === 'etcd'));
    summaries.set(caseKey(k), { k: ks, e: es });
    rows.push(
      `| ${caseName(k)} | ${k.concurrency} | ${fmt(ks.ops)} | ${fmt(ks.p50)} / ${fmt(ks.p99)} | ${fmt(es.ops)} | ${fmt(es.p50)} / ${fmt(es.p99)} | ` +
        `${(ks.ops / es.ops).toFixed(2)}× | ${(ks.p50 / es.p50).toFixed(2)}× | ${(ks.p99 / es.p99).toFixed(2)}× | ${ks.cpu.toFixed(0)} / ${es.cpu.toFixed(0)} | ${ks.errors} / ${es.errors} |`,
    );
  }
  console.log('');
  console.log(`${runs > 1 ? `Medians of ${runs} runs. ` : ''}${fsyncLine}.`);
  console.log('');
  for (const r of rows) console.log(r);

  // 3. The goals (issue): measured back to back with etcd in this run.
  const goals: { goal: string; met: boolean | null; detail: string }[] = [];
  const put64 = summaries.get(`put::64`);
  goals.push(
    put64
      ? { goal: 'durable put throughput at c=64 ≥ 1.0× etcd', met: put64.k.ops >= put64.e.ops, detail: `${fmt(put64.k.ops)} vs ${fmt(put64.e.ops)} ops/s = ${(put64.k.ops / put64.e.ops).toFixed(2)}×` }
      : { goal: 'durable put throughput at c=64 ≥ 1.0× etcd', met: null, detail: 'c=64 not measured' },
  );
  const put16 = summaries.get(`put::16`);
  goals.push(
    put16
      ? { goal: 'put p99 < 10 ms at c=16', met: put16.k.p99 < 10, detail: `Konsul p99 ${fmt(put16.k.p99)} ms (etcd ${fmt(put16.e.p99)} ms)` }
      : { goal: 'put p99 < 10 ms at c=16', met: null, detail: 'c=16 not measured' },
  );
  const put1 = summaries.get(`put::1`);
  goals.push(
    put1
      ? { goal: 'put p50 at c=1 ≤ etcd', met: put1.k.p50 <= put1.e.p50, detail: `Konsul p50 ${fmt(put1.k.p50)} ms vs etcd ${fmt(put1.e.p50)} ms` }
      : { goal: 'put p50 at c=1 ≤ etcd', met: null, detail: 'c=1 not measured' },
  );
  console.log('');
  for (const g of goals) console.log(`- ${g.met === null ? 'NOT MEASURED' : g.met ? 'MET' : 'NOT MET'}: ${g.goal} — ${g.detail}`);

  const out = {
    tool: 'kv-vs-etcd',
    started: started.toISOString(),
    header,
    fsync: fsync.results,
    rss,
    konsulLog,
    cases: cases.map((k) => ({ ...k, name: caseName(k), samples: samples.get(caseKey(k)) ?? [] })),
    goals,
  };
  if (args.json) writeFileSync(args.json, `${JSON.stringify(out, null, 2)}\n`);
  console.log(JSON.stringify(out));
}

main().catch(async (err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  await cleanupAll();
  process.exit(1);
});
