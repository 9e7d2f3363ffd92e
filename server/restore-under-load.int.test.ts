// Issue 19: a restore is all or nothing on every server, also while clients write and when the
// leader dies in the middle of it (3 real server processes; the restore is a staged one, its chunks
// going through the Raft log, docs/adr/0016-restore-at-any-size.md).
//   - readers on every server see the old state or the new one, never a mix, and never the old
//     again once they saw the new; writers go on being acknowledged throughout;
//   - kill -9 of the leader mid-restore: every server ends with the same state, the old one or the
//     new one, and no restore left open (the new leader's watchdog aborts the orphan).
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import t from 'tap';
import { buildBigState } from '../test/big-state.ts';
import { httpRequest, sleep, startCluster, waitFor, type ClusterNode } from '../test/cluster/harness.ts';
import { removeDir, tempDataDir } from '../test/kit/server-process.ts';

const BULK = 150_000;
const MARKERS = 50;

const work = tempDataDir('konsul-restore-load-');
t.teardown(() => removeDir(work));

function markers(value: string): Record<string, string> {
  const extra: Record<string, string> = {};
  for (let i = 0; i < MARKERS; i++) extra[`mix/${String(i).padStart(3, '0')}`] = value;
  return extra;
}

async function archive(name: string, value: string): Promise<string> {
  const path = join(work, name);
  await buildBigState({ keys: BULK, extra: markers(value), startIndex: 1000 }).writeArchive(path);
  return path;
}

function restore(url: string, file: string): Promise<Response> {
  return fetch(`${url}/v1/snapshot`, {
    method: 'PUT',
    body: Readable.toWeb(createReadStream(file)) as unknown as RequestInit['body'],
    duplex: 'half',
    signal: AbortSignal.timeout(180_000),
  } as RequestInit);
}

/** The marker values a server answers: one value for all of them, or the mix it saw. */
async function markerValues(url: string, stale = false): Promise<string[]> {
  const r = await httpRequest(`${url}/v1/kv/mix/?recurse${stale ? '&stale' : ''}`, { timeoutMs: 10_000 });
  if (r.status === 404) return [];
  if (r.status !== 200) throw new Error(`GET mix/ on ${url}: ${r.status} ${r.text}`);
  return (JSON.parse(r.text) as { Value: string }[]).map((e) => Buffer.from(e.Value, 'base64').toString());
}

async function restoreStats(node: ClusterNode): Promise<Record<string, string> | null> {
  const r = await httpRequest(`${node.url}/v1/agent/self`, { timeoutMs: 3000 }).catch(() => null);
  if (r === null || r.status !== 200) return null;
  return (JSON.parse(r.text) as { Stats: { restore: Record<string, string> } }).Stats.restore;
}

t.test('restore while clients write; then kill -9 of the leader in the middle of one', async (t) => {
  const [cluster, fileNew, fileNewer] = await Promise.all([
    startCluster({ size: 3, t, config: { restore_stall_timeout_ms: 2000 }, startTimeoutMs: 60_000 }),
    archive('new.snap', 'new'),
    archive('newer.snap', 'newer'),
  ]);
  let leader = await cluster.leader();
  for (const [key, value] of Object.entries(markers('old'))) {
    t.equal((await httpRequest(`${leader.url}/v1/kv/${key}`, { method: 'PUT', body: value })).text.trim(), 'true');
  }

  await t.test('readers see the old state or the new one, never a mix; writes go on', async (t) => {
    let stop = false;
    const seen = new Map<string, string[]>();
    const problems: string[] = [];
    let readTimeouts = 0;
    const readers = cluster.nodes.map(async (node) => {
      const states: string[] = [];
      seen.set(node.name, states);
      while (!stop) {
        let values: string[];
        try {
          values = await markerValues(node.url);
        } catch (err) {
          // A consistent read needs a heartbeat round within the read timeout; on a machine far
          // busier than the cluster a round can miss it during a restore. That is not a mix.
          if (!/timed out confirming leadership/.test((err as Error).message)) throw err;
          readTimeouts++;
          continue;
        }
        const distinct = [...new Set(values)];
        if (distinct.length !== 1 || values.length !== MARKERS) problems.push(`${node.name} answered ${values.length} markers: ${distinct.join(',')}`);
        else if (states[states.length - 1] !== distinct[0]) states.push(distinct[0]!);
        await sleep(5);
      }
    });
    const acked: { key: string; afterRestore: boolean }[] = [];
    let restored = false;
    const writers = [0, 1].map(async (w) => {
      for (let n = 0; !stop; n++) {
        const key = `w/${w}-${n}`;
        const afterRestore = restored;
        const r = await httpRequest(`${leader.url}/v1/kv/${key}`, { method: 'PUT', body: 'x', timeoutMs: 20_000 });
        if (r.status !== 200 || r.text.trim() !== 'true') problems.push(`PUT ${key}: ${r.status} ${r.text}`);
        else acked.push({ key, afterRestore });
      }
    });
    await sleep(300);
    const res = await restore(leader.url, fileNew);
    t.equal(res.status, 200, await res.clone().text());
    restored = true;
    await sleep(500);
    stop = true;
    await Promise.all([...readers, ...writers]);
    t.same(problems, [], 'every read was whole; every write acknowledged');
    if (readTimeouts > 0) t.comment(`${readTimeouts} reads timed out confirming leadership`);
    for (const [name, states] of seen) t.same(states, ['old', 'new'], `${name}: old, then new, never back`);
    // Writes acknowledged after the restore returned are there; those before it began are not.
    const present = async (key: string) => (await httpRequest(`${leader.url}/v1/kv/${key}`)).status === 200;
    const after = acked.filter((a) => a.afterRestore);
    t.ok(after.length > 0 && acked.length > after.length, 'writes both during and after the restore');
    t.ok(await present(after[after.length - 1]!.key), 'a write after the restore is kept');
    t.notOk(await present(acked[0]!.key), 'a write from before the restore is gone with the old state');
  });

  await t.test('kill -9 of the leader mid-restore: every server old or new alike, nothing left open', async (t) => {
    leader = await cluster.leader();
    const followers = cluster.nodes.filter((n) => n !== leader);
    const put = restore(leader.url, fileNewer).catch((err: unknown) => err);
    await waitFor(async () => {
      const stats = await restoreStats(followers[0]!);
      return stats?.in_progress === 'true' && Number(stats.chunks) >= 2 ? true : undefined;
    }, { timeoutMs: 60_000, intervalMs: 20, what: 'the restore to be under way on a follower' });
    await leader.kill9();
    t.comment(`PUT after the kill: ${String(await put)}`);
    await cluster.leader();
    await leader.start();
    for (const node of cluster.nodes) {
      await waitFor(async () => ((await restoreStats(node))?.in_progress === 'false' ? true : undefined), { timeoutMs: 30_000, what: `${node.name} to have no restore open` });
    }
    // All servers converge on one state: the same markers (all old-from-before, i.e. 'new', or all 'newer').
    const states = await waitFor(async () => {
      const all = await Promise.all(cluster.nodes.map((n) => markerValues(n.url, true)));
      const joined = all.map((v) => [...new Set(v)].join(','));
      return joined.every((s) => s === joined[0]) ? joined : undefined;
    }, { timeoutMs: 30_000, what: 'every server to hold the same markers' });
    t.ok(states[0] === 'new' || states[0] === 'newer', `every server holds one whole state: ${states[0]}`);
    const counts = await Promise.all(cluster.nodes.map(async (n) => (JSON.parse((await httpRequest(`${n.url}/v1/kv/big/?keys&stale`, { timeoutMs: 20_000 })).text) as string[]).length));
    t.same(counts, [BULK, BULK, BULK], 'and the whole bulk of it');
    // The cluster takes a restore again afterwards.
    const again = await restore((await cluster.leader()).url, fileNewer);
    t.equal(again.status, 200, await again.clone().text());
    t.same([...new Set(await markerValues((await cluster.leader()).url))], ['newer']);
  });
  t.same(cluster.unexpectedExits(), [], cluster.outputs());
});
