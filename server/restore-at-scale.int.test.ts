// Issue 19: a restore at a size one Raft entry could never carry. A million keys (~130 MB of
// state), saved as an archive, restored into a fresh 3-server cluster through PUT /v1/snapshot
// (staged restore: chunks through the log), then saved again from that cluster: the KV entries,
// sessions and catalog node hash identically (a canonical dump; Raft indexes are renumbered into
// the new cluster, fsm/restore.ts), and every server holds exactly the leader's state.
import { createReadStream, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import t from 'tap';
import { APP_NODE, buildBigState } from '../test/big-state.ts';
import { startCluster, waitFor } from '../test/cluster/harness.ts';
import { removeDir, tempDataDir } from '../test/kit/server-process.ts';
import { archiveDigest } from '../test/state-digest.ts';

const KEYS = 1_000_000;

async function* body(res: Response): AsyncGenerator<Uint8Array> {
  if (res.body === null) return;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) yield chunk;
}

t.test(`${KEYS} keys: save, restore into a fresh 3-server cluster, save again: the same state`, async (t) => {
  const work = tempDataDir('konsul-restore-scale-');
  t.teardown(() => removeDir(work));
  const file = join(work, 'million.snap');

  const [cluster] = await Promise.all([
    startCluster({ size: 3, t, startTimeoutMs: 60_000 }),
    (async () => {
      const source = buildBigState({ keys: KEYS, startIndex: 5_000_000 });
      await source.writeArchive(file);
    })(),
  ]);
  const source = await archiveDigest(createReadStream(file), { nodes: [APP_NODE] });
  t.equal(source.kvEntries, KEYS + 1, 'the source holds a million keys and the lock');
  t.comment(`archive ${(statSync(file).size / 1e6).toFixed(1)} MB`);

  const leader = await cluster.leader();
  const started = Date.now();
  const put = await fetch(`${leader.url}/v1/snapshot`, {
    method: 'PUT',
    body: Readable.toWeb(createReadStream(file)) as unknown as RequestInit['body'],
    duplex: 'half',
    signal: AbortSignal.timeout(240_000),
  } as RequestInit);
  t.equal(put.status, 200, await put.clone().text());
  t.comment(`restore took ${((Date.now() - started) / 1000).toFixed(1)} s`);

  const saved = await fetch(`${leader.url}/v1/snapshot`, { signal: AbortSignal.timeout(120_000) });
  t.equal(saved.status, 200);
  const restored = await archiveDigest(body(saved), { nodes: [APP_NODE] });
  t.equal(restored.kvEntries, source.kvEntries);
  t.equal(restored.kv, source.kv, 'KV entries: keys, values, flags, sessions, lock indexes identical');
  t.equal(restored.sessions, source.sessions, 'sessions identical');
  t.equal(restored.catalog, source.catalog, 'the catalog node, its check identical');
  t.ok(restored.index < 5_000_000, 'indexes moved into the new cluster\'s index space');

  // Every server holds exactly the leader's state, indexes included.
  await Promise.all(cluster.nodes.filter((n) => n.url !== leader.url).map(async (node) => {
    const exact = await waitFor(async () => {
      const d = await archiveDigest(body(await fetch(`${node.url}/v1/snapshot?stale`, { signal: AbortSignal.timeout(120_000) })), { nodes: [APP_NODE] });
      return d.kvWithIndexes === restored.kvWithIndexes ? d : undefined;
    }, { timeoutMs: 60_000, what: `${node.name} to hold the leader's KV state` });
    t.equal(exact.sessions, restored.sessions, `${node.name}: sessions`);
  }));

  // The cluster goes on: a write after the restore, and the lock still held by its session.
  const lock = (await (await fetch(`${leader.url}/v1/kv/locks/leader`)).json()) as { Session?: string }[];
  t.equal(lock[0]?.Session, '5e551011-0000-4000-8000-00000000beef');
  t.equal((await fetch(`${leader.url}/v1/kv/after/restore`, { method: 'PUT', body: 'yes' })).status, 200);
  t.same(cluster.unexpectedExits(), [], cluster.outputs());
});
