// Losing one server of three, end to end with real processes (docs/disaster-recovery.md): it is
// killed with SIGKILL, the cluster goes on, the operator removes it with `konsulctl cluster leave`
// and starts a brand-new server, which catches up through a snapshot (the log it needs is
// compacted) and becomes a voter with the same data.
import t from 'tap';
import { httpRequest, startCluster, waitFor } from '../test/cluster/harness.ts';
import { KONSULCTL_BIN, runCli } from '../test/kit/cli.ts';
import { kvDump, putKey } from '../test/kit/kv-state.ts';

t.test('lose 1 of 3 servers and replace it with a fresh one that catches up from a snapshot', async (t) => {
  // Frequent snapshots and no trailing entries: a new server cannot catch up from the log alone.
  const cluster = await startCluster({ size: 3, t, config: { snapshot_every_entries: 30, snapshot_trailing_entries: 0 } });
  const leader = await cluster.leader();
  const victim = cluster.nodes.find((n) => n !== leader)!;
  const survivor = cluster.nodes.find((n) => n !== leader && n !== victim)!;
  for (let i = 0; i < 60; i++) await putKey(leader.url, `before/${i}`, `v${i}`);

  await victim.kill9();
  // Two of three are a majority: writes go on through any survivor.
  for (let i = 0; i < 60; i++) await putKey(survivor.url, `during/${i}`, `v${i}`);

  const leave = await runCli(KONSULCTL_BIN, ['--http-addr', survivor.url, 'cluster', 'leave', victim.name]);
  t.equal(leave.code, 0, leave.stderr);
  t.match(leave.stdout, new RegExp(`Removed ${victim.name}`));
  await cluster.waitForVoters(cluster.nodes.filter((n) => n !== victim).map((n) => n.name));

  const fresh = await cluster.addNode({ name: 's4' });
  await cluster.waitForVoters(cluster.nodes.filter((n) => n !== victim).map((n) => n.name));
  const want = await kvDump(leader.url);
  t.equal(want.filter((r) => r.Key.startsWith('before/') || r.Key.startsWith('during/')).length, 120);
  await waitFor(async () => (JSON.stringify(await kvDump(fresh.url, { stale: true })) === JSON.stringify(want) ? true : undefined), {
    timeoutMs: 10000,
    what: 's4 to hold the same KV state',
  });
  const self = JSON.parse((await httpRequest(`${fresh.url}/v1/agent/self`)).text) as { Stats: { snapshot?: { installs?: string } } };
  t.ok(Number(self.Stats.snapshot?.installs ?? 0) >= 1, 'the new server caught up through a snapshot from the leader');

  // The replaced cluster tolerates the loss of another server, the new one included.
  await putKey(fresh.url, 'after/replace', 'yes');
  await leader.stop();
  await cluster.waitForLeader(15000, [survivor, fresh]);
  await putKey(fresh.url, 'after/leader-stopped', 'yes');
  t.same(cluster.unexpectedExits(), [], cluster.outputs());
});
