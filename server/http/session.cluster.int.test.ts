// Sessions on a real three-server cluster (1 s TTLs allowed): creates, renewals and destroys sent to
// followers reach the leader's TTL timer; every server holds the same sessions and refuses the same
// acquires under lock-delay; a new leader gives every session a fresh TTL x 2.
import t from 'tap';
import { sleep, startCluster, waitFor, type Cluster, type ClusterNode } from '../../test/cluster/harness.ts';

let cluster: Cluster;

t.before(async () => {
  cluster = await startCluster({ size: 3, t, config: { session_ttl_min_ms: 1000 } });
});

const at = (node: ClusterNode, path: string, init?: RequestInit) => fetch(`${node.url}${path}`, { ...init, signal: AbortSignal.timeout(10_000) });
const put = (node: ClusterNode, path: string, body?: string) => at(node, path, { method: 'PUT', ...(body !== undefined ? { body } : {}) });

/** Creates a session through `node` (on that server's own node, once the leader registered it). */
async function createSession(node: ClusterNode, body: object): Promise<string> {
  return waitFor(
    async () => {
      const res = await put(node, '/v1/session/create', JSON.stringify(body));
      if (res.status !== 200) throw new Error(`${res.status} ${await res.text()}`);
      return ((await res.json()) as { ID: string }).ID;
    },
    { what: `a session created through ${node.name}` },
  );
}

/** What every running server holds, read from its own state (?stale). */
async function everywhere(path: string): Promise<string[]> {
  return Promise.all(cluster.running().map(async (n) => (await at(n, `${path}${path.includes('?') ? '&' : '?'}stale`)).text()));
}

/** The session's node, read (linearizably) through `via`. */
async function sessionOwner(via: ClusterNode, id: string): Promise<string | undefined> {
  const sessions = (await (await at(via, `/v1/session/info/${id}`)).json()) as { Node: string }[];
  return sessions[0]?.Node;
}

t.test('renewals sent to followers keep a 1 s session alive; without them it expires on every server', async (t) => {
  const [f1, f2] = await cluster.followers();
  const id = await createSession(f1!, { TTL: '1s', LockDelay: '0s' });
  t.equal(await sessionOwner(f2!, id), f1!.name, "a session belongs to the receiving server's node");
  t.equal((await (await put(f2!, `/v1/kv/c/held?acquire=${id}`, 'x')).text()), 'true');
  const until = Date.now() + 3000;
  while (Date.now() < until) {
    const res = await put(f2!, `/v1/session/renew/${id}`);
    t.equal(res.status, 200);
    await sleep(300);
  }
  t.ok((await everywhere(`/v1/session/info/${id}`)).every((s) => s.includes(id)), 'alive on every server after 3 TTLs');
  const stoppedAt = Date.now();
  await waitFor(async () => ((await everywhere(`/v1/session/info/${id}`)).every((s) => s === '[]') ? true : undefined), { what: 'the expiry on every server', timeoutMs: 10_000 });
  t.ok(Date.now() - stoppedAt >= 900, 'not before its TTL');
  await waitFor(async () => ((await everywhere('/v1/kv/c/held')).every((e) => !e.includes('"Session"')) ? true : undefined), { what: 'the release on every server' });
  const entries = await everywhere('/v1/kv/c/held');
  t.ok(entries.every((e) => e === entries[0]), 'released alike everywhere');
});

t.test('lock-delay is enforced alike by every server', async (t) => {
  const [f1, f2] = await cluster.followers();
  const leader = await cluster.leader();
  const holder = await createSession(f1!, { LockDelay: '2s' });
  const others = await Promise.all(cluster.nodes.map((n) => createSession(n, {})));
  t.equal(await (await put(f1!, `/v1/kv/c/delayed?acquire=${holder}`)).text(), 'true');
  await put(f2!, `/v1/session/destroy/${holder}`);
  const destroyedAt = Date.now();
  for (const [i, node] of cluster.nodes.entries()) {
    t.equal(await (await put(node, `/v1/kv/c/delayed?acquire=${others[i]}`)).text(), 'false', `refused through ${node.name}`);
  }
  await sleep(Math.max(0, 2100 - (Date.now() - destroyedAt)));
  t.equal(await (await put(leader, `/v1/kv/c/delayed?acquire=${others[0]}`)).text(), 'true', 'taken once the delay has passed');
  // ?stale reads a follower's own state, which may trail the leader for a moment.
  await waitFor(async () => ((await everywhere('/v1/kv/c/delayed')).every((e) => e.includes(others[0]!)) ? true : undefined), { what: 'the holder on every server' });
  const entries = await everywhere('/v1/kv/c/delayed');
  t.ok(entries.every((e) => e === entries[0]), 'every server agrees on the entry');
});

t.test('a new leader gives every session a full TTL x 2: renewed sessions survive the change', async (t) => {
  const old = await cluster.leader();
  const follower = (await cluster.followers())[0]!;
  const id = await createSession(follower, { TTL: '1s', LockDelay: '0s' });
  t.equal(await (await put(follower, `/v1/kv/c/survivor?acquire=${id}`)).text(), 'true');
  let renewing = true;
  const renewals = (async () => {
    while (renewing) {
      // Renewals fail while there is no leader; the client keeps trying, as clients do.
      await put(follower, `/v1/session/renew/${id}`).catch(() => undefined);
      await sleep(300);
    }
  })();
  await old.kill9();
  const next = await cluster.waitForLeader(20_000, cluster.running());
  t.not(next.name, old.name);
  await sleep(3000);
  renewing = false;
  await renewals;
  const [info] = JSON.parse(await (await at(next, `/v1/session/info/${id}`)).text()) as { ID: string }[];
  t.equal(info?.ID, id, 'the session outlived the leader change');
  t.match(await (await at(next, '/v1/kv/c/survivor')).text(), id, 'and still holds its lock');
  await old.start();
});
