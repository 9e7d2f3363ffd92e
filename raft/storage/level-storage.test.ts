// Durability and recovery of LevelStorage: what survives a close, what open() repairs, and what it
// refuses. Damage is made by editing LevelDB and the snapshot files directly while the storage is closed.
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import t from 'tap';
import { RaftInvariantError } from '../core/errors.ts';
import { Prng } from '../core/prng.ts';
import { RawNode } from '../core/raw-node.ts';
import type { ConfState, Entry } from '../core/types.ts';
import { encodeEntry } from './codec.ts';
import { StorageCorruptionError } from './errors.ts';
import type { LevelStorageOptions } from './level-storage.ts';
import { KEY_HARD_STATE, LevelStorage, LOG_DB_DIR, logKey, SNAPSHOT_DIR } from './level-storage.ts';
import { snapshotFileName, SnapshotStore } from './snapshot-store.ts';
import { normalEntries, readAllData, tempDir } from './test-helpers.ts';

/** The `t` a subtest callback receives. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const CONF: ConfState = { voters: ['n1'], learners: [] };
const ALL = Number.MAX_SAFE_INTEGER;

/** Opens a storage closed automatically at the end of the test (closing twice is harmless). */
async function openStorage(t: Test, dir: string, options: LevelStorageOptions = {}): Promise<LevelStorage> {
  const storage = await LevelStorage.open(dir, options);
  t.teardown(() => storage.close());
  return storage;
}

/** Edits the closed storage's LevelDB directly. */
async function editLevel(dir: string, edit: (db: ClassicLevel<Buffer, Buffer>) => Promise<void>): Promise<void> {
  const db = new ClassicLevel<Buffer, Buffer>(join(dir, LOG_DB_DIR), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  try {
    await edit(db);
  } finally {
    await db.close();
  }
}

/** A storage holding entries 1..last (term 1) with the given commit index, closed. */
async function writeLog(t: Test, dir: string, last: number, commit: number): Promise<void> {
  const storage = await openStorage(t, dir);
  await storage.save({ snapshot: null, entries: normalEntries(1, last, 1), hardState: { term: 1, vote: 'n1', commit } });
  await storage.close();
}

async function snapshotFiles(dir: string): Promise<string[]> {
  return (await readdir(join(dir, SNAPSHOT_DIR))).sort();
}

/** The data of the snapshot in force, read from its file (snapshot().data is always empty). */
async function snapshotText(storage: LevelStorage): Promise<string> {
  return (await readAllData(await storage.openSnapshot(storage.snapshot().meta))).toString();
}

t.test('write, close, reopen: everything is there', async (t) => {
  const dir = await tempDir(t);
  const storage = await openStorage(t, dir);
  t.equal(storage.recoveryReport.created, true);
  const entries: Entry[] = [
    ...normalEntries(1, 3, 1, 100),
    { type: 'confChange', index: 4, term: 2, change: { type: 'addVoter', node: 'n2' } },
    ...normalEntries(5, 6, 2),
  ];
  await storage.save({ snapshot: null, entries, hardState: { term: 2, vote: 'n1', commit: 4 } });
  await storage.close();

  const reopened = await openStorage(t, dir);
  t.same(reopened.recoveryReport, {
    created: false,
    bootstrapped: false,
    hardState: { term: 2, vote: 'n1', commit: 4 },
    snapshot: null,
    firstIndex: 1,
    lastIndex: 6,
    truncatedTail: null,
    warnings: [],
  });
  t.same(reopened.entries(1, 7, ALL), entries);
  t.same(reopened.initialState().hardState, { term: 2, vote: 'n1', commit: 4 });
});

t.test('founders are written only into a brand-new storage', async (t) => {
  const dir = await tempDir(t);
  const first = await openStorage(t, dir, { founders: { voters: ['n1', 'n2', 'n3'], learners: [] } });
  t.equal(first.recoveryReport.bootstrapped, true);
  t.same(first.recoveryReport.hardState, { term: 1, vote: '', commit: 3 });
  await first.close();
  const again = await openStorage(t, dir, { founders: { voters: ['x'], learners: [] } });
  t.equal(again.recoveryReport.bootstrapped, false);
  t.equal(again.lastIndex(), 3);
  const last = again.entries(3, 4, ALL)[0];
  t.same(last?.type === 'confChange' ? last.change : null, { type: 'addVoter', node: 'n3' });
});

t.test('reopen after snapshot and compaction; old snapshot files are pruned', async (t) => {
  const dir = await tempDir(t);
  const storage = await openStorage(t, dir, { trailingEntries: 10 });
  await storage.save({ snapshot: null, entries: normalEntries(1, 60, 3), hardState: { term: 3, vote: '', commit: 60 } });
  await storage.createSnapshot(20, CONF, Buffer.from('state@20'));
  await storage.createSnapshot(40, CONF, Buffer.from('state@40'));
  await storage.createSnapshot(50, CONF, Buffer.from('state@50'));
  t.same(await snapshotFiles(dir), ['0000000000000003-0000000000000028.snap', '0000000000000003-0000000000000032.snap'], 'the latest two');
  await storage.close();

  const reopened = await openStorage(t, dir, { trailingEntries: 10 });
  t.same(reopened.recoveryReport.warnings, []);
  t.same(reopened.snapshot().meta, { index: 50, term: 3, confState: CONF });
  t.equal(reopened.snapshot().data.length, 0, 'the data stays in its file');
  t.equal(await snapshotText(reopened), 'state@50');
  t.equal(reopened.firstIndex(), 41);
  t.equal(reopened.lastIndex(), 60);
  t.equal(reopened.term(40), 3, 'the compaction point keeps its term');
  t.same(reopened.entries(41, 61, ALL), normalEntries(41, 60, 3));
  await t.rejects(editLevel(dir, async () => {}), 'LevelDB is locked while the storage is open');
  await reopened.close();
  await editLevel(dir, async (db) => {
    t.same(await db.keys({ gte: logKey(0), lte: logKey(40) }).all(), [], 'compacted records are gone from disk');
  });
});

t.test('reopen after installing a snapshot with entries following it', async (t) => {
  const dir = await tempDir(t);
  const storage = await openStorage(t, dir);
  await storage.save({ snapshot: null, entries: normalEntries(1, 30, 1), hardState: { term: 1, vote: '', commit: 10 } });
  const snapshot = { meta: { index: 100, term: 4, confState: { voters: ['a', 'b', 'c'], learners: [] } }, data: Buffer.from('leader state') };
  await storage.save({ snapshot, entries: normalEntries(101, 105, 4), hardState: { term: 4, vote: '', commit: 100 } });
  await storage.close();

  const reopened = await openStorage(t, dir);
  t.same(reopened.recoveryReport.warnings, []);
  t.same(reopened.snapshot().meta, snapshot.meta);
  t.equal(await snapshotText(reopened), 'leader state');
  t.equal(reopened.firstIndex(), 101);
  t.equal(reopened.lastIndex(), 105);
  t.same(reopened.initialState(), { hardState: { term: 4, vote: '', commit: 100 }, confState: snapshot.meta.confState });
  await reopened.close();
  await editLevel(dir, async (db) => {
    t.same(await db.keys({ gte: logKey(0), lte: logKey(100) }).all(), [], 'the old log is gone from disk');
  });
});

t.test('torn tail: unreadable last records above the commit index are dropped with a warning', async (t) => {
  const dir = await tempDir(t);
  await writeLog(t, dir, 10, 5);
  await editLevel(dir, async (db) => {
    await db.put(logKey(10), Buffer.from('garbage'));
    const record = encodeEntry(normalEntries(9, 9, 1)[0]!);
    await db.put(logKey(9), record.subarray(0, record.length - 1)); // a cut record
  });
  const storage = await openStorage(t, dir);
  t.same(storage.recoveryReport.truncatedTail, { from: 9, to: 10 });
  t.equal(storage.recoveryReport.warnings.length, 1);
  t.match(storage.recoveryReport.warnings[0], /dropped the unreadable end of the log, records 9\.\.10 .*checksum mismatch.*ends at 8/);
  t.equal(storage.lastIndex(), 8);
  t.same(storage.entries(1, 9, ALL), normalEntries(1, 8, 1));
  // The node carries on: the next entries take the dropped places.
  await storage.save({ snapshot: null, entries: normalEntries(9, 9, 2), hardState: null });
  await storage.close();

  const again = await openStorage(t, dir);
  t.same(again.recoveryReport.warnings, [], 'the repair was durable');
  t.same(again.entries(9, 10, ALL), normalEntries(9, 9, 2));
});

t.test('torn tail: a missing record followed only by unreadable ones', async (t) => {
  const dir = await tempDir(t);
  await writeLog(t, dir, 10, 5);
  await editLevel(dir, async (db) => {
    await db.del(logKey(8));
    await db.put(logKey(9), Buffer.alloc(20));
    await db.put(logKey(10), Buffer.alloc(3));
  });
  const storage = await openStorage(t, dir);
  t.same(storage.recoveryReport.truncatedTail, { from: 8, to: 10 });
  t.match(storage.recoveryReport.warnings[0], /record 8: missing/);
  t.equal(storage.lastIndex(), 7);
});

t.test('a record holding another index counts as damage', async (t) => {
  const dir = await tempDir(t);
  await writeLog(t, dir, 10, 5);
  await editLevel(dir, async (db) => {
    await db.put(logKey(10), encodeEntry(normalEntries(3, 3, 1)[0]!));
  });
  const storage = await openStorage(t, dir);
  t.same(storage.recoveryReport.truncatedTail, { from: 10, to: 10 });
  t.match(storage.recoveryReport.warnings[0], /holds entry 3/);
});

t.test('a corrupt record in the middle of the log refuses to start', async (t) => {
  const dir = await tempDir(t);
  await writeLog(t, dir, 10, 3);
  await editLevel(dir, (db) => db.put(logKey(5), Buffer.from('bit rot')));
  const err = await LevelStorage.open(dir).then(
    () => null,
    (e: unknown) => e,
  );
  t.type(err, StorageCorruptionError);
  const sce = err as StorageCorruptionError;
  t.equal(sce.path, join(dir, LOG_DB_DIR));
  t.equal(sce.location, 'log record 5');
  t.match(sce.problem, /intact record 6 follows it: the log is damaged in the middle/);
  // open() released LevelDB after failing.
  await editLevel(dir, async () => {});
});

t.test('a hole in the middle of the log refuses to start', async (t) => {
  const dir = await tempDir(t);
  await writeLog(t, dir, 10, 3);
  await editLevel(dir, (db) => db.del(logKey(6)));
  await t.rejects(LevelStorage.open(dir), { name: 'StorageCorruptionError', location: 'log record 6', problem: /missing .* intact record 7 follows/ });
});

t.test('a commit index beyond the surviving log refuses to start', async (t) => {
  const dir = await tempDir(t);
  await writeLog(t, dir, 10, 10);
  await editLevel(dir, (db) => db.put(logKey(10), Buffer.from('garbage')));
  await t.rejects(LevelStorage.open(dir), {
    name: 'StorageCorruptionError',
    problem: /commit index is 10 but the log ends at 9 after dropping unreadable records 10\.\.10: committed entries are lost/,
  });
  // Also when the end of the log is simply missing.
  const dir2 = await tempDir(t);
  await writeLog(t, dir2, 10, 10);
  await editLevel(dir2, (db) => db.del(logKey(10)));
  await t.rejects(LevelStorage.open(dir2), { name: 'StorageCorruptionError', problem: /commit index is 10 but the log ends at 9: committed entries are lost/ });
});

t.test('an undecodable hard state refuses to start', async (t) => {
  const dir = await tempDir(t);
  await writeLog(t, dir, 3, 1);
  await editLevel(dir, (db) => db.put(KEY_HARD_STATE, Buffer.from([1, 2, 3, 4, 3, 0])));
  await t.rejects(LevelStorage.open(dir), { name: 'StorageCorruptionError', location: "key 'h' (hard state)", problem: /checksum mismatch/ });
});

t.test('bad snapshot files', async (t) => {
  async function corruptSnapshot(dir: string, term: number, index: number): Promise<string> {
    const path = join(dir, SNAPSHOT_DIR, snapshotFileName(term, index));
    const bytes = await readFile(path);
    bytes[bytes.length - 1]! ^= 0x55;
    await writeFile(path, bytes);
    return path;
  }

  t.test('the previous snapshot is used when the log still continues from it', async (t) => {
    const dir = await tempDir(t);
    const storage = await openStorage(t, dir, { trailingEntries: 25 });
    await storage.save({ snapshot: null, entries: normalEntries(1, 40, 2), hardState: { term: 2, vote: '', commit: 40 } });
    await storage.createSnapshot(20, CONF, Buffer.from('s20'));
    await storage.createSnapshot(30, CONF, Buffer.from('s30')); // compacts to 5: snapshot 20 still covers
    await storage.close();
    const path = await corruptSnapshot(dir, 2, 30);

    const reopened = await openStorage(t, dir, { trailingEntries: 25 });
    t.equal(reopened.snapshot().meta.index, 20);
    t.equal(await snapshotText(reopened), 's20');
    t.equal(reopened.firstIndex(), 6);
    t.equal(reopened.lastIndex(), 40);
    t.match(reopened.recoveryReport.warnings, [new RegExp(`snapshot ${path} is unusable: .*checksum mismatch`), /falling back to the older snapshot .*0014\.snap/]);
    // The next snapshot replaces the broken one.
    await reopened.createSnapshot(35, CONF, Buffer.from('s35'));
    await reopened.close();
    t.same((await openStorage(t, dir)).recoveryReport.warnings, []);
  });

  t.test('no snapshot at all is a fallback while the log is complete from index 1', async (t) => {
    const dir = await tempDir(t);
    const storage = await openStorage(t, dir, { trailingEntries: 1000 });
    await storage.save({ snapshot: null, entries: normalEntries(1, 10, 1), hardState: { term: 1, vote: '', commit: 10 } });
    await storage.createSnapshot(8, CONF, Buffer.from('s8'));
    await storage.close();
    await corruptSnapshot(dir, 1, 8);
    const reopened = await openStorage(t, dir);
    t.equal(reopened.snapshot().meta.index, 0);
    t.equal(reopened.firstIndex(), 1);
    t.match(reopened.recoveryReport.warnings[1], /no older snapshot: starting without one/);
  });

  t.test('the only snapshot covering compacted entries is unreadable: refuses to start', async (t) => {
    const dir = await tempDir(t);
    const storage = await openStorage(t, dir, { trailingEntries: 2 });
    await storage.save({ snapshot: null, entries: normalEntries(1, 10, 1), hardState: { term: 1, vote: '', commit: 10 } });
    await storage.createSnapshot(8, CONF, Buffer.from('s8'));
    await storage.close();
    const path = await corruptSnapshot(dir, 1, 8);
    await t.rejects(LevelStorage.open(dir), {
      name: 'StorageCorruptionError',
      path,
      problem: /checksum mismatch.*no older usable snapshot covers the log compacted up to index 6/,
    });
    await rm(path);
    await t.rejects(LevelStorage.open(dir), { name: 'StorageCorruptionError', path, problem: /missing; no older usable snapshot/ });
  });

  t.test('a snapshot file newer than the recorded one (interrupted write) is removed', async (t) => {
    const dir = await tempDir(t);
    const storage = await openStorage(t, dir);
    await storage.save({ snapshot: null, entries: normalEntries(1, 10, 1), hardState: { term: 1, vote: '', commit: 10 } });
    await storage.createSnapshot(5, CONF, Buffer.from('s5'));
    await storage.close();
    const store = await SnapshotStore.open(join(dir, SNAPSHOT_DIR));
    await store.save({ index: 9, term: 1, confState: CONF }, [Buffer.from('never recorded')]);
    const reopened = await openStorage(t, dir);
    t.equal(reopened.snapshot().meta.index, 5);
    t.match(reopened.recoveryReport.warnings, [/removed snapshot file .*0009\.snap newer than the recorded snapshot 5/]);
    t.same(await snapshotFiles(dir), ['0000000000000001-0000000000000005.snap']);
  });
});

t.test('snapshot files without the database they belong to refuse to start', async (t) => {
  const dir = await tempDir(t);
  const storage = await openStorage(t, dir);
  await storage.save({ snapshot: null, entries: normalEntries(1, 5, 1), hardState: { term: 1, vote: '', commit: 5 } });
  await storage.createSnapshot(5, CONF, Buffer.from('s5'));
  await storage.close();
  await rm(join(dir, LOG_DB_DIR), { recursive: true });
  await t.rejects(LevelStorage.open(dir), { name: 'StorageCorruptionError', location: 'database', problem: /the log was lost/ });
});

t.test('concurrent saves are written in call order', async (t) => {
  const dir = await tempDir(t);
  const storage = await openStorage(t, dir);
  const saves: Promise<void>[] = [];
  for (let i = 1; i <= 20; i++) saves.push(storage.save({ snapshot: null, entries: normalEntries(i, i, 1), hardState: { term: 1, vote: '', commit: Math.min(i, 12) } }));
  saves.push(storage.save({ snapshot: null, entries: normalEntries(15, 15, 2), hardState: null })); // truncates 16..20
  await Promise.all(saves);
  t.equal(storage.lastIndex(), 15);
  await storage.close();
  const reopened = await openStorage(t, dir);
  t.equal(reopened.lastIndex(), 15);
  t.equal(reopened.term(15), 2);
  t.equal(reopened.hardState().commit, 12);
});

t.test('a hard state committing beyond the log is refused when written', async (t) => {
  const storage = await openStorage(t, await tempDir(t));
  await t.rejects(storage.save({ snapshot: null, entries: normalEntries(1, 3, 1), hardState: { term: 1, vote: '', commit: 4 } }), RaftInvariantError);
  t.equal(storage.lastIndex(), 0, 'nothing was written');
  await storage.save({ snapshot: null, entries: normalEntries(1, 3, 1), hardState: { term: 1, vote: '', commit: 3 } });
});

t.test('writes after close are refused; close waits for writes in progress', async (t) => {
  const dir = await tempDir(t);
  const storage = await openStorage(t, dir);
  const pending = storage.save({ snapshot: null, entries: normalEntries(1, 100, 1), hardState: null });
  await storage.close();
  await pending;
  await t.rejects(storage.save({ snapshot: null, entries: [], hardState: { term: 1, vote: '', commit: 0 } }), /is closed/);
  t.equal((await openStorage(t, dir)).lastIndex(), 100);
});

t.test('after a failed write the storage refuses all further writes', async (t) => {
  const dir = await tempDir(t);
  const storage = await openStorage(t, dir);
  await storage.save({ snapshot: null, entries: normalEntries(1, 5, 1), hardState: { term: 1, vote: '', commit: 5 } });
  await rm(join(dir, SNAPSHOT_DIR), { recursive: true });
  await t.rejects(storage.createSnapshot(5, CONF, Buffer.from('s5')), /writing a snapshot file failed: ENOENT/);
  await t.rejects(storage.save({ snapshot: null, entries: normalEntries(6, 6, 1), hardState: null }), /failed earlier and accepts no more writes/);
  t.equal(storage.lastIndex(), 5, 'reads still answer from what is durable');
});

t.test('options are validated', async (t) => {
  const dir = await tempDir(t);
  await t.rejects(LevelStorage.open(dir, { keepSnapshots: 0 }), RangeError);
  await t.rejects(LevelStorage.open(dir, { trailingEntries: -1 }), RangeError);
});

t.test('a second open of the same directory fails while the first holds it', async (t) => {
  const dir = await tempDir(t);
  await openStorage(t, dir);
  await t.rejects(LevelStorage.open(dir));
});

t.test('a single-voter RawNode campaigns, commits, restarts and finds its state again', async (t) => {
  const dir = await tempDir(t);
  const founders = { voters: ['n1'], learners: [] };

  /** Carries out every Ready as the host does: save, (no peers to message), apply, advance. */
  async function drive(node: RawNode, storage: LevelStorage, applied: Entry[]): Promise<void> {
    for (let rd = node.ready(); rd !== null; rd = node.ready()) {
      await storage.save({ snapshot: rd.snapshot, entries: rd.entries, hardState: rd.hardState });
      applied.push(...rd.committedEntries);
      node.advance(rd);
    }
  }

  const storage = await LevelStorage.open(dir, { founders });
  const node = new RawNode({ id: 'n1', storage, random: new Prng(1) });
  const applied: Entry[] = [];
  node.campaign();
  await drive(node, storage, applied);
  t.equal(node.status().role, 'leader');
  const commands = [Buffer.from('set a=1'), Buffer.from('set b=2'), Buffer.from('del a')];
  const { lastIndex } = node.propose(commands);
  node.propose([Buffer.from('set c=3')]);
  await drive(node, storage, applied);
  const before = node.status();
  t.equal(before.commit, lastIndex + 1);
  t.equal(storage.hardState().commit, before.commit);
  await storage.close();

  const reopened = await LevelStorage.open(dir, { founders });
  t.teardown(() => reopened.close());
  t.same(reopened.recoveryReport.warnings, []);
  t.equal(reopened.recoveryReport.bootstrapped, false);
  t.same(reopened.initialState().hardState, { term: before.term, vote: 'n1', commit: before.commit });
  t.equal(reopened.lastIndex(), before.lastIndex);
  t.same(reopened.entries(1, reopened.lastIndex() + 1, ALL), storage.entries(1, storage.lastIndex() + 1, ALL));

  const restarted = new RawNode({ id: 'n1', storage: reopened, random: new Prng(2) });
  const replayed: Entry[] = [];
  await drive(restarted, reopened, replayed);
  t.same(
    replayed.filter((e) => e.type === 'normal' && e.data.length > 0).map((e) => (e.type === 'normal' ? Buffer.from(e.data).toString() : '')),
    ['set a=1', 'set b=2', 'del a', 'set c=3'],
    'the committed commands are replayed to the state machine',
  );
  t.equal(restarted.status().term, before.term);
  restarted.campaign();
  await drive(restarted, reopened, replayed);
  t.equal(restarted.status().role, 'leader');
  t.equal(restarted.status().term, before.term + 1);
  const next = restarted.propose([Buffer.from('after restart')]);
  await drive(restarted, reopened, replayed);
  t.equal(reopened.hardState().commit, next.lastIndex);
});

// ---------------------------------------------------------------------------------------------
// Snapshot data streamed out of band: written from pieces, received from a leader, read in pieces.
// ---------------------------------------------------------------------------------------------

/** Pieces of `text` handed out one per turn of the event loop, with a hook before each. */
async function* slowPieces(text: string, pieceBytes: number, before?: (i: number) => Promise<void> | void): AsyncGenerator<Uint8Array> {
  const data = Buffer.from(text);
  for (let at = 0, i = 0; at < data.length; at += pieceBytes, i++) {
    await before?.(i);
    await new Promise((r) => setImmediate(r));
    yield data.subarray(at, at + pieceBytes);
  }
}

async function receive(storage: LevelStorage, meta: { index: number; term: number; confState: ConfState }, text: string): Promise<void> {
  const data = Buffer.from(text);
  const sink = storage.receiveSnapshot(meta, data.length);
  // Overlapping writes, as the transport issues them.
  await Promise.all([sink.write(data.subarray(0, 3)), sink.write(data.subarray(3))]);
  await sink.finish();
}

t.test('a snapshot streams into its file while saves go on, then is recorded', async (t) => {
  const dir = await tempDir(t);
  const storage = await openStorage(t, dir, { trailingEntries: 5 });
  await storage.save({ snapshot: null, entries: normalEntries(1, 20, 1), hardState: { term: 1, vote: '', commit: 20 } });
  const text = 'x'.repeat(50_000);
  let savedMeanwhile = 0;
  const created = storage.createSnapshot(
    20,
    CONF,
    slowPieces(text, 1000, async (i) => {
      if (i === 10 || i === 30) {
        // The file is being written: other writes are not held up by it.
        await storage.save({ snapshot: null, entries: normalEntries(21 + savedMeanwhile, 21 + savedMeanwhile, 1), hardState: null });
        savedMeanwhile++;
      }
    }),
  );
  t.same(await created, { meta: { index: 20, term: 1, confState: CONF }, dataBytes: text.length });
  t.equal(savedMeanwhile, 2);
  t.equal(storage.lastIndex(), 22);
  t.equal(storage.firstIndex(), 16, 'compacted behind the snapshot, keeping 5 entries');
  t.equal(await snapshotText(storage), text);
  t.same(await snapshotFiles(dir), [snapshotFileName(1, 20)], 'no temporary file left');
  await storage.close();
  const reopened = await openStorage(t, dir, { trailingEntries: 5 });
  t.same(reopened.recoveryReport.warnings, []);
  t.equal(await snapshotText(reopened), text);
});

t.test("a snapshot received from the leader is installed by the Ready that carries it", async (t) => {
  const dir = await tempDir(t);
  const storage = await openStorage(t, dir);
  await storage.save({ snapshot: null, entries: normalEntries(1, 10, 1), hardState: { term: 1, vote: '', commit: 10 } });
  const meta = { index: 100, term: 4, confState: { voters: ['a', 'b', 'c'], learners: [] } };
  await receive(storage, meta, 'leader state at 100');
  t.match(await snapshotFiles(dir), [/^0000000000000004-0000000000000064\.snap\.[0-9a-f]+\.recv$/], 'kept under a temporary name until installed');
  await storage.save({ snapshot: { meta, data: new Uint8Array(0) }, entries: normalEntries(101, 102, 4), hardState: { term: 4, vote: '', commit: 100 } });
  t.same(storage.snapshot().meta, meta);
  t.equal(storage.firstIndex(), 101);
  t.equal(await snapshotText(storage), 'leader state at 100');
  t.same(await snapshotFiles(dir), [snapshotFileName(4, 100)]);
  await storage.close();
  const reopened = await openStorage(t, dir);
  t.same(reopened.recoveryReport.warnings, []);
  t.same(reopened.snapshot().meta, meta);
  t.equal(await snapshotText(reopened), 'leader state at 100');
});

t.test('received snapshots: duplicates, stale ones, aborted ones, wrong sizes and missing ones', async (t) => {
  const dir = await tempDir(t);
  const storage = await openStorage(t, dir);
  await storage.save({ snapshot: null, entries: normalEntries(1, 10, 1), hardState: { term: 1, vote: '', commit: 10 } });
  const at = (index: number, term: number) => ({ index, term, confState: CONF });
  await receive(storage, at(50, 2), 'first copy');
  await receive(storage, at(50, 2), 'second copy');
  await receive(storage, at(60, 2), 'newer');
  t.equal((await snapshotFiles(dir)).length, 2, 'a second copy of the same snapshot is dropped');

  const aborted = storage.receiveSnapshot(at(70, 2), 100);
  await aborted.write(Buffer.alloc(10));
  await aborted.abort();
  const short = storage.receiveSnapshot(at(80, 2), 100);
  await short.write(Buffer.alloc(10));
  await t.rejects(short.finish(), /ended after 10 of 100 bytes/);
  const long = storage.receiveSnapshot(at(90, 2), 4);
  await t.rejects(long.write(Buffer.alloc(5)), /overran its 4 bytes/);
  await long.abort();
  t.equal((await snapshotFiles(dir)).length, 2, 'failed receptions leave no file');

  await t.rejects(
    storage.save({ snapshot: { meta: at(75, 2), data: new Uint8Array(0) }, entries: [], hardState: null }),
    { name: 'RaftInvariantError', message: /has no data and none was received/ },
  );
  await storage.save({ snapshot: { meta: at(60, 2), data: new Uint8Array(0) }, entries: [], hardState: { term: 2, vote: '', commit: 60 } });
  t.equal(await snapshotText(storage), 'newer');
  t.same(await snapshotFiles(dir), [snapshotFileName(2, 60)], 'the received snapshot below the installed one is removed');
});

t.test('a snapshot being written is dropped quietly when a newer one is installed or the storage closes', async (t) => {
  const dir = await tempDir(t);
  const storage = await openStorage(t, dir);
  await storage.save({ snapshot: null, entries: normalEntries(1, 30, 1), hardState: { term: 1, vote: '', commit: 30 } });
  const leaderMeta = { index: 200, term: 3, confState: CONF };
  await receive(storage, leaderMeta, 'leader state');
  const local = storage.createSnapshot(
    30,
    CONF,
    slowPieces('y'.repeat(20_000), 1000, async (i) => {
      if (i === 5) await storage.save({ snapshot: { meta: leaderMeta, data: new Uint8Array(0) }, entries: [], hardState: { term: 3, vote: '', commit: 200 } });
    }),
  );
  t.equal(await local, null, 'superseded: no error');
  t.same(storage.snapshot().meta, leaderMeta);
  t.same(await snapshotFiles(dir), [snapshotFileName(3, 200)], 'its temporary file is gone');
  await storage.save({ snapshot: null, entries: normalEntries(201, 210, 3), hardState: { term: 3, vote: '', commit: 210 } });

  // Closed while its sixth piece is on the way (not after a delay: a fast machine finished first).
  let closed: Promise<void> | undefined;
  const closing = storage.createSnapshot(
    210,
    CONF,
    slowPieces('z'.repeat(20_000), 1000, (i) => {
      if (i === 5) closed = storage.close();
    }),
  );
  t.equal(await closing, null, 'closing drops it');
  await closed;
  t.same(await snapshotFiles(dir), [snapshotFileName(3, 200)]);
});

t.test("a failing source fails only its snapshot; the storage carries on", async (t) => {
  const dir = await tempDir(t);
  const storage = await openStorage(t, dir);
  await storage.save({ snapshot: null, entries: normalEntries(1, 5, 1), hardState: { term: 1, vote: '', commit: 5 } });
  async function* failing(): AsyncGenerator<Uint8Array> {
    yield Buffer.from('part');
    throw new Error('encoder bug');
  }
  await t.rejects(storage.createSnapshot(5, CONF, failing()), /encoder bug/);
  await storage.save({ snapshot: null, entries: normalEntries(6, 6, 1), hardState: null });
  t.not(await storage.createSnapshot(5, CONF, [Buffer.from('s5')]), null);
  t.same(await snapshotFiles(dir), [snapshotFileName(1, 5)]);
});

t.test('open verifies the snapshot file by streaming it and removes received files of an interrupted install', async (t) => {
  const dir = await tempDir(t);
  const storage = await openStorage(t, dir, { trailingEntries: 0 });
  await storage.save({ snapshot: null, entries: normalEntries(1, 10, 1), hardState: { term: 1, vote: '', commit: 10 } });
  const big = 'k'.repeat(3 * 1024 * 1024 + 7);
  await storage.createSnapshot(10, CONF, slowPieces(big, 256 * 1024));
  const sink = storage.receiveSnapshot({ index: 99, term: 2, confState: CONF }, 1000);
  await sink.write(Buffer.alloc(100));
  await storage.close();
  const reopened = await openStorage(t, dir, { trailingEntries: 0 });
  t.same(reopened.recoveryReport.warnings, []);
  t.same(await snapshotFiles(dir), [snapshotFileName(1, 10)]);
  t.equal(await snapshotText(reopened), big);
  await reopened.close();
  const path = join(dir, SNAPSHOT_DIR, snapshotFileName(1, 10));
  const bytes = await readFile(path);
  bytes[bytes.length - 2 * 1024 * 1024]! ^= 1;
  await writeFile(path, bytes);
  await t.rejects(LevelStorage.open(dir, { trailingEntries: 0 }), { name: 'StorageCorruptionError', path, problem: /checksum mismatch/ });
});
