// Losing the majority, end to end with real processes (docs/disaster-recovery.md, ADR 0018): two of
// three servers are killed with SIGKILL, the survivor is stopped and recovered with
// `konsul operator raft recover` and a peers file naming only itself, restarted, and grown back to
// three servers. Every acknowledged write must still be there.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { httpRequest, startCluster, waitFor } from '../test/cluster/harness.ts';
import { KONSUL_BIN, runCli } from '../test/kit/cli.ts';
import { kvDump, putKey } from '../test/kit/kv-state.ts';

t.test('lose 2 of 3 servers, recover the survivor from a peers file, grow back to 3', async (t) => {
  // Small snapshots so the survivor's state is part snapshot, part log, as in a real outage.
  const cluster = await startCluster({ size: 3, t, config: { snapshot_every_entries: 40, snapshot_trailing_entries: 5 } });
  // The leader survives: it holds every acknowledged write, whereas a follower may lack some
  // (a write is acknowledged once the leader and one follower have it).
  const survivor = await cluster.leader();
  const acknowledged = new Map<string, string>();
  for (let i = 0; i < 100; i++) {
    await putKey(survivor.url, `app/key-${i}`, `value-${i}`);
    acknowledged.set(`app/key-${i}`, `value-${i}`);
  }
  for (const n of cluster.nodes) if (n !== survivor) await n.kill9();
  const noQuorum = await httpRequest(`${survivor.url}/v1/kv/app/unknown`, { method: 'PUT', body: 'x', timeoutMs: 8000 });
  t.not(noQuorum.text.trim(), 'true', 'no write can succeed without a majority');

  const recover = (args: string[]) => runCli(KONSUL_BIN, ['operator', 'raft', 'recover', '--data-dir', survivor.dataDir, '--node', survivor.name, ...args]);
  const peersFile = join(cluster.root, 'peers-recovery.json');
  writeFileSync(peersFile, JSON.stringify([{ id: survivor.name, address: survivor.advertise, non_voter: false }]));

  const whileRunning = await recover(['--peers', peersFile]);
  t.equal(whileRunning.code, 1, whileRunning.stdout);
  t.match(whileRunning.stderr, /refusing to recover: .* is locked by another process: a Konsul server is still running/);

  t.equal(await survivor.stop(), 0, 'the survivor stops cleanly');
  // Bad peers files and a wrong --node are refused too: server/outage-recovery.test.ts.
  const dry = await recover(['--peers', peersFile, '--dry-run']);
  t.equal(dry.code, 0, dry.stderr);
  t.match(dry.stdout, new RegExp(`membership in force: voters s1, s2, s3;[\\s\\S]*new membership: +voters ${survivor.name};[\\s\\S]*Dry run: would write a snapshot`));
  const done = await recover(['--peers', peersFile]);
  t.equal(done.code, 0, done.stderr);
  t.match(done.stdout, /Recovered: wrote a snapshot at index \d+ \(term \d+\)/);
  const again = await recover(['--peers', peersFile]);
  t.equal(again.code, 0, again.stderr);
  t.match(again.stdout, /Nothing to do/, 'running it twice is safe');

  await survivor.start();
  const leader = await cluster.waitForLeader(15000, [survivor]);
  t.equal(leader, survivor, 'the survivor elects itself');
  t.same((await cluster.raftConfiguration(survivor)).Servers.map((s) => [s.ID, s.Voter]), [[survivor.name, true]]);
  const after = await kvDump(survivor.url);
  t.same(new Map(after.filter((r) => r.Key.startsWith('app/key-')).map((r) => [r.Key, Buffer.from(r.Value ?? '', 'base64').toString()])), acknowledged, 'every acknowledged write is there');
  // The write whose outcome was unknown may be in the survivor's log, uncommitted: recovery keeps
  // it whole (as hashicorp/raft's does), or it never got there.
  const unknown = after.find((r) => r.Key === 'app/unknown');
  if (unknown !== undefined) t.equal(Buffer.from(unknown.Value ?? '', 'base64').toString(), 'x');
  await putKey(survivor.url, 'app/after-recovery', 'yes');

  // Grow back: new servers join through the survivor and are promoted by autopilot.
  const s4 = await cluster.addNode({ name: 's4' });
  const s5 = await cluster.addNode({ name: 's5' });
  await cluster.waitForVoters([survivor.name, 's4', 's5']);
  await putKey(s4.url, 'app/three-again', 'yes');
  const want = await kvDump(survivor.url);
  for (const n of [s4, s5]) {
    await waitFor(async () => (JSON.stringify(await kvDump(n.url, { stale: true })) === JSON.stringify(want) ? true : undefined), { timeoutMs: 10000, what: `${n.name} to hold the same KV state` });
  }
  t.equal(want.length, unknown === undefined ? 102 : 103);
  t.same(cluster.unexpectedExits(), [], cluster.outputs());
});
