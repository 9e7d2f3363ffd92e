// An agent against a real 3-server cluster (test/cluster/harness.ts): it learns every server from
// one retry-join address, and when the leader is killed (kill -9) it fails over, keeps serving,
// and its registrations survive in the catalog of the remaining servers.
import t from 'tap';
import { agentDataDir, startAgentProcess } from '../test/kit/agent-process.ts';
import { httpRequest, startCluster, waitFor, type ClusterNode } from '../test/cluster/harness.ts';
import { removeDir } from '../test/kit/server-process.ts';

async function instances(node: ClusterNode, service: string): Promise<{ Node: { Node: string }; Checks: { CheckID: string; Status: string }[] }[]> {
  const r = await httpRequest(`${node.url}/v1/health/service/${service}?stale`, { timeoutMs: 3000 });
  if (r.status !== 200) throw new Error(`${node.name}: ${r.status} ${r.text}`);
  return JSON.parse(r.text) as { Node: { Node: string }; Checks: { CheckID: string; Status: string }[] }[];
}

interface SelfStats {
  Stats: { consul: { known_servers: string; leader_id: string; current_server: string } };
}

t.test('agent failover when the leader is killed', async (t) => {
  const cluster = await startCluster({ size: 3, t, logLevel: 'warn' });
  const first = cluster.node('s1');
  const dataDir = agentDataDir();
  const agent = await startAgentProcess({ node: 'host-a', retryJoin: [first.advertise], dataDir, extraArgs: [] });
  t.teardown(async () => {
    await agent.kill9();
    removeDir(dataDir);
  });
  const self = JSON.parse((await httpRequest(`${agent.url}/v1/agent/self`)).text) as SelfStats;
  t.equal(self.Stats.consul.known_servers, '3', 'one retry-join address is enough to learn all three servers');

  const reg = await httpRequest(`${agent.url}/v1/agent/service/register`, {
    method: 'PUT',
    body: JSON.stringify({ Name: 'api', ID: 'api-1', Port: 7000, Check: { CheckID: 'api-ttl', TTL: '60s', Status: 'passing' } }),
  });
  t.equal(reg.status, 200, reg.text);
  for (const node of cluster.running()) {
    await waitFor(async () => ((await instances(node, 'api')).length === 1 ? true : undefined), { what: `api on ${node.name}`, timeoutMs: 10_000 });
  }
  t.pass('the registration is replicated to every server');
  t.equal((await httpRequest(`${agent.url}/v1/kv/before`, { method: 'PUT', body: 'x' })).text, 'true');

  // Make the server the agent talks to the leader, so that killing the leader also kills the
  // agent's server: both the leader change and the agent's own failover are exercised.
  const before = JSON.parse((await httpRequest(`${agent.url}/v1/agent/self`)).text) as SelfStats;
  let leader = await cluster.leader();
  if (before.Stats.consul.current_server !== leader.name) {
    const moved = await httpRequest(`${leader.url}/v1/operator/raft/transfer-leader?id=${before.Stats.consul.current_server}`, { method: 'POST', timeoutMs: 10_000 });
    t.equal(moved.status, 200, moved.text);
    leader = await waitFor(async () => {
      const l = await cluster.leader();
      return l.name === before.Stats.consul.current_server ? l : undefined;
    }, { what: 'leadership on the agent\'s server' });
  }
  t.equal(leader.name, before.Stats.consul.current_server, 'the leader is the agent\'s server');

  await leader.kill9();
  const survivors = cluster.running();
  const newLeader = await cluster.waitForLeader(20_000, survivors);
  t.not(newLeader.name, leader.name, `${newLeader.name} took over from ${leader.name}`);

  // Writes and reads through the agent work again (whichever server it was using).
  const write = await waitFor(
    async () => {
      const r = await httpRequest(`${agent.url}/v1/kv/after`, { method: 'PUT', body: 'y', timeoutMs: 5000 });
      return r.status === 200 ? r : undefined;
    },
    { what: 'a write through the agent after failover', timeoutMs: 20_000 },
  );
  t.equal(write.text, 'true');
  const read = await httpRequest(`${agent.url}/v1/kv/before?raw`);
  t.equal(read.text, 'x');
  const after = JSON.parse((await httpRequest(`${agent.url}/v1/agent/self`)).text) as SelfStats;
  t.not(after.Stats.consul.current_server, leader.name, 'the agent talks to a live server');
  await waitFor(async () => {
    const s = JSON.parse((await httpRequest(`${agent.url}/v1/agent/self`)).text) as SelfStats;
    return s.Stats.consul.leader_id === newLeader.name ? true : undefined;
  }, { what: 'the agent to learn the new leader', timeoutMs: 10_000 });

  // The agent's registrations survive the leader's death, and new ones go through the new leader.
  for (const node of survivors) t.equal((await instances(node, 'api')).length, 1, `api still registered on ${node.name}`);
  const reg2 = await httpRequest(`${agent.url}/v1/agent/service/register`, { method: 'PUT', body: JSON.stringify({ Name: 'api2', Port: 7001 }) });
  t.equal(reg2.status, 200);
  for (const node of survivors) await waitFor(async () => ((await instances(node, 'api2')).length === 1 ? true : undefined), { what: `api2 on ${node.name}`, timeoutMs: 10_000 });
  const ttl = await httpRequest(`${agent.url}/v1/agent/check/fail/api-ttl`, { method: 'PUT' });
  t.equal(ttl.status, 200);
  await waitFor(
    async () => {
      const e = await instances(newLeader, 'api');
      return e[0]?.Checks.find((c) => c.CheckID === 'api-ttl')?.Status === 'critical' ? true : undefined;
    },
    { what: 'the check failure in the catalog', timeoutMs: 10_000 },
  );
  t.pass('a status change after the failover reaches the new leader');
  const cached = await httpRequest(`${agent.url}/v1/health/service/api?cached`);
  t.equal(cached.status, 200);
  t.equal(cached.headers.get('x-cache'), 'MISS');
  t.equal((await httpRequest(`${agent.url}/v1/health/service/api?cached`)).headers.get('x-cache'), 'HIT');

  // The killed server comes back; the agent keeps working with the full cluster.
  await leader.start();
  await cluster.waitForLeader(20_000);
  await waitFor(async () => ((await instances(leader, 'api2')).length === 1 ? true : undefined), { what: `api2 on the restarted ${leader.name}`, timeoutMs: 15_000 });
  t.pass('the restarted server has the agent registrations');
});
