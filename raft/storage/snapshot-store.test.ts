import { readdir, readFile, rename, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import type { Snapshot } from '../core/types.ts';
import { StorageCorruptionError } from './errors.ts';
import { snapshotFileName, SnapshotStore } from './snapshot-store.ts';
import { tempDir } from './test-helpers.ts';

function snapshotAt(index: number, term: number, dataBytes = 32): Snapshot {
  const data = new Uint8Array(dataBytes);
  for (let i = 0; i < dataBytes; i++) data[i] = (i * 31 + index) & 0xff;
  return { meta: { index, term, confState: { voters: ['n1', 'n2', 'n3'], learners: ['n4'] } }, data };
}

async function flipByte(path: string, offset: number): Promise<void> {
  const bytes = await readFile(path);
  bytes[offset]! ^= 0xff;
  await writeFile(path, bytes);
}

t.test('save then load round-trips meta and data, including empty and large data', async (t) => {
  const store = await SnapshotStore.open(join(await tempDir(t), 'snapshots'));
  for (const snap of [snapshotAt(10, 2, 0), snapshotAt(20, 3), snapshotAt(30, 3, 5 * 1024 * 1024)]) {
    const file = await store.save(snap);
    t.equal(file.path, join(store.dir, snapshotFileName(snap.meta.term, snap.meta.index)));
    const loaded = await store.load(file);
    t.same(loaded.meta, snap.meta);
    t.ok(Buffer.from(loaded.data).equals(Buffer.from(snap.data)), `data of ${snap.data.length} bytes intact`);
  }
  t.same(
    (await store.list()).map((f) => [f.term, f.index]),
    [
      [3, 30],
      [3, 20],
      [2, 10],
    ],
    'listed newest first',
  );
  t.same((await readdir(store.dir)).filter((n) => n.endsWith('.tmp')), [], 'no temporary files left');
});

t.test('file names carry term and index as 16 hex digits', async (t) => {
  t.equal(snapshotFileName(2, 255), '0000000000000002-00000000000000ff.snap');
});

t.test('a damaged file is detected wherever the damage is', async (t) => {
  const store = await SnapshotStore.open(join(await tempDir(t), 'snapshots'));
  const file = await store.save(snapshotAt(5, 1, 100));
  const size = (await readFile(file.path)).length;
  for (const offset of [0, 5, 9, 13, 21, 24, 30, size - 1]) {
    await flipByte(file.path, offset);
    await t.rejects(store.load(file), StorageCorruptionError, `byte ${offset} flipped`);
    await flipByte(file.path, offset);
  }
  await truncate(file.path, size - 1);
  await t.rejects(store.load(file), { name: 'StorageCorruptionError', path: file.path, message: /truncated/ });
  await truncate(file.path, 10);
  await t.rejects(store.load(file), /shorter than the 24-byte header/);
});

t.test('a missing file and a file under the wrong name are errors', async (t) => {
  const store = await SnapshotStore.open(join(await tempDir(t), 'snapshots'));
  await t.rejects(store.load({ term: 1, index: 1 }), { name: 'StorageCorruptionError', problem: 'missing' });
  const file = await store.save(snapshotAt(7, 1));
  await rename(file.path, store.pathOf(1, 8));
  await t.rejects(store.load({ term: 1, index: 8 }), /not the one its name says/);
});

t.test('latest() skips a corrupt newest snapshot, reports it and returns the previous one', async (t) => {
  const store = await SnapshotStore.open(join(await tempDir(t), 'snapshots'));
  await store.save(snapshotAt(10, 1));
  await store.save(snapshotAt(20, 2));
  const newest = await store.save(snapshotAt(30, 2));
  t.equal((await store.latest()).snapshot?.meta.index, 30);
  t.equal((await store.latest(25)).snapshot?.meta.index, 20, 'bounded by maxIndex');

  await flipByte(newest.path, 40);
  const { snapshot, file, problems } = await store.latest();
  t.equal(snapshot?.meta.index, 20);
  t.equal(file?.index, 20);
  t.equal(problems.length, 1);
  t.equal(problems[0]?.path, newest.path);
  t.match(problems[0]?.problem, /checksum mismatch/);
});

t.test('latest() on an empty store is null', async (t) => {
  const store = await SnapshotStore.open(join(await tempDir(t), 'snapshots'));
  t.same(await store.latest(), { snapshot: null, file: null, problems: [] });
});

t.test('prune keeps the newest files', async (t) => {
  const store = await SnapshotStore.open(join(await tempDir(t), 'snapshots'));
  for (const i of [1, 2, 3, 4]) await store.save(snapshotAt(i * 10, i));
  const removed = await store.prune(2);
  t.same(removed, [store.pathOf(2, 20), store.pathOf(1, 10)]);
  t.same(
    (await store.list()).map((f) => f.index),
    [40, 30],
  );
  t.same(await store.prune(2), [], 'nothing more to remove');
});

t.test('open removes temporary files of interrupted writes and ignores unrelated files', async (t) => {
  const dir = join(await tempDir(t), 'snapshots');
  const store = await SnapshotStore.open(dir);
  await store.save(snapshotAt(10, 1));
  await writeFile(join(dir, `${snapshotFileName(2, 20)}.tmp`), 'half a snapshot');
  await writeFile(join(dir, 'README'), 'not a snapshot');
  const reopened = await SnapshotStore.open(dir);
  t.same((await readdir(dir)).sort(), ['0000000000000001-000000000000000a.snap', 'README']);
  t.same(
    (await reopened.list()).map((f) => f.index),
    [10],
  );
});
