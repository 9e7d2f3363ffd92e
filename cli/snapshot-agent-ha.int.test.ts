// Several `konsul snapshot agent` processes against one real dev server: only the lock holder
// writes; kill -9 of the holder hands the lock to the other after its session expires (1 s TTL,
// 500 ms lock-delay); a restarted agent waits as a standby; a clean stop hands over at once.
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { sleep, waitFor } from '../test/cluster/harness.ts';
import { removeDir, startServer, tempDataDir, type ServerProcess } from '../test/kit/server-process.ts';
import { startSnapshotAgent, type SnapshotAgentProcess } from '../test/kit/snapshot-agent-process.ts';
import { parseSnapshotFileName } from './snapshot-files.ts';

let server: ServerProcess;
let work: string;
const agents: SnapshotAgentProcess[] = [];

t.before(async () => {
  work = tempDataDir('konsul-snapagent-ha-');
  const config = join(work, 'konsul.json');
  writeFileSync(config, JSON.stringify({ session_ttl_min_ms: 1000 }));
  server = await startServer({ node: 'snap-ha', extraArgs: ['--config', config] });
});

t.teardown(async () => {
  for (const a of agents) await a.kill9();
  await server.stop();
  removeDir(server.dataDir);
  removeDir(work);
});

async function agent(id: string): Promise<SnapshotAgentProcess> {
  const a = await startSnapshotAgent([
    '--http-addr', server.url, '--id', id, '--dir', join(work, id), '--interval', '300ms',
    '--session-ttl', '1s', '--lock-delay', '500ms',
  ]);
  agents.push(a);
  return a;
}

const snapshotsIn = (id: string): string[] => readdirSync(join(work, id)).filter((n) => parseSnapshotFileName(n) !== null);
const isLeader = async (a: SnapshotAgentProcess): Promise<boolean> => (await a.metric('konsul_snapshot_agent_is_leader')) === 1;

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  try {
    return await waitFor(probe, { what, timeoutMs });
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${agents.map((a) => `--- agent ${a.pid} ---\n${a.output()}`).join('\n')}`);
  }
}

t.test('one writer at a time; kill -9 of the writer hands over; a clean stop hands over at once', async (t) => {
  const [a, b] = await Promise.all([agent('a'), agent('b')]);
  const leader = await until('a leader', async () => ((await isLeader(a)) ? a : (await isLeader(b)) ? b : undefined));
  const standby = leader === a ? b : a;
  const standbyId = leader === a ? 'b' : 'a';
  await until('3 snapshots by the leader', () => (leader.saved().length >= 3 ? true : undefined));
  t.notOk(await isLeader(standby), 'the other is standby');
  t.same(standby.saved(), [], 'the standby wrote nothing');
  t.same(snapshotsIn(standbyId), []);
  t.match(standby.output(), /Waiting to obtain leadership/);

  // kill -9: no release; the session must expire (2 x TTL) and lock-delay pass first.
  const killedMs = Date.now();
  await leader.kill9();
  await until('the standby taking over', () => (standby.saved().length >= 2 ? true : undefined));
  const firstMs = parseSnapshotFileName(standby.saved()[0]!)!.takenAtMs;
  t.ok(firstMs - killedMs < 8000, `took over after ${firstMs - killedMs} ms`);
  t.ok(await isLeader(standby));

  // A restarted agent waits: the lock is held.
  const again = await agent(leader === a ? 'a' : 'b');
  await sleep(1500);
  t.same(again.saved(), [], 'the restarted agent wrote nothing while the other held the lock');
  t.notOk(await isLeader(again));
  t.ok(await isLeader(standby));

  // A clean stop releases the lock: no session to expire, no lock-delay.
  const stoppedMs = Date.now();
  t.equal(await standby.stop(), 0);
  await until('the restarted agent taking over', () => (again.saved().length >= 1 ? true : undefined));
  const handoverMs = parseSnapshotFileName(again.saved()[0]!)!.takenAtMs - stoppedMs;
  t.ok(handoverMs < 3000, `handed over after ${handoverMs} ms`);
  const lastOfStandby = parseSnapshotFileName(standby.saved().at(-1)!)!.takenAtMs;
  t.ok(lastOfStandby < parseSnapshotFileName(again.saved()[0]!)!.takenAtMs, 'no overlap: the new writer starts after the old one stopped');
  t.equal(await again.stop(), 0);
});
