// Does a server's GET rate hold up over its lifetime? Back-to-back kvload get runs against one
// long-lived Konsul and one long-lived etcd (interleaved K, E, K, E, ...), printing each round's
// rate, latency, the GETs the server has answered so far and its resident memory.
//
//   npx tsx bench/get-drift.bench.ts [--rounds 6] [--duration 10] [--concurrency 16] [--targets konsul,etcd]
//
// A steady server shows the same rate in every round; a rate that falls round after round while
// memory grows points at per-request state that is never released.
import { parseArgs } from 'node:util';
import {
  cleanupAll,
  gitDescribe,
  installSignalHandlers,
  machineLine,
  procCpuMs,
  procRssMb,
  runSharedTool,
  sleep,
  startEtcd,
  startKonsul,
  type EtcdProcess,
  type KonsulProcess,
} from './lib/servers.ts';

type Target = 'konsul' | 'etcd';

interface KvloadResult {
  readonly ok_ops: number;
  readonly ops_per_sec: number;
  readonly errors: number;
  readonly latency_ms: { p50: number | null; p99: number | null };
  readonly prefill: { keys: number } | null;
}

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '6' },
    duration: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '16' },
    targets: { type: 'string', default: 'konsul,etcd' },
  },
  strict: true,
});
const rounds = Number.parseInt(args.rounds, 10);
const duration = Number(args.duration);
const concurrency = Number.parseInt(args.concurrency, 10);
const targets = args.targets.split(',').map((s) => s.trim()) as Target[];

async function main(): Promise<void> {
  installSignalHandlers();
  console.log(`# GET drift — ${new Date().toISOString()}`);
  console.log(`# machine: ${machineLine()}`);
  console.log(`# code: ${await gitDescribe()}`);
  console.log(`# flags: --rounds ${rounds} --duration ${duration} --concurrency ${concurrency} --targets ${targets.join(',')}`);
  let konsul: KonsulProcess | null = null;
  let etcd: EtcdProcess | null = null;
  const table: string[] = [];
  try {
    if (targets.includes('konsul')) konsul = await startKonsul();
    if (targets.includes('etcd')) etcd = await startEtcd();
    const served: Record<Target, number> = { konsul: 0, etcd: 0 };
    table.push('| round | server | GETs answered before | ops/s | p50 / p99 ms | server CPU % | RSS after, MB |');
    table.push('|--:|---|--:|--:|--:|--:|--:|');
    for (let round = 1; round <= rounds; round++) {
      for (const target of targets) {
        const proc = target === 'konsul' ? konsul! : etcd!;
        const flags = [
          '--target', target === 'konsul' ? 'consul' : 'etcd',
          '--url', proc.url,
          '--op', 'get',
          '--concurrency', String(concurrency),
          '--duration', String(duration),
          ...(round === 1 ? [] : ['--no-prefill']),
        ];
        const before = served[target];
        const cpu0 = procCpuMs(proc.pid);
        const t0 = performance.now();
        const r = (await runSharedTool('kvload.mjs', flags, (duration + 120) * 1000)).json as KvloadResult;
        const cpuPct = (100 * (procCpuMs(proc.pid) - cpu0)) / (performance.now() - t0);
        // Warm-up requests are not counted by kvload: about one second's worth more were answered.
        served[target] += Math.round(r.ok_ops * (1 + 1 / duration));
        const rss = procRssMb(proc.pid);
        const line = `| ${round} | ${target} | ${before.toLocaleString('en-US')} | ${Math.round(r.ops_per_sec).toLocaleString('en-US')} | ${r.latency_ms.p50} / ${r.latency_ms.p99} | ${cpuPct.toFixed(0)} | ${rss.toFixed(0)} |`;
        console.log(`# ${line}${r.errors ? ` errors ${r.errors}` : ''}`);
        table.push(line);
        await sleep(500);
      }
    }
  } finally {
    await etcd?.stop();
    await konsul?.stop();
    await cleanupAll();
  }
  console.log('');
  for (const l of table) console.log(l);
}

main().catch(async (err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  await cleanupAll();
  process.exit(1);
});
