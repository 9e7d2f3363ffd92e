// The deterministic simulation over fixed seed ranges: clusters of 3, 5 and 7 voters (plus spares
// for membership changes) under the generic fault profile, the Figure 8 profile and the membership
// profile. Any violation fails the test with the seed, the violation, the trace tail and the
// command that replays it. 5,500 seeds. Budget: about a minute on an idle core for the generic and
// Figure 8 batches, and some 20 s more for the membership batches (tap runs two test files at a
// time on the 2-core CI machine; the other two simulation test files take seconds).
import t from 'tap';
import type { ProfileName } from './profile.ts';
import { emptySimStats, failureReport, runSimulation } from './simulator.ts';
import type { SimStats } from './simulator.ts';

interface Batch {
  readonly nodes: number;
  readonly profile: ProfileName;
  readonly start: number;
  readonly seeds: number;
}

const BATCHES: readonly Batch[] = [
  { nodes: 3, profile: 'generic', start: 1, seeds: 1500 },
  { nodes: 5, profile: 'generic', start: 1, seeds: 1300 },
  { nodes: 7, profile: 'generic', start: 1, seeds: 1000 },
  { nodes: 3, profile: 'figure8', start: 1, seeds: 300 },
  { nodes: 5, profile: 'figure8', start: 1, seeds: 300 },
  { nodes: 3, profile: 'membership', start: 1, seeds: 500 },
  { nodes: 5, profile: 'membership', start: 1, seeds: 400 },
  { nodes: 7, profile: 'membership', start: 1, seeds: 200 },
];

/** Failures reported in full per batch; more would only repeat the picture. */
const REPORTED_FAILURES = 3;

function total(into: SimStats, s: SimStats): void {
  for (const key of Object.keys(s) as (keyof SimStats)[]) into[key] += s[key];
}

for (const batch of BATCHES) {
  t.test(`${batch.seeds} seeds from ${batch.start}, ${batch.nodes} voters, ${batch.profile} profile`, async (t) => {
    const sums: SimStats = emptySimStats();
    const failed: number[] = [];
    for (let seed = batch.start; seed < batch.start + batch.seeds; seed++) {
      const result = runSimulation({ seed, nodes: batch.nodes, profile: batch.profile });
      total(sums, result.stats);
      if (!result.ok) {
        failed.push(seed);
        if (failed.length <= REPORTED_FAILURES) t.fail(failureReport(result, null));
      }
    }
    t.same(failed, [], 'every seed keeps every invariant and recovers in the liveness phase');
    t.comment(
      `${batch.seeds} runs: ${sums.ticks} ticks, ${sums.delivered} messages delivered, ${sums.dropped} dropped, ${sums.leaders} leaders elected, ` +
        `${sums.acked}/${sums.proposals} proposals acknowledged (${sums.abandoned} abandoned, ${sums.unknown} unknown), ` +
        `${sums.readsServed}/${sums.reads} reads served, ${sums.crashes} crashes, ${sums.partitions} partitions (${sums.configSplits} between configurations), ` +
        `${sums.confChangesProposed} membership changes (${sums.removals} removals, ${sums.confChangesRefused} refused), ${sums.snapshotsSent} snapshots sent`,
    );
    // A run that exercises nothing proves nothing: the batch as a whole must hit every kind of fault.
    t.ok(sums.acked > 0 && sums.readsServed > 0, 'writes were acknowledged and reads served');
    t.ok(sums.crashes > 0 && sums.leaders > batch.seeds, 'leaders crashed and were replaced');
    if (batch.profile === 'generic') t.ok(sums.partitions > 0 && sums.confChangesProposed > 0 && sums.removals > 0 && sums.snapshotsSent > 0, 'partitions, membership changes and snapshot transfers happened');
    if (batch.profile === 'membership') {
      t.ok(sums.configSplits > 0 && sums.removals > 0 && sums.snapshotsSent > 0, 'splits between configurations, removals and snapshot transfers happened');
      // Changes asked of new leaders: refused until an entry of the leader's term commits (ADR 0002, rule 2).
      t.ok(sums.confChangesRefused > 0 && sums.confChangesProposed > batch.seeds, 'new leaders were asked for changes at once, and changes were made');
    }
  });
}
