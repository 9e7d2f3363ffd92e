// LocalAgent in agent mode against a recording backend over an in-process FSM: the node is
// registered by the agent, status changes are coalesced into batches (a flap that returns to the
// synced status sends nothing), drift is repaired in one batch, check hooks see checks come and go,
// and the full-sync period follows Consul's aeScale.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { encodeCommand } from '../fsm/commands.ts';
import { KonsulFsm } from '../fsm/konsul-fsm.ts';
import type { CatalogCommand, CatalogServiceSpec } from '../fsm/state/catalog-commands.ts';
import { aeScaledIntervalMs, fsmBackend, LocalAgent, type LocalAgentBackend, type LocalCheck } from './core/local-agent.ts';
import { parseAgentConfigObject, mergeAgentConfig } from './config.ts';
import { sleep, waitFor } from '../test/kit/wait.ts';

function service(id: string): CatalogServiceSpec {
  return { ID: id, Service: id, Tags: [], Address: '', Port: 80, Meta: {}, EnableTagOverride: false, Weights: { Passing: 1, Warning: 1 }, TaggedAddresses: {}, Dependencies: [] };
}

function check(id: string, serviceId: string, type = 'ttl', ttlMs = 60_000): LocalCheck {
  return {
    spec: { CheckID: id, Name: id, Status: 'passing', Notes: '', Output: '', ServiceID: serviceId, Type: type, Interval: type === 'ttl' ? '' : '1s', Timeout: '', Definition: type === 'http' ? { HTTP: 'http://127.0.0.1:1/' } : {} },
    ttlMs: type === 'ttl' ? ttlMs : 0,
    deregisterCriticalAfterMs: 0,
    explicitStatus: true,
  };
}


function setup(t: { teardown(fn: () => Promise<void> | void): void }) {
  const fsm = new KonsulFsm();
  const inner = fsmBackend(fsm.catalog, async (bytes) => fsm.apply(fsm.appliedIndex + 1, bytes), async () => {});
  const batches: CatalogCommand[][] = [];
  const backend: LocalAgentBackend = {
    apply: async (commands) => {
      batches.push([...commands]);
      return inner.apply(commands);
    },
    nodeState: (node) => inner.nodeState(node),
  };
  const dataDir = mkdtempSync(join(tmpdir(), 'konsul-ae-'));
  const hooks = { added: [] as string[], removed: [] as string[] };
  const agent = new LocalAgent({
    nodeName: 'host-a',
    datacenter: 'dc1',
    dataDir,
    nodeAddress: () => '10.1.1.1',
    backend,
    ownsNode: true,
    statusCoalesceMs: 30,
    syncIntervalMs: 60_000,
    reapIntervalMs: 60_000,
    checkHooks: { added: (c) => hooks.added.push(c.spec.CheckID), removed: (id) => hooks.removed.push(id) },
  });
  t.teardown(async () => {
    await agent.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return { fsm, agent, batches, hooks };
}

t.test('the agent registers its node, even with nothing else to sync', async (t) => {
  const { fsm, agent } = setup(t);
  await agent.syncNow();
  const node = fsm.catalog.getNode('host-a');
  t.equal(node?.Address, '10.1.1.1');
  t.equal(node?.Datacenter, 'dc1');
});

t.test('status changes are coalesced; a flap back to the synced status sends nothing', async (t) => {
  const { fsm, agent, batches } = setup(t);
  await agent.registerService(service('web'), [check('a', 'web'), check('b', 'web')], false);
  await agent.syncNow();
  batches.length = 0;
  await agent.updateTtl('a', 'critical', 'x');
  await agent.updateTtl('b', 'warning', 'y');
  await agent.updateTtl('a', 'warning', 'z');
  t.equal(batches.length, 0, 'nothing sent within the coalescing delay');
  t.equal(fsm.catalog.getCheck('host-a', 'a')?.Status, 'passing');
  await waitFor(() => batches.length > 0, { what: 'the coalesced batch', timeoutMs: 2000 });
  t.equal(batches.length, 1, 'one batch');
  t.same(
    batches[0]!.map((c) => (c.type === 'catalogCheckStatus' ? [c.checkId, c.status, c.output] : c.type)),
    [
      ['a', 'warning', 'z'],
      ['b', 'warning', 'y'],
    ],
    'with the latest status of each check',
  );
  t.equal(fsm.catalog.getCheck('host-a', 'a')?.Status, 'warning');
  // A flap: critical and back to what the catalog holds, within one delay.
  await agent.updateTtl('b', 'critical', 'flap');
  await agent.updateTtl('b', 'warning', 'y');
  // A window, not a condition: what is shown is that nothing is sent.
  await sleep(80);
  t.equal(batches.length, 1, 'a flap that ends where it started sends nothing');
});

t.test('a full sync repairs drift both ways in one batch', async (t) => {
  const { fsm, agent, batches } = setup(t);
  await agent.registerService(service('web'), [check('a', 'web')], false);
  await agent.registerService(service('api'), [], false);
  // Drift: web removed on the server, a stray service added there.
  const apply = (c: CatalogCommand) => fsm.apply(fsm.appliedIndex + 1, encodeCommand(c));
  apply({ type: 'catalogDeregister', node: 'host-a', serviceId: 'web' });
  apply({ type: 'catalogRegister', node: { Node: 'host-a', ID: '', Address: '10.1.1.1', Datacenter: 'dc1', TaggedAddresses: {}, Meta: {} }, skipNodeUpdate: true, service: service('stray'), checks: [] });
  batches.length = 0;
  await agent.syncNow();
  t.equal(batches.length, 1, 'one round trip');
  t.ok(fsm.catalog.getService('host-a', 'web'), 'web is back');
  t.equal(fsm.catalog.getCheck('host-a', 'a')?.Status, 'passing', 'with its check');
  t.notOk(fsm.catalog.getService('host-a', 'stray'), 'the stray service is gone');
  batches.length = 0;
  await agent.syncNow();
  t.equal(batches.length, 0, 'a settled agent writes nothing');
});

t.test('check hooks see runnable checks come and go; results reach the catalog', async (t) => {
  const { fsm, agent, hooks } = setup(t);
  await agent.registerService(service('web'), [check('h', 'web', 'http'), check('ttl', 'web')], false);
  t.same(hooks.added, ['h'], 'only non-TTL checks go to the runner');
  await agent.reportCheckResult('h', 'critical', 'HTTP GET http://127.0.0.1:1/: connection refused');
  await waitFor(() => fsm.catalog.getCheck('host-a', 'h')?.Status === 'critical', { what: 'the result in the catalog', timeoutMs: 2000 });
  t.equal(fsm.catalog.getCheck('host-a', 'h')?.Status, 'critical');
  await agent.deregisterService('web');
  t.same(hooks.removed.sort(), ['h', 'ttl']);
});

t.test("aeScale: Consul's full-sync period scaling", async (t) => {
  t.equal(aeScaledIntervalMs(60_000, 1), 60_000);
  t.equal(aeScaledIntervalMs(60_000, 128), 60_000);
  t.equal(aeScaledIntervalMs(60_000, 129), 120_000);
  t.equal(aeScaledIntervalMs(60_000, 256), 120_000);
  t.equal(aeScaledIntervalMs(60_000, 257), 180_000);
  t.equal(aeScaledIntervalMs(60_000, 4096), 360_000);
});

t.test('agent config files: settings, definitions, errors', async (t) => {
  const file = parseAgentConfigObject(
    {
      node_name: 'n1',
      retry_join: ['127.0.0.1:8300'],
      sync_interval_ms: 5000,
      service: { name: 'web', port: 80 },
      services: [{ name: 'api' }],
      check: { name: 'disk', ttl: '30s' },
      checks: [{ name: 'mem', ttl: '30s' }],
    },
    'a.json',
  );
  t.equal(file.config.nodeName, 'n1');
  t.equal(file.config.syncIntervalMs, 5000);
  t.same(file.services.map((s) => (s.definition as { name: string }).name), ['web', 'api']);
  t.same(file.checks.map((c) => (c.definition as { name: string }).name), ['disk', 'mem']);
  t.throws(() => parseAgentConfigObject({ bogus: 1 }, 'b.json'), /b\.json: unknown key "bogus"/);
  t.throws(() => parseAgentConfigObject({ services: {} }, 'c.json'), /"services" must be a list of objects/);
  t.throws(() => parseAgentConfigObject({ sync_interval_ms: -1 }, 'd.json'), /d\.json: sync_interval_ms must be a positive integer/);
  t.throws(() => mergeAgentConfig({ nodeName: 'x' }), /needs at least one server/);
  const merged = mergeAgentConfig(file.config, { httpAddr: { host: '0.0.0.0', port: 8500 } });
  t.equal(merged.httpAddr.host, '0.0.0.0');
  t.equal(merged.statusCoalesceMs, 200, 'defaults fill the rest');
});
