// The KV table's behaviour, as Consul's API shows it, one rule per test. Every write goes through
// the FSM as an encoded command at the next Raft index, as the Raft host applies it.
import t from 'tap';
import { FakeSessions, TestStore } from '../test-store.ts';

const MAX_UINT64 = 2n ** 64n - 1n;

t.test('PUT and GET', async (t) => {
  t.test('a PUT creates the key: CreateIndex = ModifyIndex = the entry index, unlocked', async (t) => {
    const s = new TestStore();
    t.equal(s.put('foo', 'bar'), true);
    t.same(s.kv.get('foo'), { Key: 'foo', CreateIndex: 1, ModifyIndex: 1, LockIndex: 0, Flags: 0n, Value: new TextEncoder().encode('bar') });
    t.notOk('Session' in s.kv.get('foo')!, 'no Session field when unlocked');
    t.equal(s.kv.index(), 1);
  });

  t.test('a PUT of an existing key keeps CreateIndex and moves ModifyIndex', async (t) => {
    const s = new TestStore();
    s.put('foo', 'one');
    s.put('other', 'x');
    s.put('foo', 'two');
    t.equal(s.value('foo'), 'two');
    t.equal(s.kv.get('foo')!.CreateIndex, 1);
    t.equal(s.kv.get('foo')!.ModifyIndex, 3);
  });

  t.test('a PUT that changes nothing keeps ModifyIndex and the table index (as Consul skips it)', async (t) => {
    const s = new TestStore();
    s.put('foo', 'same', { flags: 7n });
    t.equal(s.put('foo', 'same', { flags: 7n }), true, 'still answers true');
    t.equal(s.kv.get('foo')!.ModifyIndex, 1);
    t.equal(s.kv.index(), 1);
    t.equal(s.fsm.appliedIndex, 2, 'the entry was applied all the same');
  });

  t.test('changing only the flags is a change', async (t) => {
    const s = new TestStore();
    s.put('foo', 'v', { flags: 1n });
    s.put('foo', 'v', { flags: 2n });
    t.equal(s.kv.get('foo')!.ModifyIndex, 2);
    t.equal(s.kv.get('foo')!.Flags, 2n);
  });

  t.test('a key deleted and written again gets a new CreateIndex', async (t) => {
    const s = new TestStore();
    s.put('foo', 'a');
    s.del('foo');
    s.put('foo', 'b');
    t.equal(s.kv.get('foo')!.CreateIndex, 3);
    t.equal(s.kv.get('foo')!.ModifyIndex, 3);
  });

  t.test('Flags keep all 64 bits: 2^64-1 is stored exactly', async (t) => {
    const s = new TestStore();
    s.put('foo', 'v', { flags: MAX_UINT64 });
    t.equal(s.kv.get('foo')!.Flags, MAX_UINT64);
    t.equal(String(s.kv.get('foo')!.Flags), '18446744073709551615');
  });

  t.test('an empty value is stored as zero bytes', async (t) => {
    const s = new TestStore();
    s.put('empty', '');
    t.equal(s.kv.get('empty')!.Value.length, 0);
  });

  t.test('a missing key reads as undefined', async (t) => {
    const s = new TestStore();
    t.equal(s.kv.get('nope'), undefined);
  });

  t.test('an empty command entry only advances the applied index', async (t) => {
    const s = new TestStore();
    s.put('foo', 'v');
    s.noop();
    t.equal(s.fsm.appliedIndex, 2);
    t.equal(s.kv.index(), 1);
  });
});

t.test('PUT ?cas', async (t) => {
  t.test('cas=0 creates a missing key', async (t) => {
    const s = new TestStore();
    t.equal(s.put('foo', 'v', { cas: 0 }), true);
    t.equal(s.value('foo'), 'v');
  });

  t.test('cas=0 on an existing key fails and changes nothing', async (t) => {
    const s = new TestStore();
    s.put('foo', 'old');
    t.equal(s.put('foo', 'new', { cas: 0 }), false);
    t.equal(s.value('foo'), 'old');
    t.equal(s.kv.get('foo')!.ModifyIndex, 1);
    t.equal(s.kv.index(), 1);
  });

  t.test('cas=N writes when the ModifyIndex is N', async (t) => {
    const s = new TestStore();
    s.put('foo', 'old');
    t.equal(s.put('foo', 'new', { cas: 1 }), true);
    t.equal(s.value('foo'), 'new');
    t.equal(s.kv.get('foo')!.ModifyIndex, 2);
  });

  t.test('cas=N fails when the ModifyIndex is not N', async (t) => {
    const s = new TestStore();
    s.put('foo', 'old');
    s.put('foo', 'newer');
    t.equal(s.put('foo', 'lost', { cas: 1 }), false);
    t.equal(s.value('foo'), 'newer');
  });

  t.test('cas=N on a missing key fails', async (t) => {
    const s = new TestStore();
    t.equal(s.put('foo', 'v', { cas: 5 }), false);
    t.equal(s.kv.get('foo'), undefined);
    t.equal(s.kv.index(), 0);
  });
});

t.test('DELETE', async (t) => {
  t.test('deletes the key and answers true; the table index moves to the delete', async (t) => {
    const s = new TestStore();
    s.put('foo', 'v');
    t.equal(s.del('foo'), true);
    t.equal(s.kv.get('foo'), undefined);
    t.equal(s.kv.index(), 2);
  });

  t.test('deleting a missing key answers true and changes nothing', async (t) => {
    const s = new TestStore();
    s.put('other', 'v');
    t.equal(s.del('nope'), true);
    t.equal(s.kv.index(), 1);
    t.equal(s.kv.tombstoneCount, 0);
  });

  t.test('cas=ModifyIndex deletes', async (t) => {
    const s = new TestStore();
    s.put('foo', 'v');
    t.equal(s.del('foo', 1), true);
    t.equal(s.kv.get('foo'), undefined);
  });

  t.test('cas with another index answers false and keeps the key', async (t) => {
    const s = new TestStore();
    s.put('foo', 'v');
    s.put('foo', 'w');
    t.equal(s.del('foo', 1), false);
    t.equal(s.value('foo'), 'w');
    t.equal(s.kv.index(), 2);
  });

  t.test('cas=0 never deletes an existing key (unlike PUT, 0 is no special case)', async (t) => {
    const s = new TestStore();
    s.put('foo', 'v');
    t.equal(s.del('foo', 0), false);
    t.equal(s.value('foo'), 'v');
  });

  t.test('cas on a missing key answers true (nothing to delete), as Consul does', async (t) => {
    const s = new TestStore();
    t.equal(s.del('nope', 3), true);
    t.equal(s.kv.index(), 0);
  });
});

t.test('DELETE ?recurse', async (t) => {
  t.test('removes every key that starts with the prefix, as a string prefix', async (t) => {
    const s = new TestStore();
    for (const key of ['fo', 'foo', 'food', 'foo/bar', 'foo/bar/baz', 'fop']) s.put(key, 'v');
    t.equal(s.delTree('foo'), true);
    t.same(s.kv.keys(''), ['fo', 'fop']);
    t.equal(s.kv.index(), 7);
  });

  t.test('the empty prefix removes everything', async (t) => {
    const s = new TestStore();
    for (const key of ['a', 'b/c', 'z']) s.put(key, 'v');
    s.delTree('');
    t.equal(s.kv.size, 0);
    t.equal(s.kv.index(), 4);
  });

  t.test('a prefix with nothing under it changes nothing and still answers true', async (t) => {
    const s = new TestStore();
    s.put('a', 'v');
    t.equal(s.delTree('b/'), true);
    t.equal(s.kv.index(), 1);
    t.equal(s.kv.tombstoneCount, 0);
  });
});

t.test('listings', async (t) => {
  t.test('list returns the entries under a prefix in key order', async (t) => {
    const s = new TestStore();
    for (const key of ['b/2', 'a', 'b/10', 'b/1', 'c']) s.put(key, key);
    t.same(
      s.kv.list('b/').map((e) => e.Key),
      ['b/1', 'b/10', 'b/2'],
    );
    t.same(
      s.kv.list('').map((e) => e.Key),
      ['a', 'b/1', 'b/10', 'b/2', 'c'],
    );
  });

  t.test('keys are ordered by their UTF-8 bytes, as Consul orders them', async (t) => {
    const s = new TestStore();
    // UTF-16 order would put U+10000 (a surrogate pair) before U+FFFD; byte order puts it after.
    for (const key of ['k\u{10000}', 'k\uFFFD', 'kz', 'k\u00e9']) s.put(key, 'v');
    t.same(s.kv.keys('k'), ['kz', 'k\u00e9', 'k\uFFFD', 'k\u{10000}']);
  });

  t.test('keys without a separator lists every key under the prefix', async (t) => {
    const s = new TestStore();
    for (const key of ['foo', 'foo/bar', 'foo/bar/baz', 'foo/bar/zip', 'foo/bar/zip/zam', 'foo/bar/zip/zorp', 'some/other/prefix']) s.put(key, 'v');
    t.same(s.kv.keys('foo'), ['foo', 'foo/bar', 'foo/bar/baz', 'foo/bar/zip', 'foo/bar/zip/zam', 'foo/bar/zip/zorp']);
  });

  t.test('keys with a separator stops each key after the first separator past the prefix, once', async (t) => {
    const s = new TestStore();
    for (const key of ['foo', 'foo/bar', 'foo/bar/baz', 'foo/bar/zip', 'foo/bar/zip/zam', 'foo/bar/zip/zorp', 'some/other/prefix']) s.put(key, 'v');
    // Consul's own test (TestStateStore_KVSListKeys): both the key foo/bar/zip and the folder foo/bar/zip/.
    t.same(s.kv.keys('foo/bar/', '/'), ['foo/bar/baz', 'foo/bar/zip', 'foo/bar/zip/']);
    t.same(s.kv.keys('', '/'), ['foo', 'foo/', 'some/']);
  });

  t.test('a separator of several characters works the same way', async (t) => {
    const s = new TestStore();
    for (const key of ['a::b::c', 'a::b::d', 'a::e']) s.put(key, 'v');
    t.same(s.kv.keys('a::', '::'), ['a::b::', 'a::e']);
  });
});

t.test('indexes for blocking queries', async (t) => {
  t.test('a prefix answers the highest ModifyIndex under it', async (t) => {
    const s = new TestStore();
    s.put('foo/a', 'v'); // 1
    s.put('foo/b', 'v'); // 2
    s.put('bar', 'v'); // 3
    s.put('foo/a', 'w'); // 4
    s.put('bar', 'w'); // 5
    t.equal(s.kv.prefixIndex('foo/'), 4);
    t.equal(s.kv.prefixIndex('bar'), 5);
  });

  t.test("deleting a prefix's newest key does not move its index backwards (tombstone)", async (t) => {
    const s = new TestStore();
    s.put('foo/a', 'v'); // 1
    s.put('foo/b', 'v'); // 2
    t.equal(s.kv.prefixIndex('foo/'), 2);
    s.del('foo/b'); // 3
    t.equal(s.kv.prefixIndex('foo/'), 3, 'the delete is a change of the prefix');
    s.put('elsewhere', 'v'); // 4
    t.equal(s.kv.prefixIndex('foo/'), 3, 'writes elsewhere do not move it');
  });

  t.test('a recursive delete leaves one tombstone at the prefix', async (t) => {
    const s = new TestStore();
    s.put('foo/a', 'v');
    s.put('foo/b', 'v');
    s.put('other', 'v');
    s.delTree('foo/'); // 4
    t.same(s.kv.tombstones(), [{ key: 'foo/', index: 4 }]);
    t.equal(s.kv.prefixIndex('foo/'), 4);
    t.equal(s.kv.prefixIndex('f'), 4);
  });

  t.test('a prefix with nothing under it, not even a tombstone, answers the table index', async (t) => {
    const s = new TestStore();
    s.put('a', 'v');
    s.put('b', 'v');
    t.equal(s.kv.prefixIndex('nothing/'), 2);
  });

  t.test('the empty prefix answers the table index', async (t) => {
    const s = new TestStore();
    s.put('a', 'v');
    s.put('b', 'v');
    s.del('b');
    t.equal(s.kv.prefixIndex(''), 3);
  });

  t.test('an empty store answers index 0 (the HTTP layer raises it to 1)', async (t) => {
    const s = new TestStore();
    t.equal(s.kv.index(), 0);
    t.equal(s.kv.prefixIndex(''), 0);
    t.equal(s.kv.prefixIndex('x'), 0);
  });
});

t.test('tombstone reaping', async (t) => {
  t.test('forgets the tombstones up to the index and keeps the newer ones', async (t) => {
    const s = new TestStore();
    for (const key of ['foo', 'foo/bar', 'foo/baz', 'foo/moo', 'foo/zoo']) s.put(key, 'v'); // 1..5
    s.del('foo/baz'); // 6
    s.del('foo/moo'); // 7
    t.equal(s.kv.prefixIndex('foo/'), 7);
    s.reap(6);
    t.same(s.kv.tombstones(), [{ key: 'foo/moo', index: 7 }]);
    t.equal(s.kv.prefixIndex('foo/'), 7, 'still 7: its tombstone survives');
  });

  t.test('after reaping, a prefix index slides back to its keys, as in Consul', async (t) => {
    const s = new TestStore();
    for (const key of ['foo', 'foo/bar', 'foo/baz', 'foo/moo', 'foo/zoo']) s.put(key, 'v');
    s.del('foo/baz');
    s.del('foo/moo');
    s.reap(7);
    t.equal(s.kv.tombstoneCount, 0);
    t.equal(s.kv.prefixIndex('foo/'), 5);
  });

  t.test('reaping changes neither the table index nor any entry', async (t) => {
    const s = new TestStore();
    s.put('a', 'v');
    s.del('a');
    t.equal(s.reap(2), true);
    t.equal(s.kv.index(), 2);
    t.equal(s.fsm.appliedIndex, 3);
  });
});

t.test('locks (acquire / release)', async (t) => {
  t.test('acquiring a missing key creates it locked: LockIndex 1, Session set', async (t) => {
    const s = new TestStore(new FakeSessions(['s1']));
    t.equal(s.put('lock', 'me', { acquire: 's1' }), true);
    t.same(s.kv.get('lock'), { Key: 'lock', CreateIndex: 1, ModifyIndex: 1, LockIndex: 1, Flags: 0n, Value: new TextEncoder().encode('me'), Session: 's1' });
  });

  t.test('acquiring a free existing key increments LockIndex and keeps CreateIndex', async (t) => {
    const s = new TestStore(new FakeSessions(['s1']));
    s.put('lock', 'free');
    s.put('lock', 'mine', { acquire: 's1' });
    const e = s.kv.get('lock')!;
    t.equal(e.LockIndex, 1);
    t.equal(e.CreateIndex, 1);
    t.equal(e.ModifyIndex, 2);
    t.equal(e.Session, 's1');
    t.equal(s.value('lock'), 'mine');
  });

  t.test('the holder acquiring again updates the value without bumping LockIndex', async (t) => {
    const s = new TestStore(new FakeSessions(['s1']));
    s.put('lock', 'one', { acquire: 's1' });
    t.equal(s.put('lock', 'two', { acquire: 's1' }), true);
    t.equal(s.kv.get('lock')!.LockIndex, 1);
    t.equal(s.kv.get('lock')!.ModifyIndex, 2);
    t.equal(s.value('lock'), 'two');
  });

  t.test('another session cannot acquire a held lock: false, nothing changes', async (t) => {
    const s = new TestStore(new FakeSessions(['s1', 's2']));
    s.put('lock', 'one', { acquire: 's1' });
    t.equal(s.put('lock', 'two', { acquire: 's2' }), false);
    t.equal(s.kv.get('lock')!.Session, 's1');
    t.equal(s.value('lock'), 'one');
    t.equal(s.kv.index(), 1);
  });

  t.test('acquiring with an unknown session fails with Consul\'s "invalid session" error', async (t) => {
    const s = new TestStore(new FakeSessions(['s1']));
    t.same(s.put('lock', 'v', { acquire: 'ghost' }), { ok: false, code: 'invalidSession', error: 'invalid session "ghost"' });
    t.equal(s.kv.get('lock'), undefined);
    t.equal(s.fsm.appliedIndex, 1);
  });

  t.test('without a sessions table every acquire fails: no session exists', async (t) => {
    const s = new TestStore();
    const result = s.put('lock', 'v', { acquire: 'any' });
    t.match(result, { ok: false, code: 'invalidSession' });
    t.equal(s.kv.size, 0);
  });

  t.test('acquire or release with an empty session id fails with "missing session"', async (t) => {
    const s = new TestStore(new FakeSessions(['s1']));
    s.put('lock', 'v');
    t.same(s.put('lock', 'w', { acquire: '' }), { ok: false, code: 'missingSession', error: 'missing session' });
    t.same(s.put('lock', 'w', { release: '' }), { ok: false, code: 'missingSession', error: 'missing session' });
    t.equal(s.value('lock'), 'v');
  });

  t.test('the holder releasing clears Session, keeps LockIndex and writes the value', async (t) => {
    const s = new TestStore(new FakeSessions(['s1']));
    s.put('lock', 'held', { acquire: 's1' });
    t.equal(s.put('lock', 'released', { release: 's1' }), true);
    const e = s.kv.get('lock')!;
    t.equal(e.Session, undefined);
    t.notOk('Session' in e);
    t.equal(e.LockIndex, 1);
    t.equal(e.ModifyIndex, 2);
    t.equal(s.value('lock'), 'released');
  });

  t.test('releasing a lock held by another session, or a free or missing key, answers false', async (t) => {
    const s = new TestStore(new FakeSessions(['s1', 's2']));
    s.put('held', 'v', { acquire: 's1' });
    s.put('free', 'v');
    t.equal(s.put('held', 'x', { release: 's2' }), false);
    t.equal(s.put('free', 'x', { release: 's1' }), false);
    t.equal(s.put('missing', 'x', { release: 's1' }), false);
    t.equal(s.kv.get('held')!.Session, 's1');
    t.equal(s.value('held'), 'v');
    t.equal(s.kv.get('missing'), undefined);
  });

  t.test('acquiring again after a release counts a new acquisition', async (t) => {
    const s = new TestStore(new FakeSessions(['s1', 's2']));
    s.put('lock', 'v', { acquire: 's1' });
    s.put('lock', 'v', { release: 's1' });
    s.put('lock', 'v', { acquire: 's2' });
    t.equal(s.kv.get('lock')!.LockIndex, 2);
    t.equal(s.kv.get('lock')!.Session, 's2');
  });

  t.test('a plain PUT overwrites a locked key and keeps the lock (locks are advisory)', async (t) => {
    const s = new TestStore(new FakeSessions(['s1']));
    s.put('lock', 'held', { acquire: 's1' });
    t.equal(s.put('lock', 'overwritten'), true);
    const e = s.kv.get('lock')!;
    t.equal(s.value('lock'), 'overwritten');
    t.equal(e.Session, 's1');
    t.equal(e.LockIndex, 1);
    t.equal(e.ModifyIndex, 2);
  });

  t.test('a cas PUT on a locked key keeps the lock too', async (t) => {
    const s = new TestStore(new FakeSessions(['s1']));
    s.put('lock', 'held', { acquire: 's1' });
    t.equal(s.put('lock', 'cas', { cas: 1 }), true);
    t.equal(s.kv.get('lock')!.Session, 's1');
  });

  t.test('deleting a locked key deletes it (and its lock)', async (t) => {
    const s = new TestStore(new FakeSessions(['s1']));
    s.put('a', 'v', { acquire: 's1' });
    s.put('b', 'v', { acquire: 's1' });
    t.same(s.kv.keysLockedBy('s1'), ['a', 'b']);
    t.equal(s.del('a'), true);
    t.equal(s.kv.get('a'), undefined);
    t.same(s.kv.keysLockedBy('s1'), ['b']);
    s.delTree('');
    t.same(s.kv.keysLockedBy('s1'), []);
  });

  t.test('keysLockedBy follows acquire and release', async (t) => {
    const s = new TestStore(new FakeSessions(['s1', 's2']));
    s.put('z', 'v', { acquire: 's1' });
    s.put('a', 'v', { acquire: 's1' });
    s.put('m', 'v', { acquire: 's2' });
    t.same(s.kv.keysLockedBy('s1'), ['a', 'z']);
    s.put('z', 'v', { release: 's1' });
    t.same(s.kv.keysLockedBy('s1'), ['a']);
    t.same(s.kv.keysLockedBy('s2'), ['m']);
    t.same(s.kv.keysLockedBy('nobody'), []);
  });
});
