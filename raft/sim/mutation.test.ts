// The simulation has teeth: with each deliberate bug of RaftConfig.unsafeMutations switched on it
// must find a safety violation within a bounded number of seeds, and the same seed without the
// mutation must keep every invariant. The seeds that catch each mutation are printed with the
// command that replays them. Runs of a mutated core that only end in a liveness failure (a broken
// core may also just get stuck) are skipped: the search is for an invariant that fires.
import t from 'tap';
import type { UnsafeMutations } from '../core/raft.ts';
import type { ProfileName } from './profile.ts';
import { replayCommand, runSimulation } from './simulator.ts';

interface Case {
  readonly mutation: keyof UnsafeMutations;
  /** Figure 8 and the membership bug need their own schedules (see profile.ts). */
  readonly profile: ProfileName;
  readonly nodes: readonly number[];
  readonly maxSeeds: number;
}

// Seeds that caught them when this was written (they move whenever the core or the simulation
// changes the course of a run): voteWithoutLogCheck at seeds 4, 3, 1 with 3, 5, 7 voters;
// commitPreviousTermByCounting at 33, 114 with 3, 5 voters (all leaderCompleteness);
// confChangeBeforeTermCommit at seed 3 with 3 voters (leaderCompleteness), 25 with 5 voters
// (electionSafety: two leaders of term 17) and 34 with 7 voters (leaderCompleteness). About one
// seed in thirty of the membership profile catches the last (raft/sim/README.md).
const CASES: readonly Case[] = [
  { mutation: 'voteWithoutLogCheck', profile: 'generic', nodes: [3, 5, 7], maxSeeds: 200 },
  { mutation: 'commitPreviousTermByCounting', profile: 'figure8', nodes: [3, 5], maxSeeds: 800 },
  { mutation: 'confChangeBeforeTermCommit', profile: 'membership', nodes: [3, 5, 7], maxSeeds: 400 },
];

for (const c of CASES) {
  for (const nodes of c.nodes) {
    t.test(`${c.mutation} is caught with ${nodes} voters (${c.profile} profile)`, async (t) => {
      let caught: { seed: number; kind: string; message: string } | null = null;
      let stuck = 0;
      for (let seed = 1; seed <= c.maxSeeds && caught === null; seed++) {
        const result = runSimulation({ seed, nodes, profile: c.profile, mutations: { [c.mutation]: true } });
        if (result.violation?.kind === 'liveness') stuck++;
        else if (result.violation) caught = { seed, ...result.violation };
      }
      if (caught === null) {
        t.fail(`${c.mutation} went unnoticed for ${c.maxSeeds} seeds (${stuck} of them only got stuck)`);
        return;
      }
      t.comment(`caught ${c.mutation} with ${nodes} voters at seed ${caught.seed}: ${caught.message.split('\n')[0]}`);
      if (stuck > 0) t.comment(`${stuck} earlier seed(s) of the mutated core only failed the liveness phase`);
      t.comment(`replay: ${replayCommand(caught.seed, nodes, c.profile, c.mutation)}`);
      t.not(caught.kind, 'unexpectedError', 'caught by a checker, not by a crash of the simulation');
      const unmutated = runSimulation({ seed: caught.seed, nodes, profile: c.profile });
      t.ok(unmutated.ok, `the same seed without the mutation keeps every invariant${unmutated.violation ? ` (${unmutated.violation.message.split('\n')[0]})` : ''}`);
    });
  }
}
