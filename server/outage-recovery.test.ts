// Outage recovery on real storage in this process: peers file checks, what the recovered storage
// holds (every entry, committed or not, and only the new membership), idempotence and refusals.
// The end-to-end runs with real servers are in server/outage-recovery.int.test.ts.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { encodeCommand, kvSetCommand } from '../fsm/commands.ts';
import { KonsulFsm } from '../fsm/konsul-fsm.ts';
import type { Entry } from '../raft/core/types.ts';
import { LevelStorage } from '../raft/storage/level-storage.ts';
import { removeDir, tempDataDir } from '../test/kit/server-process.ts';
import { parsePeersFile, PeersFileError, recoverCluster, RecoveryRefusedError, type RecoveryPeer } from './outage-recovery.ts';

const peer = (id: string, port: number, voter = true): RecoveryPeer => ({ id, address: `10.0.0.1:${port}`, voter });
const put = (index: number, term: number, key: string): Entry => ({
  type: 'normal',
  index,
  term,
  data: encodeCommand(kvSetCommand({ key, value: new TextEncoder().encode(`v${index}`) })),
});

/**
 * A data directory as a 3-server cluster leaves it: founders n1..n3, entries 4..13 in term 2 with
 * a snapshot at 8, then 14..16 in term 3 of which this server saw only 14 committed.
 */
async function clusterMemberDir(): Promise<string> {
  const dataDir = tempDataDir('konsul-recover-');
  const raftDir = join(dataDir, 'raft');
  mkdirSync(raftDir, { recursive: true });
  const storage = await LevelStorage.open(raftDir, { founders: { voters: ['n1', 'n2', 'n3'], learners: [] }, trailingEntries: 2 });
  const fsm = new KonsulFsm();
  for (let i = 1; i <= 3; i++) fsm.applyNoop(i);
  const first: Entry[] = [];
  for (let i = 4; i <= 13; i++) first.push(put(i, 2, `k/${i}`));
  await storage.save({ snapshot: null, entries: first, hardState: { term: 2, vote: 'n2', commit: 13 } });
  for (const e of first.slice(0, 5)) if (e.type === 'normal') fsm.apply(e.index, e.data);
  const view = fsm.snapshotView();
  await storage.createSnapshot(8, { voters: ['n1', 'n2', 'n3'], learners: [] }, [...iterate(view.chunks())]);
  view.release();
  await storage.save({ snapshot: null, entries: [put(14, 3, 'k/14'), put(15, 3, 'k/15'), put(16, 3, 'k/16')], hardState: { term: 3, vote: 'n2', commit: 14 } });
  await storage.close();
  // Every server knows its own name in its address book.
  writeFileSync(join(dataDir, 'peers.json'), JSON.stringify([{ id: 'n1', rpcAddr: '10.0.0.1:1', httpAddr: '' }, { id: 'n2', rpcAddr: '10.0.0.2:1', httpAddr: '' }]));
  return dataDir;
}

function* iterate<T>(it: Iterator<T>): Generator<T> {
  for (let n = it.next(); n.done !== true; n = it.next()) yield n.value;
}

/** Opens the recovered storage as a server would and rebuilds its state from the snapshot. */
async function reopen(dataDir: string): Promise<{ storage: LevelStorage; fsm: KonsulFsm }> {
  const storage = await LevelStorage.open(join(dataDir, 'raft'));
  const fsm = new KonsulFsm();
  const meta = storage.snapshot().meta;
  const reader = await storage.openSnapshot(meta);
  const restore = fsm.beginRestore();
  for (let piece = await reader.read(65536); piece !== null; piece = await reader.read(65536)) restore.write(piece);
  restore.finish();
  await reader.close();
  return { storage, fsm };
}

t.test('peers files', async (t) => {
  t.same(parsePeersFile('[{"id":"s1","address":"10.0.0.1:8300","non_voter":false},{"id":"s2","address":"host-b:8300","non_voter":true},{"id":"s3","address":"[::1]:8300"}]', 'p.json'), [
    { id: 's1', address: '10.0.0.1:8300', voter: true },
    { id: 's2', address: 'host-b:8300', voter: false },
    { id: 's3', address: '[::1]:8300', voter: true },
  ]);
  const bad: [string, RegExp][] = [
    ['not json', /not valid JSON/],
    ['{"id":"s1"}', /expected a JSON array/],
    ['[]', /empty/],
    ['["10.0.0.1:8300","10.0.0.2:8300"]', /old peers.json format/],
    ['[{"id":"s1","address":"a:1"},{"id":"s1","address":"b:1"}]', /"s1" is listed twice/],
    ['[{"id":"s1","address":"a:1"},{"id":"s2","address":"a:1"}]', /"s1" and "s2" have the same address a:1/],
    ['[{"id":"s1","address":"a:1","nonvoter":true}]', /unknown key "nonvoter"/],
    ['[{"id":"","address":"a:1"}]', /"id" must be/],
    ['[{"address":"a:1"}]', /"id" must be/],
    ['[{"id":"s1"}]', /"address" must be a string/],
    ['[{"id":"s1","address":"a"}]', /"address" must be host:port/],
    ['[{"id":"s1","address":":8300"}]', /needs a host and a port/],
    ['[{"id":"s1","address":"a:0"}]', /needs a host and a port/],
    ['[{"id":"s1","address":"a:70000"}]', /must be host:port/],
    ['[{"id":"s1","address":"a:1","non_voter":"no"}]', /"non_voter" must be true or false/],
    ['[{"id":"s1","address":"a:1","non_voter":true}]', /no voter/],
    ['[7]', /expected an object/],
  ];
  for (const [text, message] of bad) t.throws(() => parsePeersFile(text, 'p.json'), { name: 'PeersFileError', message }, text);
  t.ok(new PeersFileError('x') instanceof Error);
});

t.test('recovery keeps every entry, committed or not, under the new membership only', async (t) => {
  const dataDir = await clusterMemberDir();
  t.teardown(() => removeDir(dataDir));

  const dry = await recoverCluster({ dataDir, nodeId: 'n1', peers: [peer('n1', 1)], dryRun: true });
  t.equal(dry.result, 'dryRun');
  t.same(dry.found.membership, { voters: ['n1', 'n2', 'n3'], learners: [] });
  t.match(dry.found, { lastIndex: 16, lastTerm: 3, hardState: { term: 3, commit: 14 }, snapshot: { index: 8, term: 2 } });
  t.match(dry.snapshot, { index: 17, term: 4 });
  t.equal(dry.replayedEntries, 8);
  t.equal(dry.uncommittedEntries, 2);
  {
    const { storage } = await reopen(dataDir);
    t.equal(storage.lastIndex(), 16, 'a dry run changes nothing');
    await storage.close();
  }

  const done = await recoverCluster({ dataDir, nodeId: 'n1', peers: [peer('n1', 1), peer('n4', 4, false)] });
  t.equal(done.result, 'recovered');
  const { storage, fsm } = await reopen(dataDir);
  t.same(storage.snapshot().meta, { index: 17, term: 4, confState: { voters: ['n1'], learners: ['n4'] } });
  t.same(storage.initialState().confState, { voters: ['n1'], learners: ['n4'] });
  t.equal(storage.lastIndex(), 17, 'the log is empty after the snapshot: no old configuration can come back');
  t.same(storage.hardState(), { term: 4, vote: '', commit: 17 });
  t.same(storage.recoveryReport.warnings, []);
  for (let i = 4; i <= 16; i++) t.equal(new TextDecoder().decode(fsm.kv.get(`k/${i}`)?.Value), `v${i}`, `k/${i} is there`);
  t.equal(fsm.kv.get('k/16')?.ModifyIndex, 16, 'with its own index');
  await storage.close();
  const book = JSON.parse(readFileSync(join(dataDir, 'peers.json'), 'utf8')) as { id: string; rpcAddr: string }[];
  t.same(book.find((b) => b.id === 'n4')?.rpcAddr, '10.0.0.1:4', 'the address book learned the peers file\'s addresses');

  const again = await recoverCluster({ dataDir, nodeId: 'n1', peers: [peer('n1', 1), peer('n4', 4, false)] });
  t.equal(again.result, 'unchanged', 'a second run with the same peers changes nothing');
  t.match(again.snapshot, { index: 17, term: 4 });

  const other = await recoverCluster({ dataDir, nodeId: 'n1', peers: [peer('n1', 1)] });
  t.equal(other.result, 'recovered', 'another membership is one more step');
  const after = await reopen(dataDir);
  t.same(after.storage.snapshot().meta, { index: 18, term: 5, confState: { voters: ['n1'], learners: [] } });
  t.equal(after.fsm.kv.size, 13);
  await after.storage.close();
});

t.test('refusals change nothing', async (t) => {
  const dataDir = await clusterMemberDir();
  t.teardown(() => removeDir(dataDir));
  const peers = [peer('n1', 1)];
  await t.rejects(recoverCluster({ dataDir, nodeId: 'n2', peers }), { name: 'RecoveryRefusedError', message: /"n2"\) is not listed in the peers file; it must be a voter/ });
  await t.rejects(recoverCluster({ dataDir, nodeId: 'n1', peers: [peer('n1', 1, false), peer('n2', 2)] }), { message: /listed as a non-voter/ });
  await t.rejects(recoverCluster({ dataDir, nodeId: 'n9', peers: [peer('n9', 9)] }), { message: /no server "n9" in .*peers.json \(it knows n1, n2\)/ });
  const empty = tempDataDir('konsul-recover-empty-');
  t.teardown(() => removeDir(empty));
  await t.rejects(recoverCluster({ dataDir: empty, nodeId: 'n1', peers }), { message: /no Konsul server data in/ });
  t.notOk(existsSync(join(empty, 'raft')), 'nothing was created');

  const running = await LevelStorage.open(join(dataDir, 'raft'));
  try {
    await t.rejects(recoverCluster({ dataDir, nodeId: 'n1', peers }), { message: /is locked by another process: a Konsul server is still running/ });
  } finally {
    await running.close();
  }
  const { storage } = await reopen(dataDir);
  t.equal(storage.lastIndex(), 16);
  t.equal(storage.snapshot().meta.index, 8);
  await storage.close();
  t.ok(new RecoveryRefusedError('x') instanceof Error);
});

t.test('a log that was never snapshotted is replayed from its first entry', async (t) => {
  const dataDir = tempDataDir('konsul-recover-nosnap-');
  t.teardown(() => removeDir(dataDir));
  const storage = await LevelStorage.open(join(dataDir, 'raft'), { founders: { voters: ['a', 'b', 'c'], learners: [] } });
  await storage.save({ snapshot: null, entries: [put(4, 2, 'x'), put(5, 2, 'y')], hardState: { term: 7, vote: 'b', commit: 4 } });
  await storage.close();
  const done = await recoverCluster({ dataDir, nodeId: 'a', peers: [peer('a', 1), peer('b', 2)] });
  t.match(done, { result: 'recovered', replayedEntries: 5, uncommittedEntries: 1, snapshot: { index: 6, term: 3 } });
  const after = await reopen(dataDir);
  t.same(after.storage.hardState(), { term: 7, vote: 'b', commit: 6 }, 'a current term above the snapshot\'s stays, with its vote');
  t.same(after.storage.snapshot().meta.confState, { voters: ['a', 'b'], learners: [] });
  t.same([...after.fsm.kv.keys('')], ['x', 'y']);
  await after.storage.close();
});
