// The simulation has teeth: with each deliberate bug of RaftConfig.unsafeMutations switched on it
// must find a violation within a bounded number of seeds. The seeds that catch each mutation are
// printed with the command that replays them.
import t from 'tap';
import type { UnsafeMutations } from '../core/raft.ts';
import type { ProfileName } from './profile.ts';
import { replayCommand, runSimulation } from './simulator.ts';

interface Case {
  readonly mutation: keyof UnsafeMutations;
  /** Figure 8 needs its own schedule: short terms and leaders dying with half-replicated logs. */
  readonly profile: ProfileName;
  readonly nodes: readonly number[];
  readonly maxSeeds: number;
}

const CASES: readonly Case[] = [
  { mutation: 'voteWithoutLogCheck', profile: 'generic', nodes: [3, 5, 7], maxSeeds: 200 },
  { mutation: 'commitPreviousTermByCounting', profile: 'figure8', nodes: [3, 5], maxSeeds: 800 },
];

for (const c of CASES) {
  for (const nodes of c.nodes) {
    t.test(`${c.mutation} is caught with ${nodes} voters (${c.profile} profile)`, async (t) => {
      let caught: { seed: number; kind: string; message: string } | null = null;
      for (let seed = 1; seed <= c.maxSeeds && caught === null; seed++) {
        const result = runSimulation({ seed, nodes, profile: c.profile, mutations: { [c.mutation]: true } });
        if (result.violation) caught = { seed, ...result.violation };
      }
      if (caught === null) {
        t.fail(`${c.mutation} went unnoticed for ${c.maxSeeds} seeds`);
        return;
      }
      t.comment(`caught ${c.mutation} with ${nodes} voters at seed ${caught.seed}: ${caught.message.split('\n')[0]}`);
      t.comment(`replay: ${replayCommand(caught.seed, nodes, c.profile, c.mutation)}`);
      t.not(caught.kind, 'unexpectedError', 'caught by a checker, not by a crash of the simulation');
      t.not(caught.kind, 'liveness', 'caught as a safety violation');
    });
  }
}
