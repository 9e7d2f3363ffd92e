import t from 'tap';
import { blockingQuery } from './blocking.ts';

/** A tiny watchable value standing in for an FSM table. */
function watchable(initial: number) {
  let index = initial;
  const watchers = new Set<() => void>();
  return {
    set(i: number) {
      index = i;
      for (const w of [...watchers]) w();
    },
    watch(wake: () => void) {
      watchers.add(wake);
      return () => watchers.delete(wake);
    },
    run: () => ({ index, value: index }),
    watcherCount: () => watchers.size,
  };
}

t.test('answers at once without an index, or when the data is newer than the index', async (t) => {
  const w = watchable(5);
  t.same(await blockingQuery({ minIndex: 0, waitMs: 10_000, watch: w.watch, run: w.run }), { index: 5, value: 5 });
  t.same(await blockingQuery({ minIndex: 3, waitMs: 10_000, watch: w.watch, run: w.run }), { index: 5, value: 5 });
});

t.test('an index that went backwards (a restore) answers at once so the client resyncs', async (t) => {
  const w = watchable(5);
  t.equal((await blockingQuery({ minIndex: 9, waitMs: 10_000, watch: w.watch, run: w.run })).index, 5);
});

t.test('blocks until the watched data changes, then answers with the new index', async (t) => {
  const w = watchable(5);
  const pending = blockingQuery({ minIndex: 5, waitMs: 10_000, watch: w.watch, run: w.run });
  await new Promise((r) => setTimeout(r, 20));
  t.equal(w.watcherCount(), 1, 'one watcher registered while waiting');
  w.set(8);
  t.same(await pending, { index: 8, value: 8 });
  t.equal(w.watcherCount(), 0, 'the watcher is removed');
});

t.test('the wait ends with the unchanged result', async (t) => {
  const w = watchable(5);
  const started = Date.now();
  const r = await blockingQuery({ minIndex: 5, waitMs: 50, watch: w.watch, run: w.run });
  t.equal(r.index, 5);
  t.ok(Date.now() - started >= 45);
  t.equal(w.watcherCount(), 0);
});

t.test('a client that goes away stops the wait', async (t) => {
  const w = watchable(5);
  const ac = new AbortController();
  const pending = blockingQuery({ minIndex: 5, waitMs: 60_000, watch: w.watch, run: w.run, signal: ac.signal });
  ac.abort();
  t.equal((await pending).index, 5);
  t.equal(w.watcherCount(), 0);
});

t.test('the index is never 0', async (t) => {
  const w = watchable(0);
  t.equal((await blockingQuery({ minIndex: 0, waitMs: 10, watch: w.watch, run: w.run })).index, 1);
});
