// `konsul snapshot agent` against a real dev server (1 s session TTLs allowed): snapshots on
// schedule that verify and restore, rotation, the health check and metrics on success and on
// failure (a directory that is not one, then a server that is gone), and a clean SIGTERM.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { waitFor } from '../test/cluster/harness.ts';
import { removeDir, startServer, tempDataDir, type ServerProcess } from '../test/kit/server-process.ts';
import { startSnapshotAgent, type SnapshotAgentProcess } from '../test/kit/snapshot-agent-process.ts';
import { parseSnapshotFileName, verifyArchiveFile } from './snapshot-files.ts';

let server: ServerProcess;
let work: string;

t.before(async () => {
  work = tempDataDir('konsul-snapagent-test-');
  const config = join(work, 'konsul.json');
  writeFileSync(config, JSON.stringify({ session_ttl_min_ms: 1000 }));
  server = await startServer({ node: 'snap-int', extraArgs: ['--config', config] });
});

t.teardown(async () => {
  await server.kill9();
  removeDir(server.dataDir);
  removeDir(work);
});

const agents: SnapshotAgentProcess[] = [];
t.afterEach(async () => {
  for (const a of agents.splice(0)) await a.kill9();
});

async function agent(id: string, dir: string, extra: string[] = []): Promise<SnapshotAgentProcess> {
  const a = await startSnapshotAgent([
    '--http-addr', server.url, '--id', id, '--dir', dir, '--interval', '300ms',
    '--session-ttl', '1s', '--lock-delay', '500ms', ...extra,
  ]);
  agents.push(a);
  return a;
}

async function api(path: string, init: { method?: string; body?: string | Buffer } = {}): Promise<Response> {
  return fetch(`${server.url}${path}`, { method: init.method ?? 'GET', body: init.body, signal: AbortSignal.timeout(10_000) });
}

interface Check { CheckID: string; Status: string; Output: string }
async function savingCheck(id: string): Promise<Check | undefined> {
  const checks = (await (await api('/v1/health/checks/konsul-snapshot')).json()) as Check[];
  return checks.find((c) => c.CheckID === `konsul-snapshot-agent:${id}`);
}

const snapshotsIn = (dir: string): string[] => readdirSync(dir).filter((n) => parseSnapshotFileName(n) !== null).sort();

/** waitFor, with the agent's output in the error. */
async function until<T>(a: SnapshotAgentProcess, what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  try {
    return await waitFor(probe, { what, timeoutMs });
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- agent output ---\n${a.output()}`);
  }
}

t.test('snapshots every interval; each file verifies; the newest restores; rotation keeps 3; SIGTERM cleans up', async (t) => {
  await api('/v1/kv/config/a', { method: 'PUT', body: 'one' });
  const dir = join(work, 'a1');
  const startedMs = Date.now();
  const a1 = await agent('a1', dir, ['--retain', '3']);
  await until(a1, '6 snapshots', () => (a1.saved().length >= 6 ? true : undefined));

  // Fixed-rate schedule: snapshots start 300 ms apart (the names carry the start times).
  const starts = a1.saved().map((f) => parseSnapshotFileName(f)!.takenAtMs);
  const meanGapMs = (starts[5]! - starts[0]!) / 5;
  t.ok(meanGapMs >= 250 && meanGapMs < 1500, `mean gap ${meanGapMs} ms`);

  const check = await until(a1, 'a passing konsul-snapshot-agent check', async () => {
    const c = await savingCheck('a1');
    return c?.Status === 'passing' && /^Saved konsul-\S+\.snap \(index \d+/.test(c.Output) ? c : undefined;
  });
  t.match(check.Output, /snapshots kept in/);
  t.equal(await a1.metric('konsul_snapshot_agent_is_leader'), 1);
  t.ok((await a1.metric('konsul_snapshot_agent_snapshot_successes_total'))! >= 6);
  t.ok((await a1.metric('konsul_snapshot_agent_last_success_timestamp_seconds'))! * 1000 >= startedMs);
  t.ok((await a1.metric('konsul_snapshot_agent_last_snapshot_index'))! > 0);
  t.ok((await a1.metric('konsul_snapshot_agent_last_snapshot_bytes'))! > 0);
  t.equal(await a1.metric('konsul_snapshot_agent_snapshot_failures_total'), 0);
  const lock = (await (await api('/v1/kv/konsul-snapshot/lock')).json()) as { Session?: string; Value: string }[];
  t.equal(Buffer.from(lock[0]!.Value, 'base64').toString(), 'a1', 'the lock names its holder');

  t.equal(await a1.stop(), 0, 'SIGTERM: exit 0');
  t.match(a1.output(), /Released konsul-snapshot\/lock/);
  const files = snapshotsIn(dir);
  t.equal(files.length, 3, 'rotation kept the newest 3');
  t.same(files, a1.saved().slice(-3).sort(), 'the newest ones');
  t.same(readdirSync(dir).filter((n) => n.startsWith('.')), [], 'no temporary file left');
  let lastIndex = 0;
  for (const f of files) {
    const meta = await verifyArchiveFile(join(dir, f));
    t.equal(meta.Index, parseSnapshotFileName(f)!.index, `${f} verifies and holds its index`);
    t.ok(meta.Index > lastIndex, 'indexes grow');
    lastIndex = meta.Index;
  }

  // After the stop: the lock is free, the session gone, the service deregistered.
  const after = (await (await api('/v1/kv/konsul-snapshot/lock')).json()) as { Session?: string }[];
  t.notOk(after[0]!.Session, 'lock released');
  t.same(await (await api('/v1/session/list')).json(), [], 'session destroyed');
  t.notOk(((await (await api('/v1/agent/services')).json()) as Record<string, unknown>)['konsul-snapshot:a1'], 'service deregistered');

  // The newest file restores: a value overwritten since comes back.
  await api('/v1/kv/config/a', { method: 'PUT', body: 'two' });
  const restore = await api('/v1/snapshot', { method: 'PUT', body: readFileSync(join(dir, files[2]!)) });
  t.equal(restore.status, 200, await restore.clone().text());
  t.equal(await (await api('/v1/kv/config/a?raw')).text(), 'one');
});

t.test('a failure turns the check critical and counts in the metrics; a working directory again turns it passing', async (t) => {
  const dir = join(work, 'a2');
  const a2 = await agent('a2', dir, ['--max-failures', '2']);
  await until(a2, 'a first snapshot', () => (a2.saved().length >= 1 ? true : undefined));

  // Root ignores permissions: a file where the directory was makes it unwritable for anyone.
  rmSync(dir, { recursive: true });
  writeFileSync(dir, 'not a directory');
  const critical = await until(a2, 'a critical check', async () => {
    const c = await savingCheck('a2');
    return c?.Status === 'critical' ? c : undefined;
  });
  t.match(critical.Output, /Snapshot failed at \S+ \(\d+ in a row\): .*ENOTDIR/);
  t.match(critical.Output, /Last saved: konsul-/);
  t.ok((await a2.metric('konsul_snapshot_agent_snapshot_failures_total'))! >= 1);
  t.ok((await a2.metric('konsul_snapshot_agent_last_failure_timestamp_seconds'))! > 0);
  t.ok((await a2.metric('konsul_snapshot_agent_consecutive_failures'))! >= 1);
  await until(a2, 'giving up after 2 failures', () => (/Giving up leadership after 2 failed snapshots/.test(a2.output()) ? true : undefined));

  // Alone, it takes the lock again and the check stays critical until a snapshot succeeds.
  rmSync(dir);
  mkdirSync(dir);
  const before = a2.saved().length;
  await until(a2, 'passing again', async () => {
    const c = await savingCheck('a2');
    return c?.Status === 'passing' && a2.saved().length > before ? true : undefined;
  });
  t.equal(await a2.metric('konsul_snapshot_agent_consecutive_failures'), 0);
  t.equal(snapshotsIn(dir).length >= 1, true);

  // The server gone: failures counted locally, and leadership lost once renewals stop working.
  const failures = (await a2.metric('konsul_snapshot_agent_snapshot_failures_total'))!;
  await server.kill9();
  await until(a2, 'a failure counted', async () => ((await a2.metric('konsul_snapshot_agent_snapshot_failures_total'))! > failures ? true : undefined));
  await until(a2, 'leadership lost', async () => ((await a2.metric('konsul_snapshot_agent_is_leader')) === 0 ? true : undefined));
  t.match(a2.output(), /Snapshot failed .*cannot reach Konsul/);
  t.equal(await a2.stop(), 0, 'stops cleanly without a server');
});
