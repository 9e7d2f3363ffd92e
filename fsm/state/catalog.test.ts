// The catalog table: Consul's register/deregister semantics, the indexes blocking queries use, the
// effects other tables react to, command validation and the snapshot section.
import t from 'tap';
import { decodeCommand, encodeCommand, validateCommand, type Command } from '../commands.ts';
import { KonsulFsm, type FsmResult } from '../konsul-fsm.ts';
import { decodeSnapshot, encodeSnapshot, SnapshotFormatError } from '../snapshot.ts';
import { stateForRestoreAt } from '../restore.ts';
import type { CatalogCheckSpec, CatalogRegisterCommand, CatalogServiceSpec } from './catalog-commands.ts';
import { nodeWatchKey, serviceWatchKey, WATCH_CHECKS, WATCH_NODES, WATCH_SERVICES, type CatalogApplyResult } from './catalog.ts';
import { decodeCatalogSection, encodeCatalogSection } from './catalog-snapshot.ts';

function service(id: string, name: string, extra: Partial<CatalogServiceSpec> = {}): CatalogServiceSpec {
  return {
    ID: id,
    Service: name,
    Tags: [],
    Address: '',
    Port: 0,
    Meta: {},
    EnableTagOverride: false,
    Weights: { Passing: 1, Warning: 1 },
    TaggedAddresses: {},
    Dependencies: [],
    ...extra,
  };
}

function check(id: string, status: CatalogCheckSpec['Status'], serviceId = '', extra: Partial<CatalogCheckSpec> = {}): CatalogCheckSpec {
  return { CheckID: id, Name: id, Status: status, Notes: '', Output: '', ServiceID: serviceId, Type: '', Interval: '', Timeout: '', Definition: {}, ...extra };
}

function register(node: string, options: { address?: string; svc?: CatalogServiceSpec; checks?: CatalogCheckSpec[]; meta?: Record<string, string>; id?: string; skip?: boolean } = {}): CatalogRegisterCommand {
  return {
    type: 'catalogRegister',
    node: { Node: node, ID: options.id ?? '', Address: options.address ?? '10.0.0.1', Datacenter: 'dc1', TaggedAddresses: {}, Meta: options.meta ?? {} },
    skipNodeUpdate: options.skip ?? false,
    ...(options.svc ? { service: options.svc } : {}),
    checks: options.checks ?? [],
  };
}

/** An FSM applying encoded commands at consecutive indexes, recording the catalog keys each apply woke. */
class Store {
  readonly fsm = new KonsulFsm();
  readonly woken: string[][] = [];

  apply(command: Command): CatalogApplyResult {
    const index = this.fsm.appliedIndex + 1;
    return this.fsm.apply(index, encodeCommand(command)) as CatalogApplyResult;
  }

  get catalog() {
    return this.fsm.catalog;
  }
}

const ok = (r: FsmResult) => (r as CatalogApplyResult).ok;

t.test('registering a service creates the node; indexes and reads', async (t) => {
  const s = new Store();
  const r = s.apply(register('n1', { svc: service('web1', 'web', { Tags: ['a', 'b'], Port: 80 }) }));
  t.ok(r.ok);
  const node = s.catalog.getNode('n1')!;
  t.equal(node.CreateIndex, 1);
  t.equal(node.ModifyIndex, 1);
  t.equal(s.catalog.nodesIndex(), 1);
  t.equal(s.catalog.servicesIndex(), 1);
  t.equal(s.catalog.serviceIndex('web'), 1);
  t.equal(s.catalog.nodeIndex('n1'), 1);
  t.same(s.catalog.instances('web').map((i) => [i.Node, i.ID, i.Port]), [['n1', 'web1', 80]]);
  s.apply(register('n2', { svc: service('web2', 'web', { Tags: ['b', 'c'] }) }));
  t.same([...s.catalog.services()], [['web', ['a', 'b', 'c']]], 'tags are the union over instances');
  t.same(s.catalog.nodes().map((n) => n.Node), ['n1', 'n2']);
  t.equal(s.catalog.index(), 2);
});

t.test('unchanged registrations change nothing; changes keep CreateIndex', async (t) => {
  const s = new Store();
  const wake: number[] = [];
  s.fsm.watches.watchKey(serviceWatchKey('web'), (i) => wake.push(i), 'catalog');
  s.apply(register('n1', { svc: service('web1', 'web'), checks: [check('c1', 'passing', 'web1')] }));
  s.apply(register('n1', { svc: service('web1', 'web'), checks: [check('c1', 'passing', 'web1')] }));
  t.same(wake, [1], 'the identical write woke nobody');
  t.equal(s.catalog.index(), 1, 'and moved no index');
  t.equal(s.catalog.getService('n1', 'web1')!.ModifyIndex, 1);
  s.apply(register('n1', { svc: service('web1', 'web', { Port: 8080 }) }));
  const svc = s.catalog.getService('n1', 'web1')!;
  t.equal(svc.CreateIndex, 1);
  t.equal(svc.ModifyIndex, 3);
  t.equal(s.catalog.nodeIndex('n1'), 3);
  t.equal(s.catalog.getNode('n1')!.ModifyIndex, 1, 'the node itself did not change');
});

t.test('a write to service A does not touch service B', async (t) => {
  const s = new Store();
  s.apply(register('n1', { svc: service('a1', 'a') }));
  s.apply(register('n2', { svc: service('b1', 'b') }));
  const woken: string[] = [];
  s.fsm.watches.watchKey(serviceWatchKey('a'), () => woken.push('a'), 'catalog');
  s.fsm.watches.watchKey(serviceWatchKey('b'), () => woken.push('b'), 'catalog');
  s.fsm.watches.watchKey(nodeWatchKey('n2'), () => woken.push('node n2'), 'catalog');
  s.apply(register('n1', { svc: service('a1', 'a', { Tags: ['x'] }) }));
  s.apply(register('n1', { checks: [check('c', 'warning', 'a1')] }));
  t.same(woken, ['a', 'a'], 'only A\'s watcher woke, once per write');
  t.equal(s.catalog.serviceIndex('b'), 2, 'B keeps its index');
  t.equal(s.catalog.serviceIndex('a'), 4);
});

t.test('watchers wake for their own service only', async (t) => {
  const s = new Store();
  s.apply(register('n1', { svc: service('a1', 'a') }));
  s.apply(register('n2', { svc: service('b1', 'b') }));
  const woken: string[] = [];
  for (const key of [serviceWatchKey('a'), serviceWatchKey('b'), nodeWatchKey('n1'), nodeWatchKey('n2'), WATCH_NODES, WATCH_SERVICES, WATCH_CHECKS]) {
    s.fsm.watches.watchKey(key, () => woken.push(key), 'catalog');
  }
  s.apply(register('n1', { checks: [check('a-check', 'passing', 'a1')] }));
  t.same(woken.sort(), [WATCH_CHECKS, nodeWatchKey('n1'), serviceWatchKey('a')].sort());
});

t.test('node-level checks count for every service on the node', async (t) => {
  const s = new Store();
  s.apply(register('n1', { svc: service('web1', 'web') }));
  s.apply(register('n1', { svc: service('db1', 'db') }));
  s.apply(register('n1', { checks: [check('svc-check', 'passing', 'web1')] }));
  const before = s.catalog.serviceIndex('db');
  s.apply(register('n1', { checks: [check('serfHealth', 'critical')] }));
  t.equal(s.catalog.serviceIndex('db'), 4, 'a node-level check moves every service of the node');
  t.ok(s.catalog.serviceIndex('db') > before);
  const [entry] = s.catalog.checkServiceNodes('web');
  t.same(entry!.checks.map((c) => c.CheckID), ['serfHealth', 'svc-check'], 'node-level checks first, then the service\'s');
  t.same(s.catalog.checkServiceNodes('db')[0]!.checks.map((c) => c.CheckID), ['serfHealth']);
  t.same(s.catalog.checksInState('critical').map((c) => c.CheckID), ['serfHealth']);
  t.same(s.catalog.checksInState('any').map((c) => c.CheckID), ['serfHealth', 'svc-check']);
  t.same(s.catalog.serviceChecks('web').map((c) => c.CheckID), ['svc-check'], 'health/checks lists service-level checks');
});

t.test('service-level checks carry the service name and tags, kept up to date', async (t) => {
  const s = new Store();
  s.apply(register('n1', { svc: service('web1', 'web', { Tags: ['v1'] }), checks: [check('c1', 'passing', 'WEB1')] }));
  const c = s.catalog.getCheck('n1', 'c1')!;
  t.equal(c.ServiceID, 'web1', 'the ID as the service spells it');
  t.equal(c.ServiceName, 'web');
  t.same(c.ServiceTags, ['v1']);
  s.apply(register('n1', { svc: service('web1', 'web', { Tags: ['v2'] }) }));
  t.same(s.catalog.getCheck('n1', 'c1')!.ServiceTags, ['v2']);
  t.equal(s.catalog.getCheck('n1', 'c1')!.ModifyIndex, 2);
});

t.test('a check for an unknown service is refused and changes nothing', async (t) => {
  const s = new Store();
  const r = s.apply(register('n1', { checks: [check('c1', 'passing', 'nope')] }));
  t.same(r, { kind: 'catalog', ok: false, error: "Unknown service ID 'nope' for check ID 'c1'" });
  t.equal(s.catalog.nodeExists('n1'), false, 'the node was not created either');
  t.equal(s.catalog.index(), 0);
  t.equal(s.fsm.appliedIndex, 1);
});

t.test('address required unless skipNodeUpdate; node IDs may not alias', async (t) => {
  const s = new Store();
  t.same(s.apply(register('n1', { address: '' })), { kind: 'catalog', ok: false, error: 'Must provide address if SkipNodeUpdate is not set' });
  t.ok(ok(s.apply(register('n1', { address: '', skip: true }))), 'skipNodeUpdate creates the node anyway');
  const id = '40e4a748-2192-161a-0510-9bf59fe950b5';
  t.ok(ok(s.apply(register('n2', { id }))));
  const r = s.apply(register('n3', { id }));
  t.same(r, { kind: 'catalog', ok: false, error: `node ID "${id}" for node "n3" aliases existing node "n2"` });
  t.ok(ok(s.apply(register('n2', { id, address: '10.9.9.9' }))), 'the owner may re-register');
  t.equal(s.catalog.getNode('n2')!.Address, '10.9.9.9');
  s.apply(register('n2', { address: '1.1.1.1', skip: true, svc: service('x', 'x') }));
  t.equal(s.catalog.getNode('n2')!.Address, '10.9.9.9', 'skipNodeUpdate keeps the node fields');
});

t.test('node changes move the indexes of every service on the node', async (t) => {
  const s = new Store();
  s.apply(register('n1', { svc: service('web1', 'web') }));
  s.apply(register('n2', { svc: service('db1', 'db') }));
  s.apply(register('n1', { address: '10.0.0.2', meta: { rack: 'r1' } }));
  t.equal(s.catalog.serviceIndex('web'), 3);
  t.equal(s.catalog.serviceIndex('db'), 2);
  t.equal(s.catalog.nodesIndex(), 3);
  t.equal(s.catalog.getNode('n1')!.ModifyIndex, 3);
  t.equal(s.catalog.getNode('n1')!.CreateIndex, 1);
});

t.test('deregister: service with its checks, a check, the whole node', async (t) => {
  const s = new Store();
  s.apply(register('n1', { svc: service('web1', 'web'), checks: [check('web-c', 'passing', 'web1')] }));
  s.apply(register('n1', { svc: service('db1', 'db'), checks: [check('db-c', 'passing', 'db1'), check('node-c', 'passing')] }));
  let r = s.apply({ type: 'catalogDeregister', node: 'n1', serviceId: 'web1' });
  t.ok(r.ok);
  t.same(r.ok && r.deregisteredChecks, [{ node: 'n1', checkId: 'web-c' }]);
  t.same(s.catalog.instances('web'), []);
  t.same(s.catalog.nodeChecks('n1').map((c) => c.CheckID), ['db-c', 'node-c']);
  r = s.apply({ type: 'catalogDeregister', node: 'n1', checkId: 'node-c' });
  t.same(r.ok && r.deregisteredChecks, [{ node: 'n1', checkId: 'node-c' }]);
  r = s.apply({ type: 'catalogDeregister', node: 'n1' });
  t.same(r.ok && r.deregisteredNodes, ['n1']);
  t.same(r.ok && r.deregisteredChecks, [{ node: 'n1', checkId: 'db-c' }]);
  t.equal(s.catalog.nodeExists('n1'), false);
  t.same([...s.catalog.services()], []);
  const before = s.catalog.index();
  t.ok(ok(s.apply({ type: 'catalogDeregister', node: 'n1' })), 'deregistering a missing node is fine');
  t.equal(s.catalog.index(), before, 'and changes nothing');
});

t.test('serviceId takes precedence over checkId on deregister (Consul applyDeregister)', async (t) => {
  const s = new Store();
  s.apply(register('n1', { svc: service('web1', 'web'), checks: [check('node-c', 'passing')] }));
  s.apply({ type: 'catalogDeregister', node: 'n1', serviceId: 'web1', checkId: 'node-c' });
  t.same(s.catalog.nodeChecks('n1').map((c) => c.CheckID), ['node-c']);
});

t.test('a missing service answers the last extinction index, so watchers never go backwards', async (t) => {
  const s = new Store();
  s.apply(register('n1', { svc: service('web1', 'web') }));
  t.equal(s.catalog.serviceIndex('other'), 1, 'before any extinction: the services index');
  s.apply(register('n1', { svc: service('db1', 'db') }));
  s.apply({ type: 'catalogDeregister', node: 'n1', serviceId: 'web1' });
  t.equal(s.catalog.serviceIndex('web'), 3);
  t.equal(s.catalog.serviceIndex('never'), 3);
  s.apply(register('n1', { svc: service('web1', 'web') }));
  t.equal(s.catalog.serviceIndex('web'), 4);
  t.equal(s.catalog.nodeIndex('missing'), s.catalog.nodesIndex());
});

t.test('renaming an instance moves it between names', async (t) => {
  const s = new Store();
  s.apply(register('n1', { svc: service('x1', 'old') }));
  s.apply(register('n1', { svc: service('x1', 'new') }));
  t.same(s.catalog.instances('old'), []);
  t.same(s.catalog.instances('new').map((i) => i.ID), ['x1']);
  t.equal(s.catalog.serviceIndex('old'), 2);
  t.equal(s.catalog.serviceIndex('new'), 2);
});

t.test('names are case-insensitive; results in lowercase key order', async (t) => {
  const s = new Store();
  s.apply(register('Beta', { svc: service('Web-1', 'Web') }));
  s.apply(register('alpha', { svc: service('web-2', 'web') }));
  s.apply(register('BETA', { svc: service('WEB-1', 'WEB', { Port: 1 }) }));
  t.same(s.catalog.nodes().map((n) => n.Node), ['alpha', 'Beta'], 'one node Beta');
  t.same(s.catalog.instances('wEb').map((i) => `${i.Node}/${i.ID}/${i.Port}`), ['alpha/web-2/0', 'Beta/WEB-1/1']);
  t.ok(s.catalog.nodeExists('beta'));
  t.equal(s.catalog.checkStatus('BETA', 'x'), undefined);
});

t.test('effects: checks that become critical, for the sessions table', async (t) => {
  const s = new Store();
  let r = s.apply(register('n1', { checks: [check('serfHealth', 'passing'), check('c2', 'critical')] }));
  t.same(r.ok && r.criticalChecks, [{ node: 'n1', checkId: 'c2' }], 'registered critical');
  r = s.apply(register('n1', { checks: [check('c2', 'critical', '', { Output: 'still' })] }));
  t.same(r.ok && r.criticalChecks, [], 'critical to critical is no transition');
  r = s.apply({ type: 'catalogCheckStatus', node: 'n1', checkId: 'serfHealth', status: 'critical', output: 'gone' });
  t.same(r.ok && r.criticalChecks, [{ node: 'n1', checkId: 'serfHealth' }]);
  t.equal(s.catalog.checkStatus('n1', 'SERFHEALTH'), 'critical');
  t.equal(s.catalog.getCheck('n1', 'serfHealth')!.Output, 'gone');
});

t.test('check status updates: unchanged is a no-op, unknown is an error', async (t) => {
  const s = new Store();
  s.apply(register('n1', { svc: service('web1', 'web'), checks: [check('ttl', 'passing', 'web1')] }));
  const before = s.catalog.index();
  t.ok(ok(s.apply({ type: 'catalogCheckStatus', node: 'n1', checkId: 'ttl', status: 'passing', output: '' })));
  t.equal(s.catalog.index(), before);
  s.apply({ type: 'catalogCheckStatus', node: 'n1', checkId: 'ttl', status: 'warning', output: 'slow' });
  t.equal(s.catalog.serviceIndex('web'), 3);
  t.equal(s.catalog.getCheck('n1', 'ttl')!.CreateIndex, 1);
  const r = s.apply({ type: 'catalogCheckStatus', node: 'n1', checkId: 'nope', status: 'passing', output: '' });
  t.same(r, { kind: 'catalog', ok: false, error: 'Check "nope" is not registered on node "n1"' });
});

t.test('command validation: exact fields, statuses, limits', async (t) => {
  const good = register('n1', { svc: service('web1', 'web'), checks: [check('c', 'passing', 'web1')] });
  t.equal(validateCommand(good), null);
  t.same(decodeCommand(encodeCommand(good)), good, 'round trip through the log encoding');
  const bad: [string, unknown][] = [
    ['unknown top-level field', { ...good, extra: 1 }],
    ['bad status', { ...good, checks: [{ ...check('c', 'passing'), Status: 'ok' }] }],
    ['empty node', { ...good, node: { ...good.node, Node: '' } }],
    ['bad node id', { ...good, node: { ...good.node, ID: 'not-a-uuid' } }],
    ['port out of range', { ...good, service: { ...good.service!, Port: 70000 } }],
    ['passing weight 0', { ...good, service: { ...good.service!, Weights: { Passing: 0, Warning: 1 } } }],
    ['too many meta pairs', { ...good, node: { ...good.node, Meta: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])) } }],
    ['duplicate check IDs', { ...good, checks: [check('c', 'passing'), check('C', 'passing')] }],
    ['lone surrogate', { ...good, node: { ...good.node, Node: '\ud800' } }],
    ['deregister without node', { type: 'catalogDeregister' }],
    ['status without output', { type: 'catalogCheckStatus', node: 'n', checkId: 'c', status: 'passing' }],
  ];
  for (const [what, command] of bad) t.not(validateCommand(command), null, what);
  const fsm = new KonsulFsm();
  const r = fsm.applyCommand(1, { ...good, checks: [{ ...check('c', 'passing'), Status: 'bogus' as 'passing' }] });
  t.match(r, { ok: false, code: 'invalidCommand' }, 'the FSM refuses an invalid command');
  t.equal(fsm.catalog.index(), 0);
});

t.test('snapshot section: round trip, deterministic bytes, checked on decode', async (t) => {
  const s = new Store();
  s.apply(register('n1', { id: '40e4a748-2192-161a-0510-9bf59fe950b5', meta: { rack: 'r1' }, svc: service('web1', 'web', { Tags: ['a'], TaggedAddresses: { lan: { Address: '10.0.0.1', Port: 80 } }, Dependencies: ['db'] }) }));
  s.apply(register('n1', { checks: [check('c1', 'warning', 'web1', { Definition: { HTTP: 'http://x', Interval: '10s' } }), check('serfHealth', 'passing')] }));
  s.apply(register('n2', { svc: service('db1', 'db') }));
  s.apply({ type: 'catalogDeregister', node: 'n2', serviceId: 'db1' });
  s.fsm.apply(5, encodeCommand({ type: 'kvSet', key: 'k', value: '', flags: '0' }));
  const bytes = s.fsm.snapshot();
  const copy = new KonsulFsm();
  copy.restore(bytes);
  t.same(copy.snapshot(), bytes, 'restoring and snapshotting again gives the same bytes');
  t.same(copy.catalog.dump(), s.catalog.dump());
  t.equal(copy.catalog.serviceIndex('db'), 4, 'the extinction index survives');
  t.same(copy.catalog.checkServiceNodes('web'), s.catalog.checkServiceNodes('web'));
  const decoded = decodeSnapshot(bytes);
  t.ok(decoded.catalog);
  const empty = new KonsulFsm();
  t.equal(decodeSnapshot(empty.snapshot()).catalog, undefined, 'an unused catalog writes no section');
  const fail = (m: string): never => {
    throw new SnapshotFormatError(m);
  };
  const dump = s.catalog.dump();
  const reencoded = decodeCatalogSection(encodeCatalogSection(dump), fail);
  t.same(reencoded, dump);
  const tamper = (f: (o: Record<string, unknown>) => void) => {
    const o = JSON.parse(new TextDecoder().decode(encodeCatalogSection(dump))) as Record<string, unknown>;
    f(o);
    return new TextEncoder().encode(JSON.stringify(o));
  };
  t.throws(() => decodeCatalogSection(tamper((o) => (o['v'] = 2)), fail), SnapshotFormatError);
  t.throws(() => decodeCatalogSection(tamper((o) => (o['nodes'] = [...(o['nodes'] as unknown[])].reverse())), fail), /out of order/);
  t.throws(() => decodeCatalogSection(tamper((o) => (o['serviceIndexes'] = [])), fail), /cover/);
  t.throws(() => decodeCatalogSection(new TextEncoder().encode('{'), fail), /JSON/);
  t.throws(() => decodeSnapshot(encodeSnapshot({ ...decoded, catalog: { ...dump, index: -1 } })), /index/);
});

t.test('restore into another index space caps the catalog indexes', async (t) => {
  const s = new Store();
  for (let i = 0; i < 5; i++) s.apply(register(`n${i}`, { svc: service(`web${i}`, 'web') }));
  const state = stateForRestoreAt(decodeSnapshot(s.fsm.snapshot()), 3);
  const catalog = state.catalog!;
  t.equal(catalog.index, 3);
  t.ok(catalog.nodes.every((n) => n.node.ModifyIndex <= 3 && n.services.every((x) => x.ModifyIndex <= 3)));
  const fsm = new KonsulFsm();
  fsm.applyNoop(1);
  fsm.applyNoop(2);
  t.same(fsm.apply(3, encodeCommand({ type: 'snapshotRestore', state: s.fsm.snapshot() })), true);
  t.equal(fsm.catalog.instances('web').length, 5);
  t.equal(fsm.catalog.serviceIndex('web'), 3);
});
