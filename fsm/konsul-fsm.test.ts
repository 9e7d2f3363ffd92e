// The FSM as the Raft host sees it: apply in order, never crash on a command, snapshot and restore
// the whole state deterministically.
import t from 'tap';
import { encodeCommand, kvSetCommand } from './commands.ts';
import { FsmInvariantError, KonsulFsm } from './konsul-fsm.ts';
import { crc32, SnapshotFormatError } from './snapshot.ts';
import { FakeSessions, TestStore, utf8 } from './test-store.ts';

const json = (value: unknown): Uint8Array => utf8(JSON.stringify(value));

/** A store with a bit of everything: nested keys, flags, locks, empty values, tombstones. */
function populatedStore(): TestStore {
  const s = new TestStore(new FakeSessions(['s1']));
  s.put('app/config', '{"a":1}', { flags: 2n ** 64n - 1n });
  s.put('app/empty', '');
  s.put('app/lock', 'leader', { acquire: 's1' });
  s.put('caf\u00e9/\u{1F600}', 'unicode');
  s.put('gone', 'soon');
  s.del('gone');
  s.put('tree/a', '1');
  s.put('tree/b', '2');
  s.delTree('tree/');
  s.noop();
  return s;
}

t.test('applying', async (t) => {
  t.test('apply and applyNoop advance the applied index', async (t) => {
    const fsm = new KonsulFsm();
    t.equal(fsm.appliedIndex, 0);
    fsm.applyNoop(1);
    t.equal(fsm.apply(2, encodeCommand(kvSetCommand({ key: 'k', value: utf8('v') }))), true);
    t.equal(fsm.appliedIndex, 2);
  });

  t.test('entries must be applied once each, in order', async (t) => {
    const fsm = new KonsulFsm();
    const command = encodeCommand(kvSetCommand({ key: 'k', value: utf8('v') }));
    t.throws(() => fsm.apply(2, command), FsmInvariantError, 'a gap is a lost entry');
    fsm.apply(1, command);
    t.throws(() => fsm.apply(1, command), FsmInvariantError, 'a repeat would apply a write twice');
    t.throws(() => fsm.applyNoop(1), FsmInvariantError);
    t.equal(fsm.appliedIndex, 1);
  });

  t.test('applyCommand applies a decoded command the same way', async (t) => {
    const fsm = new KonsulFsm();
    t.equal(fsm.applyCommand(1, kvSetCommand({ key: 'k', value: utf8('v') })), true);
    t.equal(fsm.kv.get('k')!.ModifyIndex, 1);
  });
});

t.test('an invalid command does not throw and changes nothing but the applied index', async (t) => {
  const garbage: [string, Uint8Array][] = [
    ['random bytes', new Uint8Array([0xff, 0x00, 0x13, 0x37])],
    ['invalid UTF-8', new Uint8Array([0x22, 0xc3, 0x28, 0x22])],
    ['not JSON', utf8('{"type":')],
    ['JSON null', json(null)],
    ['a JSON array', json([1, 2])],
    ['an unknown type', json({ type: 'kvExplode', key: 'a' })],
    ['a missing field', json({ type: 'kvSet', key: 'a', value: '' })],
    ['an unknown field', json({ type: 'kvDelete', key: 'a', recurse: true })],
    ['an empty key', json({ type: 'kvSet', key: '', value: '', flags: '0' })],
    ['a key with a lone surrogate', json({ type: 'kvSet', key: 'a\ud800', value: '', flags: '0' })],
    ['a value that is not base64', json({ type: 'kvSet', key: 'a', value: 'not base64!', flags: '0' })],
    ['flags above 2^64-1', json({ type: 'kvSet', key: 'a', value: '', flags: '18446744073709551616' })],
    ['flags as a number', json({ type: 'kvSet', key: 'a', value: '', flags: 1 })],
    ['a negative cas', json({ type: 'kvSet', key: 'a', value: '', flags: '0', cas: -1 })],
    ['cas with acquire', json({ type: 'kvSet', key: 'a', value: '', flags: '0', cas: 0, acquire: 's' })],
    ['a fractional reap index', json({ type: 'kvReapTombstones', upToIndex: 1.5 })],
  ];
  for (const [name, bytes] of garbage) {
    t.test(name, async (t) => {
      const s = populatedStore();
      const before = s.kv.dump();
      const index = s.nextIndex;
      const result = s.fsm.apply(index, bytes);
      t.match(result, { ok: false, code: 'invalidCommand', error: String });
      t.same(s.kv.dump(), before, 'the tables are unchanged');
      t.equal(s.fsm.appliedIndex, index, 'the entry counts as applied');
    });
  }
});

t.test('snapshots', async (t) => {
  t.test('snapshot then restore gives an identical state and identical snapshot bytes', async (t) => {
    const original = populatedStore();
    const bytes = original.fsm.snapshot();
    const restored = new KonsulFsm();
    restored.restore(bytes);
    t.same(restored.kv.dump(), original.kv.dump());
    t.equal(restored.appliedIndex, original.fsm.appliedIndex);
    t.same(restored.snapshot(), bytes);
  });

  t.test('two replicas that applied the same log produce the same bytes', async (t) => {
    t.same(populatedStore().fsm.snapshot(), populatedStore().fsm.snapshot());
  });

  t.test('the restored state answers like the original: indexes, tombstones, locks, flags', async (t) => {
    const original = populatedStore();
    const restored = new KonsulFsm();
    restored.restore(original.fsm.snapshot());
    for (const prefix of ['', 'app/', 'tree/', 'gone', 'nothing/']) {
      t.equal(restored.kv.prefixIndex(prefix), original.kv.prefixIndex(prefix), `prefixIndex(${JSON.stringify(prefix)})`);
    }
    t.equal(restored.kv.index(), original.kv.index());
    t.same(restored.kv.tombstones(), [
      { key: 'gone', index: 6 },
      { key: 'tree/', index: 9 },
    ]);
    t.same(restored.kv.keysLockedBy('s1'), ['app/lock']);
    t.equal(restored.kv.get('app/config')!.Flags, 2n ** 64n - 1n);
    t.equal(restored.kv.get('app/lock')!.Session, 's1');
    t.equal(restored.kv.get('app/empty')!.Value.length, 0);
    t.same(restored.kv.keys(''), ['app/config', 'app/empty', 'app/lock', 'caf\u00e9/\u{1F600}']);
  });

  t.test('a restored FSM continues from the snapshot index', async (t) => {
    const original = populatedStore();
    const restored = new KonsulFsm();
    restored.restore(original.fsm.snapshot());
    const next = original.fsm.appliedIndex + 1;
    t.equal(restored.apply(next, encodeCommand(kvSetCommand({ key: 'new', value: utf8('v') }))), true);
    t.equal(restored.kv.get('new')!.CreateIndex, next);
  });

  t.test('restore replaces everything that was there', async (t) => {
    const fsm = new KonsulFsm();
    fsm.apply(1, encodeCommand(kvSetCommand({ key: 'stale', value: utf8('v') })));
    fsm.apply(2, encodeCommand({ type: 'kvDelete', key: 'stale' }));
    fsm.apply(3, encodeCommand(kvSetCommand({ key: 'stale2', value: utf8('v') })));
    fsm.restore(new KonsulFsm().snapshot());
    t.equal(fsm.kv.size, 0);
    t.equal(fsm.kv.tombstoneCount, 0);
    t.equal(fsm.kv.index(), 0);
    t.equal(fsm.appliedIndex, 0);
  });

  t.test('an empty FSM snapshots and restores', async (t) => {
    const bytes = new KonsulFsm().snapshot();
    const fsm = new KonsulFsm();
    fsm.restore(bytes);
    t.same(fsm.snapshot(), bytes);
  });

  t.test('damaged snapshots are refused and leave the state untouched', async (t) => {
    const good = populatedStore().fsm.snapshot();
    const flipped = good.slice();
    flipped[20] = flipped[20]! ^ 0x01;
    const truncated = good.slice(0, good.length - 9);
    const withTrailingByte = resealed(good, (body) => concat(body, new Uint8Array([0])));
    const wrongVersion = resealed(good, (body) => {
      const copy = body.slice();
      copy[5] = 99;
      return copy;
    });
    for (const [name, bytes] of [
      ['a flipped bit', flipped],
      ['truncated', truncated],
      ['a trailing byte', withTrailingByte],
      ['an unknown format version', wrongVersion],
      ['empty', new Uint8Array(0)],
    ] as const) {
      const s = new TestStore();
      s.put('keep', 'me');
      const before = s.fsm.snapshot();
      t.throws(() => s.fsm.restore(bytes), SnapshotFormatError, name);
      t.same(s.fsm.snapshot(), before, `${name}: state untouched`);
    }
  });
});

/** Rewrites a snapshot's body and recomputes its checksum (to reach the checks behind the CRC). */
function resealed(snapshot: Uint8Array, change: (body: Uint8Array) => Uint8Array): Uint8Array {
  const body = change(snapshot.subarray(0, snapshot.length - 4));
  const out = concat(body, new Uint8Array(4));
  new DataView(out.buffer).setUint32(body.length, crc32(body));
  return out;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
