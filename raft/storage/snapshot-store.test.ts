import { readdir, readFile, rename, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import t from 'tap';
import type { SnapshotMeta } from '../core/types.ts';
import { StorageCorruptionError } from './errors.ts';
import { crc32Combine, snapshotFileName, SnapshotStore } from './snapshot-store.ts';
import { readAllData, tempDir } from './test-helpers.ts';

function metaAt(index: number, term: number): SnapshotMeta {
  return { index, term, confState: { voters: ['n1', 'n2', 'n3'], learners: ['n4'] } };
}

function dataFor(index: number, dataBytes = 32): Buffer {
  const data = Buffer.alloc(dataBytes);
  for (let i = 0; i < dataBytes; i++) data[i] = (i * 31 + index) & 0xff;
  return data;
}

/** `data` cut into pieces of `size` bytes (views). */
function piecesOf(data: Uint8Array, size: number): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  for (let at = 0; at < data.length; at += size) pieces.push(data.subarray(at, at + size));
  return pieces;
}

async function* slowly(pieces: readonly Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const piece of pieces) {
    await new Promise((r) => setImmediate(r));
    yield piece;
  }
}

async function flipByte(path: string, offset: number): Promise<void> {
  const bytes = await readFile(path);
  bytes[offset]! ^= 0xff;
  await writeFile(path, bytes);
}

async function leftovers(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => !n.endsWith('.snap'));
}

t.test('crc32Combine gives the CRC of a concatenation', async (t) => {
  const a = dataFor(1, 1000);
  for (const length of [0, 1, 7, 64, 4096, 3 * 1024 * 1024 + 3]) {
    const b = dataFor(length, length);
    t.equal(crc32Combine(crc32(a), crc32(b), b.length), crc32(Buffer.concat([a, b])), `${length} bytes`);
  }
  t.equal(crc32Combine(crc32(Buffer.alloc(0)), crc32(a), a.length), crc32(a), 'empty first part');
});

t.test('save from pieces then read in pieces round-trips meta and data', async (t) => {
  const store = await SnapshotStore.open(join(await tempDir(t), 'snapshots'));
  const big = dataFor(30, 5 * 1024 * 1024 + 11);
  const cases: { meta: SnapshotMeta; data: Buffer; pieces: Iterable<Uint8Array> | AsyncIterable<Uint8Array>; what: string }[] = [
    { meta: metaAt(10, 2), data: Buffer.alloc(0), pieces: [], what: 'no data at all' },
    { meta: metaAt(20, 3), data: dataFor(20), pieces: [dataFor(20)], what: 'one piece' },
    { meta: metaAt(30, 3), data: big, pieces: piecesOf(big, 1000), what: 'many small pieces (gathered into larger writes)' },
    { meta: metaAt(40, 3), data: big, pieces: slowly(piecesOf(big, 700 * 1024)), what: 'large pieces from an async source' },
    { meta: metaAt(50, 4), data: big, pieces: [big.subarray(0, 10), big.subarray(10, 10), big.subarray(10)], what: 'an empty piece among others' },
  ];
  for (const c of cases) {
    const file = await store.save(c.meta, c.pieces);
    t.equal(file.path, join(store.dir, snapshotFileName(c.meta.term, c.meta.index)));
    const reader = await store.read(file);
    t.same(reader.meta, c.meta, `${c.what}: meta`);
    t.equal(reader.dataBytes, c.data.length);
    t.ok((await readAllData(reader, 300 * 1024)).equals(c.data), `${c.what}: data of ${c.data.length} bytes intact`);
    t.same(await store.verify(file), c.meta);
  }
  t.same(
    (await store.list()).map((f) => [f.term, f.index]),
    [
      [4, 50],
      [3, 40],
      [3, 30],
      [3, 20],
      [2, 10],
    ],
    'listed newest first',
  );
  t.same(await leftovers(store.dir), [], 'no temporary files left');
});

t.test('reading hands out pieces of at most the size asked for, and never the last one of a damaged file', async (t) => {
  const store = await SnapshotStore.open(join(await tempDir(t), 'snapshots'));
  const data = dataFor(5, 10_000);
  const file = await store.save(metaAt(5, 1), [data]);
  const sizes: number[] = [];
  const reader = await store.read(file);
  for (let piece = await reader.read(3000); piece !== null; piece = await reader.read(3000)) sizes.push(piece.length);
  await reader.close();
  t.same(sizes, [3000, 3000, 3000, 1000]);

  // Damage in the middle of the data: the earlier pieces come (a consumer builds aside), the
  // last one is refused, so whoever commits only after it never commits damaged data.
  await flipByte(file.path, (await readFile(file.path)).length - 5000);
  const damaged = await store.read(file);
  t.ok(await damaged.read(3000));
  t.ok(await damaged.read(3000));
  t.ok(await damaged.read(3000));
  await t.rejects(damaged.read(3000), { name: 'StorageCorruptionError', location: 'checksum', message: /checksum mismatch/ });
  await t.rejects(damaged.read(3000), StorageCorruptionError, 'and again: never a quiet end of data');
  await damaged.close();
  // A consumer may also stop early: closing mid-file is fine.
  const early = await store.read(file);
  await early.read(100);
  await early.close();
  await early.close();
});

t.test('a damaged file is detected wherever the damage is', async (t) => {
  const store = await SnapshotStore.open(join(await tempDir(t), 'snapshots'));
  const file = await store.save(metaAt(5, 1), [dataFor(5, 100)]);
  const size = (await readFile(file.path)).length;
  for (const offset of [0, 5, 9, 13, 21, 24, 30, size - 1]) {
    await flipByte(file.path, offset);
    await t.rejects(store.verify(file), StorageCorruptionError, `byte ${offset} flipped`);
    await flipByte(file.path, offset);
  }
  await truncate(file.path, size - 1);
  await t.rejects(store.verify(file), { name: 'StorageCorruptionError', path: file.path, message: /truncated/ });
  await truncate(file.path, 10);
  await t.rejects(store.read(file), /shorter than the 24-byte header/);
  // No data at all: the checksum is checked when the file is opened.
  const empty = await store.save(metaAt(6, 1), []);
  await flipByte(empty.path, 21);
  await t.rejects(store.read(empty), /checksum mismatch/);
});

t.test('a missing file and a file under the wrong name are errors', async (t) => {
  const store = await SnapshotStore.open(join(await tempDir(t), 'snapshots'));
  await t.rejects(store.read({ term: 1, index: 1 }), { name: 'StorageCorruptionError', problem: 'missing' });
  const file = await store.save(metaAt(7, 1), [dataFor(7)]);
  await rename(file.path, store.pathOf(1, 8));
  await t.rejects(store.read({ term: 1, index: 8 }), /not the one its name says/);
});

t.test('an aborted save or a failing source leaves no file behind', async (t) => {
  const store = await SnapshotStore.open(join(await tempDir(t), 'snapshots'));
  const controller = new AbortController();
  async function* abortedHalfway(): AsyncGenerator<Uint8Array> {
    yield dataFor(1, 1000);
    controller.abort(new Error('superseded'));
    yield dataFor(2, 1000);
  }
  await t.rejects(store.save(metaAt(9, 1), abortedHalfway(), controller.signal), /superseded/);
  // eslint-disable-next-line require-yield -- a source that fails before its first piece
  async function* failing(): AsyncGenerator<Uint8Array> {
    throw new Error('encoder bug');
  }
  await t.rejects(store.save(metaAt(9, 1), failing()), /encoder bug/);
  const writer = await store.createWriter(metaAt(9, 1), 'recv');
  await writer.write(dataFor(3, 100));
  await writer.abort();
  await writer.abort();
  await t.rejects(writer.write(dataFor(3, 1)), /finished or aborted/);
  t.same(await readdir(store.dir), []);
});

t.test('a written file is installed under its final name or discarded', async (t) => {
  const store = await SnapshotStore.open(join(await tempDir(t), 'snapshots'));
  const writer = await store.createWriter(metaAt(12, 2), 'recv');
  // Overlapping writes land in call order.
  await Promise.all([writer.write(Buffer.from('abc')), writer.write(Buffer.from('def')), writer.write(Buffer.from('g'))]);
  const written = await writer.finish();
  t.match(written.tempPath, /0000000000000002-000000000000000c\.snap\.[0-9a-f]+\.recv$/);
  t.equal(written.dataBytes, 7);
  t.same(await store.list(), [], 'not a snapshot until installed');
  const file = await store.install(written);
  t.equal((await readAllData(await store.read(file))).toString(), 'abcdefg');
  const other = await (await store.createWriter(metaAt(13, 2), 'tmp')).finish();
  await store.discard(other);
  t.same(await readdir(store.dir), [snapshotFileName(2, 12)]);
});

t.test('latest() skips a corrupt newest snapshot, reports it and returns the previous one', async (t) => {
  const store = await SnapshotStore.open(join(await tempDir(t), 'snapshots'));
  await store.save(metaAt(10, 1), [dataFor(10)]);
  await store.save(metaAt(20, 2), [dataFor(20)]);
  const newest = await store.save(metaAt(30, 2), [dataFor(30)]);
  t.equal((await store.latest()).meta?.index, 30);
  t.equal((await store.latest(25)).meta?.index, 20, 'bounded by maxIndex');

  await flipByte(newest.path, 40);
  const { meta, file, problems } = await store.latest();
  t.equal(meta?.index, 20);
  t.equal(file?.index, 20);
  t.equal(problems.length, 1);
  t.equal(problems[0]?.path, newest.path);
  t.match(problems[0]?.problem, /checksum mismatch/);
});

t.test('latest() on an empty store is null', async (t) => {
  const store = await SnapshotStore.open(join(await tempDir(t), 'snapshots'));
  t.same(await store.latest(), { meta: null, file: null, problems: [] });
});

t.test('prune keeps the newest files', async (t) => {
  const store = await SnapshotStore.open(join(await tempDir(t), 'snapshots'));
  for (const i of [1, 2, 3, 4]) await store.save(metaAt(i * 10, i), [dataFor(i)]);
  const removed = await store.prune(2);
  t.same(removed, [store.pathOf(2, 20), store.pathOf(1, 10)]);
  t.same(
    (await store.list()).map((f) => f.index),
    [40, 30],
  );
  t.same(await store.prune(2), [], 'nothing more to remove');
});

t.test('open removes temporary and received files of interrupted writes and ignores unrelated files', async (t) => {
  const dir = join(await tempDir(t), 'snapshots');
  const store = await SnapshotStore.open(dir);
  await store.save(metaAt(10, 1), [dataFor(10)]);
  await writeFile(join(dir, `${snapshotFileName(2, 20)}.tmp`), 'half a snapshot');
  await writeFile(join(dir, `${snapshotFileName(2, 20)}.0a1b2c.tmp`), 'half a snapshot');
  await writeFile(join(dir, `${snapshotFileName(3, 30)}.0a1b2c.recv`), 'half a received snapshot');
  await writeFile(join(dir, 'README'), 'not a snapshot');
  const reopened = await SnapshotStore.open(dir);
  t.same((await readdir(dir)).sort(), ['0000000000000001-000000000000000a.snap', 'README']);
  t.same(
    (await reopened.list()).map((f) => f.index),
    [10],
  );
});
