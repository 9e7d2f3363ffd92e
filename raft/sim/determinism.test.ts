// One seed is one run: replaying a seed (also with the verbose trace on) gives the same trace hash,
// the same statistics and the same verdict, and different seeds give different runs.
import t from 'tap';
import { runSimulation } from './simulator.ts';

t.test('the same seed replays the same run', async (t) => {
  for (const nodes of [3, 5, 7]) {
    for (const seed of [1, 2, 42, 9001]) {
      const a = runSimulation({ seed, nodes });
      const b = runSimulation({ seed, nodes });
      t.equal(a.traceHash, b.traceHash, `seed ${seed}, ${nodes} nodes: same trace hash`);
      t.same(a.stats, b.stats, `seed ${seed}, ${nodes} nodes: same statistics`);
      t.equal(a.ok, b.ok, `seed ${seed}, ${nodes} nodes: same verdict`);
    }
  }
});

t.test('the targeted profiles replay the same run too', async (t) => {
  for (const profile of ['figure8', 'membership'] as const) {
    for (const nodes of [3, 5]) {
      for (const seed of [3, 25]) {
        const a = runSimulation({ seed, nodes, profile });
        const b = runSimulation({ seed, nodes, profile });
        t.equal(a.traceHash, b.traceHash, `${profile}, seed ${seed}, ${nodes} nodes: same trace hash`);
        t.same(a.stats, b.stats, `${profile}, seed ${seed}, ${nodes} nodes: same statistics`);
      }
    }
  }
});

t.test('printing the trace does not change the run (the replay command reproduces the failure)', async (t) => {
  const lines: string[] = [];
  const quiet = runSimulation({ seed: 7, nodes: 5 });
  const verbose = runSimulation({ seed: 7, nodes: 5, verbose: (line) => lines.push(line) });
  t.equal(verbose.traceHash, quiet.traceHash);
  t.ok(lines.length > 1000, 'the verbose run printed its events');
});

t.test('a failing run replays to the same violation', async (t) => {
  const options = { seed: 4, nodes: 3, mutations: { voteWithoutLogCheck: true } } as const;
  const a = runSimulation(options);
  const b = runSimulation(options);
  t.notOk(a.ok, 'the mutated core fails this seed');
  t.same(b.violation, a.violation);
  t.equal(b.traceHash, a.traceHash);
  t.same(b.tail, a.tail);
});

t.test('different seeds give different runs', async (t) => {
  const hashes = new Set<string>();
  for (let seed = 1; seed <= 40; seed++) hashes.add(runSimulation({ seed, nodes: 3 }).traceHash);
  t.equal(hashes.size, 40, 'forty seeds, forty distinct trace hashes');
  t.not(runSimulation({ seed: 5, nodes: 3 }).traceHash, runSimulation({ seed: 5, nodes: 5 }).traceHash, 'the cluster size is part of the run');
});
