// One behaviour for both storages: every case runs against MemoryStorage and LevelStorage, and for
// LevelStorage the checks are repeated after closing and reopening it (what was read must survive).
import t from 'tap';
import { CompactedError, RaftError, RaftInvariantError, UnavailableError } from '../core/errors.ts';
import type { RaftStorage } from '../core/storage.ts';
import type { ConfState, Entry, HardState, Snapshot, SnapshotMeta } from '../core/types.ts';
import { LevelStorage } from './level-storage.ts';
import { MemoryStorage } from './memory-storage.ts';
import { readAllData, normalEntries, tempDir } from './test-helpers.ts';

/** The `t` a subtest callback receives. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

/** The write side both storages share, made asynchronous for LevelStorage. */
interface Subject {
  readonly storage: RaftStorage;
  append(entries: readonly Entry[]): Promise<void>;
  setHardState(hs: HardState): Promise<void>;
  applySnapshot(snapshot: Snapshot): Promise<void>;
  /** Snapshot at `index`, then compaction up to `index - trailing`. */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Promise<SnapshotMeta>;
  /** The data of the snapshot in force (LevelStorage keeps it in a file, not in snapshot().data). */
  snapshotData(): Promise<Uint8Array>;
  compact(index: number): Promise<void>;
  /** Close and reopen (durable subjects); a no-op in memory. */
  reopen(): Promise<void>;
}

interface SubjectOptions {
  readonly founders?: ConfState;
  readonly trailing?: number;
}

type MakeSubject = (t: Test, options?: SubjectOptions) => Promise<Subject>;

const makeMemory: MakeSubject = async (_t, options = {}) => {
  const storage = new MemoryStorage(options.founders);
  const trailing = options.trailing ?? 0;
  return {
    storage,
    append: async (entries) => storage.append(entries),
    setHardState: async (hs) => storage.setHardState(hs),
    applySnapshot: async (snapshot) => storage.applySnapshot(snapshot),
    createSnapshot: async (index, confState, data) => {
      const snapshot = storage.createSnapshot(index, confState, data);
      if (index - trailing >= storage.firstIndex()) storage.compact(index - trailing);
      return snapshot.meta;
    },
    snapshotData: async () => storage.snapshot().data,
    compact: async (index) => storage.compact(index),
    reopen: async () => {},
  };
};

const makeLevel: MakeSubject = async (t, options = {}) => {
  const dir = await tempDir(t);
  const open = (founders?: ConfState): Promise<LevelStorage> => LevelStorage.open(dir, { founders, trailingEntries: options.trailing ?? 0 });
  let storage = await open(options.founders);
  t.teardown(() => storage.close());
  return {
    get storage() {
      return storage;
    },
    append: (entries) => storage.save({ snapshot: null, entries, hardState: null }),
    setHardState: (hs) => storage.save({ snapshot: null, entries: [], hardState: hs }),
    applySnapshot: (snapshot) => storage.save({ snapshot, entries: [], hardState: null }),
    createSnapshot: async (index, confState, data) => {
      const created = await storage.createSnapshot(index, confState, data);
      if (created === null) throw new Error(`snapshot ${index} was dropped`);
      return created.meta;
    },
    snapshotData: async () => {
      t.equal(storage.snapshot().data.length, 0, 'snapshot data is kept in its file, not in memory');
      return readAllData(await storage.openSnapshot(storage.snapshot().meta));
    },
    compact: (index) => storage.compact(index),
    reopen: async () => {
      await storage.close();
      storage = await open();
      if (storage.recoveryReport.warnings.length > 0) throw new Error(`unexpected warnings: ${storage.recoveryReport.warnings.join('; ')}`);
    },
  };
};

/** Runs `check` now and, for durable subjects, again after a reopen. */
async function checkDurably(t: Test, s: Subject, check: (storage: RaftStorage) => void): Promise<void> {
  check(s.storage);
  await s.reopen();
  check(s.storage);
}

function termsOf(entries: readonly Entry[]): number[][] {
  return entries.map((e) => [e.index, e.term]);
}

const NO_LIMIT = Number.MAX_SAFE_INTEGER;
const CONF: ConfState = { voters: ['n1', 'n2', 'n3'], learners: [] };

function suite(t: Test, make: MakeSubject): void {
  t.test('empty storage', async (t) => {
    const s = await make(t);
    await checkDurably(t, s, (st) => {
      t.equal(st.firstIndex(), 1);
      t.equal(st.lastIndex(), 0);
      t.equal(st.term(0), 0);
      t.throws(() => st.term(1), UnavailableError);
      t.same(st.entries(1, 1, NO_LIMIT), []);
      t.throws(() => st.entries(1, 2, NO_LIMIT), UnavailableError);
      t.same(st.initialState(), { hardState: { term: 0, vote: '', commit: 0 }, confState: { voters: [], learners: [] } });
      t.equal(st.snapshot().meta.index, 0);
    });
  });

  t.test('founders bootstrap the log with committed conf changes', async (t) => {
    const s = await make(t, { founders: { voters: ['n2', 'n1'], learners: ['n3'] } });
    await checkDurably(t, s, (st) => {
      t.equal(st.lastIndex(), 3);
      t.same(st.initialState().hardState, { term: 1, vote: '', commit: 3 });
      t.same(
        st.entries(1, 4, NO_LIMIT).map((e) => (e.type === 'confChange' ? [e.index, e.term, e.change.type, e.change.node] : null)),
        [
          [1, 1, 'addVoter', 'n1'],
          [2, 1, 'addVoter', 'n2'],
          [3, 1, 'addLearner', 'n3'],
        ],
      );
    });
  });

  t.test('append, term, entries', async (t) => {
    const s = await make(t);
    await s.append([...normalEntries(1, 2, 1), ...normalEntries(3, 4, 2), ...normalEntries(5, 5, 3)]);
    await s.append([{ type: 'confChange', index: 6, term: 3, change: { type: 'addLearner', node: 'n9' } }]);
    await checkDurably(t, s, (st) => {
      t.equal(st.firstIndex(), 1);
      t.equal(st.lastIndex(), 6);
      t.same([0, 1, 2, 3, 4, 5, 6].map((i) => st.term(i)), [0, 1, 1, 2, 2, 3, 3]);
      t.throws(() => st.term(7), UnavailableError);
      t.same(st.entries(2, 5, NO_LIMIT), [...normalEntries(2, 2, 1), ...normalEntries(3, 4, 2)]);
      t.same(st.entries(6, 7, NO_LIMIT), [{ type: 'confChange', index: 6, term: 3, change: { type: 'addLearner', node: 'n9' } }]);
      t.throws(() => st.entries(1, 8, NO_LIMIT), UnavailableError);
      t.throws(() => st.entries(0, 2, NO_LIMIT), CompactedError, 'index 0 is never an entry');
    });
  });

  t.test('maxBytes limits entries but always returns the first', async (t) => {
    const s = await make(t);
    await s.append(normalEntries(1, 5, 1, 100)); // 116 bytes each as the core counts them
    await checkDurably(t, s, (st) => {
      t.equal(st.entries(1, 6, 0).length, 1);
      t.equal(st.entries(1, 6, 115).length, 1);
      t.equal(st.entries(1, 6, 232).length, 2);
      t.equal(st.entries(1, 6, 347).length, 2);
      t.equal(st.entries(1, 6, 348).length, 3);
      t.equal(st.entries(1, 6, NO_LIMIT).length, 5);
    });
  });

  t.test('a conflicting append replaces the stored suffix', async (t) => {
    const s = await make(t);
    await s.append(normalEntries(1, 5, 1));
    await s.append(normalEntries(3, 3, 2));
    await checkDurably(t, s, (st) => {
      t.equal(st.lastIndex(), 3, 'entries beyond the new ones are gone');
      t.same(termsOf(st.entries(1, 4, NO_LIMIT)), [
        [1, 1],
        [2, 1],
        [3, 2],
      ]);
      t.same(st.entries(3, 4, NO_LIMIT), normalEntries(3, 3, 2));
      t.throws(() => st.term(4), UnavailableError);
    });
    await s.append(normalEntries(2, 6, 3));
    await checkDurably(t, s, (st) => {
      t.same(termsOf(st.entries(1, 7, NO_LIMIT)), [
        [1, 1],
        [2, 3],
        [3, 3],
        [4, 3],
        [5, 3],
        [6, 3],
      ]);
    });
  });

  t.test('an append that leaves a gap is refused and changes nothing', async (t) => {
    const s = await make(t);
    await s.append(normalEntries(1, 3, 1));
    await t.rejects(s.append(normalEntries(5, 6, 1)), RaftInvariantError);
    await checkDurably(t, s, (st) => {
      t.equal(st.lastIndex(), 3);
    });
    await s.append(normalEntries(4, 4, 1));
    t.equal(s.storage.lastIndex(), 4, 'usable after the refusal');
  });

  t.test('hard state is saved', async (t) => {
    const s = await make(t);
    await s.append(normalEntries(1, 2, 1));
    await s.setHardState({ term: 4, vote: 'n2', commit: 2 });
    await checkDurably(t, s, (st) => {
      t.same(st.initialState().hardState, { term: 4, vote: 'n2', commit: 2 });
    });
  });

  t.test('createSnapshot records a snapshot; compaction moves the first index', async (t) => {
    const s = await make(t);
    await s.append([...normalEntries(1, 3, 1), ...normalEntries(4, 6, 2)]);
    const data = Uint8Array.from([9, 8, 7]);
    const meta = await s.createSnapshot(4, CONF, data);
    t.same(meta, { index: 4, term: 2, confState: CONF });
    await checkDurably(t, s, (st) => {
      t.same(st.snapshot().meta, { index: 4, term: 2, confState: CONF });
      t.same(st.initialState().confState, CONF);
      t.equal(st.firstIndex(), 5);
      t.equal(st.lastIndex(), 6);
      t.equal(st.term(4), 2, "the snapshot's index is answerable");
      t.throws(() => st.term(3), CompactedError);
      t.throws(() => st.entries(4, 5, NO_LIMIT), CompactedError);
      t.same(termsOf(st.entries(5, 7, NO_LIMIT)), [
        [5, 2],
        [6, 2],
      ]);
    });
    t.same([...(await s.snapshotData())], [9, 8, 7]);
    await t.rejects(s.createSnapshot(4, CONF, data), { name: 'RaftError', code: 'snapshotOutOfDate' });
    await t.rejects(s.createSnapshot(3, CONF, data), RaftError);
    await t.rejects(s.createSnapshot(7, CONF, data), RaftInvariantError, 'beyond the last index');
  });

  t.test('trailing entries are kept behind a created snapshot', async (t) => {
    const s = await make(t, { trailing: 2 });
    await s.append(normalEntries(1, 10, 1));
    await s.createSnapshot(3, CONF, new Uint8Array(0));
    await s.createSnapshot(8, CONF, new Uint8Array(0));
    await checkDurably(t, s, (st) => {
      t.equal(st.snapshot().meta.index, 8);
      t.equal(st.firstIndex(), 7);
      t.equal(st.term(6), 1);
      t.throws(() => st.term(5), CompactedError);
      t.equal(st.entries(7, 11, NO_LIMIT).length, 4);
    });
  });

  t.test('explicit compaction below the snapshot', async (t) => {
    const s = await make(t, { trailing: 100 });
    await s.append(normalEntries(1, 10, 1));
    await s.createSnapshot(6, CONF, new Uint8Array(0));
    t.equal(s.storage.firstIndex(), 1, 'nothing compacted with 100 trailing entries');
    await s.compact(4);
    await s.compact(2); // already compacted: nothing to do
    await checkDurably(t, s, (st) => {
      t.equal(st.firstIndex(), 5);
      t.equal(st.term(4), 1);
      t.throws(() => st.term(3), CompactedError);
      t.equal(st.snapshot().meta.index, 6);
    });
    await t.rejects(s.compact(7), RaftInvariantError, 'not beyond the snapshot');
  });

  t.test('appending entries that are partly compacted keeps only the fresh ones', async (t) => {
    const s = await make(t);
    await s.append(normalEntries(1, 6, 1));
    await s.createSnapshot(5, CONF, new Uint8Array(0));
    await s.append(normalEntries(3, 8, 1));
    await s.append(normalEntries(1, 4, 1)); // entirely compacted: ignored
    await checkDurably(t, s, (st) => {
      t.equal(st.firstIndex(), 6);
      t.equal(st.lastIndex(), 8);
      t.same(st.entries(6, 9, NO_LIMIT), normalEntries(6, 8, 1));
    });
  });

  t.test('applying a snapshot replaces the whole log', async (t) => {
    const s = await make(t);
    await s.append(normalEntries(1, 10, 1));
    const snap: Snapshot = { meta: { index: 7, term: 3, confState: { voters: ['a', 'b'], learners: ['c'] } }, data: Uint8Array.from([1, 2]) };
    await s.applySnapshot(snap);
    await checkDurably(t, s, (st) => {
      t.equal(st.firstIndex(), 8);
      t.equal(st.lastIndex(), 7);
      t.equal(st.term(7), 3);
      t.throws(() => st.term(6), CompactedError);
      t.throws(() => st.term(8), UnavailableError);
      t.same(st.snapshot().meta, snap.meta);
      t.same(st.initialState().confState, snap.meta.confState);
    });
    t.same([...(await s.snapshotData())], [1, 2]);
    await s.append(normalEntries(8, 9, 3));
    t.same(termsOf(s.storage.entries(8, 10, NO_LIMIT)), [
      [8, 3],
      [9, 3],
    ]);
    await t.rejects(s.applySnapshot({ ...snap, meta: { ...snap.meta, index: 7 } }), { code: 'snapshotOutOfDate' });
    await t.rejects(s.applySnapshot({ ...snap, meta: { ...snap.meta, index: 5 } }), { code: 'snapshotOutOfDate' });
  });
}

t.test('MemoryStorage', async (t) => suite(t, makeMemory));
t.test('LevelStorage', async (t) => suite(t, makeLevel));
