import t from 'tap';
import { bucketDeadline, bucketGranularity, DeadlineWheel, type DeadlineSlot, type HasDeadline } from './deadline-wheel.ts';
import { parseQueryOptions } from '../../http/query-options.ts';

class Item implements HasDeadline<Item> {
  deadlineSlot: DeadlineSlot<Item> | null = null;
  constructor(readonly name: string) {}
}

t.test("a bucket deadline stays inside Consul's window: [wait, wait + wait/16) from the start", async (t) => {
  let seed = 42;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  for (const wait of ['600ms', '1s', '2s', '10s', '1m', '5m', '10m', '20m', '']) {
    for (let i = 0; i < 500; i++) {
      const opts = parseQueryOptions({ wait }, random);
      const start = random() * 1e7;
      const at = bucketDeadline(start, opts.waitBaseMs, opts.waitMs);
      const elapsed = at - start;
      if (elapsed < opts.waitBaseMs || elapsed >= opts.waitBaseMs + opts.waitBaseMs / 16) {
        t.fail(`wait ${wait}: start ${start}, jittered ${opts.waitMs} → ${elapsed} ms`);
        return;
      }
      const g = bucketGranularity(opts.waitBaseMs);
      if (g > 1 && at % g !== 0) t.fail(`not on a bucket boundary: ${at} (granularity ${g})`);
    }
  }
  t.equal(bucketGranularity(300_000), 1024, '5 minutes: 1,024 ms buckets (about 18 across the jitter window)');
  t.equal(bucketGranularity(300), 1, 'short waits keep their exact deadline');
  t.equal(bucketDeadline(1000.5, 300, 310), 1310.5);
});

t.test('items in one bucket share one timer and expire together; removed items do not expire', async (t) => {
  const expired: string[][] = [];
  let done: () => void = () => {};
  const finished = new Promise<void>((resolve) => (done = resolve));
  const wheel = new DeadlineWheel<Item>((items) => {
    expired.push(items.map((i) => i.name));
    if (expired.length === 2) done();
  });
  const now = performance.now();
  const a = new Item('a');
  const b = new Item('b');
  const c = new Item('c');
  const d = new Item('d');
  wheel.add(a, now + 30);
  wheel.add(b, now + 30);
  wheel.add(c, now + 30);
  wheel.add(d, now + 60);
  t.equal(wheel.size, 4);
  t.equal(wheel.buckets, 2, 'two deadlines, two timers');
  wheel.remove(b);
  wheel.remove(b);
  t.equal(wheel.size, 3, 'removing twice is harmless');
  await finished;
  t.same(expired, [['a', 'c'], ['d']]);
  t.equal(wheel.size, 0);
  t.equal(wheel.buckets, 0);
  t.equal(a.deadlineSlot, null);
});

t.test('a bucket whose items are all removed stops its timer; clear stops everything', async (t) => {
  const expired: Item[] = [];
  const wheel = new DeadlineWheel<Item>((items) => expired.push(...items));
  const now = performance.now();
  const a = new Item('a');
  const b = new Item('b');
  wheel.add(a, now + 20);
  wheel.add(b, now + 40);
  wheel.remove(a);
  t.equal(wheel.buckets, 1);
  wheel.clear();
  t.equal(wheel.buckets, 0);
  t.equal(b.deadlineSlot, null);
  await new Promise((r) => setTimeout(r, 80));
  t.same(expired, [], 'nothing expired');
});
