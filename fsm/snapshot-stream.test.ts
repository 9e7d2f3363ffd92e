// The streamed snapshot (format version 2): views that later writes do not change, pieces cut
// anywhere, damage refused with the state untouched, and version 1 snapshots still read.
import t from 'tap';
import { Prng } from '../raft/core/prng.ts';
import { encodeCommand, kvSetCommand } from './commands.ts';
import { KonsulFsm } from './konsul-fsm.ts';
import { decodeSnapshot, SnapshotFormatError } from './snapshot.ts';
import { FakeSessions, TestStore } from './test-store.ts';

/** Made by the version 1 code (commit f0e3037): a catalog node, a session holding a lock, flags of 2^64-1, a non-BMP key, a tombstone, an event. */
const VERSION_1_SNAPSHOT = Buffer.from('S05TTAABAAAAAAAAAAgAAAAEAAAAAmt2AAAA8wAAAAAAAAAHAAAAAwAAAAphcHAvY29uZmlnAAAAAAAAAAMAAAAAAAAAAwAAAAAAAAAA//////////8AAAAAB3siYSI6MX0AAAAIYXBwL2xvY2sAAAAAAAAABAAAAAAAAAAEAAAAAAAAAAEAAAAAAAAAAAEAAAAkMTExMTExMTEtMjIyMi0zMzMzLTQ0NDQtNTU1NTU1NTU1NTU1AAAABmxlYWRlcgAAAApjYWbDqS/wn5iAAAAAAAAAAAUAAAAAAAAABQAAAAAAAAAAAAAAAAAAAAAAAAAAB3VuaWNvZGUAAAABAAAABGdvbmUAAAAAAAAABwAAAAZldmVudHMAAABsAAAAAAAAAAgAAAAAAAAAAQAAAAEAAAAkYWFhYWFhYWEtYmJiYi1jY2NjLWFhYWEtYWFhYWJiYmJjY2M0AAAABmRlcGxveQAAAAJ2MgAAAAAAAAAAAAAAAAAAAAEAAAAAAAAAAQAAAAAAAAAIAAAAB2NhdGFsb2cAAAIOAAACCnsidiI6MSwiaW5kZXgiOjEsIm5vZGVzSW5kZXgiOjEsInNlcnZpY2VzSW5kZXgiOjAsImNoZWNrc0luZGV4IjoxLCJsYXN0RXh0aW5jdGlvbkluZGV4IjowLCJub2RlcyI6W3sibm9kZSI6eyJJRCI6IiIsIk5vZGUiOiJuMSIsIkFkZHJlc3MiOiIxMC4wLjAuMSIsIkRhdGFjZW50ZXIiOiJkYzEiLCJUYWdnZWRBZGRyZXNzZXMiOnt9LCJNZXRhIjp7fSwiQ3JlYXRlSW5kZXgiOjEsIk1vZGlmeUluZGV4IjoxfSwiaW5kZXgiOjEsInNlcnZpY2VzIjpbXSwiY2hlY2tzIjpbeyJDaGVja0lEIjoic2VyZkhlYWx0aCIsIk5hbWUiOiJzZXJmSGVhbHRoIiwiU3RhdHVzIjoicGFzc2luZyIsIk5vdGVzIjoiIiwiT3V0cHV0IjoiIiwiU2VydmljZUlEIjoiIiwiVHlwZSI6IiIsIkludGVydmFsIjoiIiwiVGltZW91dCI6IiIsIkRlZmluaXRpb24iOnt9LCJOb2RlIjoibjEiLCJTZXJ2aWNlTmFtZSI6IiIsIlNlcnZpY2VUYWdzIjpbXSwiQ3JlYXRlSW5kZXgiOjEsIk1vZGlmeUluZGV4IjoxfV19XSwic2VydmljZUluZGV4ZXMiOltdfQAAAAhzZXNzaW9ucwAAASkAAAEleyJ2IjoxLCJpbmRleCI6MiwiY2xvY2tNcyI6MjAwMCwic2Vzc2lvbnMiOlt7IklEIjoiMTExMTExMTEtMjIyMi0zMzMzLTQ0NDQtNTU1NTU1NTU1NTU1IiwiTmFtZSI6IiIsIk5vZGUiOiJuMSIsIkxvY2tEZWxheSI6MTUwMDAwMDAwMDAsIkJlaGF2aW9yIjoicmVsZWFzZSIsIlRUTCI6IiIsIk5vZGVDaGVja3MiOlsic2VyZkhlYWx0aCJdLCJTZXJ2aWNlQ2hlY2tzIjpudWxsLCJDaGVja3MiOm51bGwsIkNyZWF0ZUluZGV4IjoyLCJNb2RpZnlJbmRleCI6MiwicmVuZXdJbmRleCI6Mn1dLCJsb2NrRGVsYXlzIjpbXX2N5Pv9', 'base64');

/** A seeded source of floats in [0, 1), so a failure replays. */
function prng(seed: number): () => number {
  const random = new Prng(seed);
  return () => random.float();
}

/** A store of `keys` keys with values of varied sizes (one of 300 KiB), a lock, tombstones. */
function bigStore(keys: number): TestStore {
  const s = new TestStore(new FakeSessions(['s1']));
  const random = prng(keys);
  for (let i = 0; i < keys; i++) s.put(`data/${String(i).padStart(6, '0')}`, 'v'.repeat(Math.floor(random() * 200)), { flags: BigInt(i % 3) });
  s.put('big', 'x'.repeat(300 * 1024));
  s.put('locked', 'held', { acquire: 's1' });
  for (let i = 0; i < keys; i += 7) s.del(`data/${String(i).padStart(6, '0')}`);
  return s;
}

/** Cuts `pieces` again at random points (as a network or a file reader would). */
function recut(pieces: Iterable<Uint8Array>, seed: number, maxBytes: number): Uint8Array[] {
  const all = Buffer.concat([...pieces]);
  const random = prng(seed);
  const out: Uint8Array[] = [];
  for (let at = 0; at < all.length; ) {
    const n = 1 + Math.floor(random() * maxBytes);
    out.push(all.subarray(at, at + n));
    at += n;
  }
  return out;
}

function restoreFrom(pieces: Iterable<Uint8Array>, into = new KonsulFsm()): KonsulFsm {
  const restore = into.beginRestore();
  for (const piece of pieces) restore.write(piece);
  restore.finish();
  return into;
}

t.test('a view is the state at its index, whatever is written after it is taken', async (t) => {
  const s = bigStore(3000);
  const expected = s.fsm.snapshot();
  const view = s.fsm.snapshotView();
  t.equal(view.index, s.fsm.appliedIndex);
  // Writes of every kind after the view: sets, overwrites, deletes, a tree delete, a lock release.
  for (let i = 0; i < 3000; i += 3) s.put(`data/${String(i).padStart(6, '0')}`, 'changed');
  s.put('new/key', 'new');
  s.delTree('data/001');
  s.put('locked', 'released', { release: 's1' });
  s.reap(s.fsm.appliedIndex);
  const pieces = [...{ [Symbol.iterator]: () => view.chunks(4096) }];
  view.release();
  t.ok(pieces.length >= 5, `one piece per frame at least (${pieces.length})`);
  t.ok(sameBytes(Buffer.concat(pieces), expected), 'the view encodes the state as it was when taken');
  const restored = restoreFrom(pieces);
  t.equal(restored.appliedIndex, view.index);
  t.ok(sameBytes(restored.snapshot(), expected), 'restoring it gives that state back');
  t.notOk(sameBytes(s.fsm.snapshot(), expected), 'while the live state moved on');
});

t.test('pieces may be cut anywhere; piece size never changes the bytes', async (t) => {
  const s = bigStore(2000);
  const whole = s.fsm.snapshot();
  for (const pieceBytes of [1, 100, 65536, 1 << 22]) {
    const view = s.fsm.snapshotView();
    const pieces = [...{ [Symbol.iterator]: () => view.chunks(pieceBytes) }];
    t.ok(pieces.every((p) => p.length <= Math.max(pieceBytes, 300 * 1024 + 100)), `pieces of ${pieceBytes} stay within it (but for the one large value)`);
    t.ok(sameBytes(Buffer.concat(pieces), whole), `pieces of ${pieceBytes}`);
  }
  for (const seed of [1, 2, 3]) {
    const restored = restoreFrom(recut([whole], seed, seed === 1 ? 7 : 50000));
    t.ok(sameBytes(restored.snapshot(), whole), `recut with seed ${seed}`);
    t.equal(restored.kv.get('big')!.Value.length, 300 * 1024);
    t.equal(restored.kv.keysLockedBy('s1')[0], 'locked', 'locks are rebuilt from the entries');
  }
});

t.test('damage is refused and leaves the state untouched, wherever it is found', async (t) => {
  const good = bigStore(500).fsm.snapshot();
  const cases: [string, Uint8Array][] = [
    ['truncated in a frame', good.subarray(0, good.length >> 1)],
    ['truncated before the checksum', good.subarray(0, good.length - 2)],
    ['a trailing byte', Buffer.concat([good, Buffer.from([0])])],
    ['a flipped bit in a value', flip(good, good.length >> 1)],
    ['a flipped bit in the checksum', flip(good, good.length - 1)],
    ['a wrong magic', flip(good, 0)],
    ['empty', new Uint8Array(0)],
  ];
  for (const [name, bytes] of cases) {
    const s = new TestStore();
    s.put('keep', 'me');
    const before = s.fsm.snapshot();
    const restore = s.fsm.beginRestore();
    t.throws(() => {
      for (const piece of recut([bytes], 9, 1000)) restore.write(piece);
      restore.finish();
    }, SnapshotFormatError, name);
    t.ok(sameBytes(s.fsm.snapshot(), before), `${name}: state untouched`);
    t.equal(s.value('keep'), 'me');
  }
});

t.test('a version 1 snapshot still restores, into the same state', async (t) => {
  const v1 = decodeSnapshot(VERSION_1_SNAPSHOT);
  t.equal(v1.appliedIndex, 8);
  t.same(v1.kv.entries.map((e) => e.Key), ['app/config', 'app/lock', 'caf\u00e9/\u{1F600}']);
  t.equal(v1.kv.entries[0]!.Flags, 2n ** 64n - 1n);
  t.equal(v1.kv.entries[1]!.Session, '11111111-2222-3333-4444-555555555555');
  t.same(v1.kv.tombstones, [{ key: 'gone', index: 7 }]);
  t.equal(v1.events?.events[0]?.Name, 'deploy');
  t.equal(v1.sessions?.sessions.length, 1);
  t.equal(v1.catalog?.nodes[0]?.node.Node, 'n1');
  const fsm = restoreFrom(recut([VERSION_1_SNAPSHOT], 4, 100));
  t.equal(fsm.appliedIndex, 8);
  t.same(fsm.kv.keysLockedBy('11111111-2222-3333-4444-555555555555'), ['app/lock']);
  t.same(decodeSnapshot(fsm.snapshot()), v1, 'written again as version 2, it reads back the same');
  // And the restored FSM goes on applying.
  t.equal(fsm.apply(9, encodeCommand(kvSetCommand({ key: 'after', value: new TextEncoder().encode('v') }))), true);
});

function flip(bytes: Uint8Array, at: number): Uint8Array {
  const copy = bytes.slice();
  copy[at] = copy[at]! ^ 0x01;
  return copy;
}

/** Byte equality (tap's deep comparison of megabyte buffers takes seconds). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}
