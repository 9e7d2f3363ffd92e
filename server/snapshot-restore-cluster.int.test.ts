// Restoring into a fresh cluster from a snapshot file, end to end with real processes
// (docs/disaster-recovery.md): `konsulctl snapshot save` from one cluster, `konsulctl snapshot
// restore` into a brand-new 3-server cluster, and every server of the new cluster holds the saved
// KV state exactly.
import { join } from 'node:path';
import t from 'tap';
import { startCluster, waitFor } from '../test/cluster/harness.ts';
import { KONSULCTL_BIN, runCli } from '../test/kit/cli.ts';
import { kvDump, putKey, type KvRow } from '../test/kit/kv-state.ts';
import { removeDir, startServer, tempDataDir } from '../test/kit/server-process.ts';

t.test('save a snapshot from one cluster and restore it into a fresh 3-server cluster', async (t) => {
  const work = tempDataDir('konsul-dr-restore-');
  t.teardown(() => removeDir(work));
  const file = join(work, 'backup.snap');

  // The old cluster (a single server is enough to produce the file) and the new one start together.
  const sourceStarted = startServer({ node: 'old-dc' });
  t.teardown(async () => {
    const source = await sourceStarted.catch(() => null);
    if (source === null) return;
    await source.stop();
    removeDir(source.dataDir);
  });
  const [source, cluster] = await Promise.all([sourceStarted, startCluster({ size: 3, t })]);
  for (let i = 0; i < 50; i++) await putKey(source.url, `config/app-${i % 5}/key-${i}`, `value ${i}`, String(i));
  await putKey(source.url, 'config/max-flags', '', '18446744073709551615');
  await putKey(source.url, 'config/binary', '\u0000\u00ff\u0001');
  await putKey(source.url, 'config/gone', 'deleted later');
  await fetch(`${source.url}/v1/kv/config/gone`, { method: 'DELETE' });
  const saved = await kvDump(source.url);
  const save = await runCli(KONSULCTL_BIN, ['--http-addr', source.url, 'snapshot', 'save', file]);
  t.equal(save.code, 0, save.stderr);
  t.equal(await source.stop(), 0);

  const leader = await cluster.leader();
  await putKey(leader.url, 'config/only-in-new-cluster', 'replaced by the restore');
  const restore = await runCli(KONSULCTL_BIN, ['--http-addr', leader.url, 'snapshot', 'restore', file], { timeoutMs: 60_000 });
  t.equal(restore.code, 0, `${restore.stdout}\n${restore.stderr}`);

  // Indexes are Raft log indexes: the restore lowers those above its own entry's into the new
  // cluster's index space (fsm/restore.ts), so the content is compared, and the servers with each other.
  const content = (rows: KvRow[]): unknown[] => rows.map(({ Key, Flags, Value, LockIndex }) => ({ Key, Flags, Value, LockIndex }));
  const restored = await kvDump(leader.url);
  t.same(content(restored), content(saved), 'the leader holds exactly the saved KV state');
  for (const n of cluster.nodes) {
    await waitFor(async () => (JSON.stringify(await kvDump(n.url, { stale: true })) === JSON.stringify(restored) ? true : undefined), {
      timeoutMs: 10000,
      what: `${n.name} to hold the same KV state as the leader`,
    });
  }
  t.same(saved.find((r) => r.Key === 'config/max-flags')?.Flags, '18446744073709551615');
  await putKey(leader.url, 'config/after-restore', 'writes go on');
  t.same(cluster.unexpectedExits(), [], cluster.outputs());
});
