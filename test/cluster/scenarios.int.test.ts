// Fault scenarios on a real three-server cluster. Each one runs the client workload (workload.ts)
// through the fault and after it, then checks that
//  - the recorded history (with a final consistent read of every key) is linearizable;
//  - every acknowledged ledger write is present, with its value, on every server, and no write
//    that was definitely rejected is;
//  - every server converged on the same values;
//  - no server crashed.
// A failure prints the failing key's history, the workload's seed and the servers' output.
//
// Seeds: CLUSTER_SEED=<n> replays the workload's choices (timing still differs between runs).
import t, { type Test } from 'tap';
import http from 'node:http';
import { httpRequest, sleep, startCluster, waitFor, type Cluster, type ClusterNode } from './harness.ts';
import { checkHistory, checkLedger, describeStats, readPrefix, Workload, type LedgerWrite } from './workload.ts';

/** 50 ms ticks and the default 10-tick election timeout: leaders change within about a second. */
const FAST = { raft_tick_ms: 50 };
const SEED = Number(process.env.CLUSTER_SEED ?? Date.now() % 1_000_000);
/** Connections that stay open after an answer, like the HTTP clients of Consul's ecosystem. */
const keepAlive = new http.Agent({ keepAlive: true });
t.teardown(() => keepAlive.destroy());

interface Stats {
  Role: string;
  Term: number;
  CommitIndex: number;
  AppliedIndex: number;
  LastLogIndex: number;
  LastSnapshotIndex: number;
  Peers: { ID: string; State: string; MatchIndex: number }[];
}

async function clusterStats(node: ClusterNode): Promise<Stats> {
  const r = await httpRequest(`${node.url}/v1/cluster/stats`, { timeoutMs: 3000 });
  if (r.status !== 200) throw new Error(`${node.name} /v1/cluster/stats: ${r.status} ${r.text}`);
  return JSON.parse(r.text) as Stats;
}

/** A PUT that reports what happened instead of throwing: 'timeout', 'error: …', or 'STATUS body'. */
async function tryPut(node: ClusterNode, key: string, value: string, timeoutMs: number): Promise<string> {
  try {
    const r = await httpRequest(`${node.url}/v1/kv/${key}`, { method: 'PUT', body: value, timeoutMs });
    return `${r.status} ${r.text}`;
  } catch (err) {
    return (err as Error).name === 'TimeoutError' ? 'timeout' : `error: ${(err as Error).message}`;
  }
}

/** A read in the given mode: the value, null when missing; throws on any other answer. */
async function read(node: ClusterNode, key: string, mode: 'stale' | 'consistent'): Promise<string | null> {
  const r = await httpRequest(`${node.url}/v1/kv/${key}?raw&${mode}`, { timeoutMs: 3000 });
  if (r.status === 404) return null;
  if (r.status !== 200) throw new Error(`${node.name} GET ${key}?${mode}: ${r.status} ${r.text}`);
  return r.text;
}

interface Scenario {
  readonly t: Test;
  readonly cluster: Cluster;
  readonly workload: Workload;
  /** Servers taken out of the cluster for good: no longer targets, not checked at the end. */
  readonly removed: Set<ClusterNode>;
  /** The servers that are members and running. */
  members(): ClusterNode[];
}

interface ScenarioOptions {
  readonly config?: Record<string, unknown>;
  /** 'alive' also sends requests to paused servers (they answer late, or the client times out). */
  readonly targets?: 'running' | 'alive';
}

/**
 * Starts a cluster and the workload, runs `fault`, then heals, demands progress, stops the
 * workload, and checks everything listed at the top of the file.
 */
async function scenario(t: Test, name: string, options: ScenarioOptions, fault: (s: Scenario) => Promise<void>): Promise<void> {
  const started = Date.now();
  const cluster = await startCluster({ size: 3, t, config: { ...FAST, ...(options.config ?? {}) } });
  const removed = new Set<ClusterNode>();
  const members = (): ClusterNode[] => cluster.running().filter((n) => !removed.has(n));
  const workload = new Workload({
    targets: () =>
      (options.targets === 'alive' ? cluster.alive() : cluster.running()).filter((n) => !removed.has(n)).map((n) => ({ name: n.name, url: n.url })),
    clients: 4,
    keyCount: 4,
    prefix: `lin/${name}/`,
    thinkMs: 5,
    requestTimeoutMs: 3000,
    seed: SEED,
  });
  t.teardown(() => workload.stop());
  const context: Scenario = { t, cluster, workload, removed, members };
  const fail = (what: string, err: unknown): void => {
    t.fail(`${what}: ${(err as Error).message ?? String(err)}\n${describeStats(workload.stats())}\n${cluster.outputs()}`);
  };

  workload.start();
  try {
    await workload.waitAcked(20);
    await fault(context);
    cluster.heal();
    await cluster.waitForLeader(20000, members());
    // Liveness: the healed cluster takes writes again.
    await workload.waitAcked(20);
  } catch (err) {
    await workload.stop();
    return fail(`scenario ${name} (seed ${SEED})`, err);
  }
  const stats = await workload.stop();
  t.comment(`${name}: ${describeStats(stats)}`);

  try {
    const leader = await cluster.waitForLeader(20000, members());
    const final = await workload.finalReads({ name: leader.name, url: leader.url });
    // Every member converges on the final values and holds every acknowledged ledger write.
    for (const node of members()) {
      await waitFor(
        async () => {
          for (const [key, value] of final) {
            const got = await read(node, key, 'stale');
            if (got !== value) throw new Error(`${key} is ${JSON.stringify(got)}, the leader has ${JSON.stringify(value)}`);
          }
          const ledger = checkLedger(workload.ledger, await readPrefix(node.url, workload.ledgerPrefix, 'stale'));
          if (!ledger.ok) throw new Error(ledger.message);
          return ledger;
        },
        { timeoutMs: 20000, intervalMs: 200, what: `${node.name} to converge` },
      ).then(
        (ledger) => t.pass(`${node.name}: converged, ${ledger.message}`),
        (err: Error) => t.fail(`${node.name}: ${err.message}`),
      );
    }
  } catch (err) {
    return fail(`final checks of ${name} (seed ${SEED})`, err);
  }

  const verdict = checkHistory(workload.history());
  t.ok(verdict.ok, verdict.ok ? verdict.message : `${verdict.message}\nseed ${SEED} (replay the choices with CLUSTER_SEED=${SEED})`);
  if (!verdict.ok) t.comment(cluster.outputs());
  t.same(cluster.unexpectedExits(), [], 'no server crashed');
  t.comment(`${name}: ${Math.round((Date.now() - started) / 100) / 10} s`);
}

t.comment(`workload seed ${SEED} (replay with CLUSTER_SEED=${SEED})`);

t.test('leader kill -9 under write load, then restart', async (t) => {
  await scenario(t, 'leader-kill', {}, async ({ t, cluster, workload }) => {
    const old = await cluster.waitForLeader();
    await workload.waitAcked(30);
    await old.kill9();
    const next = await cluster.waitForLeader(15000);
    t.not(next.name, old.name, `${next.name} took over from ${old.name}`);
    await workload.waitAcked(30);
    await old.start();
  });
});

t.test('a follower killed while the log moves past a snapshot catches up through it', async (t) => {
  // Autopilot must not remove the dead follower meanwhile: this is about catching up. Snapshots
  // keep 100 trailing entries (not the default 5000), so a few hundred writes compact past it.
  const trailing = 100;
  const config = { snapshot_every_entries: 200, snapshot_trailing_entries: trailing, autopilot_cleanup_dead_servers: false };
  await scenario(t, 'follower-snapshot', { config }, async ({ t, cluster, workload }) => {
    const follower = (await cluster.followers())[0]!;
    const before = await clusterStats(follower);
    await follower.kill9();

    // The leader keeps `trailing` entries below its latest snapshot: write until it has
    // compacted past everything the follower has, so only a snapshot can bring it back.
    const bulk: LedgerWrite[] = [];
    const prefix = `${workload.prefix}bulk/`;
    let i = 0;
    const leaderStats = await waitFor(
      async () => {
        const leader = await cluster.waitForLeader(5000);
        const writers = cluster.running();
        await Promise.all(
          Array.from({ length: 24 }, async (_, w) => {
            for (let k = 0; k < 25; k++) {
              const n = i++;
              const node = writers[(w + k) % writers.length]!;
              const value = `b${n}`;
              const answer = await tryPut(node, `${prefix}${n}`, value, 5000);
              bulk.push({ key: `${prefix}${n}`, value, target: node.name, outcome: answer === '200 true' ? 'acked' : answer.startsWith('500 No cluster leader') ? 'failed' : 'unknown' });
            }
          }),
        );
        const s = await clusterStats(leader);
        return s.LastSnapshotIndex - trailing > before.LastLogIndex ? s : undefined;
      },
      { timeoutMs: 90000, intervalMs: 0, what: 'the leader to compact its log past the dead follower' },
    );
    t.pass(`leader snapshot at ${leaderStats.LastSnapshotIndex} (log kept from ${leaderStats.LastSnapshotIndex - trailing}), follower had ${before.LastLogIndex}; ${bulk.length} bulk writes`);

    await follower.start();
    const restartedAt = Date.now();
    const transient: string[] = [];
    const caughtUp = await waitFor(
      async () => {
        const f = await clusterStats(follower).catch((err: Error) => {
          transient.push(`${Date.now() - restartedAt} ms: ${err.message} ${String((err as { cause?: { message?: string } }).cause?.message ?? '')}`);
          throw err;
        });
        return f.AppliedIndex >= leaderStats.CommitIndex && f.LastSnapshotIndex > before.LastLogIndex ? { f } : undefined;
      },
      { timeoutMs: 30000, what: `${follower.name} to catch up` },
    );
    if (transient.length > 0) t.comment(`${follower.name} stats while catching up failed ${transient.length}×: ${transient.slice(0, 5).join('; ')}`);
    t.pass(`${follower.name} caught up: applied ${caughtUp.f.AppliedIndex}, snapshot ${caughtUp.f.LastSnapshotIndex} (was log ${before.LastLogIndex})`);

    // The latest write is served by the restarted follower from its own state.
    const latestKey = `${workload.prefix}latest`;
    const latest = `latest-${SEED}-${Date.now()}`;
    await waitFor(async () => ((await tryPut(await cluster.waitForLeader(5000), latestKey, latest, 5000)) === '200 true' ? true : undefined), {
      timeoutMs: 15000,
      what: 'the latest write to be acknowledged',
    });
    await waitFor(async () => ((await read(follower, latestKey, 'stale')) === latest ? true : undefined), {
      timeoutMs: 15000,
      what: `${follower.name} to serve the latest key in a stale read`,
    });
    t.pass(`${follower.name} serves the latest write in a stale read`);
    const present = await readPrefix(follower.url, prefix, 'stale');
    const verdict = checkLedger(bulk, present);
    t.ok(verdict.ok, `${follower.name} after the snapshot: ${verdict.message}`);
  });
});

t.test('leader cut off from the majority: a new leader, no acknowledged write on the old one, convergence after heal', async (t) => {
  await scenario(t, 'partition-leader', {}, async ({ t, cluster, workload }) => {
    const old = await cluster.waitForLeader();
    const majority = cluster.running().filter((n) => n !== old);
    cluster.partition([old], majority, 'blackhole');
    const next = await cluster.waitForLeader(15000, majority);
    t.not(next.name, old.name, `the majority elected ${next.name}`);
    await workload.waitAcked(20);

    const isolatedKey = `${workload.prefix}isolated`;
    const answer = await tryPut(old, isolatedKey, 'must-not-commit', 8000);
    t.not(answer, '200 true', `a write sent to the cut-off ${old.name} is not acknowledged (${answer})`);
    // Heal only now, after its answer: nothing can retry it on the majority side.
    cluster.heal();
    await cluster.waitForLeader(15000);
    for (const node of cluster.running()) {
      const value = await waitFor(async () => ({ v: await read(node, isolatedKey, 'consistent') }), { timeoutMs: 10000, what: `a consistent read on ${node.name}` });
      t.equal(value.v, null, `${node.name}: the write the cut-off leader never committed is not there`);
    }
  });
});

t.test('leader paused (SIGSTOP) for 2 s, then resumed', async (t) => {
  await scenario(t, 'pause-leader', { targets: 'alive' }, async ({ t, cluster }) => {
    const old = await cluster.waitForLeader();
    old.pause();
    const pausedAt = Date.now();
    const next = await cluster.waitForLeader(15000, cluster.running());
    t.not(next.name, old.name, `${next.name} took over while ${old.name} was stopped`);
    // The fault itself lasts 2 s: this wait is its duration, not a poll.
    await sleep(Math.max(0, 2000 - (Date.now() - pausedAt)));
    old.resume();
    const agreed = await cluster.waitForLeader(15000);
    t.not(agreed.name, old.name, `${old.name} follows ${agreed.name} after SIGCONT`);
  });
});

t.test('membership change under load: a fourth server joins, then the leader is removed', async (t) => {
  await scenario(t, 'membership', {}, async ({ t, cluster, workload, removed, members }) => {
    const s4 = await cluster.addNode({ timeoutMs: 30000 });
    await cluster.waitForVoters(['s1', 's2', 's3', s4.name]);
    await workload.waitAcked(20);
    const victim = await cluster.waitForLeader();
    const via = members().find((n) => n !== victim)!;
    const r = await httpRequest(`${via.url}/v1/cluster/leave/${victim.name}`, { method: 'DELETE', timeoutMs: 20000 });
    t.equal(r.status, 200, `DELETE /v1/cluster/leave/${victim.name} via ${via.name}: ${r.text}`);
    removed.add(victim);
    // A failed clean exit is reported, and the scenario goes on (stop() SIGKILLs after 10 s).
    const code = await victim.stop(10000).catch((err: Error) => err.message.split('\n')[0]);
    t.equal(code, 0, `${victim.name} exits cleanly on SIGTERM after it was removed`);
    const rest = members().map((n) => n.name);
    await cluster.waitForVoters(rest, 20000);
    t.pass(`voters now ${rest.join(', ')}`);
  });
});

t.test('full cluster restart (SIGTERM all, start all): all acknowledged data present', async (t) => {
  await scenario(t, 'full-restart', {}, async ({ t, cluster, workload }) => {
    await workload.waitAcked(40);
    // Every server has a request in flight when SIGTERM arrives (a blocking query on a
    // keep-alive connection, as Consul clients keep them): shutdown must still end promptly.
    const blocking = await Promise.all(cluster.running().map((n) => blockingQuery(n, `${workload.prefix}restart-watch`)));
    await waitFor(async () => (blocking.every((b) => b.sent()) ? true : undefined), { timeoutMs: 5000, what: 'the blocking queries to be sent' });
    // The request bytes are out; give the servers a moment to start holding them.
    await sleep(200);
    const stopping = Date.now();
    const codes = await cluster.stopAll(10000);
    t.same(codes, { s1: 0, s2: 0, s3: 0 }, `every server exits 0 within 10 s of SIGTERM (took ${Date.now() - stopping} ms)`);
    t.same(await Promise.all(blocking.map((b) => b.ended)), cluster.nodes.map(() => 'answered'), 'in-flight blocking queries were answered or cut at shutdown');
    await cluster.startAll();
    await cluster.waitForLeader(20000);
  });
});

/**
 * Starts a blocking query on `key` (which need not exist) on a keep-alive connection, as Consul
 * clients hold them. `ended` says how it ended; `sent()` is true once the request was written.
 * (An object, not a promise of a promise: awaiting that would wait for the query to end.)
 */
async function blockingQuery(node: ClusterNode, key: string): Promise<{ ended: Promise<string>; sent: () => boolean }> {
  const first = await httpRequest(`${node.url}/v1/kv/${key}?stale`, { timeoutMs: 3000 });
  const index = first.headers.get('x-consul-index') ?? '1';
  let sent = false;
  const url = new URL(`${node.url}/v1/kv/${key}?stale&index=${index}&wait=60s`);
  const ended = new Promise<string>((resolve) => {
    const req = http.get(url, { agent: keepAlive, timeout: 70000 }, (res) => {
      res.resume();
      res.on('end', () => resolve('answered'));
      res.on('error', () => resolve('answered'));
    });
    req.on('finish', () => (sent = true));
    req.on('timeout', () => {
      req.destroy();
      resolve('not answered within 70 s');
    });
    req.on('error', () => resolve('answered'));
  });
  return { ended, sent: () => sent };
}
