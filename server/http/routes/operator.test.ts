// /v1/operator against an in-memory ClusterService: Consul's exact JSON shapes, statuses and error
// texts, and request validation. (The real cluster service is tested end to end with processes.)
import type { FastifyInstance } from 'fastify';
import t, { type Test } from 'tap';
import {
  ClusterError,
  type AutopilotConfig,
  type AutopilotHealth,
  type ClusterService,
  type ClusterStats,
  type ServerInfo,
} from '../../cluster/cluster-service.ts';
import { createHttpApp } from '../../../http/app.ts';
import type { ServerContext } from '../context.ts';
import { goTimeToSecond, operatorRoutes, readableDuration } from './operator.ts';

const SERVERS: ServerInfo[] = [
  { id: 'n1', rpcAddr: '10.0.0.1:8300', httpAddr: '10.0.0.1:8500', voter: true, leader: true },
  { id: 'n2', rpcAddr: '10.0.0.2:8300', httpAddr: '10.0.0.2:8500', voter: true, leader: false },
  { id: 'n3', rpcAddr: '10.0.0.3:8300', httpAddr: '10.0.0.3:8500', voter: false, leader: false },
];

/** Just enough of a cluster for the routes: canned answers, recorded calls, an injectable failure. */
class FakeCluster implements ClusterService {
  leader = 'n1';
  servers_ = SERVERS;
  config: AutopilotConfig = { cleanupDeadServers: true, deadServerAfterMs: 60_000, lastContactThresholdMs: 200, minQuorum: 0 };
  health: AutopilotHealth = {
    healthy: true,
    failureTolerance: 0,
    servers: [
      { id: 'n1', name: 'n1', rpcAddr: '10.0.0.1:8300', leader: true, voter: true, healthy: true, lastContactMs: 0, lastTerm: 4, lastIndex: 120, stableSince: '2026-03-06T22:18:26.400Z' },
      { id: 'n2', name: 'n2', rpcAddr: '10.0.0.2:8300', leader: false, voter: true, healthy: true, lastContactMs: 4.123, lastTerm: 4, lastIndex: 119, stableSince: '2026-03-06T22:18:26.600Z' },
      { id: 'n3', name: 'n3', rpcAddr: '10.0.0.3:8300', leader: false, voter: false, healthy: true, lastContactMs: 12, lastTerm: 4, lastIndex: 118, stableSince: '2026-03-06T22:19:00Z' },
    ],
  };
  calls: string[] = [];
  configUpdates: Partial<AutopilotConfig>[] = [];
  failWith: ClusterError | undefined;

  self(): ServerInfo {
    return SERVERS[0]!;
  }
  leaderId(): string {
    return this.leader;
  }
  servers(): readonly ServerInfo[] {
    return this.servers_;
  }
  rpcAddressOf(id: string): string {
    return this.servers_.find((s) => s.id === id)?.rpcAddr ?? '';
  }
  configurationIndex(): number {
    return 42;
  }
  stats(): ClusterStats {
    throw new Error('not used by /v1/operator');
  }
  autopilotHealth(): AutopilotHealth {
    return this.health;
  }
  autopilotConfig(): AutopilotConfig {
    return this.config;
  }
  setAutopilotConfig(config: Partial<AutopilotConfig>): void {
    this.fail();
    this.configUpdates.push(config);
  }
  async join(): Promise<ServerInfo> {
    throw new Error('not used by /v1/operator');
  }
  async remove(target: { id?: string; address?: string }): Promise<void> {
    this.calls.push(`remove ${JSON.stringify(target)}`);
    this.fail();
    const known = this.servers_.some((s) => (target.id !== undefined ? s.id === target.id : s.rpcAddr === target.address));
    if (!known) throw new ClusterError('notFound', `no server ${target.id ?? target.address}`);
  }
  async transferLeader(id?: string): Promise<string> {
    this.calls.push(`transferLeader ${id ?? '(any)'}`);
    this.fail();
    return id ?? 'n2';
  }
  async snapshotNow(): Promise<{ index: number; term: number }> {
    throw new Error('not used by /v1/operator');
  }
  private fail(): void {
    const err = this.failWith;
    this.failWith = undefined;
    if (err) throw err;
  }
}

const ctx = { config: { datacenter: 'dc1' }, version: '1.18.0' } as unknown as ServerContext;

/** The app as the platform builds it (http/app.ts: its error and not-found handling, the shared query schemas), with only the operator routes. */
async function appFor(t: Test, cluster: ClusterService): Promise<FastifyInstance> {
  const app = createHttpApp({ shutdownSignal: new AbortController().signal });
  await app.register(operatorRoutes, { ctx, cluster });
  t.teardown(() => app.close());
  return app;
}

t.test('GET /v1/operator/raft/configuration: Consul\'s RaftConfigurationResponse', async (t) => {
  const cluster = new FakeCluster();
  const app = await appFor(t, cluster);
  const res = await app.inject({ method: 'GET', url: '/v1/operator/raft/configuration' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^application\/json/);
  t.equal(res.body, JSON.stringify({
    Servers: [
      { ID: 'n1', Node: 'n1', Address: '10.0.0.1:8300', Leader: true, ProtocolVersion: '3', Voter: true, LastIndex: 120 },
      { ID: 'n2', Node: 'n2', Address: '10.0.0.2:8300', Leader: false, ProtocolVersion: '3', Voter: true, LastIndex: 119 },
      { ID: 'n3', Node: 'n3', Address: '10.0.0.3:8300', Leader: false, ProtocolVersion: '3', Voter: false, LastIndex: 118 },
    ],
    Index: 42,
  }), 'fields in Consul\'s order');

  cluster.leader = '';
  t.same(await call(app, 'GET', '/v1/operator/raft/configuration'), { status: 500, body: 'No cluster leader' });
  t.equal((await call(app, 'GET', '/v1/operator/raft/configuration?stale')).status, 200, '?stale reads without a leader');
  t.equal((await call(app, 'GET', '/v1/operator/raft/configuration?stale=true&dc=dc1&pretty')).status, 200, 'Consul clients\' parameters are accepted');
});

t.test('read endpoints validate Consul\'s query parameters with its texts', async (t) => {
  const app = await appFor(t, new FakeCluster());
  for (const path of ['/v1/operator/raft/configuration', '/v1/operator/autopilot/health', '/v1/operator/autopilot/configuration']) {
    t.same(await call(app, 'GET', `${path}?stale&consistent`), { status: 400, body: 'Cannot specify ?stale with ?consistent, conflicting semantics.' }, path);
    t.same(await call(app, 'GET', `${path}?index=abc`), { status: 400, body: 'Invalid index' }, path);
    t.same(await call(app, 'GET', `${path}?wait=forever`), { status: 400, body: 'Invalid wait time' }, path);
    t.same(await call(app, 'GET', `${path}?dc=elsewhere`), { status: 500, body: 'No path to datacenter' }, path);
  }
});

t.test('DELETE /v1/operator/raft/peer: Consul\'s statuses and texts', async (t) => {
  const cluster = new FakeCluster();
  const app = await appFor(t, cluster);
  t.same(await call(app, 'DELETE', '/v1/operator/raft/peer'),
    { status: 400, body: 'Must specify either ?id with the server\'s ID or ?address with IP:port of peer to remove' });
  t.same(await call(app, 'DELETE', '/v1/operator/raft/peer?id=n3&address=10.0.0.3:8300'), { status: 400, body: 'Must specify only one of ?id or ?address' });

  const byId = await app.inject({ method: 'DELETE', url: '/v1/operator/raft/peer?id=n3' });
  t.equal(byId.statusCode, 200);
  t.equal(byId.body, '', 'Consul answers an empty body');
  t.same(await call(app, 'DELETE', '/v1/operator/raft/peer?address=10.0.0.2:8300'), { status: 200, body: '' });
  t.same(cluster.calls, ['remove {"id":"n3"}', 'remove {"address":"10.0.0.2:8300"}']);

  t.same(await call(app, 'DELETE', '/v1/operator/raft/peer?id=nope'), { status: 500, body: 'id "nope" was not found in the Raft configuration' });
  t.same(await call(app, 'DELETE', '/v1/operator/raft/peer?address=10.9.9.9:8300'),
    { status: 500, body: 'address "10.9.9.9:8300" was not found in the Raft configuration' });
  t.same(await call(app, 'DELETE', '/v1/operator/raft/peer?id='), { status: 500, body: 'id "" was not found in the Raft configuration' });
  cluster.failWith = new ClusterError('noLeader', 'no leader to forward to');
  t.same(await call(app, 'DELETE', '/v1/operator/raft/peer?id=n3'), { status: 500, body: 'No cluster leader' });
  cluster.failWith = new ClusterError('conflict', 'a configuration change is already in progress');
  t.same(await call(app, 'DELETE', '/v1/operator/raft/peer?id=n3'), { status: 500, body: 'a configuration change is already in progress' });
  t.same(await call(app, 'DELETE', '/v1/operator/raft/peer?id=n3&dc=dc2'), { status: 500, body: 'No path to datacenter' });
});

t.test('POST /v1/operator/raft/transfer-leader: {"Success":true}, errors as 500s', async (t) => {
  const cluster = new FakeCluster();
  const app = await appFor(t, cluster);
  t.same(await call(app, 'POST', '/v1/operator/raft/transfer-leader'), { status: 200, body: '{"Success":true}' });
  t.same(await call(app, 'POST', '/v1/operator/raft/transfer-leader?id=n2'), { status: 200, body: '{"Success":true}' });
  t.same(await call(app, 'POST', '/v1/operator/raft/transfer-leader?id='), { status: 200, body: '{"Success":true}' });
  t.same(cluster.calls, ['transferLeader (any)', 'transferLeader n2', 'transferLeader (any)'], 'an empty ?id lets Raft choose');
  cluster.failWith = new ClusterError('timeout', 'leadership transfer to n3 timed out');
  t.same(await call(app, 'POST', '/v1/operator/raft/transfer-leader?id=n3'), { status: 500, body: 'leadership transfer to n3 timed out' });
  cluster.failWith = new ClusterError('badRequest', 'n3 is not a voter');
  t.same(await call(app, 'POST', '/v1/operator/raft/transfer-leader?id=n3'), { status: 400, body: 'n3 is not a voter' });
  t.equal((await call(app, 'GET', '/v1/operator/raft/transfer-leader')).status, 404, 'POST only, as in Consul');
});

t.test('GET /v1/operator/autopilot/health: Consul\'s OperatorHealthReply, 429 when unhealthy', async (t) => {
  const cluster = new FakeCluster();
  const app = await appFor(t, cluster);
  const healthy = await app.inject({ method: 'GET', url: '/v1/operator/autopilot/health' });
  t.equal(healthy.statusCode, 200);
  t.match(healthy.headers['content-type'], /^application\/json/);
  t.equal(healthy.body, JSON.stringify({
    Healthy: true,
    FailureTolerance: 0,
    Servers: [
      { ID: 'n1', Name: 'n1', Address: '10.0.0.1:8300', SerfStatus: 'alive', Version: '1.18.0', Leader: true, LastContact: '0s', LastTerm: 4, LastIndex: 120, Healthy: true, Voter: true, StableSince: '2026-03-06T22:18:26Z' },
      { ID: 'n2', Name: 'n2', Address: '10.0.0.2:8300', SerfStatus: 'alive', Version: '', Leader: false, LastContact: '4.123ms', LastTerm: 4, LastIndex: 119, Healthy: true, Voter: true, StableSince: '2026-03-06T22:18:27Z' },
      { ID: 'n3', Name: 'n3', Address: '10.0.0.3:8300', SerfStatus: 'alive', Version: '', Leader: false, LastContact: '12ms', LastTerm: 4, LastIndex: 118, Healthy: true, Voter: false, StableSince: '2026-03-06T22:19:00Z' },
    ],
  }));

  cluster.health = {
    healthy: false,
    failureTolerance: 0,
    servers: [
      cluster.health.servers[0]!,
      { ...cluster.health.servers[1]!, healthy: false, lastContactMs: -1 },
      { ...cluster.health.servers[2]!, healthy: false, lastContactMs: 1500 },
    ],
  };
  const unhealthy = await app.inject({ method: 'GET', url: '/v1/operator/autopilot/health' });
  t.equal(unhealthy.statusCode, 429, 'Consul answers 429 when anything is unhealthy');
  const body = unhealthy.json() as { Healthy: boolean; Servers: { SerfStatus: string; LastContact: string; Healthy: boolean }[] };
  t.equal(body.Healthy, false);
  t.same(body.Servers.map((s) => [s.SerfStatus, s.LastContact, s.Healthy]), [['alive', '0s', true], ['failed', '-1ns', false], ['failed', '1.5s', false]]);

  cluster.leader = '';
  t.same(await call(app, 'GET', '/v1/operator/autopilot/health?stale'), { status: 500, body: 'No cluster leader' }, 'always asks the leader');
});

t.test('GET /v1/operator/autopilot/configuration: Consul\'s AutopilotConfiguration', async (t) => {
  const cluster = new FakeCluster();
  cluster.config = { cleanupDeadServers: false, deadServerAfterMs: 60_000, lastContactThresholdMs: 350, minQuorum: 3 };
  const app = await appFor(t, cluster);
  t.same(await call(app, 'GET', '/v1/operator/autopilot/configuration'), {
    status: 200,
    body: JSON.stringify({
      CleanupDeadServers: false,
      LastContactThreshold: '350ms',
      MaxTrailingLogs: 250,
      MinQuorum: 3,
      ServerStabilizationTime: '10s',
      RedundancyZoneTag: '',
      DisableUpgradeMigration: false,
      UpgradeVersionTag: '',
      CreateIndex: 0,
      ModifyIndex: 0,
    }),
  });
  cluster.leader = '';
  t.same(await call(app, 'GET', '/v1/operator/autopilot/configuration'), { status: 500, body: 'No cluster leader' });
  t.equal((await call(app, 'GET', '/v1/operator/autopilot/configuration?stale')).status, 200);
});

t.test('PUT /v1/operator/autopilot/configuration: Consul\'s body, defaults and ?cas', async (t) => {
  const cluster = new FakeCluster();
  const app = await appFor(t, cluster);
  // What `consul operator autopilot set-config` sends: the configuration it read, modified.
  const full = {
    CleanupDeadServers: false, LastContactThreshold: '500ms', MaxTrailingLogs: 250, MinQuorum: 3, ServerStabilizationTime: '10s',
    RedundancyZoneTag: '', DisableUpgradeMigration: false, UpgradeVersionTag: '', CreateIndex: 0, ModifyIndex: 0,
  };
  t.same(await call(app, 'PUT', '/v1/operator/autopilot/configuration', JSON.stringify(full)), { status: 200, body: 'true' });
  t.same(await call(app, 'PUT', '/v1/operator/autopilot/configuration?cas=0', JSON.stringify(full), 'application/json'), { status: 200, body: 'true' });
  t.same(await call(app, 'PUT', '/v1/operator/autopilot/configuration?cas=7', JSON.stringify(full)), { status: 200, body: 'false' }, 'a stale ModifyIndex');
  t.same(cluster.configUpdates, [
    { cleanupDeadServers: false, lastContactThresholdMs: 500, minQuorum: 3 },
    { cleanupDeadServers: false, lastContactThresholdMs: 500, minQuorum: 3 },
  ], 'a failed CAS changes nothing');

  cluster.configUpdates = [];
  t.same(await call(app, 'PUT', '/v1/operator/autopilot/configuration', '{"MinQuorum":5}'), { status: 200, body: 'true' });
  t.same(await call(app, 'PUT', '/v1/operator/autopilot/configuration', '{"LastContactThreshold":1500000000,"ServerStabilizationTime":null}'), { status: 200, body: 'true' });
  t.same(await call(app, 'PUT', '/v1/operator/autopilot/configuration', '{"LastContactThreshold":"1m30s"}'), { status: 200, body: 'true' });
  t.same(cluster.configUpdates, [
    { cleanupDeadServers: true, lastContactThresholdMs: 200, minQuorum: 5 },
    { cleanupDeadServers: true, lastContactThresholdMs: 1500, minQuorum: 0 },
    { cleanupDeadServers: true, lastContactThresholdMs: 90_000, minQuorum: 0 },
  ], 'fields left out take Consul\'s defaults; a bare number is nanoseconds');
});

t.test('PUT /v1/operator/autopilot/configuration: bad bodies are 400s with a message', async (t) => {
  const cluster = new FakeCluster();
  const app = await appFor(t, cluster);
  const put = (body: string, query = '') => call(app, 'PUT', `/v1/operator/autopilot/configuration${query}`, body);
  t.same(await put('{"CleanupDeadServers":true,"Bogus":1}'), { status: 400, body: 'Error parsing autopilot config: json: unknown field "Bogus"' });
  t.same(await put('{"__proto__":{"x":1}}'), { status: 400, body: 'Error parsing autopilot config: json: unknown field "__proto__"' });
  t.same(await put('{"LastContactThreshold":true}'),
    { status: 400, body: 'Error parsing autopilot config: LastContactThreshold must be a duration such as "200ms" or a number of nanoseconds' });
  t.same(await put('{"LastContactThreshold":"fast"}'), { status: 400, body: 'Error parsing autopilot config: time: invalid duration "fast"' });
  t.same(await put('{"ServerStabilizationTime":"-1s"}'), { status: 400, body: 'Error parsing autopilot config: time: invalid duration "-1s"' });
  t.same(await put('{"LastContactThreshold":-5}'), { status: 400, body: 'Error parsing autopilot config: LastContactThreshold must not be negative' });
  t.same(await put('{"MinQuorum":-1}'), { status: 400, body: 'body/MinQuorum must be >= 0' });
  t.same(await put('{"MinQuorum":1.5}'), { status: 400, body: 'body/MinQuorum must be integer' });
  t.same(await put('{"CleanupDeadServers":"maybe"}'), { status: 400, body: 'body/CleanupDeadServers must be boolean' });
  t.same(await put('[1,2]'), { status: 400, body: 'body must be object' });
  t.same(await put(''), { status: 400, body: 'Error parsing autopilot config: EOF' });
  t.match(await put('{"MinQuorum":'), { status: 400, body: /^Error parsing autopilot config: .*JSON/ });
  t.match(await call(app, 'PUT', '/v1/operator/autopilot/configuration', 'MinQuorum=1', 'application/x-www-form-urlencoded'),
    { status: 400, body: /^Error parsing autopilot config: / }, 'any Content-Type is read as JSON');
  t.same(await put('{}', '?cas=x'), { status: 400, body: 'Error parsing cas value: strconv.ParseUint: parsing "x": invalid syntax' });
  t.same(cluster.configUpdates, [], 'nothing was applied');

  cluster.failWith = new ClusterError('badRequest', 'MinQuorum must be at most the number of voters (3)');
  t.same(await put('{"MinQuorum":9}'), { status: 400, body: 'MinQuorum must be at most the number of voters (3)' });
});

t.test('readableDuration prints Go\'s time.Duration.String(), and -1 (never) as -1ns', async (t) => {
  const cases: [number, string][] = [
    [0, '0s'], [0.0005, '500ns'], [0.85, '850µs'], [0.0015, '1.5µs'], [4.123, '4.123ms'], [200, '200ms'], [999.9999, '999.9999ms'],
    [1000, '1s'], [1500, '1.5s'], [10_000, '10s'], [60_000, '1m0s'], [90_000, '1m30s'], [3_600_000, '1h0m0s'], [3_723_004, '1h2m3.004s'],
    [-1, '-1ns'], [-250, '-250ms'],
  ];
  for (const [ms, text] of cases) t.equal(readableDuration(ms), text, `${ms} ms`);
});

t.test('goTimeToSecond rounds to the second in UTC, as Consul sends StableSince', async (t) => {
  t.equal(goTimeToSecond('2026-03-06T22:18:26.499Z'), '2026-03-06T22:18:26Z');
  t.equal(goTimeToSecond('2026-03-06T22:18:26.500Z'), '2026-03-06T22:18:27Z');
  t.equal(goTimeToSecond('2026-03-06T23:18:26+01:00'), '2026-03-06T22:18:26Z');
  t.equal(goTimeToSecond('not a time'), '0001-01-01T00:00:00Z', 'Go\'s zero time');
});

async function call(app: FastifyInstance, method: 'GET' | 'PUT' | 'POST' | 'DELETE', url: string, payload?: string, contentType?: string) {
  const res = await app.inject({ method, url, ...(payload !== undefined ? { payload } : {}), ...(contentType ? { headers: { 'content-type': contentType } } : {}) });
  return { status: res.statusCode, body: res.body };
}
