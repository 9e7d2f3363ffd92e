import t from 'tap';
import { KonsulFsm } from '../fsm/konsul-fsm.ts';
import { encodeCommand } from '../fsm/commands.ts';
import { RaftHost } from '../raft/host/raft-host.ts';
import { LevelStorage } from '../raft/storage/level-storage.ts';
import { removeDir, tempDataDir } from '../test/kit/server-process.ts';
import { TombstoneReaper } from './tombstone-reaper.ts';

t.test('the leader reaps tombstones once they are older than the TTL, and only those', async (t) => {
  const dir = tempDataDir('konsul-reaper-');
  const storage = await LevelStorage.open(dir, { founders: { voters: ['n1'], learners: [] } });
  const fsm = new KonsulFsm();
  const raft = await RaftHost.open({ id: 'n1', storage, stateMachine: fsm, tickMs: 10 });
  raft.start();
  t.teardown(async () => {
    await raft.stop();
    removeDir(dir);
  });
  while (!raft.isReadyLeader()) await new Promise((r) => setTimeout(r, 10));
  const put = (key: string) => raft.propose(encodeCommand({ type: 'kvSet', key, value: '', flags: '0' }));
  const del = (key: string) => raft.propose(encodeCommand({ type: 'kvDelete', key }));
  await put('old');
  await del('old');
  const reaper = new TombstoneReaper({ raft, ttlMs: 1000, checkEveryMs: 60_000, hasTombstones: () => fsm.kv.tombstoneCount > 0 });
  await reaper.check(0); // remembers the index after the first delete at time 0
  await put('new');
  await del('new');
  await reaper.check(500);
  t.equal(fsm.kv.tombstoneCount, 2, 'nothing is old enough yet');
  await reaper.check(1000);
  t.same(fsm.kv.tombstones().map((x) => x.key), ['new'], 'the tombstone from before time 0 is reaped, the newer one stays');
  await reaper.check(1500);
  t.same(fsm.kv.tombstones().map((x) => x.key), [], 'and the newer one once it is old enough');
});
