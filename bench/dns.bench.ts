// DNS interface throughput and latency on one `konsul server --dev`:
//
// A 10-instance service ("web", ten nodes, a passing check each) is registered through the HTTP
// API; then, for each concurrency, `concurrency` workers each send an SRV query for
// web.service.consul over UDP (EDNS0 with a 4096-byte buffer, so the full answer of 10 SRV + 10 A
// records fits without truncation) and send the next as soon as the answer arrives, for --seconds.
// Every answer is checked (ID, NOERROR, 10 answers); a query unanswered within 1 s counts as lost.
// Reported: answers per second, p50 and p99 latency, lost queries, and the server's CPU time per
// answer (from /proc).
//
//   npx tsx bench/dns.bench.ts [--seconds 5] [--concurrency 1,16,64]
//
// The load generator runs in this Node process on the same machine as the server.
import { createSocket } from 'node:dgram';
import { parseArgs } from 'node:util';
import { startServer } from '../test/kit/server-process.ts';
import { removeDir } from '../test/kit/server-process.ts';
import { clientQuery } from '../dns/test-support.ts';
import { QTYPE } from '../dns/wire.ts';
import { gitDescribe, machineLine, percentile, procCpuMs, sleep } from './lib/servers.ts';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '1,16,64' },
  },
  strict: true,
});
const seconds = Number(args.seconds);
const concurrencies = args.concurrency.split(',').map((s) => Number(s.trim()));

interface RunResult {
  readonly concurrency: number;
  readonly answers: number;
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly lost: number;
  readonly badAnswers: number;
  readonly serverCpuUsPerAnswer: number;
}

/** One UDP socket per worker: each has one query in flight; IDs tell late answers from current ones. */
async function closedLoop(port: number, pid: number, concurrency: number, ms: number): Promise<RunResult> {
  const latencies: number[] = [];
  let lost = 0;
  let badAnswers = 0;
  const deadline = performance.now() + ms;
  const cpuBefore = procCpuMs(pid);
  const worker = (index: number) =>
    new Promise<void>((done) => {
      const socket = createSocket('udp4');
      // Built once (by dns2, not by the code under test); each query only gets a new ID.
      const query = clientQuery('web.service.consul', QTYPE.SRV, { id: 0, edns: 4096 });
      let id = (index * 4099) & 0xffff;
      let sentAt = 0;
      let timer: NodeJS.Timeout | null = null;
      const send = () => {
        if (performance.now() >= deadline) {
          socket.close();
          done();
          return;
        }
        id = (id + 1) & 0xffff;
        sentAt = performance.now();
        query.writeUInt16BE(id, 0);
        socket.send(query, port, '127.0.0.1');
        timer = setTimeout(() => {
          lost++;
          send();
        }, 1000);
      };
      socket.on('message', (reply: Buffer) => {
        if (reply.readUInt16BE(0) !== id) return;
        clearTimeout(timer!);
        latencies.push(performance.now() - sentAt);
        // NOERROR and ten answers, read from the header.
        if ((reply[3]! & 0x0f) !== 0 || reply.readUInt16BE(6) !== 10) badAnswers++;
        send();
      });
      socket.bind(0, '127.0.0.1', send);
    });
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, (_, i) => worker(i)));
  const elapsedMs = performance.now() - started;
  const cpuMs = procCpuMs(pid) - cpuBefore;
  latencies.sort((a, b) => a - b);
  return {
    concurrency,
    answers: latencies.length,
    perSecond: (latencies.length / elapsedMs) * 1000,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    lost,
    badAnswers,
    serverCpuUsPerAnswer: (cpuMs * 1000) / Math.max(1, latencies.length),
  };
}

async function main(): Promise<void> {
  const server = await startServer({ node: 'dns-bench' });
  try {
    const port = server.dnsAddress?.port;
    if (port === undefined) throw new Error('the server has no DNS interface');
    for (let i = 1; i <= 10; i++) {
      const res = await fetch(`${server.url}/v1/catalog/register`, {
        method: 'PUT',
        body: JSON.stringify({
          Node: `bench-node-${i}`,
          Address: `10.20.0.${i}`,
          Service: { ID: 'web', Service: 'web', Port: 8080 },
          Check: { CheckID: 'web-check', Name: 'web', Status: 'passing', ServiceID: 'web' },
        }),
      });
      if (res.status !== 200) throw new Error(`register: ${res.status}`);
    }
    console.log(`# ${machineLine()}; commit ${await gitDescribe()}; ${new Date().toISOString()}`);
    console.log(`# UDP SRV web.service.consul (10 instances, EDNS0 4096), ${seconds} s per concurrency after a 1 s warm-up`);
    await closedLoop(port, server.pid, 4, 1000);
    await sleep(200);
    console.log('| concurrency | answers/s | p50 ms | p99 ms | lost | bad | server CPU µs/answer |');
    console.log('|---:|---:|---:|---:|---:|---:|---:|');
    const results: RunResult[] = [];
    for (const c of concurrencies) {
      const r = await closedLoop(port, server.pid, c, seconds * 1000);
      results.push(r);
      console.log(`| ${c} | ${Math.round(r.perSecond).toLocaleString('en-US')} | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} | ${r.lost} | ${r.badAnswers} | ${r.serverCpuUsPerAnswer.toFixed(1)} |`);
      await sleep(200);
    }
    console.log(JSON.stringify({ bench: 'dns', seconds, results }));
  } finally {
    await server.stop();
    removeDir(server.dataDir);
  }
}

await main();
