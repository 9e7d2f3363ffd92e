// The ordered key set behaves like a sorted array of unique keys, at any size.
import t from 'tap';
import { Prng } from '../../raft/core/prng.ts';
import { compareKeys, SortedKeySet } from './sorted-keys.ts';

const byUtf8 = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

t.test('compareKeys orders strings by their UTF-8 bytes', async (t) => {
  const samples = ['', 'a', 'ab', 'b', 'z', '\u00e9', '\u07ff', '\u0800', '\ud7ff', '\ue000', '\uffff', '\u{10000}', '\u{1F600}', '\u{10FFFF}', 'a\u{10000}', 'a\uffff'];
  for (const a of samples) {
    for (const b of samples) t.equal(Math.sign(compareKeys(a, b)), Math.sign(byUtf8(a, b)), `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
  }
});

t.test('matches a sorted reference array under random adds, deletes and prefix deletes', async (t) => {
  const random = new Prng(42);
  const set = new SortedKeySet();
  const reference = new Set<string>();
  const randomKey = () => `${'abc'[random.int(3)]}/${random.int(40)}/${random.int(100)}`;
  const disagreements: string[] = [];
  for (let step = 0; step < 20_000; step++) {
    const action = random.int(100);
    if (action < 70) {
      const key = randomKey();
      if (set.add(key) === reference.has(key)) disagreements.push(`add ${key}`);
      reference.add(key);
    } else if (action < 98) {
      const key = randomKey();
      if (set.delete(key) !== reference.delete(key)) disagreements.push(`delete ${key}`);
    } else {
      const prefix = `${'abc'[random.int(3)]}/${random.int(40)}`;
      const expected = [...reference].filter((k) => k.startsWith(prefix)).sort(compareKeys);
      t.same(set.deletePrefix(prefix), expected, `deletePrefix ${prefix}`);
      for (const k of expected) reference.delete(k);
    }
  }
  t.same(disagreements, [], 'add and delete report presence like a Set');
  const sorted = [...reference].sort(compareKeys);
  t.equal(set.size, sorted.length);
  t.same(set.all(), sorted);
  t.same(set.withPrefix('b/1'), sorted.filter((k) => k.startsWith('b/1')));
});

t.test('splits and merges blocks correctly with many keys', async (t) => {
  const set = new SortedKeySet();
  const keys = Array.from({ length: 10_000 }, (_, i) => `k${String(i).padStart(5, '0')}`);
  // Reverse insertion exercises inserts at the front of the first block.
  for (const key of [...keys].reverse()) set.add(key);
  t.same(set.all(), keys);
  t.same(set.deletePrefix('k0'), keys.slice(0, 10_000).filter((k) => k.startsWith('k0')));
  t.equal(set.size, 0);
  for (const key of keys) set.add(key);
  for (let i = 0; i < keys.length; i += 2) set.delete(keys[i]!);
  t.same(set.all(), keys.filter((_, i) => i % 2 === 1));
  t.same(set.withPrefix('k0999'), ['k09991', 'k09993', 'k09995', 'k09997', 'k09999']);
});

t.test('withPrefix of a prefix nothing starts with is empty', async (t) => {
  const set = SortedKeySet.fromSorted(['a', 'b/1', 'b/2', 'c']);
  t.same(set.withPrefix('bb'), []);
  t.same(set.withPrefix('d'), []);
  t.same(set.withPrefix('b/'), ['b/1', 'b/2']);
  t.ok(set.has('c'));
  t.notOk(set.has('b'));
});
