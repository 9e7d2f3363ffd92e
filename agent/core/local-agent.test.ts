// The server's local agent against an in-process FSM (proposals applied directly): persistence,
// TTL expiry, anti-entropy in both directions, critical-service reaping, Consul's error texts.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { encodeCommand } from '../../fsm/commands.ts';
import { KonsulFsm } from '../../fsm/konsul-fsm.ts';
import type { CatalogServiceSpec } from '../../fsm/state/catalog-commands.ts';
import { KonsulError, type KonsulErrorCode } from '../../lib/errors.ts';
import { AGENT_STATE_FILE, LocalAgent, truncateOutput, type LocalCheck } from './local-agent.ts';
import { waitFor } from '../../test/kit/wait.ts';

function service(id: string, name: string): CatalogServiceSpec {
  return { ID: id, Service: name, Tags: ['t'], Address: '', Port: 80, Meta: {}, EnableTagOverride: false, Weights: { Passing: 1, Warning: 1 }, TaggedAddresses: {}, Dependencies: [] };
}

function ttlCheck(id: string, serviceId: string, ttlMs: number, extra: Partial<LocalCheck> = {}): LocalCheck {
  return {
    spec: { CheckID: id, Name: id, Status: 'passing', Notes: '', Output: '', ServiceID: serviceId, Type: 'ttl', Interval: '', Timeout: '', Definition: {} },
    ttlMs,
    deregisterCriticalAfterMs: 0,
    explicitStatus: true,
    ...extra,
  };
}

function setup(t: { teardown(fn: () => Promise<void>): void }, dataDir = mkdtempSync(join(tmpdir(), 'konsul-agent-'))) {
  const fsm = new KonsulFsm();
  let offline = false;
  const propose = async (bytes: Uint8Array) => {
    if (offline) throw new Error('No cluster leader');
    return fsm.apply(fsm.appliedIndex + 1, bytes);
  };
  const make = () =>
    new LocalAgent({
      nodeName: 'srv',
      datacenter: 'dc1',
      dataDir,
      nodeAddress: () => '127.0.0.1',
      catalog: fsm.catalog,
      propose,
      readBarrier: async () => {},
      syncIntervalMs: 60_000,
      reapIntervalMs: 60_000,
      deregisterMinMs: 0,
    });
  const agents: LocalAgent[] = [];
  t.teardown(async () => {
    for (const a of agents) await a.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return {
    fsm,
    dataDir,
    setOffline: (v: boolean) => (offline = v),
    agent: () => {
      const a = make();
      agents.push(a);
      return a;
    },
  };
}


t.test('registrations persist and reach the catalog; a new agent loads them', async (t) => {
  const env = setup(t);
  const agent = env.agent();
  agent.start();
  await agent.registerService(service('web-1', 'web'), [ttlCheck('service:web-1', 'web-1', 60_000)], false);
  t.equal(env.fsm.catalog.instances('web').length, 1);
  t.equal(env.fsm.catalog.checkStatus('srv', 'service:web-1'), 'passing');
  const saved = JSON.parse(readFileSync(join(env.dataDir, AGENT_STATE_FILE), 'utf8')) as { services: unknown[]; checks: unknown[] };
  t.equal(saved.services.length, 1);
  t.equal(saved.checks.length, 1);
  await agent.stop();
  const again = env.agent();
  t.same(again.listServices().map((s) => s.ID), ['web-1']);
  t.same(again.listChecks().map((c) => [c.CheckID, c.Status, c.ServiceName]), [['service:web-1', 'passing', 'web']]);
});

t.test('TTL expiry: critical with Consul\'s output, one Raft write', async (t) => {
  const env = setup(t);
  const agent = env.agent();
  agent.start();
  await agent.registerService(service('a-1', 'a'), [ttlCheck('ttl', 'a-1', 80)], false);
  await agent.updateTtl('ttl', 'passing', 'fine');
  const before = env.fsm.appliedIndex;
  await agent.updateTtl('ttl', 'passing', 'fine');
  t.equal(env.fsm.appliedIndex, before, 'an unchanged heartbeat writes nothing');
  await waitFor(() => env.fsm.catalog.getCheck('srv', 'ttl')?.Status === 'critical', { what: 'the TTL to expire', timeoutMs: 2000 });
  const check = env.fsm.catalog.getCheck('srv', 'ttl')!;
  t.equal(check.Status, 'critical');
  t.equal(check.Output, 'TTL expired (last output before timeout follows): fine');
  t.equal(env.fsm.appliedIndex, before + 1);
});

// Codes, not statuses: the HTTP platform's table maps notFound to 404 and internal to 500 (Consul's).
t.test('errors: unknown checks notFound, no TTL internal, unknown services notFound', async (t) => {
  const env = setup(t);
  const agent = env.agent();
  await agent.registerCheck({ ...ttlCheck('http', '', 0), spec: { ...ttlCheck('http', '', 0).spec, Type: 'http' } });
  const fails = async (p: Promise<unknown>, code: KonsulErrorCode, text: string) => {
    try {
      await p;
      t.fail(`expected ${code}`);
    } catch (err) {
      t.ok(err instanceof KonsulError);
      t.equal((err as KonsulError).code, code);
      t.equal((err as KonsulError).message, text);
    }
  };
  await fails(agent.updateTtl('nope', 'passing', ''), 'notFound', 'Unknown check ID "nope". Ensure that the check ID is passed, not the check name.');
  await fails(agent.updateTtl('http', 'passing', ''), 'internal', 'CheckID "http" does not have associated TTL');
  await fails(agent.deregisterService('ghost'), 'notFound', 'Unknown service ID "ghost". Ensure that the service ID is passed, not the service name.');
  await fails(agent.registerCheck(ttlCheck('c', 'ghost', 1000)), 'notFound', 'ServiceID "ghost" does not exist');
  await fails(agent.setServiceMaintenance('ghost', true, ''), 'notFound', 'No service registered with ID "ghost"');
});

t.test('anti-entropy: writes what the catalog lacks, removes what the agent does not know', async (t) => {
  const env = setup(t);
  const agent = env.agent();
  env.setOffline(true);
  await agent.registerService(service('api-1', 'api'), [ttlCheck('api-ttl', 'api-1', 60_000)], false);
  t.equal(env.fsm.catalog.instances('api').length, 0, 'no leader: kept locally only');
  env.setOffline(false);
  // Something else registered on this node: the leader's own entries stay, the rest goes.
  const foreign = (id: string) => encodeCommand({
    type: 'catalogRegister',
    node: { Node: 'srv', ID: '', Address: '127.0.0.1', Datacenter: 'dc1', TaggedAddresses: {}, Meta: {} },
    skipNodeUpdate: true,
    service: service(id, id),
    checks: [{ CheckID: id === 'consul' ? 'serfHealth' : `${id}-check`, Name: 'x', Status: 'passing', Notes: '', Output: '', ServiceID: '', Type: '', Interval: '', Timeout: '', Definition: {} }],
  });
  env.fsm.apply(env.fsm.appliedIndex + 1, foreign('consul'));
  env.fsm.apply(env.fsm.appliedIndex + 1, foreign('stray'));
  await agent.syncNow();
  t.equal(env.fsm.catalog.instances('api').length, 1, 'written by the sync');
  t.equal(env.fsm.catalog.checkStatus('srv', 'api-ttl'), 'passing');
  t.same(env.fsm.catalog.nodeServices('srv').map((s) => s.ID), ['api-1', 'consul'], 'stray removed, consul kept');
  t.same(env.fsm.catalog.nodeChecks('srv').map((c) => c.CheckID), ['api-ttl', 'serfHealth']);
  const settled = env.fsm.appliedIndex;
  await agent.syncNow();
  t.equal(env.fsm.appliedIndex, settled, 'an agent in sync writes nothing');
});

t.test('DeregisterCriticalServiceAfter and maintenance', async (t) => {
  const env = setup(t);
  const agent = env.agent();
  await agent.registerService(service('job-1', 'job'), [ttlCheck('job-ttl', 'job-1', 60_000, { deregisterCriticalAfterMs: 50 })], false);
  await agent.setServiceMaintenance('job-1', true, '');
  const maint = env.fsm.catalog.getCheck('srv', '_service_maintenance:job-1')!;
  t.equal(maint.Notes, 'Maintenance mode is enabled for this service, but no reason was provided. This is a default message.');
  await agent.setServiceMaintenance('job-1', false, '');
  t.equal(env.fsm.catalog.getCheck('srv', '_service_maintenance:job-1'), undefined);
  await agent.updateTtl('job-ttl', 'critical', 'down');
  await agent.reapCritical(Date.now());
  t.equal(env.fsm.catalog.instances('job').length, 1, 'not yet: critical for less than its limit');
  await agent.reapCritical(Date.now() + 100);
  t.equal(env.fsm.catalog.instances('job').length, 0);
  t.same(agent.listServices(), []);
});

t.test('output truncation as Consul\'s CheckTTL', async (t) => {
  t.equal(truncateOutput('short'), 'short');
  const long = 'x'.repeat(5000);
  t.equal(truncateOutput(long), `${'x'.repeat(4096)} ... (captured 4096 of 5000 bytes)`);
});

/** The state file as written (services and checks, in the persisted format). */
function savedState(dataDir: string): { services: CatalogServiceSpec[]; checks: { spec: { CheckID: string; ServiceID: string } }[] } {
  return JSON.parse(readFileSync(join(dataDir, AGENT_STATE_FILE), 'utf8')) as { services: CatalogServiceSpec[]; checks: { spec: { CheckID: string; ServiceID: string } }[] };
}

t.test('state-file writes are a group commit: a change waiting for a write shares the next one', async (t) => {
  const env = setup(t);
  const agent = env.agent();
  const workers = 16;
  const perWorker = 25;
  const notInFile: string[] = [];
  // Closed loop, as HTTP clients: each worker sends its next registration once the last is acknowledged,
  // so changes keep arriving while a write is in flight.
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      for (let i = 0; i < perWorker; i++) {
        const id = `svc-${w}-${i}`;
        await agent.registerService(service(id, `s${w}`), [ttlCheck(`${id}-ttl`, id, 60_000)], false);
        // Acknowledged: the file on disk already holds this registration.
        if (!savedState(env.dataDir).services.some((s) => s.ID === id)) notInFile.push(id);
      }
    }),
  );
  t.same(notInFile, [], 'every registration is in the file when it is acknowledged');
  const saved = savedState(env.dataDir);
  t.equal(saved.services.length, workers * perWorker);
  t.equal(saved.checks.length, workers * perWorker);
  const { writes, changes } = agent.persistStats();
  t.equal(changes, workers * perWorker);
  t.ok(writes >= 1 && writes <= (workers * perWorker) / 4, `${writes} writes for ${changes} changes`);
  t.equal(env.fsm.catalog.nodeServices('srv').length, workers * perWorker);
});

t.test('state-file writes keep the order of changes: a later change is never overwritten', async (t) => {
  const env = setup(t);
  const agent = env.agent();
  let port = 0;
  const problems: string[] = [];
  let lastSeen = 0;
  // Everyone updates one service (a new port each time) and registers others in between.
  await Promise.all(
    Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; i < 20; i++) {
        const mine = ++port;
        await agent.registerService({ ...service('shared', 'shared'), Port: mine }, [], false);
        const onDisk = savedState(env.dataDir).services.find((s) => s.ID === 'shared')?.Port ?? 0;
        if (onDisk < mine) problems.push(`acknowledged port ${mine}, file has ${onDisk}`);
        if (onDisk < lastSeen) problems.push(`file went back from port ${lastSeen} to ${onDisk}`);
        lastSeen = Math.max(lastSeen, onDisk);
        await agent.registerService(service(`other-${w}-${i}`, 'other'), [], false);
      }
    }),
  );
  t.same(problems, []);
  t.equal(savedState(env.dataDir).services.find((s) => s.ID === 'shared')?.Port, 160, 'the last change is the one on disk');
  t.equal(agent.getService('shared')?.Port, 160);
  t.ok(agent.persistStats().writes <= 80, `${agent.persistStats().writes} writes for 320 changes`);
});

t.test('a failed state-file write fails every change it covered; the next write carries them', async (t) => {
  const env = setup(t);
  const agent = env.agent();
  await agent.registerService(service('before', 'x'), [], false);
  // A directory where the temporary file goes: opening it for writing fails (EISDIR).
  const blocker = join(env.dataDir, `${AGENT_STATE_FILE}.tmp`);
  mkdirSync(blocker);
  const outcomes = await Promise.allSettled(['a', 'b', 'c'].map((id) => agent.registerService(service(id, 'x'), [], false)));
  t.same(outcomes.map((o) => o.status), ['rejected', 'rejected', 'rejected'], 'none is acknowledged without a durable write');
  t.same(savedState(env.dataDir).services.map((s) => s.ID), ['before'], 'the old file is intact');
  rmSync(blocker, { recursive: true });
  await agent.registerService(service('d', 'x'), [], false);
  t.same(savedState(env.dataDir).services.map((s) => s.ID), ['a', 'b', 'before', 'c', 'd'], 'the next write holds the whole local state');
  await agent.stop();
  t.same(env.agent().listServices().map((s) => s.ID), ['a', 'b', 'before', 'c', 'd']);
});

t.test('stop waits for the state-file writes in flight', async (t) => {
  const env = setup(t);
  const agent = env.agent();
  const registered = agent.registerService(service('late', 'x'), [], false);
  await agent.stop();
  t.same(savedState(env.dataDir).services.map((s) => s.ID), ['late']);
  await registered;
});
