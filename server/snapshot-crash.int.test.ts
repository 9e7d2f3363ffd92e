// kill -9 in the middle of snapshot work loses nothing acknowledged (real processes):
//  - a server killed while it writes a snapshot file (a `.tmp` file in its snapshot directory),
//    under write load, restarts with every acknowledged write;
//  - a follower killed while it receives a snapshot from the leader (a `.recv` file), and again
//    right after installing one (the received file renamed, the state machine being restored),
//    restarts, catches up and holds every acknowledged write.
// The moments are found by watching the snapshot directory, so they are hit every run. The state
// is a few MiB so that each snapshot takes a while to write and to send.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import t from 'tap';
import { httpRequest, startCluster, waitFor, type ClusterNode } from '../test/cluster/harness.ts';
import { checkLedger, readPrefix, type LedgerWrite } from '../test/cluster/workload.ts';
import { removeDir, startServer, tempDataDir, type ServerProcess } from '../test/kit/server-process.ts';
import { sleep } from '../test/kit/wait.ts';


function snapshotDir(dataDir: string): string {
  return join(dataDir, 'raft', 'snapshots');
}

function filesIn(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Polls `dir` every millisecond until `seen` holds for its file names; the names then, or null after `timeoutMs`. */
async function watchDir(dir: string, seen: (names: string[]) => boolean, timeoutMs: number): Promise<string[] | null> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const names = filesIn(dir);
    if (seen(names)) return names;
    await sleep(1);
  }
  return null;
}

/** Fills the store with `keys` values of 1 KiB through transactions (48 sets each). */
async function preload(url: string, prefix: string, keys: number): Promise<void> {
  const value = Buffer.alloc(1024, 'p').toString('base64');
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < keys) {
        const ops = [];
        for (let i = 0; i < 48 && next < keys; i++) ops.push({ KV: { Verb: 'set', Key: `${prefix}${next++}`, Value: value } });
        const r = await httpRequest(`${url}/v1/txn`, { method: 'PUT', body: JSON.stringify(ops), timeoutMs: 20000 });
        if (r.status !== 200) throw new Error(`preload: ${r.status} ${r.text}`);
      }
    }),
  );
}

/** One PUT: true only for an acknowledged write (`true`); a kill makes the outcome unknown. */
async function put(url: string, key: string, value: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/v1/kv/${key}`, { method: 'PUT', body: value, signal: AbortSignal.timeout(5000) });
    return res.ok && (await res.text()) === 'true';
  } catch {
    return false;
  }
}

t.test('kill -9 while a snapshot file is being written loses no acknowledged write', async (t) => {
  const dataDir = tempDataDir('konsul-snapcrash-');
  const configFile = join(dataDir, 'konsul.json');
  writeFileSync(configFile, JSON.stringify({ snapshot_every_entries: 200, snapshot_trailing_entries: 100 }));
  let server: ServerProcess | null = null;
  t.teardown(async () => {
    await server?.kill9();
    removeDir(dataDir);
  });
  const start = async (): Promise<ServerProcess> => (server = await startServer({ dataDir, node: 'snapcrash', extraArgs: ['--config', configFile] }));
  await start();
  await preload(server!.url, 'pre/', 3000);

  const acked: string[] = [];
  let seq = 0;
  for (let round = 0; round < 2; round++) {
    const url = server!.url;
    let stop = false;
    const ackedBefore = acked.length;
    const writers = Promise.all(
      Array.from({ length: 12 }, async (_, w) => {
        while (!stop) {
          const key = `w/${w}/${seq++}`;
          if (!(await put(url, key, `v-${key}`))) return;
          acked.push(key);
        }
      }),
    );
    // Under load first, so that the snapshot being written is one taken while writes are acknowledged.
    await waitFor(() => (acked.length - ackedBefore >= 50 ? true : undefined), { timeoutMs: 20000, intervalMs: 5, what: 'writes to be acknowledged' });
    const seen = await watchDir(snapshotDir(dataDir), (names) => names.some((n) => n.endsWith('.tmp')), 20000);
    await server!.kill9();
    stop = true;
    await writers;
    t.ok(seen, `round ${round}: killed while a snapshot file was being written (${acked.length - ackedBefore} writes acknowledged in this round)`);
    await start();
    const interrupted = (seen ?? []).filter((n) => n.endsWith('.tmp'));
    t.same(filesIn(snapshotDir(dataDir)).filter((n) => interrupted.includes(n)), [], `the interrupted file is gone after the restart (${interrupted.join(', ')})`);
  }

  const present = await readPrefix(server!.url, 'w/', 'default');
  const missing = acked.filter((key) => present.get(key) !== `v-${key}`);
  t.ok(acked.length > 100, `${acked.length} acknowledged writes checked`);
  t.same(missing.slice(0, 20), [], 'every acknowledged write is there');
  t.equal((await readPrefix(server!.url, 'pre/', 'default')).size, 3000, 'and the preloaded state');
  t.equal(await server!.stop(), 0);
  server = null;
});

interface Stats {
  CommitIndex: number;
  AppliedIndex: number;
  LastLogIndex: number;
  LastSnapshotIndex: number;
}

async function clusterStats(node: ClusterNode): Promise<Stats> {
  const r = await httpRequest(`${node.url}/v1/cluster/stats`, { timeoutMs: 3000 });
  if (r.status !== 200) throw new Error(`${node.name} /v1/cluster/stats: ${r.status} ${r.text}`);
  return JSON.parse(r.text) as Stats;
}

t.test('kill -9 of a follower while it receives and while it installs a snapshot loses no acknowledged write', async (t) => {
  const trailing = 50;
  const cluster = await startCluster({
    size: 3,
    t,
    config: { raft_tick_ms: 50, snapshot_every_entries: 200, snapshot_trailing_entries: trailing, autopilot_cleanup_dead_servers: false },
  });
  const leader = await cluster.waitForLeader();
  await preload(leader.url, 'pre/', 3000);
  const follower = (await cluster.followers())[0]!;
  const dir = snapshotDir(follower.dataDir);
  const ledger: LedgerWrite[] = [];
  let n = 0;
  /** Acknowledged-or-not writes through the leader, recorded in the ledger. */
  const writeBatch = async (count: number): Promise<void> => {
    const target = await cluster.waitForLeader(10000);
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = 0; i < count / 16; i++) {
          const key = `ledger/${n++}`;
          const value = `v${n}`;
          ledger.push({ key, value, target: target.name, outcome: (await put(target.url, key, value)) ? 'acked' : 'unknown' });
        }
      }),
    );
  };
  /** Kills the follower, then writes until the leader's log no longer reaches back to it. */
  const leaveBehind = async (): Promise<void> => {
    const before = await clusterStats(follower);
    await follower.kill9();
    await waitFor(
      async () => {
        await writeBatch(160);
        const s = await clusterStats(await cluster.waitForLeader(10000));
        return s.LastSnapshotIndex - trailing > before.LastLogIndex ? true : undefined;
      },
      { timeoutMs: 60000, intervalMs: 0, what: 'the leader to compact past the follower' },
    );
  };
  /** Starts the follower and kills it the moment `moment` is seen in its snapshot directory. */
  const received: string[] = [];
  const startAndKillAt = async (what: string, moment: () => Promise<boolean>): Promise<void> => {
    const started = follower.start().catch(() => undefined); // it may die before its ready line
    const caught = await moment();
    await follower.kill9();
    await started;
    t.ok(caught, `killed ${what}`);
  };
  /** A new received file appears (one left by an earlier kill lingers until the storage opens). */
  const receiving = async (): Promise<string | null> => {
    const fresh = (xs: string[]): string | undefined => xs.find((x) => x.endsWith('.recv') && !received.includes(x));
    const names = await watchDir(dir, (xs) => fresh(xs) !== undefined, 30000);
    const name = names === null ? null : fresh(names)!;
    if (name !== null) received.push(name);
    return name;
  };

  await leaveBehind();
  await startAndKillAt('while receiving the snapshot', async () => (await receiving()) !== null);

  // Still behind (the partial file was dropped): the leader sends the snapshot again.
  await writeBatch(64);
  await startAndKillAt('right after the received snapshot was installed, while the state machine is restored', async () => {
    const name = await receiving();
    if (name === null) return false;
    // Renamed into its final name: installed; the state machine is being fed the file.
    const names = await watchDir(dir, (xs) => !xs.includes(name), 30000);
    return names !== null && names.includes(name.slice(0, name.indexOf('.snap.') + '.snap'.length));
  });

  await writeBatch(64);
  await follower.start();
  const leaderStats = await clusterStats(await cluster.waitForLeader(10000));
  const caughtUp = await waitFor(async () => {
    const s = await clusterStats(follower);
    return s.AppliedIndex >= leaderStats.CommitIndex ? s : undefined;
  }, { timeoutMs: 30000, what: `${follower.name} to catch up` });
  t.ok(caughtUp.LastSnapshotIndex > 0, `${follower.name} caught up to ${caughtUp.AppliedIndex} from snapshot ${caughtUp.LastSnapshotIndex}`);
  t.same(filesIn(dir).filter((x) => received.includes(x)), [], `no received file left (${received.join(', ')})`);

  const verdict = checkLedger(ledger, await readPrefix(follower.url, 'ledger/', 'stale'));
  t.ok(verdict.ok, `${follower.name}: ${verdict.message}`);
  t.ok(verdict.acked > 200, `${verdict.acked} acknowledged writes checked`);
  t.equal((await readPrefix(follower.url, 'pre/', 'stale')).size, 3000, 'and the preloaded state');
  t.same(cluster.unexpectedExits(), [], 'no server crashed');
});
