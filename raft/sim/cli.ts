// Runs the deterministic Raft simulation from the command line.
//   npm run sim -- --seeds 1000 --start 1 --nodes 3        (also --nodes 3,5,7 to rotate sizes)
//   npm run sim -- --seed 12345 --nodes 5 --verbose       (replay one seed with its full trace)
// Options: --profile generic|figure8|membership,
// --mutation commitPreviousTermByCounting|voteWithoutLogCheck|confChangeBeforeTermCommit,
// --tail N (trace events shown on failure), --quiet (only failures and the summary), --keep-going.
import type { UnsafeMutations } from '../core/raft.ts';
import { PROFILE_NAMES } from './profile.ts';
import type { ProfileName } from './profile.ts';
import { failureReport, runSimulation } from './simulator.ts';
import type { SimResult } from './simulator.ts';

const MUTATIONS = ['commitPreviousTermByCounting', 'voteWithoutLogCheck', 'confChangeBeforeTermCommit'] as const satisfies readonly (keyof UnsafeMutations)[];
type MutationName = (typeof MUTATIONS)[number];

interface CliOptions {
  start: number;
  seeds: number;
  nodes: number[];
  profile: ProfileName;
  mutation: MutationName | null;
  verbose: boolean;
  quiet: boolean;
  keepGoing: boolean;
  tail: number;
}

function usage(message: string): never {
  process.stderr.write(`${message}\nusage: npm run sim -- [--seed N | --seeds COUNT --start N] [--nodes 3|5|7|3,5,7] [--profile ${PROFILE_NAMES.join('|')}] [--mutation ${MUTATIONS.join('|')}] [--verbose] [--quiet] [--keep-going] [--tail N]\n`);
  process.exit(2);
}

function parse(argv: readonly string[]): CliOptions {
  const o: CliOptions = { start: 1, seeds: 1, nodes: [3], profile: 'generic', mutation: null, verbose: false, quiet: false, keepGoing: false, tail: 60 };
  const int = (v: string | undefined, name: string): number => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n)) usage(`${name} needs an integer`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string | undefined => argv[++i];
    switch (arg) {
      case '--seed':
        o.start = int(value(), arg);
        o.seeds = 1;
        break;
      case '--seeds':
        o.seeds = int(value(), arg);
        break;
      case '--start':
        o.start = int(value(), arg);
        break;
      case '--nodes': {
        const v = value() ?? '';
        o.nodes = v.split(/[,|]/).map((s) => int(s, arg));
        if (o.nodes.some((n) => n < 1 || n > 9)) usage('--nodes takes sizes from 1 to 9');
        break;
      }
      case '--profile': {
        const v = value() as ProfileName;
        if (!PROFILE_NAMES.includes(v)) usage(`unknown profile '${v}'`);
        o.profile = v;
        break;
      }
      case '--mutation': {
        const v = value() as MutationName;
        if (!MUTATIONS.includes(v)) usage(`unknown mutation '${v}'`);
        o.mutation = v;
        break;
      }
      case '--verbose':
        o.verbose = true;
        break;
      case '--quiet':
        o.quiet = true;
        break;
      case '--keep-going':
        o.keepGoing = true;
        break;
      case '--tail':
        o.tail = int(value(), arg);
        break;
      default:
        usage(`unknown argument '${arg}'`);
    }
  }
  return o;
}

function reportFailure(r: SimResult, o: CliOptions): void {
  process.stdout.write(`\n${failureReport(r, o.mutation)}\n\n`);
}

function main(): void {
  const o = parse(process.argv.slice(2));
  const mutations: UnsafeMutations | undefined = o.mutation ? { [o.mutation]: true } : undefined;
  const began = performance.now();
  let failures = 0;
  let ran = 0;
  for (let i = 0; i < o.seeds; i++) {
    const seed = o.start + i;
    const nodes = o.nodes[i % o.nodes.length]!;
    const result = runSimulation({
      seed,
      nodes,
      profile: o.profile,
      traceTail: o.tail,
      ...(mutations ? { mutations } : {}),
      ...(o.verbose ? { verbose: (line: string) => process.stdout.write(`${line}\n`) } : {}),
    });
    ran++;
    if (!o.verbose && o.seeds === 1 && !o.quiet) process.stdout.write(`${result.profileText}\n`);
    const s = result.stats;
    if (!o.quiet || !result.ok) {
      process.stdout.write(
        `seed=${seed} nodes=${nodes} ${result.ok ? 'ok' : 'FAIL'} hash=${result.traceHash} ticks=${s.ticks} leaders=${s.leaders} acked=${s.acked}/${s.proposals} reads=${s.readsServed}/${s.reads} crashes=${s.crashes} partitions=${s.partitions} splits=${s.configSplits} conf=${s.confChangesProposed} refused=${s.confChangesRefused} removals=${s.removals} snaps=${s.snapshotsSent} live-after=${s.livenessTicks}\n`,
      );
    }
    if (!result.ok) {
      failures++;
      reportFailure(result, o);
      if (!o.keepGoing) break;
    }
  }
  const seconds = (performance.now() - began) / 1000;
  process.stdout.write(`${ran} seed(s), ${failures} failure(s), ${seconds.toFixed(1)}s\n`);
  process.exit(failures > 0 ? 1 : 0);
}

main();
