// The cluster harness's own mechanics (processes, addresses, fault proxies, restarts, cleanup),
// checked against real `konsul server` processes (the harness's default command), with Konsul's
// own signals as evidence: /v1/status/leader, /v1/operator/raft/configuration, /v1/cluster/stats
// and writes that fail with "No cluster leader" on the cut-off side.
import t from 'tap';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { httpRequest, startCluster, waitFor, type Cluster, type ClusterNode } from './harness.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function put(node: ClusterNode, key: string, value: string, timeoutMs = 8000): Promise<string> {
  const r = await httpRequest(`${node.url}/v1/kv/${key}`, { method: 'PUT', body: value, timeoutMs });
  return `${r.status} ${r.text}`;
}

/** A read served by `node` from its own state (?stale): the value, or null when it has none. */
async function staleGet(node: ClusterNode, key: string): Promise<string | null> {
  const r = await httpRequest(`${node.url}/v1/kv/${key}?raw&stale`, { timeoutMs: 2000 });
  if (r.status === 404) return null;
  if (r.status !== 200) throw new Error(`${node.name} GET ${key}?stale: ${r.status} ${r.text}`);
  return r.text;
}

interface PeerStats {
  ID: string;
  LastContactMs: number;
}
interface Stats {
  ID: string;
  Role: string;
  LeaderID: string;
  LastContactMs: number;
  Peers: PeerStats[];
}

async function stats(node: ClusterNode): Promise<Stats> {
  const r = await httpRequest(`${node.url}/v1/cluster/stats`, { timeoutMs: 2000 });
  if (r.status !== 200) throw new Error(`${node.name} /v1/cluster/stats: ${r.status} ${r.text}`);
  return JSON.parse(r.text) as Stats;
}

/** How long ago `leader` last heard from `peer`, as the leader reports it. */
async function silenceOf(leader: ClusterNode, peer: ClusterNode): Promise<number> {
  const p = (await stats(leader)).Peers.find((x) => x.ID === peer.name);
  if (p === undefined) throw new Error(`${leader.name} reports no peer ${peer.name}`);
  return p.LastContactMs;
}

t.test('servers on distinct IPs agree on a leader; isolate and heal through the fault proxies', async (t) => {
  const cluster = await startCluster({ size: 3, t });
  t.same(
    cluster.nodes.map((n) => n.ip),
    ['127.0.0.11', '127.0.0.12', '127.0.0.13'],
    'one loopback IP per server',
  );
  for (const n of cluster.nodes) {
    t.ok(n.pid !== null && alive(n.pid), `${n.name} runs as pid ${n.pid}`);
    t.equal(n.rpcAddress?.host, n.ip, `${n.name}'s RPC listener is bound to its own IP`);
    t.equal(cluster.network.proxy(n.name).target?.port, n.rpcAddress?.port, `${n.name}'s proxy forwards to its RPC listener`);
    const cmd = n.commandLine().join(' ');
    t.match(cmd, `--rpc-advertise ${n.advertise}`);
    t.match(cmd, '--bootstrap-expect 3');
    for (const o of cluster.nodes) if (o !== n) t.match(cmd, `--retry-join ${o.advertise}`, `${n.name} retry-joins ${o.name}`);
  }

  // Leader agreement: every server names the same leader, by its proxy address.
  const leader = await cluster.waitForLeader(10000);
  for (const n of cluster.nodes) {
    t.equal(JSON.parse((await httpRequest(`${n.url}/v1/status/leader`)).text), leader.advertise, `${n.name} names ${leader.name}`);
  }
  const conf = await cluster.raftConfiguration(leader);
  t.same(
    conf.Servers.map((s) => `${s.Node}@${s.Address}${s.Voter ? '' : ' (non-voter)'}`).sort(),
    cluster.nodes.map((n) => `${n.name}@${n.advertise}`).sort(),
    'the Raft configuration has every server as a voter at its proxy address',
  );
  t.same(
    (await cluster.followers()).map((n) => n.name).sort(),
    cluster.nodes.filter((n) => n !== leader).map((n) => n.name),
  );

  // The proxies tell senders apart by source IP: a 'reset' rule for one follower's connections to
  // the leader resets those, and only those.
  const [f1, f2] = cluster.nodes.filter((n) => n !== leader) as [ClusterNode, ClusterNode];
  const resetsBefore = cluster.network.proxy(leader.name).stats().reset;
  cluster.block(f1, leader, 'reset');
  await waitFor(() => (cluster.network.proxy(leader.name).stats().reset > resetsBefore ? true : undefined), {
    timeoutMs: 5000,
    what: `${leader.name}'s proxy to reset a connection from ${f1.name}`,
  });
  t.equal(cluster.network.proxy(f2.name).stats().reset, 0, `nothing reset at ${f2.name}'s proxy`);
  // The leader does not hear from f1 any more, and still hears from f2.
  await waitFor(async () => ((await silenceOf(leader, f1)) > 1000 ? true : undefined), { timeoutMs: 5000, what: `${leader.name} to stop hearing from ${f1.name}` });
  t.ok((await silenceOf(leader, f2)) < 1000, `${leader.name} still hears from ${f2.name}`);
  cluster.heal();
  await waitFor(async () => ((await silenceOf(leader, f1)) < 500 ? true : undefined), { timeoutMs: 10000, what: `${leader.name} to hear from ${f1.name} again` });

  // Isolating the leader: the majority elects another, the cut-off server cannot take writes, and
  // no single leader is agreed by all three.
  cluster.isolate(leader);
  const majority = cluster.nodes.filter((n) => n !== leader);
  const next = await cluster.waitForLeader(10000, majority);
  t.not(next.name, leader.name, `the majority elected ${next.name}`);
  await waitFor(() => (cluster.network.proxy(leader.name).stats().held > 0 ? true : undefined), {
    timeoutMs: 5000,
    what: `${leader.name}'s proxy to hold connections`,
  });
  await waitFor(async () => ((await silenceOf(next, leader)) > 1000 ? true : undefined), { timeoutMs: 5000, what: `${next.name} to see ${leader.name} silent` });
  // Once it has stepped down, a write through it fails at once; none is ever acknowledged.
  const answers: string[] = [];
  await waitFor(
    async () => {
      const answer = await put(leader, 'harness/isolated', 'x').catch((err: Error) => `error: ${err.message}`);
      answers.push(answer);
      return /^500 No cluster leader/.test(answer) ? answer : undefined;
    },
    { timeoutMs: 20000, what: `a write to ${leader.name} to fail with "No cluster leader"` },
  );
  t.notOk(answers.includes('200 true'), `no write acknowledged by the isolated server (${answers.join('; ')})`);
  await t.rejects(cluster.waitForLeader(1000), /timed out .*an agreed leader.*answers: /, 'the three do not agree on a leader');
  t.equal(await put(next, 'harness/majority', 'm'), '200 true', 'the majority side takes writes');

  cluster.heal();
  const healed = await cluster.waitForLeader(15000);
  t.ok(cluster.nodes.includes(healed), `all three agree on ${healed.name} after heal`);
  await waitFor(async () => ((await put(leader, 'harness/after-heal', 'h', 3000)) === '200 true' ? true : undefined), {
    timeoutMs: 10000,
    what: `a write through ${leader.name} after heal`,
  });
  await waitFor(async () => ((await staleGet(leader, 'harness/majority')) === 'm' ? true : undefined), {
    timeoutMs: 10000,
    what: `${leader.name} to catch up with the majority's write`,
  });
  t.pass(`${leader.name} rejoined: takes writes and has the majority's write`);
  t.same(cluster.unexpectedExits(), []);
});

t.test('kill -9, restart on the same ports and data, SIGTERM, a taken port, pause and resume', async (t) => {
  const cluster = await startCluster({ size: 3, t });
  const leader = await cluster.waitForLeader();
  t.equal(await put(leader, 'harness/before', 'b'), '200 true');
  const victim = cluster.nodes.find((n) => n !== leader)!;
  await waitFor(async () => ((await staleGet(victim, 'harness/before')) === 'b' ? true : undefined), { what: `${victim.name} to have the first write` });
  const firstUrl = victim.url;
  const firstRpc = victim.rpcAddress;
  const firstPid = victim.pid!;

  await victim.kill9();
  t.equal(victim.state, 'stopped');
  t.notOk(alive(firstPid), 'killed by PID');
  t.same(victim.exits.at(-1), { code: null, signal: 'SIGKILL', expected: true });
  t.same(cluster.running().map((n) => n.name), cluster.nodes.filter((n) => n !== victim).map((n) => n.name));
  t.equal(await put(leader, 'harness/while-down', 'd'), '200 true', 'the other two still commit');

  // Restarted while cut off from the others: what it serves can only come from its own data dir.
  cluster.isolate(victim);
  await victim.start();
  t.equal(victim.url, firstUrl, 'same HTTP port after restart');
  t.same(victim.rpcAddress, firstRpc, 'same RPC address after restart');
  t.not(victim.pid, firstPid, 'a new process');
  t.equal(await staleGet(victim, 'harness/before'), 'b', 'data written before the kill is still there');
  t.equal(await staleGet(victim, 'harness/while-down'), null, 'and nothing it could not have seen');
  cluster.heal();
  await waitFor(async () => ((await staleGet(victim, 'harness/while-down')) === 'd' ? true : undefined), {
    timeoutMs: 10000,
    what: `${victim.name} to catch up after heal`,
  });
  t.pass(`${victim.name} caught up after heal`);

  // A clean stop, then its HTTP port is taken while it is down: the start fails on it, and the
  // harness starts it again on ephemeral ports, on the same data.
  const code = await victim.stop();
  t.equal(code, 0, 'SIGTERM: clean exit');
  const squatter = net.createServer();
  await new Promise<void>((r) => squatter.listen(victim.httpPort, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => squatter.close(() => r())));
  await victim.start();
  t.not(victim.url, firstUrl, 'moved to another HTTP port');
  t.match(victim.output(), /EADDRINUSE/, 'the failed start is in the output');
  t.same(
    victim.exits.map((e) => [e.code, e.signal, e.expected]),
    [
      [null, 'SIGKILL', true],
      [0, null, true],
      [1, null, false],
    ],
    'exits: kill -9, SIGTERM, then the failed start (unexpected)',
  );
  t.equal(await staleGet(victim, 'harness/while-down'), 'd', 'same data after the fallback');
  // restart(): SIGTERM, then a start on the ports it has now.
  const fallbackUrl = victim.url;
  await victim.restart();
  t.equal(victim.state, 'running');
  t.equal(victim.url, fallbackUrl, 'same HTTP port after a clean restart');
  t.equal(await staleGet(victim, 'harness/before'), 'b', 'its data survived the clean restart');
  t.match(victim.output(), /start #5 of /);

  // SIGSTOP the leader: it answers nothing, the others elect a new leader without it.
  const paused = await cluster.waitForLeader();
  paused.pause();
  t.equal(paused.state, 'paused');
  t.ok(alive(paused.pid!), 'a paused process still exists');
  await t.rejects(httpRequest(`${paused.url}/v1/status/leader`, { timeoutMs: 300 }), /abort|timeout/i, 'a paused server does not answer');
  t.same(cluster.running().map((n) => n.name), cluster.nodes.filter((n) => n !== paused).map((n) => n.name), 'running() leaves it out');
  t.same(cluster.alive().length, 3, 'alive() keeps it');
  const during = await cluster.waitForLeader(10000);
  t.not(during.name, paused.name, `${during.name} took over while ${paused.name} was stopped`);
  paused.resume();
  t.equal(paused.state, 'running');
  const r = await httpRequest(`${paused.url}/v1/status/leader`, { timeoutMs: 3000 });
  t.equal(r.status, 200, 'answers again after SIGCONT');
  const after = await cluster.waitForLeader(10000);
  t.ok(cluster.nodes.includes(after), `all three agree on ${after.name} after SIGCONT`);
  t.same(cluster.unexpectedExits(), [`${victim.name}: code 1, signal null`], 'only the start on a taken port failed');
});

t.test('addNode joins with --retry-join; destroy kills every PID and removes the files', async (t) => {
  const cluster: Cluster = await startCluster({ size: 2 });
  try {
    const s3 = await cluster.addNode({ timeoutMs: 30000 });
    t.equal(s3.name, 's3');
    t.equal(s3.ip, '127.0.0.13');
    const cmd = s3.commandLine().join(' ');
    t.match(cmd, `--retry-join ${cluster.node('s1').advertise}`);
    t.match(cmd, `--retry-join ${cluster.node('s2').advertise}`);
    t.notMatch(cmd, /--bootstrap-expect/, 'a joining server does not bootstrap');
    const conf = await cluster.waitForVoters(['s1', 's2', 's3']);
    t.equal(conf.Servers.find((s) => s.Node === 's3')?.Address, s3.advertise, 's3 is a voter at its proxy address');
    t.equal(await put(s3, 'harness/via-s3', '3'), '200 true', 's3 takes writes');

    cluster.node('s2').pause();
    const pids = cluster.nodes.map((n) => n.pid!);
    const root = cluster.root;
    t.ok(existsSync(join(root, 's3', 'data')), 'data dirs live under the cluster root');
    await cluster.destroy();
    t.ok(cluster.destroyed);
    for (const pid of pids) t.notOk(alive(pid), `pid ${pid} gone (a paused one too)`);
    t.notOk(existsSync(root), 'temp dir removed');
    await cluster.destroy(); // idempotent
    await t.rejects(cluster.addNode(), /cluster destroyed/);
  } finally {
    await cluster.destroy();
  }
});

t.test('a server that cannot start fails startCluster with its output, and leaves nothing behind', async (t) => {
  // Konsul exits 2 on a config error; commander exits 1 on a malformed flag.
  for (const [what, options, message, exitCode] of [
    ['an unknown config key', { config: { no_such_key: 1 } }, /unknown key "no_such_key"/, 2],
    ['a malformed flag', { extraArgs: ['--http-addr', 'not-an-address'] }, /--http-addr: expected HOST:PORT, got "not-an-address"/, 1],
  ] as const) {
    const err = await startCluster({ size: 1, startTimeoutMs: 15000, ...options }).then(
      () => null,
      (e: Error) => e,
    );
    if (err === null) {
      t.fail(`${what}: startCluster succeeded`);
      continue;
    }
    t.match(err.message, /s1 exited before it was ready/, `${what}: startCluster fails`);
    t.match(err.message, message, `${what}: the server's own message is in the error`);
    const root = /--data-dir (\S+)\/s1\/data/.exec(err.message)?.[1];
    t.ok(root !== undefined && root.includes('konsul-cluster-'), `${what}: the error shows the command line`);
    if (root !== undefined) t.notOk(existsSync(root), `${what}: ${root} removed`);
    const exit = /\[harness\] s1 \(pid (\d+)\) exited: code (\d+)/.exec(err.message);
    t.equal(Number(exit?.[2]), exitCode, `${what}: the server exited with code ${exitCode}`);
    t.notOk(alive(Number(exit?.[1])), `${what}: pid ${exit?.[1]} is gone`);
  }
});
