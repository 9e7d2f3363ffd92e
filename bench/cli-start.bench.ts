// Cold start of konsulctl: a fresh `node bin/konsulctl.js ...` process per run, as a shell script
// calling it in a loop pays it (hyperfine-style: warm-up runs, then N timed runs; the OS file cache
// is warm, the process is not). Two commands: `--help` (no network) and `kv get <key>` against a
// running server (one HTTP round trip on loopback, which is a small part of the total).
//
//   flock /tmp/konsul-bench.lock npx tsx bench/cli-start.bench.ts [--runs 20] [--warmup 3]
//       [--root DIR]            the Konsul tree whose bin/konsulctl.js is measured (default: this one)
//       [--http-addr HOST:PORT] a running server for `kv get` (default: start one from this tree)
//
// Wall time is what a user waits for; CPU time (user + system, from GNU time) is reported too
// because wall time on a loaded machine mostly measures the other processes.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT, startKonsul, type KonsulProcess } from './lib/servers.ts';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '3' },
    root: { type: 'string', default: REPO_ROOT },
    'http-addr': { type: 'string' },
  },
});
const runs = Number(args.runs);
const warmup = Number(args.warmup);
if (!(Number.isInteger(runs) && runs >= 1 && Number.isInteger(warmup) && warmup >= 0)) throw new Error('--runs must be >= 1 and --warmup >= 0');
const root = resolve(args.root);
const bin = join(root, 'bin', 'konsulctl.js');
const GNU_TIME = '/usr/bin/time';

interface Sample {
  readonly wallMs: number;
  readonly cpuMs: number;
}

/** One cold start of `node <nodeArgs>`: wall time around the whole child process, CPU time as GNU time reports it. */
function runOnce(nodeArgs: readonly string[], timesFile: string): Sample {
  const started = process.hrtime.bigint();
  const result = spawnSync(GNU_TIME, ['-o', timesFile, '-f', '%U %S', process.execPath, ...nodeArgs], { encoding: 'utf8' });
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.status !== 0) throw new Error(`node ${nodeArgs.join(' ')} exited ${result.status}: ${result.stderr}`);
  const [user, system] = readFileSync(timesFile, 'utf8').trim().split(/\s+/).slice(-2).map(Number);
  return { wallMs, cpuMs: ((user ?? NaN) + (system ?? NaN)) * 1000 };
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

function measure(name: string, nodeArgs: readonly string[], timesFile: string): string {
  for (let i = 0; i < warmup; i++) runOnce(nodeArgs, timesFile);
  const samples = Array.from({ length: runs }, () => runOnce(nodeArgs, timesFile));
  const wall = samples.map((s) => s.wallMs).sort((a, b) => a - b);
  const cpu = samples.map((s) => s.cpuMs).sort((a, b) => a - b);
  const ms = (v: number) => v.toFixed(0);
  return `| ${name} | ${ms(quantile(wall, 0.5))} | ${ms(quantile(wall, 0.9))} | ${ms(wall[0]!)} | ${ms(quantile(cpu, 0.5))} |`;
}

const scratch = mkdtempSync(join(tmpdir(), 'konsul-cli-start-'));
let server: KonsulProcess | undefined;
try {
  let httpAddr = args['http-addr'];
  if (httpAddr === undefined) {
    server = await startKonsul();
    httpAddr = `${server.host}:${server.port}`;
  }
  const put = await fetch(`http://${httpAddr}/v1/kv/bench/cli-start`, { method: 'PUT', body: 'hello' });
  if (!put.ok) throw new Error(`PUT /v1/kv/bench/cli-start: ${put.status} ${await put.text()}`);
  const timesFile = join(scratch, 'times');
  const dist = spawnSync(process.execPath, ['-e', `process.stdout.write(String(require('node:fs').existsSync(${JSON.stringify(join(root, 'dist'))})))`], { encoding: 'utf8' }).stdout;
  process.stdout.write(`# konsulctl cold start: ${root} (dist/ ${dist === 'true' ? 'present' : 'absent'}), node ${process.version}, ${runs} runs after ${warmup} warm-up; NODE_EXTRA_CA_CERTS ${process.env.NODE_EXTRA_CA_CERTS ? 'set' : 'unset'}\n`);
  process.stdout.write('| command | wall median ms | wall p90 ms | wall min ms | CPU median ms |\n|---|---:|---:|---:|---:|\n');
  process.stdout.write(`${measure('node -e 0 (Node alone)', ['-e', '0'], timesFile)}\n`);
  process.stdout.write(`${measure('konsulctl --help', [bin, '--help'], timesFile)}\n`);
  process.stdout.write(`${measure('konsulctl kv get', [bin, 'kv', 'get', 'bench/cli-start', '--http-addr', httpAddr], timesFile)}\n`);
} finally {
  await server?.stop();
  rmSync(scratch, { recursive: true, force: true });
}
