// Snapshots streamed file to file over real loopback sockets: the leader reads its stored snapshot
// in chunks, the follower writes them to a file of its storage (with backpressure) and delivers the
// MsgSnap with empty data once the file is synced; aborted streams leave no file behind.
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { ConfState, MsgSnap, SnapshotMeta } from '../core/types.ts';
import type { SnapshotDataSink, SnapshotFiles } from '../host/snapshot-data.ts';
import { LevelStorage, SNAPSHOT_DIR } from '../storage/level-storage.ts';
import { normalEntries, readAllData, tempDir } from '../storage/test-helpers.ts';
import type { AddressBook, TestNode } from './test-helpers.ts';
import { heartbeat, startNode, waitUntil } from './test-helpers.ts';

const CONF: ConfState = { voters: ['L', 'F'], learners: [] };
const EMPTY = new Uint8Array(0);

function bytes(n: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** A leader storage holding a snapshot of `data` at index 10, written in 100 KiB pieces. */
async function leaderStorage(t: Test, data: Buffer): Promise<LevelStorage> {
  const storage = await LevelStorage.open(await tempDir(t), { sync: false, trailingEntries: 0 });
  t.teardown(() => storage.close());
  await storage.save({ snapshot: null, entries: normalEntries(1, 10, 1), hardState: { term: 1, vote: '', commit: 10 } });
  const pieces: Buffer[] = [];
  for (let at = 0; at < data.length; at += 100 * 1024) pieces.push(data.subarray(at, at + 100 * 1024));
  await storage.createSnapshot(10, CONF, pieces);
  return storage;
}

async function followerStorage(t: Test): Promise<{ storage: LevelStorage; dir: string }> {
  const dir = await tempDir(t);
  const storage = await LevelStorage.open(dir, { sync: false });
  t.teardown(() => storage.close());
  return { storage, dir };
}

function snapTo(to: string, meta: SnapshotMeta): MsgSnap {
  return { type: 'snap', from: 'L', to, term: 1, snapshot: { meta, data: EMPTY } };
}

function stopAll(t: Test, nodes: TestNode[]): void {
  t.teardown(() => Promise.all(nodes.map((n) => n.transport.stop())));
}

async function snapshotDirFiles(dir: string): Promise<string[]> {
  return (await readdir(join(dir, SNAPSHOT_DIR))).sort();
}

t.test('a stored snapshot streams to a file of the follower in many chunks, heartbeats still flowing', async (t) => {
  const data = bytes(6 * 1024 * 1024 + 17, 3);
  const leaderStore = await leaderStorage(t, data);
  const { storage: followerStore, dir } = await followerStorage(t);
  const book: AddressBook = new Map();
  const leader = await startNode('L', book, { snapshotChunkBytes: 64 * 1024, snapshots: leaderStore });
  const follower = await startNode('F', book, { snapshots: followerStore });
  stopAll(t, [leader, follower]);

  const meta = leaderStore.snapshot().meta;
  t.equal(leaderStore.snapshot().data.length, 0, 'the leader holds no snapshot data in memory');
  leader.transport.send([heartbeat('L', 'F', 1), snapTo('F', meta), heartbeat('L', 'F', 2)]);
  for (let i = 3; i < 10; i++) {
    await new Promise((r) => setImmediate(r));
    leader.transport.send([heartbeat('L', 'F', i)]);
  }
  await waitUntil(() => follower.received.some((m) => m.type === 'snap'), 10_000, 'the snapshot');
  const got = follower.received.find((m): m is MsgSnap => m.type === 'snap')!;
  t.same(got.snapshot.meta, meta);
  t.equal(got.snapshot.data.length, 0, 'delivered with empty data: it is in a file');
  t.match(await snapshotDirFiles(dir), [/\.recv$/], 'one received file, synced, waiting for the Ready');
  await waitUntil(() => leader.snapshotStatus.length > 0, 2000, 'snapshot status');
  t.same(leader.snapshotStatus, [{ id: 'F', ok: true }]);
  await waitUntil(() => follower.received.filter((m) => m.type === 'heartbeat').length === 9, 2000, 'heartbeats');
  t.same(follower.received.filter((m) => m.type === 'heartbeat').map((m) => (m.type === 'heartbeat' ? m.commit : 0)), [1, 2, 3, 4, 5, 6, 7, 8, 9], 'heartbeats in order');

  // The host saves the Ready carrying it: the storage installs the received file.
  await followerStore.save({ snapshot: got.snapshot, entries: [], hardState: { term: 1, vote: '', commit: 10 } });
  t.same(await snapshotDirFiles(dir), ['0000000000000001-000000000000000a.snap']);
  t.ok((await readAllData(await followerStore.openSnapshot(meta))).equals(data), 'byte for byte');
  t.same(follower.errors, []);
  t.same(leader.errors, []);
});

t.test('a stream cut off midway leaves no file, and a snapshot file gone is reported failed', async (t) => {
  const data = bytes(16 * 1024 * 1024, 5);
  const leaderStore = await leaderStorage(t, data);
  const { storage: followerStore, dir } = await followerStorage(t);
  const book: AddressBook = new Map();
  const leader = await startNode('L', book, { snapshotChunkBytes: 16 * 1024, snapshots: leaderStore });
  const follower = await startNode('F', book, { snapshots: followerStore });
  stopAll(t, [leader, follower]);

  leader.transport.send([snapTo('F', leaderStore.snapshot().meta)]);
  let seen = false;
  const deadline = Date.now() + 5000;
  while (!seen && Date.now() < deadline) {
    seen = (await snapshotDirFiles(dir)).some((f) => f.endsWith('.recv'));
    if (!seen) await new Promise((r) => setTimeout(r, 1));
  }
  t.ok(seen, 'the follower started writing the snapshot to a file');
  await leader.transport.stop();
  await new Promise((r) => setTimeout(r, 200));
  t.same(follower.received, [], 'nothing delivered');
  const cleanDeadline = Date.now() + 3000;
  while ((await snapshotDirFiles(dir)).length > 0 && Date.now() < cleanDeadline) await new Promise((r) => setTimeout(r, 10));
  t.same(await snapshotDirFiles(dir), [], 'the partial file was removed');

  // A snapshot the leader's storage no longer has: reported failed at once.
  const other = await startNode('L2', book, { snapshots: leaderStore });
  stopAll(t, [other]);
  other.transport.send([snapTo('F', { index: 999, term: 9, confState: CONF })]);
  await waitUntil(() => other.snapshotStatus.length > 0, 2000, 'failed status');
  t.same(other.snapshotStatus, [{ id: 'F', ok: false }]);
  t.match(other.errors.map((e) => e.message), [/missing/]);
});

t.test('a damaged snapshot file is never delivered: the stream is dropped and reported', async (t) => {
  const data = bytes(1024 * 1024, 7);
  const leaderStore = await leaderStorage(t, data);
  const { storage: followerStore, dir } = await followerStorage(t);
  const meta = leaderStore.snapshot().meta;
  const path = join(leaderStore.dir, SNAPSHOT_DIR, (await readdir(join(leaderStore.dir, SNAPSHOT_DIR))).find((f) => f.endsWith('.snap'))!);
  const file = await readFile(path);
  file[file.length - 100]! ^= 0xff;
  await writeFile(path, file);
  const book: AddressBook = new Map();
  const leader = await startNode('L', book, { snapshotChunkBytes: 64 * 1024, snapshots: leaderStore });
  const follower = await startNode('F', book, { snapshots: followerStore });
  stopAll(t, [leader, follower]);

  leader.transport.send([snapTo('F', meta)]);
  await waitUntil(() => leader.snapshotStatus.length > 0, 5000, 'status');
  t.same(leader.snapshotStatus, [{ id: 'F', ok: false }]);
  t.match(leader.errors.map((e) => e.name), ['StorageCorruptionError']);
  const cleanDeadline = Date.now() + 3000;
  while ((await snapshotDirFiles(dir)).length > 0 && Date.now() < cleanDeadline) await new Promise((r) => setTimeout(r, 10));
  t.same(await snapshotDirFiles(dir), [], 'the follower removed what it got');
  t.notOk(follower.received.some((m) => m.type === 'snap'));
  // The connection comes back for everything else.
  leader.transport.send([heartbeat('L', 'F', 1)]);
  await waitUntil(() => follower.received.some((m) => m.type === 'heartbeat'), 3000, 'a heartbeat after the drop');
});

t.test('a follower whose disk is slow stops reading the socket: bounded memory, data intact', async (t) => {
  const data = bytes(24 * 1024 * 1024, 11);
  const leaderStore = await leaderStorage(t, data);
  const written: Uint8Array[] = [];
  let outstanding = 0;
  let maxOutstanding = 0;
  let tail = Promise.resolve();
  const slowFiles: SnapshotFiles = {
    openSnapshot: () => Promise.reject(new Error('not a leader')),
    receiveSnapshot: (): SnapshotDataSink => ({
      write: (piece) => {
        outstanding += piece.length;
        maxOutstanding = Math.max(maxOutstanding, outstanding);
        // A disk doing about 100 MB/s.
        tail = tail.then(() => new Promise((r) => setTimeout(r, Math.ceil(piece.length / 100_000)))).then(() => {
          written.push(Buffer.from(piece));
          outstanding -= piece.length;
        });
        return tail;
      },
      finish: () => tail,
      abort: async () => {},
    }),
  };
  const book: AddressBook = new Map();
  const leader = await startNode('L', book, { snapshotChunkBytes: 256 * 1024, snapshots: leaderStore });
  const follower = await startNode('F', book, { snapshots: slowFiles });
  stopAll(t, [leader, follower]);
  leader.transport.send([snapTo('F', leaderStore.snapshot().meta)]);
  await waitUntil(() => follower.received.some((m) => m.type === 'snap'), 20_000, 'the snapshot');
  t.ok(Buffer.concat(written).equals(data), 'in order, intact');
  // The limit (8 MiB) plus what was already read from the socket when it paused.
  t.ok(maxOutstanding <= 10 * 1024 * 1024, `at most ${(maxOutstanding / 1048576).toFixed(1)} MiB waited for the disk`);
});

t.test('maxSnapshotBytes is enforced before anything is written', async (t) => {
  const data = bytes(2 * 1024 * 1024, 13);
  const leaderStore = await leaderStorage(t, data);
  const { storage: followerStore, dir } = await followerStorage(t);
  const book: AddressBook = new Map();
  const leader = await startNode('L', book, { snapshots: leaderStore });
  const follower = await startNode('F', book, { snapshots: followerStore, maxSnapshotBytes: 1024 * 1024 });
  stopAll(t, [leader, follower]);
  leader.transport.send([snapTo('F', leaderStore.snapshot().meta)]);
  await waitUntil(() => follower.errors.length > 0, 3000, 'the refusal');
  t.match(follower.errors[0]?.message, /exceeds the 1048576-byte limit/);
  await waitUntil(() => leader.snapshotStatus.length > 0, 3000, 'status');
  t.same(leader.snapshotStatus, [{ id: 'F', ok: false }]);
  t.same(await snapshotDirFiles(dir), []);
});
