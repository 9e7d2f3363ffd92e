// The snapshotRestore command (PUT /v1/snapshot): the whole state replaced at one log index, on
// every replica alike; a bad snapshot changes nothing; indexes stay in this log's index space.
import t from 'tap';
import { encodeBase64 } from './base64.ts';
import { decodeCommand, encodeCommand } from './commands.ts';
import { KonsulFsm } from './konsul-fsm.ts';
import { stateForRestoreAt } from './restore.ts';
import { decodeSnapshot } from './snapshot.ts';
import { FakeSessions, TestStore, utf8 } from './test-store.ts';

function fire(s: TestStore, name: string): void {
  s.fsm.apply(s.nextIndex, encodeCommand({ type: 'eventFire', id: '0d0f3e64-9c55-4c10-a6b1-5b1cbb5c2e11', name, payload: encodeBase64(utf8(name)), nodeFilter: '', serviceFilter: '', tagFilter: '' }));
}

function restore(s: TestStore, state: Uint8Array) {
  return s.fsm.apply(s.nextIndex, encodeCommand({ type: 'snapshotRestore', state }));
}

/** A store whose snapshot is taken early, then changed in every way. */
function saved(): { s: TestStore; snapshot: Uint8Array } {
  const s = new TestStore(new FakeSessions(['s1']));
  s.put('keep/a', 'a1');
  s.put('keep/lock', 'l', { acquire: 's1' });
  s.put('gone', 'x');
  s.del('gone');
  fire(s, 'before');
  const snapshot = s.fsm.snapshot();
  s.put('keep/a', 'a2');
  s.put('new', 'n');
  s.del('keep/lock');
  fire(s, 'after');
  return { s, snapshot };
}

t.test('the command is binary: the snapshot bytes travel as they are', async (t) => {
  const state = new Uint8Array([1, 2, 3, 250]);
  const bytes = encodeCommand({ type: 'snapshotRestore', state });
  t.same([...bytes], [0, 1, 1, 2, 3, 250]);
  t.same(decodeCommand(bytes), { type: 'snapshotRestore', state });
  t.throws(() => decodeCommand(new Uint8Array([0, 9, 1])), /unknown binary command/);
  t.throws(() => encodeCommand({ type: 'snapshotRestore', state: new Uint8Array(0) }), /non-empty/);
});

t.test('a restore puts back every table as it was in the snapshot', async (t) => {
  const { s, snapshot } = saved();
  const original = new KonsulFsm();
  original.restore(snapshot);
  const index = s.nextIndex;
  t.equal(restore(s, snapshot), true);
  t.equal(s.fsm.appliedIndex, index);
  t.equal(s.value('keep/a'), 'a1');
  t.equal(s.kv.get('keep/a')!.ModifyIndex, original.kv.get('keep/a')!.ModifyIndex, 'entries keep their indexes');
  t.equal(s.kv.get('new'), undefined);
  t.equal(s.kv.get('keep/lock')!.Session, 's1');
  t.same(s.kv.keysLockedBy('s1'), ['keep/lock']);
  t.same(s.kv.tombstones(), original.kv.tombstones());
  t.same(s.fsm.events.list().map((e) => e.Name), ['before']);
  t.equal(s.kv.index(), index, 'the table index is the restore\'s: never below what watchers saw');
  t.equal(s.fsm.events.index(), index);
  // And it goes on from there.
  t.equal(s.put('next', 'n'), true);
  t.equal(s.kv.get('next')!.CreateIndex, index + 1);
});

t.test('replicas applying the same restore end with identical state', async (t) => {
  const a = saved();
  const b = saved();
  restore(a.s, a.snapshot);
  restore(b.s, a.snapshot);
  t.same(a.s.fsm.snapshot(), b.s.fsm.snapshot());
});

t.test('a corrupt or truncated snapshot is refused and changes nothing', async (t) => {
  const { s, snapshot } = saved();
  const before = s.fsm.snapshot();
  const flipped = snapshot.slice();
  flipped[20]! ^= 1;
  const cases: [string, Uint8Array][] = [
    ['a flipped bit', flipped],
    ['truncated', snapshot.subarray(0, snapshot.length - 9)],
    ['not a snapshot', utf8('hello, world')],
  ];
  for (const [name, bytes] of cases) {
    const index = s.nextIndex;
    t.match(restore(s, bytes), { ok: false, code: 'invalidCommand', error: /^snapshotRestore: / }, name);
    t.equal(s.fsm.appliedIndex, index, `${name}: the entry counts as applied`);
  }
  const after = decodeSnapshot(s.fsm.snapshot());
  const expected = decodeSnapshot(before);
  t.same(after.kv, expected.kv);
  t.same(after.events, expected.events);
});

t.test('every watcher wakes, with the restore index', async (t) => {
  const { s, snapshot } = saved();
  const woke: string[] = [];
  s.fsm.watches.watchKey('unrelated', (i) => woke.push(`key@${i}`));
  s.fsm.watches.watchPrefix('keep/', (i) => woke.push(`prefix@${i}`));
  s.fsm.watches.watchTable('events', (i) => woke.push(`events@${i}`));
  const index = s.nextIndex;
  restore(s, snapshot);
  t.same(woke.sort(), [`events@${index}`, `key@${index}`, `prefix@${index}`]);
});

t.test('a snapshot from further along (another cluster) is moved below the restore index', async (t) => {
  const far = new TestStore();
  for (let i = 0; i < 50; i++) far.noop();
  far.put('dir/a', 'a');
  far.put('dir/gone', 'g');
  far.del('dir/gone');
  const snapshot = far.fsm.snapshot();
  const s = new TestStore();
  s.put('x', 'x');
  const index = s.nextIndex; // 2: far below the snapshot's indexes (51..53)
  restore(s, snapshot);
  t.equal(s.kv.get('dir/a')!.ModifyIndex, index);
  t.equal(s.kv.get('dir/a')!.CreateIndex, index);
  t.same(s.kv.tombstones(), [{ key: 'dir/gone', index }]);
  t.equal(s.kv.prefixIndex('dir/'), index);
  // A write under the prefix raises its index, so a blocking ?recurse sees it.
  s.put('dir/b', 'b');
  t.equal(s.kv.prefixIndex('dir/'), index + 1);
});

t.test('stateForRestoreAt keeps indexes at or below the restore index exactly', async (t) => {
  const { snapshot } = saved();
  const state = decodeSnapshot(snapshot);
  const moved = stateForRestoreAt(state, 1000);
  t.same(moved.kv.entries, state.kv.entries);
  t.same(moved.kv.tombstones, state.kv.tombstones);
  t.equal(moved.kv.index, 1000);
  t.same(moved.events!.events, state.events!.events);
});
