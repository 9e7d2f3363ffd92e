// KV transactions (/v1/txn) through the FSM: every verb, all-or-nothing, Consul's result and error
// shapes, one wake-up per transaction, and read-only transactions outside Raft.
import t from 'tap';
import { encodeBase64 } from '../base64.ts';
import { encodeCommand, type TxnKvOpCommand } from '../commands.ts';
import type { FsmResult } from '../konsul-fsm.ts';
import { FakeSessions, TestStore, text, utf8 } from '../test-store.ts';
import { MAX_TXN_OPS, precheckKvTxn, readKvTxn, txnResultJson, type TxnApplyResult } from './kv-txn.ts';

/** A transaction op with a text value, as the HTTP layer would build it. */
function op(verb: string, key: string, fields: { value?: string; flags?: bigint; index?: number; session?: string } = {}): TxnKvOpCommand {
  return {
    verb,
    key,
    ...(fields.value !== undefined ? { value: encodeBase64(utf8(fields.value)) } : {}),
    ...(fields.flags !== undefined ? { flags: fields.flags.toString() } : {}),
    ...(fields.index !== undefined ? { index: fields.index } : {}),
    ...(fields.session !== undefined ? { session: fields.session } : {}),
  };
}

function txn(s: TestStore, ops: TxnKvOpCommand[]): TxnApplyResult {
  const result: FsmResult = s.fsm.apply(s.nextIndex, encodeCommand({ type: 'txn', ops }));
  if (typeof result !== 'object' || !('kind' in result) || result.kind !== 'txn') throw new Error(`not a txn result: ${JSON.stringify(result)}`);
  return result;
}

const decode = (value: string | null): string | null => (value === null ? null : text(Uint8Array.from(Buffer.from(value, 'base64')))!);

t.test('writes: set, cas, lock, unlock answer the stored entry without its value', async (t) => {
  const s = new TestStore(new FakeSessions(['s1']));
  s.put('existing', 'old');
  const index = s.nextIndex;
  const r = txn(s, [
    op('set', 'a', { value: 'A', flags: 7n }),
    op('cas', 'existing', { value: 'new', index: 1 }),
    op('cas', 'created', { value: 'C', index: 0 }),
    op('lock', 'locked', { value: 'L', session: 's1' }),
  ]);
  t.equal(r.errors, null);
  t.same(r.results, [
    { Key: 'a', Flags: '7', Value: null, LockIndex: 0, CreateIndex: index, ModifyIndex: index },
    { Key: 'existing', Flags: '0', Value: null, LockIndex: 0, CreateIndex: 1, ModifyIndex: index },
    { Key: 'created', Flags: '0', Value: null, LockIndex: 0, CreateIndex: index, ModifyIndex: index },
    { Key: 'locked', Flags: '0', Value: null, Session: 's1', LockIndex: 1, CreateIndex: index, ModifyIndex: index },
  ]);
  t.equal(s.value('a'), 'A');
  t.equal(s.value('existing'), 'new');
  t.equal(s.kv.get('locked')!.Session, 's1');
  const next = s.nextIndex;
  const unlocked = txn(s, [op('unlock', 'locked', { value: 'U', session: 's1' })]);
  t.same(unlocked.results, [{ Key: 'locked', Flags: '0', Value: null, LockIndex: 1, CreateIndex: index, ModifyIndex: next }]);
  t.equal(s.kv.get('locked')!.Session, undefined);
  t.equal(s.value('locked'), 'U');
});

t.test('reads: get and get-tree answer values, checks answer entries without values', async (t) => {
  const s = new TestStore(new FakeSessions(['s1']));
  s.put('dir/a', 'one');
  s.put('dir/b', '');
  s.put('lock', 'x', { acquire: 's1' });
  const r = txn(s, [
    op('get', 'dir/a'),
    op('get-tree', 'dir/'),
    op('check-index', 'dir/a', { index: 1 }),
    op('check-session', 'lock', { session: 's1' }),
    op('check-session', 'dir/a'),
    op('check-not-exists', 'nope'),
    op('get-or-empty', 'nope', { flags: 3n }),
  ]);
  t.equal(r.errors, null);
  t.same(
    r.results!.map((e) => [e.Key, decode(e.Value), e.ModifyIndex]),
    [
      ['dir/a', 'one', 1],
      ['dir/a', 'one', 1],
      ['dir/b', null, 2], // an empty value is null, as in /v1/kv
      ['dir/a', null, 1],
      ['lock', null, 3],
      ['dir/a', null, 1],
      ['nope', null, 0],
    ],
  );
  t.equal(r.results![6]!.Flags, '3', 'get-or-empty answers the request\'s own fields for a missing key');
});

t.test('deletes answer nothing: delete, delete-tree, delete-cas', async (t) => {
  const s = new TestStore();
  s.put('x', '1');
  s.put('tree/a', '1');
  s.put('tree/b', '1');
  s.put('cas', '1');
  const r = txn(s, [op('delete', 'x'), op('delete', 'never-existed'), op('delete-tree', 'tree/'), op('delete-cas', 'cas', { index: 4 })]);
  t.same(r, { kind: 'txn', results: [], errors: null });
  t.same(s.kv.keys(''), []);
  t.same(s.kv.tombstones().map((ts) => ts.key), ['cas', 'tree/', 'x']);
});

t.test('later operations see earlier ones, all at the same index', async (t) => {
  const s = new TestStore();
  const index = s.nextIndex;
  const r = txn(s, [op('set', 'k', { value: 'v1' }), op('check-index', 'k', { index }), op('get', 'k'), op('delete', 'k'), op('check-not-exists', 'k')]);
  t.equal(r.errors, null);
  t.same(r.results!.map((e) => decode(e.Value)), [null, null, 'v1']);
  t.equal(s.kv.get('k'), undefined);
  t.equal(s.kv.index(), index);
});

t.test('Consul\'s error texts, one per failed operation, and nothing applied', async (t) => {
  const s = new TestStore(new FakeSessions(['s1', 's2']));
  s.put('k', 'v');
  s.put('held', 'x', { acquire: 's2' });
  const before = s.kv.dump();
  const beforeIndex = s.kv.index();
  const r = txn(s, [
    op('set', 'written-then-undone', { value: 'w' }),
    op('cas', 'k', { value: 'v2', index: 99 }),
    op('lock', 'held', { session: 's1' }),
    op('lock', 'k', { session: 'unknown-session' }),
    op('lock', 'k', { session: '' }),
    op('unlock', 'k', { session: 's1' }),
    op('get', 'missing'),
    op('check-index', 'k', { index: 5 }),
    op('check-index', 'missing', { index: 1 }),
    op('check-session', 'held', { session: 's1' }),
    op('check-session', 'missing', { session: 's1' }),
    op('check-not-exists', 'k'),
    op('delete-cas', 'k', { index: 0 }),
    op('delete-tree', ''),
  ]);
  t.equal(r.results, null);
  t.same(r.errors, [
    { OpIndex: 1, What: 'failed to set key "k", index is stale' },
    { OpIndex: 2, What: 'failed to lock key "held", lock is already held' },
    { OpIndex: 3, What: 'invalid session "unknown-session"' },
    { OpIndex: 4, What: 'missing session' },
    { OpIndex: 5, What: 'failed to unlock key "k", lock isn\'t held, or is held by another session' },
    { OpIndex: 6, What: 'key "missing" doesn\'t exist' },
    { OpIndex: 7, What: 'failed index check for key "k", current modify index 1 != 5' },
    { OpIndex: 8, What: 'failed to check index, key "missing" doesn\'t exist' },
    { OpIndex: 9, What: 'failed session check for key "held", current session "s2" != "s1"' },
    { OpIndex: 10, What: 'failed to check session, key "missing" doesn\'t exist' },
    { OpIndex: 11, What: 'key "k" exists' },
    { OpIndex: 12, What: 'failed to delete key "k", index is stale' },
  ]);
  t.same(s.kv.dump(), before, 'every table entry and tombstone as before (the delete-tree of everything too)');
  t.equal(s.kv.index(), beforeIndex, 'the table index did not move');
  t.same(s.kv.keysLockedBy('s2'), ['held'], 'locks are tracked as before');
});

t.test('a rollback restores what the writes replaced: entries, locks, tombstones, sorted keys', async (t) => {
  const s = new TestStore(new FakeSessions(['s1', 's2']));
  s.put('a/1', 'one');
  s.put('a/2', 'two', { acquire: 's1' });
  s.put('gone', 'x');
  s.del('gone');
  s.put('b', 'b');
  const before = s.kv.dump();
  const r = txn(s, [
    op('delete-tree', 'a/'),
    op('set', 'a/2', { value: 'recreated' }),
    op('lock', 'a/3', { session: 's2' }),
    op('set', 'gone', { value: 'back' }),
    op('delete', 'gone'),
    op('delete', 'b'),
    op('unlock', 'nothing', { session: 's1' }),
  ]);
  t.same(r.errors, [{ OpIndex: 6, What: 'failed to unlock key "nothing", lock isn\'t held, or is held by another session' }]);
  t.same(s.kv.dump(), before);
  t.same(s.kv.keys('a/'), ['a/1', 'a/2']);
  t.same(s.kv.keysLockedBy('s1'), ['a/2']);
  t.same(s.kv.keysLockedBy('s2'), []);
  t.equal(s.kv.prefixIndex('a/'), before.entries.find((e) => e.Key === 'a/2')!.ModifyIndex);
  // The table still works normally afterwards.
  t.equal(s.put('a/3', 'three'), true);
  t.same(s.kv.keys('a/'), ['a/1', 'a/2', 'a/3']);
});

t.test('watchers wake once per transaction, for every key it changed, and not for a failed one', async (t) => {
  const s = new TestStore();
  s.put('w/a', '0');
  const calls: string[] = [];
  s.fsm.watches.watchPrefix('w/', (i) => calls.push(`prefix@${i}`));
  s.fsm.watches.watchKey('w/a', (i) => calls.push(`a@${i}`));
  s.fsm.watches.watchKey('w/b', (i) => calls.push(`b@${i}`));
  s.fsm.watches.watchKey('other', (i) => calls.push(`other@${i}`));
  const index = s.nextIndex;
  txn(s, [op('set', 'w/a', { value: '1' }), op('set', 'w/b', { value: '1' }), op('set', 'w/a', { value: '2' })]);
  t.same(calls.sort(), [`a@${index}`, `b@${index}`, `prefix@${index}`]);
  calls.length = 0;
  txn(s, [op('set', 'w/a', { value: '3' }), op('get', 'missing')]);
  t.same(calls, [], 'a rolled-back transaction wakes nobody');
  txn(s, [op('get', 'w/a'), op('set', 'w/a', { value: '2' })]);
  t.same(calls, [], 'a write that changes nothing wakes nobody (Consul skips it)');
});

t.test('a transaction is one log entry: replicas agree, snapshots match', async (t) => {
  const run = (): TestStore => {
    const s = new TestStore(new FakeSessions(['s1']));
    txn(s, [op('set', 'a', { value: '1' }), op('lock', 'b', { session: 's1' })]);
    txn(s, [op('set', 'c', { value: '1' }), op('check-index', 'a', { index: 999 })]);
    txn(s, [op('delete-tree', ''), op('set', 'z', { value: 'z' })]);
    return s;
  };
  t.same(run().fsm.snapshot(), run().fsm.snapshot());
  t.same(run().kv.keys(''), ['z']);
});

t.test('invalid txn commands are refused whole', async (t) => {
  const s = new TestStore();
  const bad: [string, unknown][] = [
    ['no ops', { type: 'txn', ops: [] }],
    ['too many ops', { type: 'txn', ops: Array.from({ length: MAX_TXN_OPS + 1 }, () => op('get', 'k')) }],
    ['an unknown verb', { type: 'txn', ops: [op('explode', 'k')] }],
    ['an empty key for set', { type: 'txn', ops: [op('set', '')] }],
    ['a value that is not base64', { type: 'txn', ops: [{ verb: 'set', key: 'k', value: '!!' }] }],
    ['an unknown field', { type: 'txn', ops: [{ verb: 'get', key: 'k', recurse: true }] }],
    ['flags out of range', { type: 'txn', ops: [{ verb: 'set', key: 'k', flags: '18446744073709551616' }] }],
  ];
  for (const [name, command] of bad) {
    const result = s.fsm.apply(s.nextIndex, utf8(JSON.stringify(command)));
    t.match(result, { ok: false, code: 'invalidCommand' }, name);
  }
  t.equal(s.kv.size, 0);
});

t.test('precheck: empty keys first (Consul\'s preCheck), then unknown verbs', async (t) => {
  t.same(precheckKvTxn([{ verb: 'set', key: '' }, { verb: 'delete-tree', key: '' }, { verb: 'nope', key: 'k' }]), [{ OpIndex: 0, What: 'Must provide key' }]);
  t.same(precheckKvTxn([{ verb: 'get', key: 'k' }, { verb: 'nope', key: 'k' }]), [{ OpIndex: 1, What: 'unknown KV verb "nope"' }]);
  t.same(precheckKvTxn([{ verb: 'get-tree', key: 'k' }]), []);
});

t.test('read-only transactions run against the current state and change nothing', async (t) => {
  const s = new TestStore();
  s.put('r/1', 'one');
  const before = s.kv.dump();
  const ok = txnResultJson(readKvTxn(s.kv, [{ verb: 'get', key: 'r/1' }, { verb: 'check-not-exists', key: 'r/2' }]));
  t.same(ok.results!.map((e) => decode(e.Value)), ['one']);
  const failed = txnResultJson(readKvTxn(s.kv, [{ verb: 'get', key: 'r/2' }]));
  t.same(failed, { kind: 'txn', results: null, errors: [{ OpIndex: 0, What: 'key "r/2" doesn\'t exist' }] });
  t.throws(() => readKvTxn(s.kv, [{ verb: 'set', key: 'r/3' }]), /is a write/);
  t.same(s.kv.dump(), before);
});

t.test('lock refuses a key under lock-delay with Consul\'s text, from the proposer\'s clock', async (t) => {
  // The real sessions table: a session with the default 15 s lock-delay holds k, then is destroyed at T.
  const s = new TestStore();
  const session = '3f0c6a52-8d1e-4b7a-9c2d-5e6f7a8b9c0d';
  const other = '4a1d7b63-9e2f-4c8b-8d3e-6f7a8b9c0d1e';
  const T = 1_800_000_000_000;
  // Sessions need a registered node (Consul refuses a session on an unknown node).
  s.fsm.apply(s.nextIndex, encodeCommand({
    type: 'catalogRegister',
    node: { Node: 'n1', ID: '', Address: '127.0.0.1', Datacenter: 'dc1', TaggedAddresses: {}, Meta: {} },
    skipNodeUpdate: false,
    checks: [],
  }));
  for (const id of [session, other]) {
    s.fsm.apply(s.nextIndex, encodeCommand({ type: 'sessionCreate', id, name: '', node: 'n1', lockDelayNs: 15_000_000_000, behavior: 'release', ttl: '', nodeChecks: null, serviceChecks: null, checks: null }));
  }
  const lock = (nowMs: number) => s.fsm.apply(s.nextIndex, encodeCommand({ type: 'txn', ops: [op('lock', 'k', { value: 'v', session: other })], nowMs }));
  t.match(s.fsm.apply(s.nextIndex, encodeCommand({ type: 'txn', ops: [op('lock', 'k', { session })], nowMs: T - 1000 })), { errors: null });
  s.fsm.apply(s.nextIndex, encodeCommand({ type: 'sessionDestroy', id: session, nowMs: T }));
  t.same(lock(T + 1000), { kind: 'txn', results: null, errors: [{ OpIndex: 0, What: 'failed to lock key "k" due to lock delay' }] });
  t.match(lock(T + 15_001), { errors: null, results: [{ Key: 'k', Session: other }] }, 'after the delay the lock is free');
});
