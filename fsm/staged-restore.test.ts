// A staged restore (restoreBegin, restoreChunk..., restoreCommit | restoreAbort): the state built
// aside and swapped in at the commit, identically on every replica; anything wrong refuses it whole.
import t from 'tap';
import { encodeBase64 } from './base64.ts';
import { decodeCommand, encodeCommand, type Command } from './commands.ts';
import { KonsulFsm } from './konsul-fsm.ts';
import { decodeSnapshot } from './snapshot.ts';
import { FakeSessions, TestStore, utf8 } from './test-store.ts';

const ID = '6a1c2f4e-0b7d-4f8e-9a3c-2d5e7f901b34';
const OTHER = '0d0f3e64-9c55-4c10-a6b1-5b1cbb5c2e11';

function run(s: TestStore, command: Command) {
  return s.fsm.apply(s.nextIndex, encodeCommand(command));
}

/** The chunk commands of `state` cut into pieces of `size` bytes. */
function chunks(state: Uint8Array, size: number, id = ID): Command[] {
  const out: Command[] = [];
  for (let at = 0, seq = 0; at < state.length; at += size, seq++) out.push({ type: 'restoreChunk', id, seq, data: state.subarray(at, at + size) });
  return out;
}

/** A snapshot far ahead of the stores restoring it (indexes 41..), with a lock, a tombstone and an event. */
function source(): Uint8Array {
  const s = new TestStore(new FakeSessions(['s1']));
  for (let i = 0; i < 40; i++) s.noop();
  for (let i = 0; i < 300; i++) s.put(`app/k${String(i).padStart(3, '0')}`, `value-${i}`, { flags: BigInt(i) });
  s.put('app/lock', 'held', { acquire: 's1' });
  s.put('gone', 'x');
  s.del('gone');
  s.fsm.apply(s.nextIndex, encodeCommand({ type: 'eventFire', id: OTHER, name: 'deploy', payload: encodeBase64(utf8('v1')), nodeFilter: '', serviceFilter: '', tagFilter: '' }));
  return s.fsm.snapshot();
}

function target(): TestStore {
  const s = new TestStore(new FakeSessions(['s1']));
  s.put('app/k000', 'old');
  s.put('old-only', 'o');
  return s;
}

t.test('a chunk travels as binary: id, sequence number and bytes as they are', async (t) => {
  const data = new Uint8Array([0, 1, 2, 255]);
  const bytes = encodeCommand({ type: 'restoreChunk', id: ID, seq: 258, data });
  t.equal(bytes[0], 0);
  t.equal(bytes[1], 2);
  t.equal(Buffer.from(bytes.subarray(2, 38)).toString('latin1'), ID);
  t.same([...bytes.subarray(38)], [0, 0, 1, 2, 0, 1, 2, 255]);
  t.same(decodeCommand(bytes), { type: 'restoreChunk', id: ID, seq: 258, data });
  t.throws(() => decodeCommand(new Uint8Array([0, 2, 1, 2])), /unknown binary command/);
  t.throws(() => encodeCommand({ type: 'restoreChunk', id: 'nope', seq: 0, data }), /lowercase UUID/);
  t.throws(() => encodeCommand({ type: 'restoreChunk', id: ID, seq: 0, data: new Uint8Array(0) }), /data must be/);
  t.throws(() => encodeCommand({ type: 'restoreBegin', id: ID, bytes: 0 }), /bytes must be/);
  t.throws(() => decodeCommand(utf8(JSON.stringify({ type: 'restoreCommit', id: ID, extra: 1 }))), /unknown field extra/);
});

t.test('nothing changes until the commit, which swaps every table in at once', async (t) => {
  const state = source();
  const s = target();
  const woke: number[] = [];
  s.fsm.watches.watchKey('old-only', (i) => woke.push(i));
  const begin = s.nextIndex;
  t.equal(run(s, { type: 'restoreBegin', id: ID, bytes: state.length }), true);
  t.match(s.fsm.snapshotBlocker(), /restore .* in progress/);
  for (const c of chunks(state, 1000)) {
    t.equal(run(s, c), true);
    t.equal(s.value('old-only'), 'o', 'the old state answers meanwhile');
  }
  t.match(s.fsm.restoreProgress(), { id: ID, beginIndex: begin, bytes: state.length, receivedBytes: state.length, kvEntries: 301 });
  s.put('written-meanwhile', 'w');
  t.equal(s.value('written-meanwhile'), 'w');
  t.same(woke, []);
  const commit = s.nextIndex;
  t.equal(run(s, { type: 'restoreCommit', id: ID }), true);
  t.equal(s.fsm.snapshotBlocker(), null);
  t.equal(s.fsm.restoreProgress(), null);
  t.same(woke, [commit], 'watchers wake at the commit');
  t.equal(s.value('old-only'), undefined);
  t.equal(s.value('written-meanwhile'), undefined, 'writes between begin and commit were to the old state');
  t.equal(s.value('app/k007'), 'value-7');
  t.equal(s.kv.get('app/k007')!.Flags, 7n);
  t.equal(s.kv.get('app/lock')!.Session, 's1');
  t.same(s.kv.keysLockedBy('s1'), ['app/lock']);
  t.equal(s.kv.get('app/k007')!.ModifyIndex, begin, 'indexes from further along are lowered to the begin index');
  t.same(s.kv.tombstones(), [{ key: 'gone', index: begin }]);
  t.equal(s.kv.index(), commit, 'the table index is the commit\'s');
  t.equal(s.fsm.events.index(), commit);
  t.same(s.fsm.events.list().map((e) => e.Name), ['deploy']);
  t.equal(s.fsm.appliedIndex, commit);
  // The same content as the snapshot, apart from the indexes.
  const restored = decodeSnapshot(s.fsm.snapshot());
  const original = decodeSnapshot(state);
  const content = (st: typeof original) => JSON.stringify(st.kv.entries.map((e) => [e.Key, Buffer.from(e.Value).toString(), String(e.Flags), e.Session ?? '', e.LockIndex]));
  t.equal(content(restored), content(original));
  t.equal(s.put('next', 'n'), true);
  t.equal(s.kv.get('next')!.CreateIndex, commit + 1);
});

t.test('replicas applying the same chunks, cut the same way, end byte for byte alike', async (t) => {
  const state = source();
  const a = target();
  const b = target();
  for (const s of [a, b]) {
    run(s, { type: 'restoreBegin', id: ID, bytes: state.length });
    for (const c of chunks(state, 777)) run(s, c);
    run(s, { type: 'restoreCommit', id: ID });
  }
  t.equal(Buffer.compare(a.fsm.snapshot(), b.fsm.snapshot()), 0);
});

t.test('a restore of this store\'s own past keeps every index', async (t) => {
  const s = target();
  s.put('a', '1');
  const past = s.fsm.snapshot();
  const before = s.kv.get('a')!;
  s.put('a', '2');
  run(s, { type: 'restoreBegin', id: ID, bytes: past.length });
  for (const c of chunks(past, 64)) run(s, c);
  run(s, { type: 'restoreCommit', id: ID });
  t.match(s.kv.get('a'), { CreateIndex: before.CreateIndex, ModifyIndex: before.ModifyIndex });
  t.equal(s.value('a'), '1');
});

t.test('every refusal leaves the old state; a bad chunk or commit ends the restore on every replica', async (t) => {
  const state = source();
  const flipped = state.slice();
  flipped[state.length >> 1]! ^= 1; // inside a value: only the CRC can tell
  const cases: [string, Uint8Array, RegExp][] = [
    ['a damaged byte', flipped, /checksum mismatch/],
    ['truncated', state.subarray(0, state.length - 7), /snapshot truncated/],
    ['not a snapshot', utf8('hello, world, this is not a snapshot'), /not a Konsul FSM snapshot/],
  ];
  for (const [name, bytes, error] of cases) {
    const s = target();
    run(s, { type: 'restoreBegin', id: ID, bytes: bytes.length });
    let refused: unknown = null;
    for (const c of chunks(bytes, 4096)) {
      const result = run(s, c);
      if (result !== true) refused = result;
    }
    const commit = run(s, { type: 'restoreCommit', id: ID });
    const outcome = refused ?? commit;
    t.match(outcome, { ok: false, code: 'restoreRejected', error }, name);
    t.equal(s.value('old-only'), 'o', `${name}: old state kept`);
    t.equal(s.fsm.snapshotBlocker(), null, `${name}: the restore ended`);
  }

  const s = target();
  run(s, { type: 'restoreBegin', id: ID, bytes: state.length });
  t.match(run(s, { type: 'restoreBegin', id: OTHER, bytes: 5 }), { ok: false, error: /already in progress/ });
  t.match(run(s, { type: 'restoreChunk', id: OTHER, seq: 0, data: state.subarray(0, 10) }), { ok: false, error: /not in progress \(restore 6a1c.* is\)/ });
  t.match(run(s, { type: 'restoreCommit', id: ID }), { ok: false, error: /0 of the \d+ bytes/ }, 'a commit before every chunk');
  t.equal(s.fsm.snapshotBlocker(), null);

  run(s, { type: 'restoreBegin', id: ID, bytes: state.length });
  const [c0, , c2] = chunks(state, 1000);
  t.equal(run(s, c0!), true);
  t.match(run(s, c2!), { ok: false, error: /chunk 2 arrived, chunk 1 was expected/ });
  t.match(run(s, { type: 'restoreCommit', id: ID }), { ok: false, error: /is not in progress/ });

  run(s, { type: 'restoreBegin', id: ID, bytes: 10 });
  t.match(run(s, { type: 'restoreChunk', id: ID, seq: 0, data: state.subarray(0, 11) }), { ok: false, error: /more than the 10 bytes announced/ });

  run(s, { type: 'restoreBegin', id: ID, bytes: state.length });
  t.equal(run(s, { type: 'restoreAbort', id: ID, reason: 'the client went away' }), true);
  t.equal(s.fsm.snapshotBlocker(), null);
  t.match(run(s, { type: 'restoreAbort', id: ID, reason: 'again' }), { ok: false, error: /not in progress/ });
  t.equal(s.value('old-only'), 'o');
});

t.test('installing a snapshot ends a staged restore (no snapshot holds one)', async (t) => {
  const state = source();
  const s = target();
  const snapshot = s.fsm.snapshot();
  run(s, { type: 'restoreBegin', id: ID, bytes: state.length });
  s.fsm.restore(snapshot);
  t.equal(s.fsm.snapshotBlocker(), null);
  const fresh = new KonsulFsm();
  fresh.restore(snapshot);
  t.equal(fresh.restoreProgress(), null);
});
