// Catalog, health and agent endpoints against real Konsul servers (in this process, over a real
// socket), driven by the npm `consul` client (node-consul) where it has the call, and by fetch for
// Consul's exact wire shapes.
import Consul from 'consul';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { startInProcessServer, type InProcessServer } from '../../test/kit/in-process-server.ts';
import { removeDir, tempDataDir } from '../../test/kit/server-process.ts';
import { waitFor } from '../../test/kit/wait.ts';

let server: InProcessServer;
let consul: Consul;

t.before(async () => {
  server = await startInProcessServer({ config: { nodeName: 'cat-int' } });
  consul = new Consul({ host: '127.0.0.1', port: Number(new URL(server.url).port) });
});

t.teardown(() => server.stop());

const http = (path: string, init?: RequestInit) => fetch(`${server.url}${path}`, init);
const put = (path: string, body?: unknown) => http(path, { method: 'PUT', ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}) });
const getJson = async <T>(path: string): Promise<{ body: T; index: number; status: number }> => {
  const res = await http(path);
  return { body: (await res.json()) as T, index: Number(res.headers.get('x-consul-index')), status: res.status };
};
/** node-consul's results are untyped; the tests name the shape they expect. */
const as = <T>(value: unknown): T => value as T;
/** node-consul's typings require fields Consul does not (a check's name and timeout); the calls are untyped here. */
const registerService = (c: Consul, options: Record<string, unknown>) => (c.agent.service.register as (o: unknown) => Promise<unknown>).call(c.agent.service, options);
const registerCheck = (c: Consul, options: Record<string, unknown>) => (c.agent.check.register as (o: unknown) => Promise<unknown>).call(c.agent.check, options);

interface ServiceNode {
  Node: string;
  Address: string;
  ServiceID: string;
  ServiceName: string;
  ServiceTags: string[];
  ServicePort: number;
  ServiceMeta: Record<string, string>;
  ServiceWeights: { Passing: number; Warning: number };
  NodeMeta: Record<string, string>;
  CreateIndex: number;
  ModifyIndex: number;
}
interface Check {
  Node: string;
  CheckID: string;
  Name: string;
  Status: string;
  Output: string;
  Notes: string;
  ServiceID: string;
  ServiceName: string;
  ServiceTags: string[];
  Type: string;
}
interface HealthEntry {
  Node: { Node: string; Address: string };
  Service: { ID: string; Service: string; Tags: string[]; Port: number };
  Checks: Check[];
}

t.test('the server registers itself with serfHealth and the consul service', async (t) => {
  const nodes = as<{ Node: string; Address: string; TaggedAddresses: Record<string, string> }[]>(await consul.catalog.node.list());
  const self = nodes.find((n) => n.Node === 'cat-int');
  t.ok(self, 'the server node is in the catalog');
  t.equal(self?.Address, '127.0.0.1');
  t.equal(self?.TaggedAddresses['lan'], '127.0.0.1');
  const checks = as<Check[]>(await consul.health.node('cat-int'));
  const serf = checks.find((c) => c.CheckID === 'serfHealth');
  t.equal(serf?.Status, 'passing');
  t.equal(serf?.Name, 'Serf Health Status');
  t.equal(serf?.Output, 'Agent alive and reachable');
  t.same(serf?.ServiceTags, []);
  const services = as<Record<string, string[]>>(await consul.catalog.service.list());
  t.same(services['consul'], []);
  t.same(await consul.catalog.datacenters(), ['dc1']);
});

t.test('catalog register, read, deregister with Consul shapes', async (t) => {
  await consul.catalog.register({
    node: 'db-node',
    address: '10.1.0.5',
    nodemeta: { rack: 'r1' },
    service: { id: 'redis1', service: 'redis', tags: ['primary', 'v1'], port: 6379, meta: { version: '7' } },
    check: { checkid: 'service:redis1', name: 'Redis health', serviceid: 'redis1', status: 'passing', notes: 'tcp' },
  });
  const nodes = as<ServiceNode[]>(await consul.catalog.service.nodes('redis'));
  t.equal(nodes.length, 1);
  const n = nodes[0]!;
  t.match(n, { Node: 'db-node', Address: '10.1.0.5', ServiceID: 'redis1', ServiceName: 'redis', ServicePort: 6379, ServiceTags: ['primary', 'v1'] });
  t.same(n.ServiceMeta, { version: '7' });
  t.same(n.NodeMeta, { rack: 'r1' });
  t.same(n.ServiceWeights, { Passing: 1, Warning: 1 }, 'Consul\'s default weights');
  t.equal(n.CreateIndex, n.ModifyIndex);
  const raw = (await (await http('/v1/catalog/service/redis')).json()) as Record<string, unknown>[];
  t.same(Object.keys(raw[0]!), [
    'ID', 'Node', 'Address', 'Datacenter', 'TaggedAddresses', 'NodeMeta', 'ServiceKind', 'ServiceID', 'ServiceName', 'ServiceTags', 'ServiceAddress',
    'ServiceWeights', 'ServiceMeta', 'ServicePort', 'ServiceEnableTagOverride', 'ServiceProxy', 'ServiceConnect', 'CreateIndex', 'ModifyIndex',
  ], 'the flattened ServiceNode fields, in Consul\'s order');

  const node = as<{ Node: { Node: string; Meta: Record<string, string> }; Services: Record<string, { ID: string; Service: string; Tags: string[] }> }>(
    await consul.catalog.node.services('db-node'),
  );
  t.equal(node.Node.Node, 'db-node');
  t.same(Object.keys(node.Services), ['redis1']);
  t.equal(node.Services['redis1']!.Service, 'redis');
  const missing = await http('/v1/catalog/node/nope');
  t.equal(missing.status, 200);
  t.equal(await missing.text(), 'null', 'a missing node is a 200 with null, as in Consul');
  t.ok(Number(missing.headers.get('x-consul-index')) >= 1);

  const checks = as<Check[]>(await consul.health.checks('redis'));
  t.match(checks, [{ CheckID: 'service:redis1', Status: 'passing', ServiceName: 'redis', ServiceTags: ['primary', 'v1'], Notes: 'tcp' }]);

  await consul.catalog.deregister({ node: 'db-node', serviceid: 'redis1' });
  t.same(await consul.catalog.service.nodes('redis'), []);
  t.same(as<Check[]>(await consul.health.checks('redis')), [], 'the service\'s checks went with it');
  t.ok((as<{ Node: string }[]>(await consul.catalog.node.list())).some((x) => x.Node === 'db-node'), 'the node stays');
  t.equal(await (await put('/v1/catalog/deregister', { Node: 'db-node' })).text(), 'true');
  t.notOk((as<{ Node: string }[]>(await consul.catalog.node.list())).some((x) => x.Node === 'db-node'));
});

t.test('tag (repeated), node-meta and filter; catalog and health list in the same order', async (t) => {
  for (const [node, rack, tags] of [['w3', 'r2', ['a', 'b']], ['w1', 'r1', ['a']], ['w2', 'r1', ['a', 'b', 'c']]] as const) {
    t.equal(await (await put('/v1/catalog/register', { Node: node, Address: `10.2.0.${node[1]}`, NodeMeta: { rack }, Service: { Service: 'web', Tags: tags, Port: 80 } })).text(), 'true');
  }
  const catalogOrder = (await getJson<ServiceNode[]>('/v1/catalog/service/web')).body.map((s) => s.Node);
  const healthOrder = (await getJson<HealthEntry[]>('/v1/health/service/web')).body.map((e) => e.Node.Node);
  t.same(catalogOrder, ['w1', 'w2', 'w3']);
  t.same(healthOrder, catalogOrder, 'Traefik pairs the two lists by position');
  t.same((await getJson<ServiceNode[]>('/v1/catalog/service/web?tag=a&tag=b')).body.map((s) => s.Node), ['w2', 'w3'], 'every repeated tag must match');
  t.same((await getJson<HealthEntry[]>('/v1/health/service/web?tag=A&tag=c')).body.map((e) => e.Node.Node), ['w2'], 'tags compare case-insensitively');
  t.same(as<ServiceNode[]>(await consul.catalog.service.nodes({ service: 'web', tag: 'b' })).map((s) => s.Node), ['w2', 'w3']);
  t.same((await getJson<ServiceNode[]>('/v1/catalog/service/web?node-meta=rack:r1')).body.map((s) => s.Node), ['w1', 'w2']);
  t.same((await getJson<{ Node: string }[]>('/v1/catalog/nodes?node-meta=rack:r2')).body.map((n) => n.Node), ['w3']);
  const filtered = await getJson<ServiceNode[]>(`/v1/catalog/service/web?filter=${encodeURIComponent('"c" in ServiceTags or Node == w1')}`);
  t.same(filtered.body.map((s) => s.Node), ['w1', 'w2']);
  const healthFiltered = await getJson<HealthEntry[]>(`/v1/health/service/web?filter=${encodeURIComponent('Node.Node != w1 and Service.Port == 80')}`);
  t.same(healthFiltered.body.map((e) => e.Node.Node), ['w2', 'w3']);
  const servicesFiltered = await getJson<Record<string, string[]>>(`/v1/catalog/services?filter=${encodeURIComponent('NodeMeta.rack == r2')}`);
  t.same(servicesFiltered.body, { web: ['a', 'b'] });
  const bad = await http(`/v1/catalog/service/web?filter=${encodeURIComponent('Node ==')}`);
  t.equal(bad.status, 400);
  t.match(await bad.text(), /^Failed to create boolean expression evaluator/);
  const services = as<Record<string, string[]>>(await consul.catalog.service.list());
  t.same(services['web'], ['a', 'b', 'c']);
});

t.test('health: passing filter, node-level critical checks, states', async (t) => {
  await put('/v1/catalog/register', {
    Node: 'h1',
    Address: '10.3.0.1',
    Service: { ID: 'api1', Service: 'api', Port: 9000 },
    Checks: [
      { CheckID: 'api-alive', Name: 'alive', ServiceID: 'api1', Status: 'passing' },
      { CheckID: 'node-ok', Name: 'node', Status: 'passing' },
    ],
  });
  await put('/v1/catalog/register', { Node: 'h2', Address: '10.3.0.2', Service: { ID: 'api2', Service: 'api', Port: 9000 }, Check: { CheckID: 'api2-alive', Name: 'alive', ServiceID: 'api2', Status: 'warning' } });
  let passing = as<HealthEntry[]>(await consul.health.service({ service: 'api', passing: true }));
  t.same(passing.map((e) => e.Service.ID), ['api1'], 'warning is not passing');
  const all = as<HealthEntry[]>(await consul.health.service('api'));
  t.same(all[0]!.Checks.map((c) => c.CheckID), ['node-ok', 'api-alive'], 'node-level checks first');
  t.equal(all[0]!.Checks[1]!.ServiceName, 'api');
  // A node-level critical check makes every service on the node unhealthy.
  await put('/v1/catalog/register', { Node: 'h1', Address: '10.3.0.1', Check: { CheckID: 'node-ok', Name: 'node', Status: 'critical', Output: 'disk full' } });
  passing = as<HealthEntry[]>(await consul.health.service({ service: 'api', passing: true }));
  t.same(passing, []);
  t.same((await getJson<HealthEntry[]>('/v1/health/service/api?passing=false')).body.length, 2, '?passing=false keeps everything');
  t.equal((await http('/v1/health/service/api?passing=maybe')).status, 400);
  const critical = as<Check[]>(await consul.health.state('critical'));
  t.ok(critical.some((c) => c.CheckID === 'node-ok' && c.Output === 'disk full'));
  t.ok(!critical.some((c) => c.Status !== 'critical'));
  const any = as<Check[]>(await consul.health.state('any'));
  t.ok(any.length >= critical.length + 2);
  t.same((await getJson<Check[]>('/v1/health/state/bogus')).body, [], 'an unknown state lists nothing');
  t.same(as<Check[]>(await consul.health.node('h2')).map((c) => c.CheckID), ['api2-alive']);
  t.same((await getJson<Check[]>('/v1/health/node/nobody')).body, []);
});

t.test('blocking: a write to service A does not wake a watcher of service B', async (t) => {
  await put('/v1/catalog/register', { Node: 'b1', Address: '10.4.0.1', Service: { Service: 'svc-a', Port: 1 } });
  await put('/v1/catalog/register', { Node: 'b2', Address: '10.4.0.2', Service: { Service: 'svc-b', Port: 2 } });
  const a = await getJson<HealthEntry[]>('/v1/health/service/svc-a');
  const b = await getJson<HealthEntry[]>('/v1/health/service/svc-b');
  const started = Date.now();
  const watchB = http(`/v1/health/service/svc-b?index=${b.index}&wait=1500ms`).then(async (res) => ({ index: Number(res.headers.get('x-consul-index')), ms: Date.now() - started }));
  const watchA = http(`/v1/catalog/service/svc-a?index=${a.index}&wait=10s`).then(async (res) => ({ index: Number(res.headers.get('x-consul-index')), ms: Date.now() - started, body: (await res.json()) as ServiceNode[] }));
  await server.waitForBlockedQueries(2);
  await put('/v1/catalog/register', { Node: 'b1', Address: '10.4.0.1', Service: { Service: 'svc-a', Port: 1, Tags: ['new'] } });
  const [resultA, resultB] = await Promise.all([watchA, watchB]);
  t.ok(resultA.index > a.index, 'A\'s watcher woke with a newer index');
  t.ok(resultA.ms < 1500, `A answered at once (${resultA.ms} ms)`);
  t.same(resultA.body[0]!.ServiceTags, ['new']);
  t.equal(resultB.index, b.index, 'B\'s index did not move');
  t.ok(resultB.ms >= 1400, `B slept until its wait ran out (${resultB.ms} ms)`);
  // node-consul's watch sees the change too.
  const watch = consul.watch({ method: consul.health.service, options: { service: 'svc-b', wait: '2s' } as never });
  const changes: number[] = [];
  const seen = new Promise<void>((resolve) => {
    watch.on('change', (data: HealthEntry[]) => {
      changes.push(data.length);
      if (changes.length === 2) resolve();
    });
  });
  await waitFor(() => changes.length === 1 && server.fsm.watches.size >= 1, { what: 'the watch to see svc-b and block' });
  await put('/v1/catalog/register', { Node: 'b3', Address: '10.4.0.3', Service: { Service: 'svc-b', Port: 2 } });
  await seen;
  watch.end();
  t.same(changes, [1, 2]);
});

t.test('agent services and checks on the server\'s node', async (t) => {
  await registerService(consul, {
    name: 'payments',
    id: 'payments-1',
    tags: ['v2'],
    port: 7000,
    meta: { team: 'core' },
    check: { ttl: '30s', notes: 'heartbeat' },
  });
  const services = as<Record<string, { ID: string; Service: string; Tags: string[]; Port: number; Weights: unknown; Datacenter: string; Meta: Record<string, string> }>>(await consul.agent.service.list());
  t.match(services['payments-1'], { ID: 'payments-1', Service: 'payments', Tags: ['v2'], Port: 7000, Datacenter: 'dc1', Meta: { team: 'core' } });
  t.same(services['payments-1']!.Weights, { Passing: 1, Warning: 1 });
  t.notOk(services['consul'], 'the consul service is not the agent\'s');
  const checks = as<Record<string, Check>>(await consul.agent.check.list());
  t.match(checks['service:payments-1'], { Node: 'cat-int', Name: "Service 'payments' check", Status: 'critical', ServiceID: 'payments-1', ServiceName: 'payments', Type: 'ttl', Notes: 'heartbeat' });
  t.notOk(checks['serfHealth'], 'serfHealth is the leader\'s, not the agent\'s');
  const inCatalog = as<ServiceNode[]>(await consul.catalog.service.nodes('payments'));
  t.match(inCatalog, [{ Node: 'cat-int', Address: '127.0.0.1', ServiceID: 'payments-1' }], 'the agent wrote it to the catalog through Raft');

  await consul.agent.check.pass({ id: 'service:payments-1', note: 'all good' });
  let health = as<HealthEntry[]>(await consul.health.service({ service: 'payments', passing: true }));
  t.equal(health.length, 1);
  t.equal(health[0]!.Checks.find((c) => c.CheckID === 'service:payments-1')!.Output, 'all good');
  await consul.agent.check.warn({ id: 'service:payments-1', note: 'slow' });
  t.equal(as<Record<string, Check>>(await consul.agent.check.list())['service:payments-1']!.Status, 'warning');
  await consul.agent.check.fail('service:payments-1');
  t.equal(as<Check[]>(await consul.health.checks('payments'))[0]!.Status, 'critical');
  t.equal((await put('/v1/agent/check/update/service:payments-1', { Status: 'passing', Output: 'back' })).status, 200);
  t.match(as<Check[]>(await consul.health.checks('payments'))[0], { Status: 'passing', Output: 'back' });
  const badUpdate = await put('/v1/agent/check/update/service:payments-1', { Status: 'fine' });
  t.equal(badUpdate.status, 400);
  t.equal(await badUpdate.text(), "Invalid check status: 'fine'");

  // A node-level check of the agent, with a non-TTL type: pass is refused as in Consul.
  await registerCheck(consul, { name: 'disk', id: 'disk', http: 'http://127.0.0.1:1/health', interval: '10s', status: 'passing' });
  const disk = as<Record<string, Check>>(await consul.agent.check.list())['disk'];
  t.match(disk, { CheckID: 'disk', Status: 'passing', ServiceID: '', Type: 'http' });
  const notTtl = await put('/v1/agent/check/pass/disk');
  t.equal(notTtl.status, 500);
  t.equal(await notTtl.text(), 'CheckID "disk" does not have associated TTL');
  const unknown = await put('/v1/agent/check/pass/nope');
  t.equal(unknown.status, 404);
  t.equal(await unknown.text(), 'Unknown check ID "nope". Ensure that the check ID is passed, not the check name.');
  await consul.agent.check.deregister('disk');
  t.notOk(as<Record<string, Check>>(await consul.agent.check.list())['disk']);
  t.notOk(as<Check[]>(await consul.health.node('cat-int')).some((c) => c.CheckID === 'disk'));

  // Maintenance mode is a critical _service_maintenance check.
  await consul.agent.service.maintenance({ id: 'payments-1', enable: true, reason: 'upgrade' });
  health = as<HealthEntry[]>(await consul.health.service('payments'));
  const maint = health[0]!.Checks.find((c) => c.CheckID === '_service_maintenance:payments-1');
  t.match(maint, { Status: 'critical', Notes: 'upgrade', Name: 'Service Maintenance Mode', ServiceID: 'payments-1' });
  t.same(as<HealthEntry[]>(await consul.health.service({ service: 'payments', passing: true })), []);
  await consul.agent.service.maintenance({ id: 'payments-1', enable: false });
  t.equal(as<HealthEntry[]>(await consul.health.service({ service: 'payments', passing: true })).length, 1);
  const maintMissing = await put('/v1/agent/service/maintenance/ghost?enable=true');
  t.equal(maintMissing.status, 404);
  t.equal(await maintMissing.text(), 'No service registered with ID "ghost"');
  t.equal(await (await put('/v1/agent/service/maintenance/payments-1')).text(), 'Missing value for enable');

  await consul.agent.service.deregister('payments-1');
  t.same(await consul.catalog.service.nodes('payments'), []);
  t.same(as<Record<string, unknown>>(await consul.agent.service.list()), {});
  const gone = await put('/v1/agent/service/deregister/payments-1');
  t.equal(gone.status, 404);
  t.equal(await gone.text(), 'Unknown service ID "payments-1". Ensure that the service ID is passed, not the service name.');
});

t.test('agent: multiple checks, replace-existing-checks, members, self', async (t) => {
  const res = await put('/v1/agent/service/register', {
    Name: 'multi',
    Port: 1,
    Checks: [{ TTL: '30s', Status: 'passing' }, { TTL: '30s' }],
  });
  t.equal(res.status, 200);
  let ids = Object.keys(as<Record<string, Check>>(await consul.agent.check.list())).filter((id) => id.startsWith('service:multi'));
  t.same(ids.sort(), ['service:multi:1', 'service:multi:2'], 'Consul numbers the checks of a service');
  await put('/v1/agent/service/register?replace-existing-checks', { Name: 'multi', Port: 1, Check: { CheckID: 'only', TTL: '30s' } });
  ids = Object.keys(as<Record<string, Check>>(await consul.agent.check.list())).filter((id) => id.startsWith('service:multi') || id === 'only');
  t.same(ids, ['only']);
  t.same(as<Check[]>(await consul.health.checks('multi')).map((c) => c.CheckID), ['only']);
  await consul.agent.service.deregister('multi');

  const members = as<{ Name: string; Addr: string; Status: number; Tags: Record<string, string> }[]>(await consul.agent.members());
  t.equal(members.length, 1);
  t.match(members[0], { Name: 'cat-int', Addr: '127.0.0.1', Status: 1, Tags: { role: 'consul', dc: 'dc1' } });
  const self = as<{ Config: { NodeName: string; Datacenter: string } }>(await consul.agent.self());
  t.equal(self.Config.NodeName, 'cat-int');
});

t.test('bad input: Consul texts, 4xx, no state change', async (t) => {
  const cases: [string, string, unknown, number, string | RegExp][] = [
    ['PUT', '/v1/catalog/register', 'not json', 400, /^Request decode failed: /],
    ['PUT', '/v1/catalog/register', '', 400, 'Request decode failed: EOF'],
    ['PUT', '/v1/catalog/register', { Address: '1.2.3.4' }, 400, 'Must provide node'],
    ['PUT', '/v1/catalog/register', { Node: 'x' }, 400, 'Must provide address if SkipNodeUpdate is not set'],
    ['PUT', '/v1/catalog/register', { Node: 'x', Address: '1.1.1.1', Check: { CheckID: 'c', ServiceID: 'ghost' } }, 400, "Unknown service ID 'ghost' for check ID 'c'"],
    ['PUT', '/v1/catalog/register', { Node: 'x', Address: '1.1.1.1', Check: { CheckID: 'c', Status: 'fine' } }, 400, 'Bad check status'],
    ['PUT', '/v1/catalog/register', { Node: 'x', Address: '1.1.1.1', Service: { Service: 's', Address: '0.0.0.0' } }, 400, 'Invalid service address'],
    ['PUT', '/v1/catalog/register', { Node: 'x', Address: '1.1.1.1', Datacenter: 'dc9' }, 500, 'No path to datacenter'],
    ['PUT', '/v1/catalog/register', { Node: 'x', Address: '1.1.1.1', Service: { Service: 's', Port: 'eighty' } }, 400, 'Request decode failed: Service.Port must be an integer'],
    ['PUT', '/v1/catalog/deregister', {}, 400, 'Must provide node'],
    ['PUT', '/v1/agent/service/register', { Port: 1 }, 400, 'Missing service name'],
    ['PUT', '/v1/agent/service/register', { Name: 's', Weights: { Passing: 0, Warning: 1 } }, 400, 'Invalid Weights: Passing must be greater than 0'],
    ['PUT', '/v1/agent/service/register', { Name: 's', Meta: { 'bad key!': 'v' } }, 400, 'Invalid Service Meta: Key contains invalid characters'],
    ['PUT', '/v1/agent/service/register', { Name: 's', Check: { HTTP: 'http://x' } }, 400, 'Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks'],
    ['PUT', '/v1/agent/service/register', { Name: 's', Check: { Notes: 'n' } }, 400, 'Invalid check: TTL must be > 0 for TTL checks'],
    ['PUT', '/v1/agent/service/register', { Name: 's', Check: { TTL: '10s', Status: 'ok' } }, 400, "Status for checks must 'passing', 'warning', 'critical'"],
    ['PUT', '/v1/agent/check/register', { TTL: '10s' }, 400, 'Missing check name'],
    ['PUT', '/v1/agent/check/register', { Name: 'c', TTL: '10s', ServiceID: 'ghost' }, 404, 'ServiceID "ghost" does not exist'],
    ['PUT', '/v1/agent/check/register', { Name: 'c', TTL: 'soon' }, 400, /^Request decode failed: TTL: time: invalid duration/],
    ['GET', '/v1/catalog/nodes?dc=elsewhere', undefined, 500, 'No path to datacenter'],
    ['GET', '/v1/catalog/service/web?index=abc', undefined, 400, 'Invalid index'],
    ['POST', '/v1/catalog/register', {}, 405, 'method POST not allowed'],
  ];
  const before = (await getJson<unknown>('/v1/catalog/nodes')).index;
  for (const [method, path, body, status, text] of cases) {
    const res = await http(path, { method, ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}) });
    t.equal(res.status, status, `${method} ${path} ${JSON.stringify(body)} → ${status}`);
    const got = await res.text();
    if (typeof text === 'string') t.equal(got, text);
    else t.match(got, text);
  }
  t.equal((await getJson<unknown>('/v1/catalog/nodes')).index, before, 'nothing was written');
  t.notOk((await getJson<{ Node: string }[]>('/v1/catalog/nodes')).body.some((n) => n.Node === 'x'));
});

t.test('service dependencies: graph, cycles, impact', async (t) => {
  const reg = (name: string, deps: string[]) => put('/v1/catalog/register', { Node: 'dep-node', Address: '10.9.0.1', Service: { Service: name, Dependencies: deps } });
  await reg('frontend', ['api']);
  await reg('api', ['auth', 'db']);
  await reg('auth', ['users']);
  await reg('users', ['auth']);
  await reg('db', []);
  await registerService(consul, { name: 'billing', id: 'billing-1', check: { ttl: '30s' } });
  await put('/v1/agent/service/register', { Name: 'reports', Dependencies: ['billing', 'cache'] });
  const api = await getJson<{ Dependencies: string[]; TransitiveDependencies: { Service: string; Distance: number }[]; Dependents: string[]; Depth: number; InCycle: boolean }>('/v1/konsul/services/api/dependencies');
  t.same(api.body.Dependencies, ['auth', 'db']);
  t.same(api.body.TransitiveDependencies, [{ Service: 'auth', Distance: 1 }, { Service: 'db', Distance: 1 }, { Service: 'users', Distance: 2 }]);
  t.same(api.body.Dependents, ['frontend']);
  t.equal(api.body.InCycle, false);
  t.equal(api.body.Depth, 1, 'one above the auth/users cycle, which shares depth 0');
  t.ok(api.index >= 1);
  const impact = await getJson<{ TransitiveDependents: { Service: string; Distance: number }[] }>('/v1/konsul/services/users/impact');
  t.same(impact.body.TransitiveDependents, [{ Service: 'auth', Distance: 1 }, { Service: 'api', Distance: 2 }, { Service: 'frontend', Distance: 3 }], 'what depends on users');
  const graph = await getJson<{ Cycles: string[][]; Edges: { From: string; To: string }[]; MaxDepth: number; Services: { Name: string; Registered: boolean; InCycle: boolean }[] }>('/v1/konsul/services/dependency-graph');
  t.same(graph.body.Cycles, [['auth', 'users', 'auth']]);
  t.equal(graph.body.MaxDepth, 2);
  t.ok(graph.body.Edges.some((e) => e.From === 'frontend' && e.To === 'api'));
  t.match(graph.body.Services.find((s) => s.Name === 'cache'), { Registered: false });
  t.ok(graph.body.Services.find((s) => s.Name === 'users')?.InCycle);
  const reports = await getJson<{ Missing: string[] }>('/v1/konsul/services/reports/dependencies');
  t.same(reports.body.Missing, ['cache'], 'agent-registered services carry their dependencies');
  t.equal((await http('/v1/konsul/services/nowhere/dependencies')).status, 404);
  const services = as<Record<string, { Dependencies?: string[] }>>(await consul.agent.service.list());
  t.same(services['reports']?.Dependencies, ['billing', 'cache']);
  await consul.agent.service.deregister('billing-1');
  await consul.agent.service.deregister('reports');
});

t.test('TTL checks expire to critical on their own', async (t) => {
  await registerService(consul, { name: 'ttl-svc', id: 'ttl-1', check: { ttl: '1s', status: 'passing' } });
  t.equal(as<Check[]>(await consul.health.checks('ttl-svc'))[0]!.Status, 'passing');
  await consul.agent.check.pass({ id: 'service:ttl-1', note: 'tick' });
  const passing = await getJson<HealthEntry[]>('/v1/health/service/ttl-svc?passing');
  t.equal(passing.body.length, 1);
  // Block until the expiry changes the service's health.
  const res = await http(`/v1/health/service/ttl-svc?index=${passing.index}&wait=5s`);
  const after = (await res.json()) as HealthEntry[];
  const check = after[0]!.Checks.find((c) => c.CheckID === 'service:ttl-1')!;
  t.equal(check.Status, 'critical');
  t.equal(check.Output, 'TTL expired (last output before timeout follows): tick');
  t.same((await getJson<HealthEntry[]>('/v1/health/service/ttl-svc?passing')).body, []);
  await consul.agent.service.deregister('ttl-1');
});

t.test('DeregisterCriticalServiceAfter removes the service; agent state survives restarts', async (t) => {
  const dataDir = tempDataDir();
  const config = { nodeName: 'agent-int', dataDir, checkReapIntervalMs: 100, checkDeregisterIntervalMinMs: 100 };
  let second = await startInProcessServer({ config });
  t.teardown(async () => {
    await second.stop();
    removeDir(dataDir);
  });
  const client = () => new Consul({ host: '127.0.0.1', port: Number(new URL(second.url).port) });
  await registerService(client(), { name: 'doomed', id: 'doomed-1', check: { ttl: '500ms', deregistercriticalserviceafter: '300ms' } });
  await registerService(client(), { name: 'keeper', id: 'keeper-1', tags: ['x'], port: 1234, check: { ttl: '1h', status: 'passing' } });
  t.equal(as<ServiceNode[]>(await client().catalog.service.nodes('doomed')).length, 1);
  await waitFor(async () => as<ServiceNode[]>(await client().catalog.service.nodes('doomed')).length === 0, { what: 'doomed to be removed', timeoutMs: 5000, intervalMs: 100 }).catch(() => undefined);
  t.same(await client().catalog.service.nodes('doomed'), [], 'removed after being critical past its limit');
  t.notOk(as<Record<string, unknown>>(await client().agent.service.list())['doomed-1']);

  // Restart: the definitions come back from agent-local.json. (That a server process exits 0 on
  // SIGTERM is test/cluster/harness.int.test.ts's.)
  await second.stop();
  second = await startInProcessServer({ config });
  t.match(as<Record<string, unknown>>(await client().agent.service.list())['keeper-1'], { Service: 'keeper', Tags: ['x'], Port: 1234 });
  t.equal(as<Record<string, Check>>(await client().agent.check.list())['service:keeper-1']!.Status, 'passing', 'the check status persisted');

  // Restart with the Raft state gone: the agent registers its services again.
  await second.stop();
  rmSync(join(dataDir, 'raft'), { recursive: true, force: true });
  t.ok(existsSync(join(dataDir, 'agent-local.json')));
  second = await startInProcessServer({ config });
  const nodes = await waitFor(
    async () => {
      const found = as<ServiceNode[]>(await client().catalog.service.nodes('keeper'));
      return found.length > 0 ? found : undefined;
    },
    { what: 'keeper re-synced', timeoutMs: 5000, intervalMs: 100 },
  ).catch(() => [] as ServiceNode[]);
  t.match(nodes, [{ Node: 'agent-int', ServiceID: 'keeper-1', ServicePort: 1234 }], 're-synced to the fresh catalog');
  t.equal(as<Check[]>(await client().health.checks('keeper'))[0]?.Status, 'passing');
});

t.test('mutated registrations: every answer is 2xx or 4xx, and the catalog stays readable', async (t) => {
  let seed = 11;
  const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const odd = () => pick<unknown>(['', 'x', '10s', 'bogus', '0.0.0.0', '\ud800', 'a'.repeat(600), -1, 70000, 1.5, true, null, [], {}, ['a', 1], { a: 1 }, { lan: { Address: 'x', Port: 'y' } }]);
  const templates: Record<string, () => Record<string, unknown>> = {
    '/v1/catalog/register': () => ({
      Node: pick(['fz1', 'FZ1', 'fz2']),
      Address: '10.8.0.1',
      NodeMeta: { k: 'v' },
      Service: { ID: pick(['s1', 's2']), Service: 'fuzzed', Tags: ['a'], Port: 80, Meta: { m: 'v' }, Weights: { Passing: 2, Warning: 1 }, Dependencies: ['db'] },
      Checks: [{ CheckID: 'c1', Name: 'c', Status: 'passing', ServiceID: pick(['s1', 's2', '']), Definition: { HTTP: 'http://x', Interval: '10s' } }],
    }),
    '/v1/catalog/deregister': () => ({ Node: pick(['fz1', 'fz2']), ServiceID: pick(['s1', undefined]), CheckID: pick(['c1', undefined]) }),
    '/v1/agent/service/register': () => ({ Name: 'fuzz-agent', ID: pick(['fa1', 'fa2']), Tags: ['a'], Port: 80, Check: { TTL: '10s', Status: 'passing' }, Checks: [{ HTTP: 'http://x', Interval: '5s' }] }),
    '/v1/agent/check/register': () => ({ Name: 'c', ID: pick(['fc1', 'fc2']), TTL: '5s', ServiceID: pick(['fa1', '']), DeregisterCriticalServiceAfter: '1m' }),
  };
  const mutate = (o: Record<string, unknown>, depth = 0): Record<string, unknown> => {
    for (const key of Object.keys(o)) {
      const r = random();
      if (r < 0.15) o[key] = odd();
      else if (r < 0.2) delete o[key];
      else if (typeof o[key] === 'object' && o[key] !== null && depth < 4) mutate(o[key] as Record<string, unknown>, depth + 1);
    }
    return o;
  };
  const statuses = new Map<number, number>();
  for (let i = 0; i < 300; i++) {
    const path = pick(Object.keys(templates));
    const body = JSON.stringify(mutate(templates[path]!()));
    const res = await put(path, body);
    statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    if (res.status >= 500) t.fail(`${path} ${body.slice(0, 200)} → ${res.status} ${await res.text()}`);
    else await res.arrayBuffer();
  }
  t.ok((statuses.get(200) ?? 0) > 30 && (statuses.get(400) ?? 0) > 30, `a mix of accepted and refused requests: ${JSON.stringify([...statuses])}`);
  for (const path of ['/v1/catalog/nodes', '/v1/catalog/services', '/v1/health/state/any', '/v1/health/service/fuzzed', '/v1/agent/services', '/v1/agent/checks', '/v1/konsul/services/dependency-graph']) {
    t.equal((await http(path)).status, 200, path);
  }
});
