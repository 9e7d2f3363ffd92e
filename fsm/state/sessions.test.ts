// The sessions table: create/destroy/renew with Consul's semantics, lock release and delete on
// invalidation, lock-delay, TTL expiry races, catalog-driven invalidation, commands and snapshots.
import t from 'tap';
import { encodeCommand, kvSetCommand, validateCommand, type Command, type SessionCreateCommand } from '../commands.ts';
import { KonsulFsm, type ApplyError, type FsmResult } from '../konsul-fsm.ts';
import { decodeSnapshot, encodeSnapshot, SnapshotFormatError } from '../snapshot.ts';
import { stateForRestoreAt } from '../restore.ts';
import { KvTable } from './kv.ts';
import type { CatalogCheckSpec } from './catalog-commands.ts';
import { decodeSessionsSection, encodeSessionsSection } from './sessions-snapshot.ts';
import {
  ANY_NODE,
  DEFAULT_LOCK_DELAY_NS,
  sessionJson,
  sessionNodeWatchKey,
  SessionsTable,
  type SessionApplyResult,
  type SessionCatalogLookup,
  type SessionSpec,
} from './sessions.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

const ID1 = '11111111-1111-4111-8111-111111111111';
const ID2 = '22222222-2222-4222-8222-222222222222';
const ID3 = '33333333-3333-4333-8333-333333333333';

function createCommand(id: string, extra: Partial<SessionCreateCommand> = {}): SessionCreateCommand {
  return {
    type: 'sessionCreate',
    id,
    name: '',
    node: 'n1',
    lockDelayNs: DEFAULT_LOCK_DELAY_NS,
    behavior: 'release',
    ttl: '',
    nodeChecks: ['serfHealth'],
    serviceChecks: null,
    checks: null,
    ...extra,
  };
}

/** Registers a node with passing node-level checks (sessions need their node and checks). */
function registerNode(s: Store, node: string, checks: CatalogCheckSpec[]): void {
  const r = s.apply({
    type: 'catalogRegister',
    node: { Node: node, ID: '', Address: '10.0.0.1', Datacenter: 'dc1', TaggedAddresses: {}, Meta: {} },
    skipNodeUpdate: false,
    checks,
  });
  if (!(r as { ok: boolean }).ok) throw new Error(`register failed: ${JSON.stringify(r)}`);
}

function check(status: CatalogCheckSpec['Status'], id = 'serfHealth'): CatalogCheckSpec {
  return { CheckID: id, Name: id, Status: status, Notes: '', Output: '', ServiceID: '', Type: '', Interval: '', Timeout: '', Definition: {} };
}

/**
 * An FSM driven like the Raft host drives it (encoded commands at consecutive indexes), with node
 * n1 registered with the checks the tests bind sessions to.
 */
class Store {
  readonly fsm = new KonsulFsm();

  constructor() {
    registerNode(this, 'n1', ['serfHealth', 'a', 'b', 'x', 'svc'].map((id) => check('passing', id)));
  }

  apply(command: Command): FsmResult {
    return this.fsm.apply(this.fsm.appliedIndex + 1, encodeCommand(command));
  }

  create(id: string, extra: Partial<SessionCreateCommand> = {}): SessionApplyResult | ApplyError {
    return this.apply(createCommand(id, extra)) as SessionApplyResult | ApplyError;
  }

  destroy(id: string, nowMs: number, ifRenewIndex?: number): SessionApplyResult {
    return this.apply({ type: 'sessionDestroy', id, nowMs, ...(ifRenewIndex !== undefined ? { ifRenewIndex } : {}) }) as SessionApplyResult;
  }

  renew(id: string): SessionApplyResult {
    return this.apply({ type: 'sessionRenew', id }) as SessionApplyResult;
  }

  acquire(key: string, session: string, nowMs?: number, value = 'v'): FsmResult {
    return this.apply(kvSetCommand({ key, value: enc.encode(value), acquire: session, ...(nowMs !== undefined ? { nowMs } : {}) }));
  }

  release(key: string, session: string, value = 'v'): FsmResult {
    return this.apply(kvSetCommand({ key, value: enc.encode(value), release: session }));
  }

  put(key: string, value: string): FsmResult {
    return this.apply(kvSetCommand({ key, value: enc.encode(value) }));
  }

  get sessions() {
    return this.fsm.sessions;
  }

  get kv() {
    return this.fsm.kv;
  }
}

t.test('create: the session with its fields and indexes; list, by node, info', async (t) => {
  const s = new Store();
  registerNode(s, 'Web-1', [check('passing')]);
  s.put('unrelated', 'x');
  const r = s.create(ID2, { name: 'lock', node: 'Web-1', ttl: '15.0s', lockDelayNs: 1_000_000 });
  t.same(r, { kind: 'sessionCreated', id: ID2 });
  const createdAt = s.fsm.appliedIndex;
  s.create(ID1);
  const session = s.sessions.get(ID2)!;
  t.same(sessionJson(session), {
    ID: ID2,
    Name: 'lock',
    Node: 'Web-1',
    LockDelay: 1_000_000,
    Behavior: 'release',
    TTL: '15.0s',
    NodeChecks: ['serfHealth'],
    ServiceChecks: null,
    CreateIndex: createdAt,
    ModifyIndex: createdAt,
  });
  t.same(Object.keys(sessionJson(session)), ['ID', 'Name', 'Node', 'LockDelay', 'Behavior', 'TTL', 'NodeChecks', 'ServiceChecks', 'CreateIndex', 'ModifyIndex'], "Consul's field order");
  t.equal(s.sessions.index(), createdAt + 1, 'the table index is the last create');
  t.same(s.sessions.list().map((x) => x.ID), [ID1, ID2], 'listed in ID order');
  t.same(s.sessions.listByNode('web-1').map((x) => x.ID), [ID2], 'node names match case-insensitively');
  t.same(s.sessions.listByNode('nobody'), []);
  t.equal(s.sessions.get(ID3), undefined);
});

t.test('Checks (legacy) is answered only when non-empty; ServiceChecks keep ID and Namespace', async (t) => {
  const s = new Store();
  s.create(ID1, { checks: ['a', 'b'], serviceChecks: [{ id: 'svc', namespace: '' }] });
  const json = sessionJson(s.sessions.get(ID1)!);
  t.same(json['Checks'], ['a', 'b']);
  t.same(json['ServiceChecks'], [{ ID: 'svc', Namespace: '' }]);
  s.create(ID2, { checks: [] });
  t.notOk('Checks' in sessionJson(s.sessions.get(ID2)!));
});

t.test('create refused by the state: missing node, missing check, critical check (Consul texts)', async (t) => {
  const catalog: SessionCatalogLookup = {
    nodeExists: (node) => node === 'n1',
    checkStatus: (node, checkId) => (node !== 'n1' ? undefined : checkId === 'serfHealth' ? 'passing' : checkId === 'bad' ? 'critical' : undefined),
  };
  const table = new SessionsTable();
  const spec = (extra: Partial<SessionSpec>): SessionSpec => ({
    ID: ID1,
    Name: '',
    Node: 'n1',
    LockDelay: 0,
    Behavior: 'release',
    TTL: '',
    NodeChecks: ['serfHealth'],
    ServiceChecks: null,
    Checks: null,
    ...extra,
  });
  t.same(table.create(1, spec({ Node: 'n2' }), catalog), { ok: false, error: 'Missing node registration' });
  t.same(table.create(1, spec({ NodeChecks: ['serfHealth', 'nope'] }), catalog), { ok: false, error: "Missing check 'nope' registration" });
  t.same(table.create(1, spec({ ServiceChecks: [{ ID: 'bad', Namespace: '' }] }), catalog), { ok: false, error: "Check 'bad' is in critical state" });
  t.equal(table.size, 0, 'nothing was created');
  t.equal(table.index(), 0);
  t.ok(table.create(1, spec({}), catalog).ok);
  t.same(table.create(2, spec({}), catalog), { ok: false, error: `Session ID '${ID1}' is already in use` });
});

t.test('a refused create is an ApplyError with the text and changes nothing', async (t) => {
  const s = new Store();
  s.create(ID1);
  const index = s.sessions.index();
  t.same(s.create(ID1), { ok: false, code: 'sessionRejected', error: `Session ID '${ID1}' is already in use` });
  t.same(s.create(ID2, { node: 'nowhere' }), { ok: false, code: 'sessionRejected', error: 'Missing node registration' }, 'the catalog decides');
  t.same(s.create(ID2, { nodeChecks: ['nope'] }), { ok: false, code: 'sessionRejected', error: "Missing check 'nope' registration" });
  t.equal(s.sessions.index(), index);
  t.equal(s.sessions.size, 1);
});

t.test('KV locks with a real session: acquire, re-acquire by the holder, release', async (t) => {
  const s = new Store();
  t.same(s.acquire('k', ID1, 0), { ok: false, code: 'invalidSession', error: `invalid session "${ID1}"` }, 'no such session yet');
  s.create(ID1);
  s.create(ID2);
  t.equal(s.acquire('k', ID1, 0), true);
  t.equal(s.kv.get('k')!.LockIndex, 1);
  t.equal(s.acquire('k', ID1, 0, 'again'), true, 'the holder may acquire again');
  t.equal(s.kv.get('k')!.LockIndex, 1, 'without bumping LockIndex');
  t.equal(dec.decode(s.kv.get('k')!.Value), 'again', 'but the value is written');
  t.equal(s.acquire('k', ID2, 0), false, 'another session cannot take it');
  t.equal(s.release('k', ID2), false, 'nor release it');
  t.equal(s.release('k', ID1, 'done'), true);
  t.equal(s.kv.get('k')!.Session, undefined);
  t.equal(s.kv.get('k')!.LockIndex, 1, 'release leaves LockIndex as it is');
  t.equal(s.acquire('k', ID2, 0), true, 'an explicit release leaves no lock-delay');
  t.equal(s.kv.get('k')!.LockIndex, 2);
});

t.test('destroy (release): locks are released, LockIndex kept, ModifyIndex bumped, lock-delay starts', async (t) => {
  const s = new Store();
  s.create(ID1);
  s.create(ID2);
  s.acquire('a', ID1, 1000);
  s.acquire('b', ID1, 1000);
  s.acquire('c', ID2, 1000);
  const before = s.kv.get('a')!;
  const woken: string[] = [];
  s.fsm.watches.watchKey('a', () => woken.push('kv a'));
  s.fsm.watches.watchKey('c', () => woken.push('kv c'));
  s.fsm.watches.watchKey(ID1, () => woken.push('session'), 'sessions');
  s.fsm.watches.watchKey(sessionNodeWatchKey('N1'), () => woken.push('node'), 'sessions');
  s.fsm.watches.watchKey(ID2, () => woken.push('other session'), 'sessions');
  const r = s.destroy(ID1, 2000);
  t.same(r, { kind: 'sessionDestroyed', destroyed: true });
  const index = s.fsm.appliedIndex;
  const after = s.kv.get('a')!;
  t.equal(after.Session, undefined, 'released');
  t.equal(after.LockIndex, before.LockIndex, 'LockIndex kept');
  t.equal(after.ModifyIndex, index, 'ModifyIndex is the destroy');
  t.equal(after.CreateIndex, before.CreateIndex);
  t.same(after.Value, before.Value, 'the value stays');
  t.equal(s.kv.get('c')!.Session, ID2, "another session's lock is untouched");
  t.same(woken.sort(), ['kv a', 'node', 'session'], 'only the watchers of what changed');
  t.equal(s.sessions.get(ID1), undefined);
  t.equal(s.sessions.index(), index);
  t.same(s.kv.keysLockedBy(ID1), []);
  t.equal(s.sessions.lockDelayUntil('a'), 2000 + 15_000, 'the default lock-delay is 15 s');
  t.equal(s.sessions.lockDelayUntil('c'), undefined);
  t.same(s.destroy(ID1, 2001), { kind: 'sessionDestroyed', destroyed: false }, 'destroying it again changes nothing');
  t.equal(s.sessions.index(), index);
});

t.test('destroy (delete): the locked keys are deleted (tombstoned) and put under lock-delay', async (t) => {
  const s = new Store();
  s.create(ID1, { behavior: 'delete', lockDelayNs: 1_000_000 });
  s.acquire('svc/leader', ID1, 0);
  s.put('svc/other', 'x');
  s.destroy(ID1, 500);
  t.equal(s.kv.get('svc/leader'), undefined, 'deleted');
  t.same(s.kv.tombstones().map((x) => x.key), ['svc/leader']);
  t.equal(s.kv.get('svc/other')?.Session, undefined);
  t.equal(s.sessions.lockDelayUntil('svc/leader'), 501, "Patroni's 0.001s lock-delay is 1 ms");
});

t.test('lock-delay: another session cannot acquire until it ends; only acquire is refused', async (t) => {
  const s = new Store();
  s.create(ID1);
  s.create(ID2);
  s.acquire('k', ID1, 1000);
  s.destroy(ID1, 2000);
  const entry = s.kv.get('k')!;
  t.equal(s.acquire('k', ID2, 2000), false, 'refused at once');
  t.equal(s.acquire('k', ID2, 16_999), false, 'refused 1 ms before the end');
  t.same(s.kv.get('k'), entry, 'a refused acquire changes nothing');
  t.equal(s.put('k', 'plain'), true, 'a plain PUT is not a lock and is not refused');
  t.equal(s.acquire('k', ID2, 17_000), true, 'allowed when the delay has ended');
  t.equal(s.kv.get('k')!.LockIndex, 2);
  t.equal(s.kv.get('k')!.Session, ID2);
});

t.test('lock-delay: an acquire without a clock (an older log entry) is not refused', async (t) => {
  const s = new Store();
  s.create(ID1);
  s.create(ID2);
  s.acquire('k', ID1, 1000);
  s.destroy(ID1, 2000);
  t.equal(s.acquire('k', ID2), true);
});

t.test('lock-delay: capped at 60 s; 0 or negative means none; sub-millisecond rounds up', async (t) => {
  const s = new Store();
  s.create(ID1, { lockDelayNs: 3_600_000_000_000 });
  s.create(ID2, { lockDelayNs: 0 });
  s.create(ID3, { lockDelayNs: 500_000 });
  s.acquire('long', ID1, 0);
  s.acquire('none', ID2, 0);
  s.acquire('short', ID3, 0);
  s.destroy(ID1, 100);
  s.destroy(ID2, 100);
  s.destroy(ID3, 100);
  t.equal(s.sessions.lockDelayUntil('long'), 60_100, 'MaxLockDelay is 60 s');
  t.equal(s.sessions.lockDelayUntil('none'), undefined);
  t.equal(s.sessions.lockDelayUntil('short'), 101);
  const table = new SessionsTable();
  const kv = new KvTable();
  table.create(1, { ID: ID1, Name: '', Node: 'n', LockDelay: -5_000_000_000, Behavior: 'release', TTL: '', NodeChecks: [], ServiceChecks: null, Checks: null }, ANY_NODE);
  kv.acquire(2, { key: 'neg', value: new Uint8Array(), flags: 0n }, ID1, table, 0);
  table.destroy(3, ID1, kv, 100);
  t.equal(table.lockDelayUntil('neg'), undefined, 'a negative LockDelay sets none');
});

t.test('lock-delay: expired delays are forgotten at the next invalidation', async (t) => {
  const s = new Store();
  s.create(ID1, { lockDelayNs: 1_000_000_000 });
  s.create(ID2, { lockDelayNs: 1_000_000_000 });
  s.acquire('a', ID1, 0);
  s.acquire('b', ID2, 0);
  s.destroy(ID1, 1000);
  t.equal(s.sessions.lockDelayCount, 1);
  s.destroy(ID2, 5000);
  t.equal(s.sessions.lockDelayCount, 1, "a's ended at 2000 and is gone; b's is new");
  t.equal(s.sessions.lockDelayUntil('b'), 6000);
});

t.test('renew: answers the session, moves only the renewal index; unknown answers null', async (t) => {
  const s = new Store();
  s.create(ID1, { ttl: '10s' });
  const index = s.sessions.index();
  t.equal(s.sessions.renewIndex(ID1), index, 'a create counts as a renewal');
  const woken: string[] = [];
  s.fsm.watches.watchTable('sessions', () => woken.push('table'));
  const r = s.renew(ID1);
  t.same(r, { kind: 'sessionRenewed', session: sessionJson(s.sessions.get(ID1)!) });
  t.equal(s.sessions.renewIndex(ID1), index + 1);
  t.equal(s.sessions.index(), index, 'no index moves: Consul does not write renewals');
  t.equal(s.sessions.get(ID1)!.ModifyIndex, index);
  t.same(woken, [], 'no watcher wakes');
  t.same(s.renew(ID2), { kind: 'sessionRenewed', session: null });
});

t.test('TTL expiry names the renewal it saw: a renewal that commits first wins', async (t) => {
  const s = new Store();
  s.create(ID1, { ttl: '10s' });
  const seen = s.sessions.renewIndex(ID1)!;
  s.renew(ID1);
  t.same(s.destroy(ID1, 1000, seen), { kind: 'sessionDestroyed', destroyed: false }, 'renewed since: the expiry is void');
  t.ok(s.sessions.get(ID1));
  t.same(s.destroy(ID1, 1000, s.sessions.renewIndex(ID1)), { kind: 'sessionDestroyed', destroyed: true });
  t.equal(s.sessions.get(ID1), undefined);
});

t.test('catalog: a bound check turning critical invalidates its sessions in the same apply', async (t) => {
  const s = new Store();
  registerNode(s, 'n1', [check('passing'), check('passing', 'app')]);
  s.acquire('clock', ID3, 5000); // refused (no session), but the proposer's clock is recorded
  s.create(ID1, { nodeChecks: ['serfHealth'] });
  s.create(ID2, { nodeChecks: ['app'] });
  s.acquire('k1', ID1, 5000);
  s.acquire('k2', ID2, 5000);
  const kvWoken: string[] = [];
  s.fsm.watches.watchPrefix('', () => kvWoken.push('kv'));
  s.apply({ type: 'catalogCheckStatus', node: 'n1', checkId: 'serfHealth', status: 'warning', output: '' });
  t.ok(s.sessions.get(ID1), 'warning does not invalidate');
  s.apply({ type: 'catalogCheckStatus', node: 'n1', checkId: 'serfHealth', status: 'critical', output: 'down' });
  const index = s.fsm.appliedIndex;
  t.equal(s.sessions.get(ID1), undefined, 'critical invalidates');
  t.ok(s.sessions.get(ID2), 'a session bound to another check stays');
  t.equal(s.kv.get('k1')!.Session, undefined);
  t.equal(s.kv.get('k1')!.ModifyIndex, index, 'released at the catalog write');
  t.same(kvWoken, ['kv'], 'KV watchers woke once');
  t.equal(s.sessions.lockDelayUntil('k1'), 5000 + 15_000, 'lock-delay runs from the latest proposer clock');
  s.apply({ type: 'catalogDeregister', node: 'n1', checkId: 'app' });
  t.equal(s.sessions.get(ID2), undefined, 'deregistering a bound check invalidates too');
});

t.test('catalog: deregistering a node invalidates all its sessions', async (t) => {
  const s = new Store();
  registerNode(s, 'n1', [check('passing')]);
  registerNode(s, 'n2', [check('passing')]);
  s.create(ID1, { node: 'n1', nodeChecks: [] });
  s.create(ID2, { node: 'N1', nodeChecks: [] });
  s.create(ID3, { node: 'n2' });
  s.apply({ type: 'catalogDeregister', node: 'n1' });
  t.same(s.sessions.list().map((x) => x.ID), [ID3]);
});

t.test('commands: validation refuses malformed session commands', async (t) => {
  const bad: [string, unknown][] = [
    ['id not a UUID', { ...createCommand(ID1), id: 'x' }],
    ['upper-case id', { ...createCommand(ID1), id: 'AAAAAAAA-1111-4111-8111-111111111111' }],
    ['behavior', { ...createCommand(ID1), behavior: 'keep' }],
    ['ttl', { ...createCommand(ID1), ttl: '10' }],
    ['lockDelayNs', { ...createCommand(ID1), lockDelayNs: 1.5 }],
    ['empty node', { ...createCommand(ID1), node: '' }],
    ['checks type', { ...createCommand(ID1), nodeChecks: 'serfHealth' }],
    ['empty check id', { ...createCommand(ID1), checks: [''] }],
    ['service check fields', { ...createCommand(ID1), serviceChecks: [{ id: 'x' }] }],
    ['unknown field', { ...createCommand(ID1), extra: 1 }],
    ['destroy without clock', { type: 'sessionDestroy', id: ID1 }],
    ['destroy bad renew index', { type: 'sessionDestroy', id: ID1, nowMs: 1, ifRenewIndex: -1 }],
    ['renew empty id', { type: 'sessionRenew', id: '' }],
    // nowMs may come without acquire (it dates values kept by kv recovery), but must be a time.
    ['kvSet nowMs not a time', { type: 'kvSet', key: 'k', value: '', flags: '0', nowMs: -1 }],
  ];
  for (const [what, command] of bad) t.not(validateCommand(command), null, what);
  t.equal(validateCommand(createCommand(ID1)), null);
  t.equal(validateCommand({ type: 'sessionDestroy', id: 'anything', nowMs: 0 }), null);
  t.equal(validateCommand({ type: 'kvSet', key: 'k', value: '', flags: '0', acquire: ID1, nowMs: 1 }), null);
});

t.test('snapshot: the sessions section round-trips, and two replicas write the same bytes', async (t) => {
  const a = new Store();
  const b = new Store();
  for (const s of [a, b]) {
    s.create(ID1, { ttl: '10s', checks: ['x'], serviceChecks: [{ id: 'svc', namespace: '' }] });
    s.create(ID2, { behavior: 'delete', name: 'ünïcödé' });
    s.acquire('k', ID1, 1000);
    s.renew(ID2);
    s.create(ID3);
    s.acquire('m', ID3, 1000);
    s.destroy(ID3, 2000);
  }
  const bytes = a.fsm.snapshot();
  t.same(bytes, b.fsm.snapshot(), 'deterministic');
  const restored = new KonsulFsm();
  restored.restore(bytes);
  t.same(restored.sessions.dump(), a.sessions.dump());
  t.equal(restored.sessions.renewIndex(ID2), a.sessions.renewIndex(ID2));
  t.equal(restored.sessions.lockDelayUntil('m'), 17_000);
  t.equal(restored.sessions.clockMs(), 2000);
  t.same(restored.snapshot(), bytes, 'snapshot of the restored state gives the same bytes');
  t.same(restored.sessions.listByNode('n1').map((x) => x.ID), [ID1, ID2], 'indexes rebuilt');
  t.same(restored.kv.keysLockedBy(ID1), ['k']);
});

t.test('snapshot: an unused table writes no section; a corrupt section is refused', async (t) => {
  const s = new Store();
  s.put('k', 'v');
  const state = decodeSnapshot(s.fsm.snapshot());
  t.equal(state.sessions, undefined, 'no sessions section');
  const good = new Store();
  good.create(ID1);
  const dump = good.sessions.dump();
  const section = dec.decode(encodeSessionsSection(dump));
  const fail = (message: string): never => {
    throw new SnapshotFormatError(message);
  };
  t.same(decodeSessionsSection(enc.encode(section), fail), dump);
  t.throws(() => decodeSessionsSection(enc.encode(section.replace('"release"', '"keep"')), fail), SnapshotFormatError);
  t.throws(() => decodeSessionsSection(enc.encode(section.replace('"v":1', '"v":2')), fail), SnapshotFormatError);
  t.throws(() => decodeSessionsSection(enc.encode('[]'), fail), SnapshotFormatError);
  const twice = { ...dump, sessions: [dump.sessions[0]!, dump.sessions[0]!] };
  t.throws(() => decodeSessionsSection(encodeSessionsSection(twice), fail), SnapshotFormatError, 'duplicate ids are out of order');
  t.throws(() => decodeSnapshot(encodeSnapshot({ ...decodeSnapshot(good.fsm.snapshot()), sessions: { ...dump, index: -1 } })));
});

t.test('restore at a lower index caps session indexes; lock-delays are kept', async (t) => {
  const s = new Store();
  for (let i = 0; i < 10; i++) s.put(`k${i}`, 'x');
  s.create(ID1);
  s.acquire('a', ID1, 100);
  s.create(ID2);
  s.renew(ID2);
  s.destroy(ID1, 200);
  const moved = stateForRestoreAt(decodeSnapshot(s.fsm.snapshot()), 5);
  t.equal(moved.sessions!.index, 5);
  const [only] = moved.sessions!.sessions;
  t.equal(only!.session.ID, ID2);
  t.equal(only!.session.CreateIndex, 5);
  t.equal(only!.renewIndex, 5);
  t.same(moved.sessions!.lockDelays, [{ key: 'a', untilMs: 15_200 }]);
});
