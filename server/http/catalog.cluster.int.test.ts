// The catalog on a real three-server cluster: the leader registers every server with serfHealth,
// agent registrations made on a follower live on that follower's node and reach every server,
// blocking health queries on one server wake for changes made through another, and a server the
// leader stops hearing from gets serfHealth critical, then passing again when it comes back.
import t from 'tap';
import { startCluster, waitFor, type Cluster, type ClusterNode } from '../../test/cluster/harness.ts';

let cluster: Cluster;

t.before(async () => {
  cluster = await startCluster({ size: 3, t });
});

const at = (node: ClusterNode, path: string, init?: RequestInit) => fetch(`${node.url}${path}`, { ...init, signal: AbortSignal.timeout(15_000) });

interface Check {
  Node: string;
  CheckID: string;
  Status: string;
  Output: string;
}

/** The serfHealth status of every member, as `via` holds it (its own state: ?stale). */
async function serfStatuses(via: ClusterNode): Promise<Record<string, string>> {
  const checks = (await (await at(via, '/v1/health/state/any?stale')).json()) as Check[];
  return Object.fromEntries(checks.filter((c) => c.CheckID === 'serfHealth').map((c) => [c.Node, c.Status]));
}

t.test('every server is registered with serfHealth passing, on every server', async (t) => {
  const names = cluster.running().map((n) => n.name).sort();
  for (const node of cluster.running()) {
    const statuses = await waitFor(
      async () => {
        const s = await serfStatuses(node);
        return names.every((n) => s[n] === 'passing') ? s : undefined;
      },
      { what: `every serfHealth on ${node.name}` },
    );
    t.same(Object.keys(statuses).sort(), names);
  }
  const services = (await (await at(cluster.running()[0]!, '/v1/catalog/service/consul')).json()) as { Node: string; ServicePort: number }[];
  t.same(services.map((s) => s.Node).sort(), names, 'each server provides the consul service');
  t.ok(services.every((s) => s.ServicePort > 0), 'on its RPC port');
  const members = (await (await at(cluster.running()[1]!, '/v1/agent/members')).json()) as { Name: string; Status: number }[];
  t.same(members.map((m) => m.Name).sort(), names);
});

t.test('agent registrations on a follower: its node, every server, TTL through another server', async (t) => {
  const [f1, f2] = await cluster.followers();
  const res = await at(f1!, '/v1/agent/service/register', { method: 'PUT', body: JSON.stringify({ Name: 'orders', ID: 'orders-1', Port: 7000, Check: { TTL: '30s' } }) });
  t.equal(res.status, 200);
  for (const node of cluster.running()) {
    const entries = (await (await at(node, '/v1/catalog/service/orders')).json()) as { Node: string; ServiceID: string }[];
    t.same(entries.map((e) => [e.Node, e.ServiceID]), [[f1!.name, 'orders-1']], `${node.name} sees it on ${f1!.name}'s node`);
  }
  // f2's agent does not own it.
  t.same(await (await at(f2!, '/v1/agent/services')).json(), {});
  const before = await at(f2!, '/v1/health/service/orders?passing');
  t.same(await before.json(), []);
  const index = Number(before.headers.get('x-consul-index'));
  const watch = at(f2!, `/v1/health/service/orders?passing&index=${index}&wait=10s`);
  t.equal((await at(f1!, '/v1/agent/check/pass/service:orders-1?note=up', { method: 'PUT' })).status, 200);
  const woken = await watch;
  const entries = (await woken.json()) as { Checks: Check[] }[];
  t.equal(entries.length, 1, 'the watcher on another server woke with the passing instance');
  t.ok(Number(woken.headers.get('x-consul-index')) > index);
  t.equal(entries[0]!.Checks.find((c) => c.CheckID === 'service:orders-1')?.Output, 'up');
  t.equal((await at(f2!, '/v1/agent/check/pass/service:orders-1', { method: 'PUT' })).status, 404, 'the check is f1\'s');
  t.equal((await at(f1!, '/v1/agent/service/deregister/orders-1', { method: 'PUT' })).status, 200);
  t.same(await (await at(f2!, '/v1/catalog/service/orders')).json(), []);
});

t.test('a server the leader stops hearing from gets serfHealth critical, then passing again', async (t) => {
  const leader = await cluster.leader();
  const [follower] = await cluster.followers();
  follower!.pause();
  try {
    const critical = await waitFor(
      async () => {
        const checks = (await (await at(leader, '/v1/health/node/' + follower!.name)).json()) as Check[];
        const serf = checks.find((c) => c.CheckID === 'serfHealth');
        return serf?.Status === 'critical' ? serf : undefined;
      },
      { what: `serfHealth of ${follower!.name} critical`, timeoutMs: 25_000 },
    );
    t.equal(critical.Output, 'Agent not live or unreachable');
    const members = (await (await at(leader, '/v1/agent/members')).json()) as { Name: string; Status: number }[];
    t.equal(members.find((m) => m.Name === follower!.name)?.Status, 4, 'members shows it failed');
  } finally {
    follower!.resume();
  }
  await waitFor(async () => ((await serfStatuses(leader))[follower!.name] === 'passing' ? true : undefined), { what: 'serfHealth passing again', timeoutMs: 15_000 });
  t.pass('passing again once the leader hears from it');
});
