import t from 'tap';
import { Prng } from '../../raft/core/prng.ts';
import { CowSortedMap, SortedMapBuilder, type SortedMapView } from './cow-sorted-map.ts';
import { compareKeys } from './sorted-keys.ts';

/** A seeded source of floats in [0, 1), so a failure replays. */
function prng(seed: number): () => number {
  const random = new Prng(seed);
  return () => random.float();
}

function contents<V>(map: CowSortedMap<V> | SortedMapView<V>, from = ''): [string, V][] {
  const out: [string, V][] = [];
  for (const run of map.leaves(from)) for (let i = run.offset; i < run.keys.length; i++) out.push([run.keys[i]!, run.values[i]!]);
  return out;
}

/** Equality of two entry lists (tap's deep comparison is slow on thousands of pairs). */
function sameEntries<V>(a: [string, V][], b: [string, V][]): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function sortedEntries(model: Map<string, number>): [string, number][] {
  return [...model.entries()].sort((a, b) => compareKeys(a[0], b[0]));
}

t.test('random writes, deletes and freezes agree with a model; views never change', (t) => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const random = prng(seed);
    const map = new CowSortedMap<number>();
    const model = new Map<string, number>();
    const views: { view: SortedMapView<number>; expected: [string, number][] }[] = [];
    const keySpace = seed % 2 === 0 ? 300 : 5000;
    for (let step = 0; step < 20000; step++) {
      const key = `k/${Math.floor(random() * keySpace)}${random() < 0.05 ? '\u{1F600}' : random() < 0.05 ? '\uE000' : ''}`;
      const r = random();
      if (r < 0.55) {
        map.set(key, step);
        model.set(key, step);
      } else if (r < 0.95) {
        if (map.delete(key) !== model.get(key)) {
          t.fail(`seed ${seed} step ${step}: delete(${key}) answers the old value`);
          return t.end();
        }
        model.delete(key);
      } else if (r < 0.955) {
        views.push({ view: map.freeze(), expected: sortedEntries(model) });
      }
      if (map.get(key) !== model.get(key)) {
        t.fail(`seed ${seed} step ${step}: get(${key})`);
        return t.end();
      }
    }
    t.equal(map.size, model.size, `seed ${seed}: size`);
    t.ok(sameEntries(contents(map), sortedEntries(model)), `seed ${seed}: contents in code point order`);
    for (const [n, { view, expected }] of views.entries()) {
      t.equal(view.size, expected.length, `seed ${seed} view ${n}: size`);
      t.ok(sameEntries(contents(view), expected), `seed ${seed} view ${n}: unchanged by later writes`);
    }
  }
  t.end();
});

t.test('prefix scans start at the prefix and stop after it', (t) => {
  const map = new CowSortedMap<number>();
  for (let i = 0; i < 3000; i++) map.set(`a/${String(i).padStart(4, '0')}`, i);
  for (let i = 0; i < 100; i++) map.set(`b/${i}`, i);
  map.set('a', -1);
  t.same(map.keysWithPrefix('a/01').length, 100);
  t.same(map.keysWithPrefix('a/0100'), ['a/0100']);
  t.same(map.keysWithPrefix('c'), []);
  t.equal(map.keysWithPrefix('').length, 3101);
  t.same(contents(map, 'b/')[0], ['b/0', 0]);
  t.end();
});

t.test('a builder makes the same map as inserting one by one', (t) => {
  for (const n of [0, 1, 63, 64, 65, 64 * 64, 64 * 64 + 1, 100000]) {
    const builder = new SortedMapBuilder<number>();
    const keys = Array.from({ length: n }, (_, i) => `key-${String(i).padStart(7, '0')}`);
    keys.forEach((k, i) => builder.add(k, i));
    const map = CowSortedMap.fromBuilder(builder);
    t.equal(map.size, n, `${n}: size`);
    t.equal(map.get(keys[n >> 1] ?? 'x'), n === 0 ? undefined : n >> 1, `${n}: lookup`);
    const all = contents(map);
    t.equal(all.length, n, `${n}: every entry iterates`);
    t.ok(all.every(([k, v], i) => k === keys[i] && v === i), `${n}: in order`);
    // Writes after the build work and delete down to empty.
    const view = map.freeze();
    for (const k of keys.slice(0, Math.min(n, 5000))) map.delete(k);
    t.equal(map.size, Math.max(0, n - 5000), `${n}: deletes`);
    t.equal(view.size, n, `${n}: the frozen view keeps its size`);
    t.equal(contents(view).length, n, `${n}: and its entries`);
  }
  t.end();
});

t.test('deleting everything leaves an empty, usable map', (t) => {
  const map = new CowSortedMap<number>();
  for (let i = 0; i < 10000; i++) map.set(`k${i}`, i);
  const view = map.freeze();
  for (let i = 0; i < 10000; i++) map.delete(`k${i}`);
  t.equal(map.size, 0);
  t.same(contents(map), []);
  map.set('again', 1);
  t.same(contents(map), [['again', 1]]);
  t.equal(contents(view).length, 10000);
  t.end();
});
