// `konsulctl cluster`: argument parsing, reading the server's answers, the table formats, and the
// commands run in-process against a stub HTTP server (requests sent, output, errors, exit codes).
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Command, CommanderError } from 'commander';
import t, { type Test } from 'tap';
import { UsageError } from '../args.ts';
import { CliError } from '../http-client.ts';
import { parseJsonLossless } from '../../lib/lossless-json.ts';
import {
  Fields,
  formatPeers,
  formatStats,
  formatStatus,
  formatTable,
  parseServerAddress,
  readPeers,
  readStats,
  readStatus,
} from './cluster-actions.ts';
import { registerClusterCommands } from './cluster.ts';

const STATUS_JSON = JSON.stringify({
  ID: 'n1', Address: '10.0.0.1:8300', HTTPAddress: '10.0.0.1:8500', Role: 'Follower',
  Leader: { ID: 'n2', Address: '10.0.0.2:8300', HTTPAddress: '10.0.0.2:8500' },
  Term: 4, CommitIndex: 120, AppliedIndex: 119, LastLogIndex: 121, LastSnapshotIndex: 100, LastContactMs: 12.5, ConfigurationIndex: 42,
  Members: { Servers: 3, Voters: 2, NonVoters: 1, Healthy: 2 }, FailureTolerance: 0, Healthy: false,
});

const PEERS_JSON = JSON.stringify([
  { ID: 'n1', Address: '10.0.0.1:8300', HTTPAddress: '10.0.0.1:8500', Voter: true, Leader: true },
  { ID: 'konsul-two', Address: '[fd00::2]:8300', HTTPAddress: '', Voter: false, Leader: false },
]);

const STATS_JSON = `{"ID":"n1","Role":"Leader","LeaderID":"n1","Term":4,"CommitIndex":18446744073709551615,"AppliedIndex":119,"LastLogIndex":121,`
  + '"LastSnapshotIndex":0,"LastContactMs":0,"ConfigurationIndex":42,"Peers":['
  + '{"ID":"n1","Address":"10.0.0.1:8300","Voter":true,"Leader":true,"MatchIndex":121,"ReplicationLag":0,"LastContactMs":0,"State":"replicate","Healthy":true},'
  + '{"ID":"n3","Address":"10.0.0.3:8300","Voter":false,"Leader":false,"MatchIndex":-1,"ReplicationLag":-1,"LastContactMs":-1,"State":"probe","Healthy":false}]}';

t.test('parseServerAddress takes host:port and [ipv6]:port', async (t) => {
  t.equal(parseServerAddress('10.0.0.4:8300'), '10.0.0.4:8300');
  t.equal(parseServerAddress(' konsul-4.internal:8300 '), 'konsul-4.internal:8300');
  t.equal(parseServerAddress('[fd00::4]:8300'), '[fd00::4]:8300');
  for (const bad of ['', '10.0.0.4', ':8300', '10.0.0.4:0', '10.0.0.4:65536', 'http://10.0.0.4:8300', 'fd00::4:8300', '10.0.0.4:8300/x', 'a b:1']) {
    t.throws(() => parseServerAddress(bad), UsageError, JSON.stringify(bad));
  }
});

t.test('status table', async (t) => {
  t.equal(formatStatus(readStatus(parseJsonLossless(STATUS_JSON))), [
    'ID                  n1',
    'Address             10.0.0.1:8300',
    'HTTPAddress         10.0.0.1:8500',
    'Role                Follower',
    'Leader              n2',
    'LeaderAddress       10.0.0.2:8300',
    'Term                4',
    'CommitIndex         120',
    'AppliedIndex        119',
    'LastLogIndex        121',
    'LastSnapshotIndex   100',
    'LastContact         12.5ms',
    'ConfigurationIndex  42',
    'Servers             3',
    'Voters              2',
    'NonVoters           1',
    'HealthyServers      2',
    'FailureTolerance    0',
    'Healthy             false',
    '',
  ].join('\n'));
  const noLeader = JSON.parse(STATUS_JSON) as Record<string, unknown>;
  noLeader.Leader = { ID: '', Address: '', HTTPAddress: '' };
  t.match(formatStatus(readStatus(noLeader)), /^Leader {14}-\nLeaderAddress {7}-\n/m, 'no leader: "-"');
});

t.test('peers table: aligned columns, "-" for empty cells, no trailing spaces', async (t) => {
  t.equal(formatPeers(readPeers(parseJsonLossless(PEERS_JSON))), [
    'ID          Address         HTTPAddress    Voter  Leader',
    'n1          10.0.0.1:8300   10.0.0.1:8500  true   true',
    'konsul-two  [fd00::2]:8300  -              false  false',
    '',
  ].join('\n'));
  t.equal(formatTable(['A', 'B'], [['x y', '']]), 'A    B\nx_y  -\n', 'one field per column for awk');
  t.equal(formatTable(['A', 'B'], []), 'A  B\n');
});

t.test('stats: summary, then the per-peer replication table; uint64 indexes stay exact', async (t) => {
  t.equal(formatStats(readStats(parseJsonLossless(STATS_JSON))), [
    'ID                  n1',
    'Role                Leader',
    'Leader              n1',
    'Term                4',
    'CommitIndex         18446744073709551615',
    'AppliedIndex        119',
    'LastLogIndex        121',
    'LastSnapshotIndex   0',
    'LastContact         0ms',
    'ConfigurationIndex  42',
    '',
    'Peer  Address        Voter  Leader  MatchIndex  ReplicationLag  LastContact  State      Healthy',
    'n1    10.0.0.1:8300  true   true    121         0               0ms          replicate  true',
    'n3    10.0.0.3:8300  false  false   -           -               never        probe      false',
    '',
  ].join('\n'));
});

t.test('answers of the wrong shape are CliErrors naming the field', async (t) => {
  t.throws(() => readPeers({}), new CliError('Konsul answered /v1/cluster/peers with something other than a JSON array'));
  t.throws(() => readPeers([{ ID: 'n1', Address: 'a', HTTPAddress: '', Voter: 'yes', Leader: false }]),
    new CliError('Konsul answered /v1/cluster/peers without Voter as true or false'));
  t.throws(() => readStatus({ ...JSON.parse(STATUS_JSON), Members: null }), new CliError('Konsul answered /v1/cluster/status (Members) with something other than a JSON object'));
  t.throws(() => readStats({ ...JSON.parse(STATS_JSON), Peers: {} }), new CliError('Konsul answered /v1/cluster/stats without Peers as a JSON array'));
  t.throws(() => Fields.of({ Index: '12x' }, '/v1/cluster/snapshot').int('Index'), new CliError('Konsul answered /v1/cluster/snapshot without Index as a number'));
});

// ---- The commands, in-process, against a stub HTTP server ----

interface Seen {
  method: string;
  url: string;
  contentType: string | undefined;
  body: string;
}

/** Answers `${method} ${url}` from `routes` (default 404), recording every request. */
async function stubServer(t: Test, routes: Record<string, [number, string]>) {
  const seen: Seen[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', contentType: req.headers['content-type'], body: Buffer.concat(chunks).toString() });
      const [status, body] = routes[`${req.method} ${req.url}`] ?? [404, 'Not found'];
      res.writeHead(status, { 'content-type': body.startsWith('{') || body.startsWith('[') ? 'application/json' : 'text/plain' }).end(body);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

/**
 * Runs `konsulctl <args>` with the cluster commands in this process; stdout and stderr are captured
 * (only while the command runs, so tap's own output is untouched) and process.exitCode is restored.
 */
async function run(address: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string; usageError?: string }> {
  const program = new Command('konsulctl').option('--http-addr <address>').option('--token <token>').exitOverride();
  let stdout = '';
  let stderr = '';
  program.configureOutput({ writeOut: (s) => (stdout += s), writeErr: (s) => (stderr += s) });
  registerClusterCommands(program);
  const realOut = process.stdout.write.bind(process.stdout);
  const realErr = process.stderr.write.bind(process.stderr);
  const capture = (append: (s: string) => void) => ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    append(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString());
    const callback = rest.find((r): r is () => void => typeof r === 'function');
    callback?.();
    return true;
  }) as typeof process.stdout.write;
  process.stdout.write = capture((s) => (stdout += s));
  process.stderr.write = capture((s) => (stderr += s));
  let usageError: string | undefined;
  try {
    await program.parseAsync(['node', 'konsulctl', '--http-addr', address, ...args]);
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    usageError = err.code;
  } finally {
    process.stdout.write = realOut;
    process.stderr.write = realErr;
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = undefined;
  return { code, stdout, stderr, ...(usageError ? { usageError } : {}) };
}

t.test('read commands: the right endpoint, tables by default, the server\'s JSON with --format json', async (t) => {
  const { address, seen } = await stubServer(t, {
    'GET /v1/cluster/peers': [200, PEERS_JSON],
    'GET /v1/cluster/status': [200, STATUS_JSON],
    'GET /v1/cluster/stats': [200, STATS_JSON],
    'GET /v1/cluster/leader': [200, '{"ID":"n2","Address":"10.0.0.2:8300","HTTPAddress":"10.0.0.2:8500"}'],
  });
  t.same(await run(address, ['cluster', 'peers']), { code: 0, stdout: formatPeers(readPeers(JSON.parse(PEERS_JSON))), stderr: '' });
  const json = await run(address, ['cluster', 'peers', '--format', 'json']);
  t.equal(json.code, 0);
  t.same(JSON.parse(json.stdout), JSON.parse(PEERS_JSON));
  t.match(json.stdout, /^\[\n {2}\{\n {4}"ID": "n1",/, 'indented');
  t.equal((await run(address, ['cluster', '--format', 'json', 'status'])).stdout, `${JSON.stringify(JSON.parse(STATUS_JSON), null, 2)}\n`, '--format before the subcommand');
  t.match((await run(address, ['cluster', 'stats'])).stdout, /^CommitIndex {9}18446744073709551615$/m);
  t.equal((await run(address, ['cluster', 'leader'])).stdout, 'ID           n2\nAddress      10.0.0.2:8300\nHTTPAddress  10.0.0.2:8500\n');
  t.same(seen.map((s) => `${s.method} ${s.url}`), [
    'GET /v1/cluster/peers', 'GET /v1/cluster/peers', 'GET /v1/cluster/status', 'GET /v1/cluster/stats', 'GET /v1/cluster/leader',
  ]);
  t.equal((await run(address, ['cluster', 'peers', '--format', 'xml'])).usageError, 'commander.invalidArgument', 'unknown formats are usage errors');
});

t.test('join, leave, snapshot, transfer-leader send what the API expects', async (t) => {
  const { address, seen } = await stubServer(t, {
    'POST /v1/cluster/join': [200, '{"ID":"n4","Address":"10.0.0.4:8300","HTTPAddress":"10.0.0.4:8500","Voter":false,"Leader":false}'],
    'DELETE /v1/cluster/leave/n3': [200, '{"Removed":"n3"}'],
    'DELETE /v1/cluster/leave/a%20b%3F': [200, '{"Removed":"a b?"}'],
    'POST /v1/cluster/snapshot': [200, '{"Index":119,"Term":4}'],
    'POST /v1/cluster/transfer-leader?id=n2': [200, '{"Leader":{"ID":"n2","Address":"10.0.0.2:8300","HTTPAddress":"10.0.0.2:8500"}}'],
    'POST /v1/cluster/transfer-leader': [200, '{"Leader":{"ID":"n3","Address":"","HTTPAddress":""}}'],
  });
  t.same(await run(address, ['cluster', 'join', '10.0.0.4:8300']), { code: 0, stdout: 'Success! n4 (10.0.0.4:8300) joined the cluster as a non-voter\n', stderr: '' });
  t.same(seen[0], { method: 'POST', url: '/v1/cluster/join', contentType: 'application/json', body: '{"Address":"10.0.0.4:8300"}' });
  t.same(await run(address, ['cluster', 'leave', 'n3']), { code: 0, stdout: 'Success! Removed n3 from the cluster\n', stderr: '' });
  t.equal((await run(address, ['cluster', 'leave', 'a b?'])).code, 0, 'IDs are escaped in the path');
  t.same(await run(address, ['cluster', 'snapshot']), { code: 0, stdout: 'Success! Snapshot taken at index 119 (term 4)\n', stderr: '' });
  t.same(await run(address, ['cluster', 'transfer-leader', 'n2']), { code: 0, stdout: 'Success! Leadership transferred to n2 (10.0.0.2:8300)\n', stderr: '' });
  t.same(await run(address, ['cluster', 'transfer-leader']), { code: 0, stdout: 'Success! Leadership transferred to n3\n', stderr: '' });
  t.same((await run(address, ['cluster', 'snapshot', '--format', 'json'])).stdout, '{\n  "Index": 119,\n  "Term": 4\n}\n');
});

t.test('failures: one line on stderr, exit 1; bad arguments exit 2 before any request', async (t) => {
  const { address, seen } = await stubServer(t, {
    'DELETE /v1/cluster/leave/nope': [404, 'no server "nope" in the Raft configuration'],
    'GET /v1/cluster/leader': [200, '{"ID":"","Address":"","HTTPAddress":""}'],
    'POST /v1/cluster/join': [502, 'cannot reach 10.0.0.9:8300: connection refused'],
    'GET /v1/cluster/peers': [200, '{"not":"a list"}'],
  });
  t.same(await run(address, ['cluster', 'leave', 'nope']),
    { code: 1, stdout: '', stderr: 'konsulctl: Konsul answered 404 Not Found: no server "nope" in the Raft configuration\n' });
  t.same(await run(address, ['cluster', 'leader']), { code: 1, stdout: '', stderr: 'konsulctl: no cluster leader\n' });
  t.same(await run(address, ['cluster', 'join', '10.0.0.9:8300']),
    { code: 1, stdout: '', stderr: 'konsulctl: Konsul answered 502 Bad Gateway: cannot reach 10.0.0.9:8300: connection refused\n' });
  t.same(await run(address, ['cluster', 'peers']), { code: 1, stdout: '', stderr: 'konsulctl: Konsul answered /v1/cluster/peers with something other than a JSON array\n' });
  const before = seen.length;
  t.same(await run(address, ['cluster', 'join', '10.0.0.9']), {
    code: 2,
    stdout: '',
    stderr: 'konsulctl: invalid server address "10.0.0.9" (expected host:port or [ipv6]:port, the server\'s RPC address, e.g. 10.0.0.4:8300) (see --help)\n',
  });
  t.equal((await run(address, ['cluster', 'leave', ' '])).code, 2);
  t.equal(seen.length, before, 'nothing was sent');
  t.equal((await run(address, ['cluster', 'join'])).usageError, 'commander.missingArgument');
  const unreachable = await run('127.0.0.1:1', ['cluster', 'status']);
  t.equal(unreachable.code, 1);
  t.match(unreachable.stderr, /^konsulctl: cannot reach Konsul at http:\/\/127\.0\.0\.1:1: /);
});
