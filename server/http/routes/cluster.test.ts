// /v1/cluster against an in-memory ClusterService: exact JSON shapes, statuses, body validation and
// the ClusterError statuses. (The real cluster service is tested end to end with processes.)
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
import { clusterRoutes } from './cluster.ts';

const N1: ServerInfo = { id: 'n1', rpcAddr: '10.0.0.1:8300', httpAddr: '10.0.0.1:8500', voter: true, leader: true };
const N2: ServerInfo = { id: 'n2', rpcAddr: '10.0.0.2:8300', httpAddr: '10.0.0.2:8500', voter: true, leader: false };
const N3: ServerInfo = { id: 'n3', rpcAddr: '10.0.0.3:8300', httpAddr: '', voter: false, leader: false };

const STATS: ClusterStats = {
  id: 'n1',
  role: 'leader',
  leaderId: 'n1',
  term: 4,
  commitIndex: 120,
  appliedIndex: 119,
  lastLogIndex: 121,
  lastSnapshotIndex: 100,
  lastContactMs: 0,
  configurationIndex: 42,
  peers: [
    { id: 'n1', rpcAddr: '10.0.0.1:8300', voter: true, leader: true, matchIndex: 121, replicationLag: 0, lastContactMs: 0, replicationState: 'replicate', healthy: true },
    { id: 'n2', rpcAddr: '10.0.0.2:8300', voter: true, leader: false, matchIndex: 118, replicationLag: 3, lastContactMs: 12.5, replicationState: 'replicate', healthy: true },
    { id: 'n3', rpcAddr: '10.0.0.3:8300', voter: false, leader: false, matchIndex: -1, replicationLag: -1, lastContactMs: -1, replicationState: 'probe', healthy: false },
  ],
};

const HEALTH: AutopilotHealth = {
  healthy: false,
  failureTolerance: 0,
  servers: [N1, N2, N3].map((s, i) => ({
    id: s.id, name: s.id, rpcAddr: s.rpcAddr, leader: s.leader, voter: s.voter, healthy: i < 2,
    lastContactMs: 0, lastTerm: 4, lastIndex: 120, stableSince: '2026-03-06T22:18:26Z',
  })),
};

/** Just enough of a cluster for the routes: canned answers, recorded calls, an injectable failure. */
class FakeCluster implements ClusterService {
  leader = 'n1';
  members: ServerInfo[] = [N1, N2, N3];
  calls: string[] = [];
  failWith: ClusterError | undefined;

  self(): ServerInfo {
    return N1;
  }
  leaderId(): string {
    return this.leader;
  }
  servers(): readonly ServerInfo[] {
    return this.members;
  }
  rpcAddressOf(id: string): string {
    return id === 'gone' ? '10.0.0.9:8300' : (this.members.find((s) => s.id === id)?.rpcAddr ?? '');
  }
  configurationIndex(): number {
    return 42;
  }
  stats(): ClusterStats {
    return STATS;
  }
  autopilotHealth(): AutopilotHealth {
    return HEALTH;
  }
  autopilotConfig(): AutopilotConfig {
    return { cleanupDeadServers: true, deadServerAfterMs: 60_000, lastContactThresholdMs: 200, minQuorum: 0 };
  }
  setAutopilotConfig(): void {
    throw new Error('not used by /v1/cluster');
  }
  async join(rpcAddr: string): Promise<ServerInfo> {
    this.calls.push(`join ${rpcAddr}`);
    this.fail();
    return { id: 'n4', rpcAddr, httpAddr: '10.0.0.4:8500', voter: false, leader: false };
  }
  async remove(target: { id?: string; address?: string }): Promise<void> {
    this.calls.push(`remove ${JSON.stringify(target)}`);
    this.fail();
    if (!this.members.some((s) => s.id === target.id)) throw new ClusterError('notFound', `no server "${target.id}" in the Raft configuration`);
  }
  async transferLeader(id?: string): Promise<string> {
    this.calls.push(`transferLeader ${id ?? '(any)'}`);
    this.fail();
    return id ?? 'n2';
  }
  async snapshotNow(): Promise<{ index: number; term: number }> {
    this.calls.push('snapshotNow');
    this.fail();
    return { index: 119, term: 4 };
  }
  private fail(): void {
    const err = this.failWith;
    this.failWith = undefined;
    if (err) throw err;
  }
}

const ctx = { config: { datacenter: 'dc1' }, version: '1.18.0' } as unknown as ServerContext;

/** The app as the platform builds it (http/app.ts: its error and not-found handling, the shared query schemas), with only the cluster routes. */
async function appFor(t: Test, cluster: ClusterService): Promise<FastifyInstance> {
  const app = createHttpApp({ shutdownSignal: new AbortController().signal });
  await app.register(clusterRoutes, { ctx, cluster });
  t.teardown(() => app.close());
  return app;
}

async function call(app: FastifyInstance, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: string, contentType?: string) {
  const res = await app.inject({ method, url, ...(payload !== undefined ? { payload } : {}), ...(contentType ? { headers: { 'content-type': contentType } } : {}) });
  return { status: res.statusCode, body: res.body };
}

t.test('GET /v1/cluster/status: this server, the leader, Raft progress, members and health', async (t) => {
  const app = await appFor(t, new FakeCluster());
  const res = await app.inject({ method: 'GET', url: '/v1/cluster/status?stale' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^application\/json/);
  t.equal(res.body, JSON.stringify({
    ID: 'n1',
    Address: '10.0.0.1:8300',
    HTTPAddress: '10.0.0.1:8500',
    Role: 'Leader',
    Leader: { ID: 'n1', Address: '10.0.0.1:8300', HTTPAddress: '10.0.0.1:8500' },
    Term: 4,
    CommitIndex: 120,
    AppliedIndex: 119,
    LastLogIndex: 121,
    LastSnapshotIndex: 100,
    LastContactMs: 0,
    ConfigurationIndex: 42,
    Members: { Servers: 3, Voters: 2, NonVoters: 1, Healthy: 2 },
    FailureTolerance: 0,
    Healthy: false,
  }));
});

t.test('GET /v1/cluster/leader and /v1/cluster/peers', async (t) => {
  const cluster = new FakeCluster();
  const app = await appFor(t, cluster);
  t.same(await call(app, 'GET', '/v1/cluster/leader'), { status: 200, body: '{"ID":"n1","Address":"10.0.0.1:8300","HTTPAddress":"10.0.0.1:8500"}' });
  t.same(await call(app, 'GET', '/v1/cluster/peers'), {
    status: 200,
    body: JSON.stringify([
      { ID: 'n1', Address: '10.0.0.1:8300', HTTPAddress: '10.0.0.1:8500', Voter: true, Leader: true },
      { ID: 'n2', Address: '10.0.0.2:8300', HTTPAddress: '10.0.0.2:8500', Voter: true, Leader: false },
      { ID: 'n3', Address: '10.0.0.3:8300', HTTPAddress: '', Voter: false, Leader: false },
    ]),
  });
  cluster.leader = 'gone';
  t.same(await call(app, 'GET', '/v1/cluster/leader'), { status: 200, body: '{"ID":"gone","Address":"10.0.0.9:8300","HTTPAddress":""}' },
    'a leader outside the configuration: its known address');
  cluster.leader = '';
  t.same(await call(app, 'GET', '/v1/cluster/leader'), { status: 200, body: '{"ID":"","Address":"","HTTPAddress":""}' }, 'no leader: empty strings, like /v1/status/leader');
});

t.test('GET /v1/cluster/stats: Raft progress and per-peer replication', async (t) => {
  const app = await appFor(t, new FakeCluster());
  t.same(await call(app, 'GET', '/v1/cluster/stats'), {
    status: 200,
    body: JSON.stringify({
      ID: 'n1',
      Role: 'Leader',
      LeaderID: 'n1',
      Term: 4,
      CommitIndex: 120,
      AppliedIndex: 119,
      LastLogIndex: 121,
      LastSnapshotIndex: 100,
      LastContactMs: 0,
      ConfigurationIndex: 42,
      Peers: [
        { ID: 'n1', Address: '10.0.0.1:8300', Voter: true, Leader: true, MatchIndex: 121, ReplicationLag: 0, LastContactMs: 0, State: 'replicate', Healthy: true },
        { ID: 'n2', Address: '10.0.0.2:8300', Voter: true, Leader: false, MatchIndex: 118, ReplicationLag: 3, LastContactMs: 12.5, State: 'replicate', Healthy: true },
        { ID: 'n3', Address: '10.0.0.3:8300', Voter: false, Leader: false, MatchIndex: -1, ReplicationLag: -1, LastContactMs: -1, State: 'probe', Healthy: false },
      ],
    }),
  });
});

t.test('POST /v1/cluster/join adds the server at Address and answers it', async (t) => {
  const cluster = new FakeCluster();
  const app = await appFor(t, cluster);
  t.same(await call(app, 'POST', '/v1/cluster/join', '{"Address":"10.0.0.4:8300"}', 'application/json'), {
    status: 200,
    body: '{"ID":"n4","Address":"10.0.0.4:8300","HTTPAddress":"10.0.0.4:8500","Voter":false,"Leader":false}',
  });
  t.equal((await call(app, 'POST', '/v1/cluster/join', '{"Address":"konsul-2.internal:8300"}')).status, 200, 'no Content-Type: still JSON');
  t.equal((await call(app, 'POST', '/v1/cluster/join', '{"Address":"[fd00::4]:8300"}', 'application/x-www-form-urlencoded')).status, 200, 'curl -d\'s form encoding: still JSON');
  t.same(cluster.calls, ['join 10.0.0.4:8300', 'join konsul-2.internal:8300', 'join [fd00::4]:8300']);
});

t.test('POST /v1/cluster/join: bad bodies are 400s with a message, and join nothing', async (t) => {
  const cluster = new FakeCluster();
  const app = await appFor(t, cluster);
  const join = (body: string) => call(app, 'POST', '/v1/cluster/join', body, 'application/json');
  t.same(await join(''), { status: 400, body: 'Request decode failed: EOF' });
  t.match(await join('{"Address":'), { status: 400, body: /^Request decode failed: .*JSON/ });
  t.same(await join('{}'), { status: 400, body: 'body must have required property \'Address\'' });
  t.same(await join('{"Address":"10.0.0.4:8300","Voter":true}'), { status: 400, body: 'Request decode failed: json: unknown field "Voter"' });
  t.same(await join('{"address":"10.0.0.4:8300"}'), { status: 400, body: 'Request decode failed: json: unknown field "address"' });
  t.same(await join('["10.0.0.4:8300"]'), { status: 400, body: 'body must be object' });
  t.match(await join('{"Address":"10.0.0.4"}'), { status: 400, body: /^body\/Address must match pattern/ }, 'no port');
  t.match(await join('{"Address":"10.0.0.4:8300/x"}'), { status: 400, body: /^body\/Address must match pattern/ });
  t.match(await join('{"Address":8300}'), { status: 400, body: /^body\/Address must match pattern/ });
  t.same(await join('{"Address":"10.0.0.4:99999"}'), { status: 400, body: 'Invalid Address "10.0.0.4:99999": the port must be between 1 and 65535' });
  t.same(await join('{"Address":"10.0.0.4:0"}'), { status: 400, body: 'Invalid Address "10.0.0.4:0": the port must be between 1 and 65535' });
  t.same(cluster.calls, [], 'nothing reached the cluster service');
});

t.test('cluster errors keep their meaning on the wire', async (t) => {
  const cluster = new FakeCluster();
  const app = await appFor(t, cluster);
  const join = () => call(app, 'POST', '/v1/cluster/join', '{"Address":"10.0.0.4:8300"}');
  cluster.failWith = new ClusterError('unreachable', 'cannot reach 10.0.0.4:8300: connection refused');
  t.same(await join(), { status: 502, body: 'cannot reach 10.0.0.4:8300: connection refused' });
  cluster.failWith = new ClusterError('conflict', 'a configuration change is already in progress');
  t.same(await join(), { status: 409, body: 'a configuration change is already in progress' });
  cluster.failWith = new ClusterError('noLeader', 'no leader to forward the join to');
  t.same(await join(), { status: 500, body: 'No cluster leader' }, 'Consul\'s text, which clients match');
  cluster.failWith = new ClusterError('timeout', 'the leader did not answer within 5s');
  t.same(await call(app, 'POST', '/v1/cluster/snapshot'), { status: 504, body: 'the leader did not answer within 5s' });
});

t.test('DELETE /v1/cluster/leave/:id removes the server', async (t) => {
  const cluster = new FakeCluster();
  const app = await appFor(t, cluster);
  t.same(await call(app, 'DELETE', '/v1/cluster/leave/n3'), { status: 200, body: '{"Removed":"n3"}' });
  t.same(await call(app, 'DELETE', '/v1/cluster/leave/nope'), { status: 404, body: 'no server "nope" in the Raft configuration' });
  t.same(await call(app, 'DELETE', '/v1/cluster/leave/'), { status: 400, body: 'params/id must NOT have fewer than 1 characters' }, 'an id is required');
  t.match(await call(app, 'DELETE', `/v1/cluster/leave/${'x'.repeat(257)}`), { status: 400, body: /^params\/id must NOT have more than 256 characters/ });
  t.same(cluster.calls, ['remove {"id":"n3"}', 'remove {"id":"nope"}']);
});

t.test('POST /v1/cluster/snapshot and /v1/cluster/transfer-leader', async (t) => {
  const cluster = new FakeCluster();
  const app = await appFor(t, cluster);
  t.same(await call(app, 'POST', '/v1/cluster/snapshot'), { status: 200, body: '{"Index":119,"Term":4}' });
  t.same(await call(app, 'POST', '/v1/cluster/snapshot', '', 'application/json'), { status: 200, body: '{"Index":119,"Term":4}' }, 'an empty JSON body is no body');
  t.same(await call(app, 'POST', '/v1/cluster/transfer-leader'), { status: 200, body: '{"Leader":{"ID":"n2","Address":"10.0.0.2:8300","HTTPAddress":"10.0.0.2:8500"}}' });
  t.same(await call(app, 'POST', '/v1/cluster/transfer-leader?id=n3'), { status: 200, body: '{"Leader":{"ID":"n3","Address":"10.0.0.3:8300","HTTPAddress":""}}' });
  t.same(cluster.calls, ['snapshotNow', 'snapshotNow', 'transferLeader (any)', 'transferLeader n3']);
  t.equal((await call(app, 'GET', '/v1/cluster/snapshot')).status, 404);
});

t.test('every ClusterError code answers its status and text', async (t) => {
  const cluster = new FakeCluster();
  const app = await appFor(t, cluster);
  const statuses: Record<ClusterError['code'], number> = { notFound: 404, badRequest: 400, conflict: 409, noLeader: 500, unreachable: 502, timeout: 504 };
  for (const [code, status] of Object.entries(statuses) as [ClusterError['code'], number][]) {
    cluster.failWith = new ClusterError(code, `the ${code} text`);
    t.same(await call(app, 'POST', '/v1/cluster/snapshot'), { status, body: code === 'noLeader' ? 'No cluster leader' : `the ${code} text` }, code);
  }
});
