// Agent mode end to end against a real dev server and real agent processes: registration through
// the agent API and config files, reads through the cache (MISS, HIT, Age, max-age), blocking
// queries, TTL and HTTP/TCP health checks against real targets, drift repair by anti-entropy,
// kill -9 and restart of the agent, and the serfHealth the leader keeps for it.
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Server as GrpcServer, ServerCredentials } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import t from 'tap';
import { httpRequest } from '../test/kit/http.ts';
import { waitFor } from '../test/kit/wait.ts';
import { agentDataDir, startAgentProcess, type AgentProcess } from '../test/kit/agent-process.ts';
import { removeDir, startServer, type ServerProcess } from '../test/kit/server-process.ts';

interface HealthEntry {
  Node: { Node: string };
  Service: { ID: string; Service: string; Port: number; CreateIndex: number };
  Checks: { CheckID: string; Status: string; Output: string }[];
}

async function healthOn(server: ServerProcess, service: string): Promise<HealthEntry[]> {
  const r = await httpRequest(`${server.url}/v1/health/service/${service}`);
  if (r.status !== 200) throw new Error(`health ${service}: ${r.status} ${r.text}`);
  return JSON.parse(r.text) as HealthEntry[];
}

function checkStatus(entries: HealthEntry[], checkId: string): string | undefined {
  for (const e of entries) for (const c of e.Checks) if (c.CheckID === checkId) return c.Status;
  return undefined;
}

t.test('agent mode against one server', async (t) => {
  const server = await startServer({ node: 's1' });
  t.teardown(async () => {
    await server.kill9();
    removeDir(server.dataDir);
  });
  t.ok(server.rpcAddress, `server RPC at ${server.rpcAddress}`);

  // Real health-check targets.
  let httpHealthy = true;
  const target: HttpServer = createHttpServer((_req, res) => {
    res.writeHead(httpHealthy ? 200 : 503).end(httpHealthy ? 'ok' : 'down');
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  const targetPort = (target.address() as { port: number }).port;
  const tcpTarget: TcpServer = createTcpServer((s) => s.end());
  await new Promise<void>((r) => tcpTarget.listen(0, '127.0.0.1', r));
  const tcpPort = (tcpTarget.address() as { port: number }).port;
  t.teardown(() => {
    target.close();
    tcpTarget.close();
  });

  const dataDir = agentDataDir();
  const configFile = join(dataDir, '..', `agent-config-${process.pid}.json`);
  writeFileSync(
    configFile,
    JSON.stringify({
      sync_interval_ms: 1000,
      status_coalesce_ms: 100,
      heartbeat_interval_ms: 500,
      service: {
        name: 'from-config',
        id: 'from-config-1',
        port: 9000,
        tags: ['cfg'],
        check: { http: `http://127.0.0.1:${targetPort}/health`, interval: '1s', failures_before_critical: 2 },
      },
      checks: [{ id: 'tcp-check', name: 'tcp target', tcp: `127.0.0.1:${tcpPort}`, interval: '1s' }],
    }),
  );
  t.teardown(() => removeDir(configFile));
  let agent: AgentProcess = await startAgentProcess({ node: 'agent-1', retryJoin: [server.rpcAddress], dataDir, configFiles: [configFile] });
  t.teardown(async () => {
    await agent.kill9();
    removeDir(dataDir);
  });
  t.match(agent.output(), /konsul agent "agent-1" \(datacenter dc1\) listening on http:\/\/127\.0\.0\.1:\d+, servers: s1/);

  await t.test('the agent registers its node with serfHealth and describes itself as a client', async (t) => {
    const self = JSON.parse((await httpRequest(`${agent.url}/v1/agent/self`)).text) as { Config: { Server: boolean; NodeName: string } };
    t.equal(self.Config.Server, false);
    t.equal(self.Config.NodeName, 'agent-1');
    const serf = await waitFor(async () => {
      const checks = JSON.parse((await httpRequest(`${server.url}/v1/health/node/agent-1`)).text) as { CheckID: string; Status: string }[];
      return checks.find((c) => c.CheckID === 'serfHealth' && c.Status === 'passing');
    }, { what: 'serfHealth of agent-1' });
    t.ok(serf);
    const members = JSON.parse((await httpRequest(`${agent.url}/v1/agent/members`)).text) as { Name: string; Tags: { role: string }; Status: number }[];
    t.same(
      members.map((m) => [m.Name, m.Tags.role, m.Status]).sort(),
      [
        ['agent-1', 'node', 1],
        ['s1', 'consul', 1],
      ],
    );
    const leader = await httpRequest(`${agent.url}/v1/status/leader`);
    t.equal(leader.text, JSON.stringify(server.rpcAddress), '/v1/status/leader comes from the servers');
  });

  await t.test('config-file definitions reach the catalog and their checks run', async (t) => {
    const entries = await waitFor(async () => {
      const e = await healthOn(server, 'from-config');
      return checkStatus(e, 'service:from-config-1') === 'passing' ? e : undefined;
    }, { what: 'from-config passing' });
    t.equal(entries[0]!.Node.Node, 'agent-1');
    t.equal(entries[0]!.Service.Port, 9000);
    const tcp = await waitFor(async () => {
      const checks = JSON.parse((await httpRequest(`${server.url}/v1/health/node/agent-1`)).text) as { CheckID: string; Status: string }[];
      return checks.find((c) => c.CheckID === 'tcp-check' && c.Status === 'passing');
    }, { what: 'tcp-check passing' });
    t.ok(tcp, 'the TCP check passes against a listening target');
  });

  await t.test('an HTTP target that goes down turns critical within interval × failures', async (t) => {
    httpHealthy = false;
    const started = Date.now();
    await waitFor(async () => ((checkStatus(await healthOn(server, 'from-config'), 'service:from-config-1') === 'critical') ? true : undefined), { what: 'from-config critical', timeoutMs: 8000 });
    const elapsed = Date.now() - started;
    // interval 1 s × 2 failures, plus a probe in flight, the 100 ms coalescing and the write.
    t.ok(elapsed < 3500, `critical after ${elapsed} ms`);
    // The agent keeps what the probes said: passing results, then the failures that turned it critical.
    const history = JSON.parse((await httpRequest(`${agent.url}/v1/konsul/agent/check/history/service:from-config-1`)).text) as { Status: string; ReportedStatus: string; Output: string; Source: string }[];
    t.ok(history.length >= 3 && history.length <= 10, `${history.length} results kept (at most 10)`);
    t.same(history.slice(-2).map((r) => r.Status), ['critical', 'critical'], 'the last two probes failed');
    t.equal(history.at(-1)!.ReportedStatus, 'critical');
    t.ok(history.some((r) => r.Status === 'passing'), 'earlier passing probes are kept');
    t.match(history.at(-1)!.Output, /^HTTP GET http:\/\/127\.0\.0\.1:\d+\/health: 5\d\d /);
    t.equal((await httpRequest(`${agent.url}/v1/konsul/agent/check/history/no-such-check`)).status, 404);
    httpHealthy = true;
    await waitFor(async () => ((checkStatus(await healthOn(server, 'from-config'), 'service:from-config-1') === 'passing') ? true : undefined), { what: 'from-config passing again', timeoutMs: 8000 });
  });

  await t.test('a TCP target that closes turns critical', async (t) => {
    await new Promise<void>((r) => tcpTarget.close(() => r()));
    const critical = await waitFor(async () => {
      const checks = JSON.parse((await httpRequest(`${server.url}/v1/health/node/agent-1`)).text) as { CheckID: string; Status: string; Output: string }[];
      return checks.find((c) => c.CheckID === 'tcp-check' && c.Status === 'critical');
    }, { what: 'tcp-check critical', timeoutMs: 8000 });
    t.match(critical.Output, /refused|ECONNREFUSED/i);
  });

  await t.test('a gRPC health target: SERVING passes, NOT_SERVING turns critical', async (t) => {
    const health = new HealthImplementation({ '': 'SERVING', 'pkg.Orders': 'SERVING' });
    const grpc = new GrpcServer();
    health.addToServer(grpc);
    const port = await new Promise<number>((resolve, reject) => grpc.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    t.teardown(() => grpc.forceShutdown());
    const reg = await httpRequest(`${agent.url}/v1/agent/service/register`, {
      method: 'PUT',
      body: JSON.stringify({ Name: 'orders', ID: 'orders-1', Port: port, Check: { CheckID: 'orders-grpc', GRPC: `127.0.0.1:${port}/pkg.Orders`, Interval: '1s' } }),
    });
    t.equal(reg.status, 200, reg.text);
    await waitFor(async () => ((checkStatus(await healthOn(server, 'orders'), 'orders-grpc') === 'passing') ? true : undefined), { what: 'orders passing', timeoutMs: 8000 });
    health.setStatus('pkg.Orders', 'NOT_SERVING');
    const started = Date.now();
    await waitFor(async () => ((checkStatus(await healthOn(server, 'orders'), 'orders-grpc') === 'critical') ? true : undefined), { what: 'orders critical', timeoutMs: 8000 });
    const elapsed = Date.now() - started;
    t.ok(elapsed < 2500, `critical after ${elapsed} ms (interval 1 s, one failure)`);
    const dereg = await httpRequest(`${agent.url}/v1/agent/service/deregister/orders-1`, { method: 'PUT' });
    t.equal(dereg.status, 200);
    await waitFor(async () => ((await healthOn(server, 'orders')).length === 0 ? true : undefined), { what: 'orders gone', timeoutMs: 5000 });
  });

  await t.test('registration through the agent API reaches the servers; TTL expiry shows there', async (t) => {
    const reg = await httpRequest(`${agent.url}/v1/agent/service/register`, {
      method: 'PUT',
      body: JSON.stringify({ Name: 'web', ID: 'web-1', Port: 8080, Check: { CheckID: 'web-ttl', TTL: '1s', Status: 'passing' } }),
    });
    t.equal(reg.status, 200, reg.text);
    const services = JSON.parse((await httpRequest(`${agent.url}/v1/agent/services`)).text) as Record<string, { Service: string }>;
    t.equal(services['web-1']?.Service, 'web');
    await waitFor(async () => ((await healthOn(server, 'web')).length === 1 ? true : undefined), { what: 'web-1 in the catalog' });
    t.equal(checkStatus(await healthOn(server, 'web'), 'web-ttl'), 'passing');
    const critical = await waitFor(async () => {
      const e = await healthOn(server, 'web');
      return checkStatus(e, 'web-ttl') === 'critical' ? e : undefined;
    }, { what: 'TTL expiry in the catalog', timeoutMs: 6000 });
    t.match(critical[0]!.Checks.find((c) => c.CheckID === 'web-ttl')!.Output, /^TTL expired/);
    const pass = await httpRequest(`${agent.url}/v1/agent/check/pass/web-ttl?note=alive`, { method: 'PUT' });
    t.equal(pass.status, 200);
    await waitFor(async () => ((checkStatus(await healthOn(server, 'web'), 'web-ttl') === 'passing') ? true : undefined), { what: 'TTL pass in the catalog', timeoutMs: 5000 });
    // Bad input is the agent's 4xx with Consul's text, never a crash.
    const bad = await httpRequest(`${agent.url}/v1/agent/service/register`, { method: 'PUT', body: '{"Port": 1}' });
    t.equal(bad.status, 400);
    t.equal(bad.text, 'Missing service name');
    const unknown = await httpRequest(`${agent.url}/v1/agent/check/pass/nope`, { method: 'PUT' });
    t.equal(unknown.status, 404);
    const script = await httpRequest(`${agent.url}/v1/agent/check/register`, { method: 'PUT', body: JSON.stringify({ Name: 'sh', Args: ['/bin/true'], Interval: '10s' }) });
    t.equal(script.status, 500, 'script checks are refused unless enabled');
    t.match(script.text, /^Scripts are disabled on this agent/);
    const checks = JSON.parse((await httpRequest(`${agent.url}/v1/agent/checks`)).text) as Record<string, unknown>;
    t.notOk(checks['sh'], 'and leave no trace');
  });

  await t.test('reads through the cache: MISS then HIT, Age, max-age, ?cached with ?consistent', async (t) => {
    t.equal((await httpRequest(`${agent.url}/v1/kv/app/config`, { method: 'PUT', body: 'v1' })).text, 'true', 'writes are forwarded');
    const miss = await httpRequest(`${agent.url}/v1/kv/app/config?cached`);
    t.equal(miss.status, 200);
    t.equal(miss.headers.get('x-cache'), 'MISS');
    t.equal(miss.headers.get('age'), null, 'Age only on a HIT, as Consul');
    const index = Number(miss.headers.get('x-consul-index'));
    t.ok(index > 0, 'X-Consul-Index passes through');
    t.equal(miss.headers.get('x-consul-knownleader'), 'true');
    const hit = await httpRequest(`${agent.url}/v1/kv/app/config?cached`);
    t.equal(hit.headers.get('x-cache'), 'HIT');
    t.equal(hit.headers.get('age'), '0');
    t.equal(hit.text, miss.text);
    const fresh = await httpRequest(`${agent.url}/v1/kv/app/config?cached`, { headers: { 'Cache-Control': 'max-age=30' } });
    t.equal(fresh.headers.get('x-cache'), 'HIT', 'an entry kept fresh by its background refresh satisfies max-age');
    // A write elsewhere reaches the cache through its background blocking query.
    await httpRequest(`${server.url}/v1/kv/app/config`, { method: 'PUT', body: 'v2' });
    const updated = await waitFor(async () => {
      const r = await httpRequest(`${agent.url}/v1/kv/app/config?cached`);
      const [entry] = JSON.parse(r.text) as { Value: string }[];
      return Buffer.from(entry!.Value, 'base64').toString() === 'v2' ? r : undefined;
    }, { what: 'the cache to see v2', timeoutMs: 5000 });
    t.equal(updated.headers.get('x-cache'), 'HIT');
    const health = await httpRequest(`${agent.url}/v1/health/service/web?cached`);
    t.equal(health.headers.get('x-cache'), 'MISS');
    t.equal((await httpRequest(`${agent.url}/v1/health/service/web?cached`)).headers.get('x-cache'), 'HIT');
    t.equal((await httpRequest(`${agent.url}/v1/catalog/services?cached`)).headers.get('x-cache'), 'MISS');
    const both = await httpRequest(`${agent.url}/v1/kv/app/config?cached&consistent`);
    t.equal(both.status, 400);
    const missing = await httpRequest(`${agent.url}/v1/kv/absent?cached`);
    t.equal(missing.status, 404, 'a missing key is 404 through the cache too');
    t.ok(Number(missing.headers.get('x-consul-index')) > 0, 'with an index to block on');
    const plain = await httpRequest(`${agent.url}/v1/kv/app/config`);
    t.equal(plain.headers.get('x-cache'), null, 'a default read without ?cached is forwarded, not cached');
  });

  await t.test('blocking queries through the agent', async (t) => {
    const first = await httpRequest(`${agent.url}/v1/kv/block/me`, { method: 'PUT', body: 'a' });
    t.equal(first.text, 'true');
    const read = await httpRequest(`${agent.url}/v1/kv/block/me?consistent`);
    const index = Number(read.headers.get('x-consul-index'));
    const started = Date.now();
    const cachedWatch = httpRequest(`${agent.url}/v1/kv/block/me?raw&index=${index}&wait=10s`, { timeoutMs: 15_000 });
    const forwardedWatch = httpRequest(`${agent.url}/v1/kv/block/me?raw&consistent&index=${index}&wait=10s`, { timeoutMs: 15_000 });
    await new Promise((r) => setTimeout(r, 300));
    await httpRequest(`${server.url}/v1/kv/block/me`, { method: 'PUT', body: 'b' });
    const [a, b] = await Promise.all([cachedWatch, forwardedWatch]);
    t.ok(Date.now() - started < 5000, 'both woke on the write');
    t.equal(a.text, 'b');
    t.equal(b.text, 'b');
    t.ok(Number(a.headers.get('x-consul-index')) > index);
    t.ok(Number(b.headers.get('x-consul-index')) > index);
    t.equal(b.headers.get('x-cache'), null, '?consistent is forwarded');
    const timedOut = await httpRequest(`${agent.url}/v1/kv/block/me?raw&index=${a.headers.get('x-consul-index')}&wait=500ms`);
    t.equal(timedOut.text, 'b', 'a wait that ends answers the current value');
  });

  await t.test('anti-entropy repairs a deregistration done on the server', async (t) => {
    const before = await healthOn(server, 'web');
    t.equal(before.length, 1);
    const dereg = await httpRequest(`${server.url}/v1/catalog/deregister`, { method: 'PUT', body: JSON.stringify({ Node: 'agent-1', ServiceID: 'web-1' }) });
    t.equal(dereg.status, 200);
    // The agent may put it back before the next read, so "back" is proven by a newer CreateIndex:
    // the entry was created again after the deregistration, not left in place.
    const back = await waitFor(async () => {
      const now = await healthOn(server, 'web');
      return now.length === 1 && now[0]!.Service.CreateIndex > before[0]!.Service.CreateIndex ? now[0] : undefined;
    }, { what: 'web-1 registered again', timeoutMs: 8000 });
    t.equal(back.Service.ID, 'web-1');
    const extra = await httpRequest(`${server.url}/v1/catalog/register`, { method: 'PUT', body: JSON.stringify({ Node: 'agent-1', Address: '127.0.0.1', Service: { ID: 'stray', Service: 'stray' } }) });
    t.equal(extra.status, 200);
    await waitFor(async () => ((await healthOn(server, 'stray')).length === 0 ? true : undefined), { what: 'the stray service removed', timeoutMs: 8000 });
  });

  await t.test('kill -9 and restart: registrations survive and are re-synced; serfHealth follows', async (t) => {
    await agent.kill9();
    const critical = await waitFor(async () => {
      const checks = JSON.parse((await httpRequest(`${server.url}/v1/health/node/agent-1`)).text) as { CheckID: string; Status: string; Output: string }[];
      return checks.find((c) => c.CheckID === 'serfHealth' && c.Status === 'critical');
    }, { what: 'serfHealth critical', timeoutMs: 20_000 });
    t.equal(critical.Output, 'Agent not live or unreachable');
    // Drift while the agent is down: the restarted agent must put its service back.
    await httpRequest(`${server.url}/v1/catalog/deregister`, { method: 'PUT', body: JSON.stringify({ Node: 'agent-1', ServiceID: 'web-1' }) });
    agent = await startAgentProcess({ node: 'agent-1', retryJoin: [server.rpcAddress], dataDir, configFiles: [configFile] });
    const services = JSON.parse((await httpRequest(`${agent.url}/v1/agent/services`)).text) as Record<string, unknown>;
    t.ok(services['web-1'], 'the API registration was persisted');
    t.ok(services['from-config-1'], 'the config-file service is back');
    await waitFor(async () => ((await healthOn(server, 'web')).length === 1 ? true : undefined), { what: 'web-1 re-synced', timeoutMs: 8000 });
    await waitFor(async () => {
      const checks = JSON.parse((await httpRequest(`${server.url}/v1/health/node/agent-1`)).text) as { CheckID: string; Status: string }[];
      return checks.find((c) => c.CheckID === 'serfHealth' && c.Status === 'passing');
    }, { what: 'serfHealth passing again', timeoutMs: 8000 });
    t.pass('agent-1 is alive again');
  });
});

t.test('an agent started before its server serves locally, then syncs once the server is up', async (t) => {
  const probe = createTcpServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const rpcPort = (probe.address() as { port: number }).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const dataDir = agentDataDir();
  const agent = await startAgentProcess({ node: 'early', retryJoin: [`127.0.0.1:${rpcPort}`], dataDir, logLevel: 'info' });
  t.teardown(async () => {
    await agent.kill9();
    removeDir(dataDir);
  });
  t.match(agent.output(), /servers: \(none reachable yet, retrying\)/);
  const reg = await httpRequest(`${agent.url}/v1/agent/service/register`, { method: 'PUT', body: JSON.stringify({ Name: 'early-svc', Port: 1 }) });
  t.equal(reg.status, 200, 'a registration is kept locally while no server is reachable');
  const kv = await httpRequest(`${agent.url}/v1/kv/x`);
  t.equal(kv.status, 500);
  t.equal(kv.text, 'No known Consul servers');
  const server = await startServer({ node: 'late', extraArgs: ['--rpc-addr', `127.0.0.1:${rpcPort}`] });
  t.teardown(async () => {
    await server.kill9();
    removeDir(server.dataDir);
  });
  await waitFor(async () => ((await healthOn(server, 'early-svc')).length === 1 ? true : undefined), { what: 'early-svc in the catalog', timeoutMs: 15_000 });
  t.pass('synced once the server came up');

  // The server is replaced by an empty one (lost disk) at the same address: the agent's next
  // heartbeat finds its node missing and a full sync puts everything back, long before the
  // agent's 60 s sync interval.
  await server.kill9();
  const fresh = await startServer({ node: 'late', extraArgs: ['--rpc-addr', `127.0.0.1:${rpcPort}`] });
  t.teardown(async () => {
    await fresh.kill9();
    removeDir(fresh.dataDir);
  });
  // Empty by construction (a new data directory); asking it over HTTP would race the agent, whose
  // heartbeat may already have put everything back by the time the answer comes.
  t.not(fresh.dataDir, server.dataDir, 'the new server starts empty: a new data directory');
  const started = Date.now();
  await waitFor(async () => ((await healthOn(fresh, 'early-svc')).length === 1 ? true : undefined), { what: 'early-svc on the new server', timeoutMs: 15_000 }).catch((err: Error) => {
    throw new Error(`${err.message}\nagent output:\n${agent.output()}`);
  });
  t.ok(Date.now() - started < 10_000, `re-registered after ${Date.now() - started} ms`);
});

t.test("DNS on the agent answers from the agent's cache", async (t) => {
  const server = await startServer({ node: 'dns-s1' });
  t.teardown(async () => {
    await server.kill9();
    removeDir(server.dataDir);
  });
  for (const [i, status] of [[1, 'passing'], [2, 'critical']] as const) {
    const r = await httpRequest(`${server.url}/v1/catalog/register`, {
      method: 'PUT',
      body: JSON.stringify({ Node: `db-node-${i}`, Address: `10.9.0.${i}`, Service: { ID: `db-${i}`, Service: 'db', Port: 5432 }, Check: { CheckID: `db-${i}-c`, ServiceID: `db-${i}`, Name: 'c', Status: status } }),
    });
    t.equal(r.status, 200);
  }
  const probe = createTcpServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const dnsPort = (probe.address() as { port: number }).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const dataDir = agentDataDir();
  const agent = await startAgentProcess({ node: 'dns-agent', retryJoin: [server.rpcAddress], dataDir, extraArgs: ['--dns-addr', `127.0.0.1:${dnsPort}`] });
  t.teardown(async () => {
    await agent.kill9();
    removeDir(dataDir);
  });
  t.match(agent.output(), new RegExp(`dns listening on 127\\.0\\.0\\.1:${dnsPort}`));
  const { dig } = await import('../dns/test-support.ts');
  // The first query for a service finds it not cached yet: the DNS server waits for the load
  // (bounded, ~1 s) and answers it, instead of a SERVFAIL the resolver would have to retry.
  const answer = await dig(dnsPort, ['db.service.consul', 'A']);
  t.equal(answer.status, 'NOERROR', 'the first query for a service is answered');
  t.same(answer.answer.map((a) => a[4]), ['10.9.0.1'], 'only the passing instance');
  const firstNode = await dig(dnsPort, ['db-node-2.node.consul', 'A']);
  t.equal(firstNode.status, 'NOERROR', 'the first query for a node is answered');
  t.same(firstNode.answer.map((a) => a[4]), ['10.9.0.2']);
  const missing = await dig(dnsPort, ['nope.service.consul', 'A']);
  t.equal(missing.status, 'NXDOMAIN', 'a service the catalog does not have is NXDOMAIN at once');
  // A change on the servers reaches DNS answers through the cache's background refresh.
  await httpRequest(`${server.url}/v1/catalog/register`, {
    method: 'PUT',
    body: JSON.stringify({ Node: 'db-node-2', Address: '10.9.0.2', SkipNodeUpdate: true, Check: { CheckID: 'db-2-c', ServiceID: 'db-2', Name: 'c', Status: 'passing' } }),
  });
  const both = await waitFor(async () => {
    const r = await dig(dnsPort, ['db.service.consul', 'A']);
    return r.answer.length === 2 ? r : undefined;
  }, { what: 'both instances in DNS', timeoutMs: 8000 });
  t.same(both.answer.map((a) => a[4]).sort(), ['10.9.0.1', '10.9.0.2']);
  const node = await waitFor(async () => {
    const r = await dig(dnsPort, ['db-node-1.node.consul', 'A']);
    return r.status === 'NOERROR' ? r : undefined;
  }, { what: 'node lookup', timeoutMs: 8000 });
  t.same(node.answer.map((a) => a[4]), ['10.9.0.1']);
});

t.test('konsul agent refuses bad flags and config files with a clear message', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const bin = fileURLToPath(new URL('../bin/konsul.js', import.meta.url));
  const run = (args: string[]) => spawnSync(process.execPath, [bin, 'agent', ...args], { encoding: 'utf8', timeout: 30_000 });
  const noServer = run(['--node', 'x', '--dns-addr', 'off']);
  t.equal(noServer.status, 2);
  t.match(noServer.stderr, /needs at least one server: --retry-join/);
  const badJoin = run(['--retry-join', 'nonsense']);
  t.not(badJoin.status, 0);
  t.match(badJoin.stderr, /--retry-join: expected HOST:PORT/);
  const dir = agentDataDir();
  t.teardown(() => removeDir(dir));
  const badFile = join(dir, 'bad.json');
  writeFileSync(badFile, JSON.stringify({ retry_join: ['127.0.0.1:1'], servce: { name: 'typo' } }));
  const typo = run(['--config-file', badFile, '--dns-addr', 'off']);
  t.equal(typo.status, 2);
  t.match(typo.stderr, /bad\.json: unknown key "servce"/);
  const badService = join(dir, 'bad-service.json');
  writeFileSync(badService, JSON.stringify({ retry_join: ['127.0.0.1:1'], service: { port: 80 } }));
  const missingName = run(['--config-file', badService, '--dns-addr', 'off', '--data-dir', join(dir, 'data')]);
  t.equal(missingName.status, 1);
  t.match(missingName.stderr, /bad-service\.json: invalid service definition: Missing service name/);
});
