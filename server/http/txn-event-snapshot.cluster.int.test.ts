// Transactions, events and snapshot restore on a real three-server cluster: requests sent to
// followers are forwarded, and every server ends with the same state (read with ?stale, from its
// own FSM). The restore carries several megabytes in one Raft entry.
import { createHash, randomBytes } from 'node:crypto';
import t from 'tap';
import { startCluster, waitFor, type Cluster, type ClusterNode } from '../../test/cluster/harness.ts';

let cluster: Cluster;
let leader: ClusterNode;
let followers: ClusterNode[];

t.before(async () => {
  cluster = await startCluster({ size: 3, t });
  leader = await cluster.leader();
  followers = await cluster.followers();
});

const at = (node: ClusterNode, path: string, init?: RequestInit) => fetch(`${node.url}${path}`, { ...init, signal: AbortSignal.timeout(30_000) });
const b64 = (data: string | Buffer) => Buffer.from(data).toString('base64');

/** What a server holds under a prefix, from its own state: a digest of keys, values and indexes. */
async function digest(node: ClusterNode, prefix: string): Promise<string> {
  const res = await at(node, `/v1/kv/${prefix}?recurse&stale`);
  if (res.status === 404) return 'empty';
  return createHash('sha256').update(await res.text()).digest('hex');
}

async function events(node: ClusterNode): Promise<string> {
  return await (await at(node, '/v1/event/list?stale')).text();
}

/** Every server answers the same as `reference` for `probe`. */
async function converged(what: string, probe: (node: ClusterNode) => Promise<string>, expected: string): Promise<void> {
  await waitFor(async () => ((await Promise.all(cluster.nodes.map(probe))).every((v) => v === expected) ? true : undefined), { timeoutMs: 15_000, what });
}

t.test('a transaction sent to a follower is applied on every server', async (t) => {
  const res = await at(followers[0]!, '/v1/txn', {
    method: 'PUT',
    body: JSON.stringify([
      { KV: { Verb: 'set', Key: 'c/a', Value: b64('1') } },
      { KV: { Verb: 'set', Key: 'c/b', Value: b64('2') } },
    ]),
  });
  t.equal(res.status, 200);
  const failed = await at(followers[1]!, '/v1/txn', {
    method: 'PUT',
    body: JSON.stringify([{ KV: { Verb: 'set', Key: 'c/c', Value: b64('3') } }, { KV: { Verb: 'check-not-exists', Key: 'c/a' } }]),
  });
  t.equal(failed.status, 409);
  await converged('the transaction on every server', (n) => digest(n, 'c/'), await digest(leader, 'c/'));
  t.equal(((await (await at(followers[1]!, '/v1/kv/c/?keys&stale')).json()) as string[]).join(','), 'c/a,c/b');
});

t.test('events fired on any server are listed alike by every server', async (t) => {
  for (const [i, node] of cluster.nodes.entries()) {
    t.equal((await at(node, `/v1/event/fire/e${i}`, { method: 'PUT', body: `from ${node.name}` })).status, 200);
  }
  const expected = await events(leader);
  t.same((JSON.parse(expected) as { Name: string }[]).map((e) => e.Name), ['e0', 'e1', 'e2']);
  await converged('the same events, same IDs, same order', events, expected);
});

t.test('a restore through a follower replaces the state on every server', async (t) => {
  // A few megabytes of incompressible values, so the restore entry is large.
  const value = () => b64(randomBytes(8 * 1024));
  // 40 values of 8 KiB per transaction keep each request under Consul's 512 KiB limit.
  for (let batch = 0; batch < 10; batch++) {
    const ops = Array.from({ length: 40 }, (_, i) => ({ KV: { Verb: 'set', Key: `big/${batch}/${i}`, Value: value() } }));
    t.equal((await at(leader, '/v1/txn', { method: 'PUT', body: JSON.stringify(ops) })).status, 200);
  }
  const saveRes = await at(followers[0]!, '/v1/snapshot');
  t.equal(saveRes.status, 200);
  const archive = Buffer.from(await saveRes.arrayBuffer());
  t.ok(archive.length > 3_000_000, `archive of ${archive.length} bytes`);
  const savedBig = await digest(leader, 'big/');
  const savedEvents = await events(leader);

  await at(leader, '/v1/kv/big/?recurse', { method: 'DELETE' });
  await at(leader, '/v1/kv/c/a', { method: 'PUT', body: 'changed' });
  await at(leader, '/v1/event/fire/after', { method: 'PUT' });

  const restored = await at(followers[1]!, '/v1/snapshot', { method: 'PUT', body: archive });
  t.equal(restored.status, 200, await restored.clone().text());
  await converged('the restored KV on every server', (n) => digest(n, 'big/'), savedBig);
  await converged('the restored events on every server', events, savedEvents);
  await converged('c/a back to its saved value', async (n) => (await at(n, '/v1/kv/c/a?raw&stale')).text(), '1');
  t.same(cluster.unexpectedExits(), [], 'no server crashed');
  // The cluster still takes writes.
  t.equal(await (await at(followers[0]!, '/v1/kv/after-restore', { method: 'PUT', body: 'ok' })).text(), 'true');
});
