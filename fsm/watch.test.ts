// The watch registry wakes exactly the watchers whose data changed, once per apply.
import t from 'tap';
import { FakeSessions, TestStore } from './test-store.ts';
import { WatchRegistry } from './watch.ts';

/** Registers named watchers and records which were called. */
function recorder(registry: WatchRegistry) {
  const called: string[] = [];
  const cancels = new Map<string, () => void>();
  return {
    called,
    key(name: string, key: string) {
      cancels.set(name, registry.watchKey(key, () => called.push(name)));
    },
    prefix(name: string, prefix: string) {
      cancels.set(name, registry.watchPrefix(prefix, () => called.push(name)));
    },
    cancel(name: string) {
      cancels.get(name)!();
    },
  };
}

t.test('a write to a/b wakes the watchers of key a/b and of every prefix of a/b, and no others', async (t) => {
  const registry = new WatchRegistry();
  const r = recorder(registry);
  r.key('key a/b', 'a/b');
  r.prefix('prefix a/', 'a/');
  r.prefix("prefix ''", '');
  r.prefix('prefix a', 'a');
  r.prefix('prefix a/b', 'a/b');
  r.prefix('prefix a/c', 'a/c');
  r.prefix('prefix a/b/', 'a/b/');
  r.key('key a/bb', 'a/bb');
  r.key('key a', 'a');
  r.key('key a/', 'a/');
  registry.notify('kv', 5, ['a/b']);
  t.same(r.called.sort(), ["prefix ''", 'key a/b', 'prefix a', 'prefix a/', 'prefix a/b'].sort());
});

t.test('a watcher hears the index of the change', async (t) => {
  const registry = new WatchRegistry();
  const heard: number[] = [];
  registry.watchKey('k', (index) => heard.push(index));
  registry.notify('kv', 42, ['k']);
  t.same(heard, [42]);
});

t.test('a watcher matching several changed keys is called once', async (t) => {
  const registry = new WatchRegistry();
  let calls = 0;
  registry.watchPrefix('a/', () => calls++);
  registry.notify('kv', 3, ['a/1', 'a/2', 'a/3']);
  t.equal(calls, 1);
});

t.test('a watcher stays registered until cancelled', async (t) => {
  const registry = new WatchRegistry();
  let calls = 0;
  registry.watchKey('k', () => calls++);
  registry.notify('kv', 1, ['k']);
  registry.notify('kv', 2, ['k']);
  t.equal(calls, 2);
});

t.test('a cancelled watcher is not called, and cancelling twice is harmless', async (t) => {
  const registry = new WatchRegistry();
  const r = recorder(registry);
  r.key('key', 'k');
  r.prefix('prefix', 'k');
  r.prefix('other prefix of the same length', 'x');
  t.equal(registry.size, 3);
  r.cancel('key');
  r.cancel('prefix');
  r.cancel('prefix');
  t.equal(registry.size, 1);
  registry.notify('kv', 1, ['k']);
  t.same(r.called, []);
});

t.test('10,000 watchers on other prefixes and keys are not called', async (t) => {
  const registry = new WatchRegistry();
  let strayCalls = 0;
  for (let i = 0; i < 10_000; i++) {
    registry.watchPrefix(`service/${i}/`, () => strayCalls++);
    registry.watchKey(`service/${i}`, () => strayCalls++);
  }
  let mine = 0;
  registry.watchPrefix('app/', () => mine++);
  for (let i = 0; i < 1000; i++) registry.notify('kv', i + 1, [`app/config/${i}`]);
  t.equal(strayCalls, 0);
  t.equal(mine, 1000);
});

t.test('watchers registered on another table are not woken by KV changes', async (t) => {
  const registry = new WatchRegistry();
  let catalogCalls = 0;
  registry.watchKey('web', () => catalogCalls++, 'catalog');
  registry.watchPrefix('', () => catalogCalls++, 'catalog');
  registry.watchTable('catalog', () => catalogCalls++);
  registry.notify('kv', 1, ['web']);
  t.equal(catalogCalls, 0);
  registry.notify('catalog', 2, ['web']);
  t.equal(catalogCalls, 3);
});

t.test('a table watcher hears every change of its table', async (t) => {
  const registry = new WatchRegistry();
  const heard: number[] = [];
  registry.watchTable('kv', (index) => heard.push(index));
  registry.notify('kv', 1, ['a']);
  registry.notify('kv', 2, ['zzz/deep/key']);
  registry.notify('kv', 3, []);
  t.same(heard, [1, 2], 'an apply that changed nothing wakes nobody');
});

t.test('a watcher cancelled by an earlier callback of the same notify is not called', async (t) => {
  const registry = new WatchRegistry();
  let secondCalled = false;
  let cancelSecond: () => void = () => {};
  registry.watchKey('k', () => cancelSecond());
  cancelSecond = registry.watchKey('k', () => {
    secondCalled = true;
  });
  registry.notify('kv', 1, ['k']);
  t.equal(secondCalled, false);
});

t.test('a callback may cancel itself (what a blocking query does when it wakes)', async (t) => {
  const registry = new WatchRegistry();
  let calls = 0;
  const cancel = registry.watchPrefix('a/', () => {
    calls++;
    cancel();
  });
  registry.notify('kv', 1, ['a/x']);
  registry.notify('kv', 2, ['a/x']);
  t.equal(calls, 1);
  t.equal(registry.size, 0);
});

t.test('a throwing callback does not stop the others; the first error is rethrown afterwards', async (t) => {
  const registry = new WatchRegistry();
  let othersCalled = 0;
  registry.watchKey('k', () => othersCalled++);
  registry.watchKey('k', () => {
    throw new Error('boom');
  });
  registry.watchKey('k', () => othersCalled++);
  t.throws(() => registry.notify('kv', 1, ['k']), { message: 'boom' });
  t.equal(othersCalled, 2);
});

t.test('with an error handler, callback errors go to it', async (t) => {
  const errors: unknown[] = [];
  const registry = new WatchRegistry({ onWatcherError: (e) => errors.push(e) });
  registry.watchKey('k', () => {
    throw new Error('boom');
  });
  registry.notify('kv', 1, ['k']);
  t.equal(errors.length, 1);
});

t.test('notifyAll wakes every watcher of every table once', async (t) => {
  const registry = new WatchRegistry();
  let calls = 0;
  registry.watchKey('a', () => calls++);
  registry.watchPrefix('b/', () => calls++);
  registry.watchTable('kv', () => calls++);
  registry.watchKey('web', () => calls++, 'catalog');
  registry.notifyAll(9);
  t.equal(calls, 4);
});

t.test('through the FSM', async (t) => {
  t.test('a PUT wakes its key and prefix watchers, not those of other keys', async (t) => {
    const s = new TestStore();
    const r = recorder(s.fsm.watches);
    r.key('key a/b', 'a/b');
    r.prefix('prefix a/', 'a/');
    r.key('key a/c', 'a/c');
    s.put('a/b', 'v');
    t.same(r.called.sort(), ['key a/b', 'prefix a/']);
  });

  t.test('watchers run after the write is visible', async (t) => {
    const s = new TestStore();
    let seen: string | undefined;
    s.fsm.watches.watchKey('k', () => {
      seen = s.value('k');
    });
    s.put('k', 'new');
    t.equal(seen, 'new');
  });

  t.test('a recursive delete wakes the watchers of every deleted key and their prefixes', async (t) => {
    const s = new TestStore();
    s.put('a/x/1', 'v');
    s.put('a/y', 'v');
    s.put('b', 'v');
    const r = recorder(s.fsm.watches);
    r.key('key a/x/1', 'a/x/1');
    r.prefix('prefix a/x/', 'a/x/');
    r.key('key b', 'b');
    r.prefix('prefix a/z/', 'a/z/');
    s.delTree('a/');
    t.same(r.called.sort(), ['key a/x/1', 'prefix a/x/']);
  });

  t.test('a write that changes nothing wakes nobody (failed cas, failed acquire, identical PUT)', async (t) => {
    const s = new TestStore(new FakeSessions(['s1', 's2']));
    s.put('k', 'v', { acquire: 's1' });
    let calls = 0;
    s.fsm.watches.watchPrefix('', () => calls++);
    s.put('k', 'x', { cas: 99 });
    s.put('k', 'x', { acquire: 's2' });
    s.put('k', 'v', { acquire: 's1' });
    s.del('missing');
    s.delTree('nothing/');
    s.reap(100);
    t.equal(calls, 0);
  });

  t.test('a snapshot restore wakes every watcher', async (t) => {
    const s = new TestStore();
    s.put('a', 'v');
    const snapshot = s.fsm.snapshot();
    const other = new TestStore();
    let calls = 0;
    other.fsm.watches.watchKey('unrelated', () => calls++);
    other.fsm.watches.watchPrefix('x/', () => calls++);
    other.fsm.restore(snapshot);
    t.equal(calls, 2);
  });
});
