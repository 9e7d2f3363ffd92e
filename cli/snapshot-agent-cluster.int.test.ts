// `konsul snapshot agent` against a real 3-server cluster: kill -9 of the Raft leader (the server
// the agent talks to first) — the agent fails over to another server and the snapshots go on,
// each verifying, with indexes that keep growing.
import { join } from 'node:path';
import t from 'tap';
import { startCluster, waitFor } from '../test/cluster/harness.ts';
import { startSnapshotAgent } from '../test/kit/snapshot-agent-process.ts';
import { parseSnapshotFileName, verifyArchiveFile } from './snapshot-files.ts';

t.test('snapshots survive a leader change of the server cluster', async (t) => {
  const cluster = await startCluster({ size: 3, t, config: { session_ttl_min_ms: 1000 } });
  const leader = await cluster.leader();
  const followers = cluster.running().filter((n) => n !== leader);
  const dir = join(cluster.root, 'snapshots');
  const agent = await startSnapshotAgent([
    ...[leader, ...followers].flatMap((n) => ['--http-addr', n.url]),
    '--id', 'c1', '--dir', dir, '--interval', '300ms', '--session-ttl', '1s', '--lock-delay', '500ms', '--retain', '0',
  ]);
  t.teardown(() => agent.kill9());
  const until = async (what: string, probe: () => boolean, timeoutMs = 20_000) => {
    try {
      await waitFor(() => (probe() ? true : undefined), { what, timeoutMs });
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- agent ---\n${agent.output()}\n${cluster.outputs(2000)}`);
    }
  };

  await until('2 snapshots', () => agent.saved().length >= 2);
  const before = agent.saved().length;
  const indexBefore = Math.max(...agent.saved().map((f) => parseSnapshotFileName(f)!.index));

  await leader.kill9();
  const newLeader = await cluster.waitForLeader(20_000, followers);
  t.not(newLeader, leader);
  await until('3 snapshots after the leader change', () => agent.saved().length >= before + 3);
  const after = agent.saved().slice(before).map((f) => parseSnapshotFileName(f)!.index);
  t.ok(after.every((i) => i >= indexBefore), `indexes after the change (${after.join(', ')}) do not go back from ${indexBefore}`);
  t.ok(after.at(-1)! > indexBefore, 'and move on');

  t.equal(await agent.stop(), 0);
  for (const f of agent.saved()) {
    const meta = await verifyArchiveFile(join(dir, f));
    t.equal(meta.Index, parseSnapshotFileName(f)!.index, `${f} verifies`);
  }
});
