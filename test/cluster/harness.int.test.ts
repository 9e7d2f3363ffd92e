// The cluster harness's own mechanics (processes, ports, proxies, cleanup), run against a fake
// server (fake-server.ts) so that they are tested independently of Konsul's cluster mode.
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { httpRequest, startCluster, waitFor, type Cluster, type ClusterNode } from './harness.ts';

const FAKE = { script: fileURLToPath(new URL('./fake-server.ts', import.meta.url)), execArgv: ['--import', 'tsx'] };

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Who `node` heard from in the last second, with the source IP each connection came from. */
async function heardFrom(node: ClusterNode): Promise<Record<string, string>> {
  const r = await httpRequest(`${node.url}/v1/fake/peers`, { timeoutMs: 1000 });
  return JSON.parse(r.text) as Record<string, string>;
}

async function waitHeard(node: ClusterNode, want: string[]): Promise<void> {
  await waitFor(
    async () => {
      const got = Object.keys(await heardFrom(node)).sort();
      return got.join(',') === [...want].sort().join(',') ? true : undefined;
    },
    { timeoutMs: 5000, what: `${node.name} to hear from exactly [${want.join(', ')}]` },
  );
}

t.test('start, agree on a leader, partition, heal', async (t) => {
  const cluster = await startCluster({ size: 3, t, command: FAKE });
  t.equal(cluster.nodes.length, 3);
  t.same(
    cluster.nodes.map((n) => n.ip),
    ['127.0.0.11', '127.0.0.12', '127.0.0.13'],
  );
  const leader = await cluster.waitForLeader(5000);
  t.equal(leader.name, 's1', 'the fake elects the smallest name');
  t.same((await cluster.followers()).map((n) => n.name), ['s2', 's3']);
  for (const n of cluster.nodes) {
    t.ok(n.pid !== null && alive(n.pid), `${n.name} runs`);
    t.match(n.commandLine().join(' '), new RegExp(`--rpc-advertise ${n.advertise.replace(/\./g, '\\.')}`));
    t.match(n.commandLine().join(' '), /--bootstrap-expect 3/);
  }
  await waitHeard(cluster.node('s1'), ['s2', 's3']);
  // The proxies named senders by source IP: s2's connections come from 127.0.0.12.
  t.equal(cluster.network.nodeForIp('127.0.0.12'), 's2');

  cluster.isolate('s1');
  await waitHeard(cluster.node('s1'), []);
  await waitHeard(cluster.node('s2'), ['s3']);
  const majority = await cluster.waitForLeader(5000, [cluster.node('s2'), cluster.node('s3')]);
  t.equal(majority.name, 's2', 'majority side agrees on s2');
  await t.rejects(cluster.waitForLeader(600), /timed out .* an agreed leader.*answers: s1→/, 'all three do not agree');

  cluster.heal();
  await waitHeard(cluster.node('s1'), ['s2', 's3']);
  t.equal((await cluster.waitForLeader(5000)).name, 's1');
  t.same(cluster.unexpectedExits(), []);
});

t.test('stop, kill -9, restart on the same ports, pause and resume', async (t) => {
  const cluster = await startCluster({ size: 3, t, command: FAKE });
  const s2 = cluster.node('s2');
  const firstUrl = s2.url;
  const firstRpc = s2.rpcAddress;
  const firstPid = s2.pid!;

  await s2.kill9();
  t.equal(s2.state, 'stopped');
  t.notOk(alive(firstPid), 'killed by PID');
  t.same(s2.exits.at(-1), { code: null, signal: 'SIGKILL', expected: true });
  await waitHeard(cluster.node('s1'), ['s3']);

  await s2.start();
  t.equal(s2.url, firstUrl, 'same HTTP port after restart');
  t.same(s2.rpcAddress, firstRpc, 'same RPC address after restart');
  t.not(s2.pid, firstPid);
  await waitHeard(cluster.node('s1'), ['s2', 's3']);
  const starts = readFileSync(join(s2.dataDir, 'starts'), 'utf8').trim().split('\n');
  t.equal(starts.length, 2, 'same data directory');

  const code = await s2.stop();
  t.equal(code, 0, 'SIGTERM: clean exit');
  await s2.restart();
  t.equal(s2.state, 'running');

  const s3 = cluster.node('s3');
  s3.pause();
  t.equal(s3.state, 'paused');
  await t.rejects(httpRequest(`${s3.url}/v1/status/leader`, { timeoutMs: 300 }), /abort|timeout/i, 'a paused server does not answer');
  t.same(
    cluster.running().map((n) => n.name),
    ['s1', 's2'],
  );
  t.equal((await cluster.waitForLeader(5000)).name, 's1', 'waitForLeader skips paused nodes');
  s3.resume();
  const r = await httpRequest(`${s3.url}/v1/status/leader`, { timeoutMs: 2000 });
  t.equal(r.status, 200, 'answers again after SIGCONT');
  t.match(s3.output(), /start #1 of s3/);
  t.same(cluster.unexpectedExits(), []);
});

t.test('a port taken meanwhile falls back to an ephemeral one', async (t) => {
  const cluster = await startCluster({ size: 1, t, command: FAKE });
  const n = cluster.node('s1');
  const port = n.httpPort;
  await n.stop();
  const net = await import('node:net');
  const squatter = net.createServer();
  await new Promise<void>((r) => squatter.listen(port, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => squatter.close(() => r())));
  await n.start();
  t.not(n.httpPort, port, 'moved to another port');
  t.match(n.output(), /EADDRINUSE/);
  t.equal(n.exits.length, 2);
  t.equal(n.unexpectedExits().length, 1, 'the failed start is recorded as an unexpected exit');
});

t.test('addNode joins with --retry-join; destroy kills everything and removes the files', async (t) => {
  let cluster: Cluster | null = null;
  cluster = await startCluster({ size: 2, command: FAKE });
  try {
    const s3 = await cluster.addNode({ waitForVoter: false });
    t.equal(s3.name, 's3');
    t.equal(s3.ip, '127.0.0.13');
    const cmd = s3.commandLine().join(' ');
    t.match(cmd, `--retry-join ${cluster.node('s1').advertise}`);
    t.match(cmd, `--retry-join ${cluster.node('s2').advertise}`);
    t.notMatch(cmd, /--bootstrap-expect/);
    await waitHeard(s3, ['s1', 's2']);
    cluster.node('s2').pause();
    const pids = cluster.nodes.map((n) => n.pid!);
    const root = cluster.root;
    await cluster.destroy();
    t.ok(cluster.destroyed);
    for (const pid of pids) t.notOk(alive(pid), `pid ${pid} gone`);
    t.notOk(existsSync(root), 'temp dir removed');
    await cluster.destroy(); // idempotent
  } finally {
    await cluster.destroy();
  }
});

t.test('a server that cannot start fails startCluster with its output, and leaves nothing behind', async (t) => {
  const cluster = startCluster({ size: 1, command: FAKE, extraArgs: ['--http-addr', 'not-an-address'], startTimeoutMs: 5000 });
  await t.rejects(cluster, /exited before it was ready/);
});
