// konsulctl end to end: the real CLI (node bin/konsulctl.js) as child processes against a real
// Konsul dev server, checking the documented output formats, exit statuses and error lines.
import t from 'tap';
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingHttpHeaders } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { KONSULCTL_BIN, runCli, spawnCli, type CliRun } from '../test/kit/cli.ts';
import { startInProcessServer } from '../test/kit/in-process-server.ts';

const UINT64_MAX = '18446744073709551615';

interface CliResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** konsulctl with `env` over a clean environment (test/kit/cli.ts); stdout as bytes. */
async function konsulctlWith(env: NodeJS.ProcessEnv, args: string[], input?: string | Buffer): Promise<CliResult> {
  const r = await runCli(KONSULCTL_BIN, args, { env, ...(input !== undefined ? { input } : {}) });
  return { code: r.code, stdout: r.stdoutBytes, stderr: r.stderr };
}

/** A konsulctl that runs on (watch): its output so far, and its end. */
function startKonsulctl(args: string[]): CliRun & { result: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const run = spawnCli(KONSULCTL_BIN, args, { env: { KONSUL_HTTP_ADDR: address } });
  return { ...run, result: run.exited.then((code) => ({ code, stdout: run.stdout(), stderr: run.stderr() })) };
}

// The server runs in this process (test/kit/in-process-server.ts); konsulctl is the real program.
const server = await startInProcessServer({ config: { nodeName: 'test' } });
t.teardown(() => server.stop());
const address = server.url;
// Each CLI run spends most of its time starting up; the tests use distinct keys and can overlap.
t.jobs = 3;

/** Writes a key straight through the HTTP API, for data a test needs but does not test writing. */
async function seed(key: string, value: string): Promise<void> {
  const response = await fetch(`${address}/v1/kv/${key}`, { method: 'PUT', body: value });
  if ((await response.text()) !== 'true') throw new Error(`seeding ${key} failed: ${response.status}`);
}

function konsulctl(args: string[], input?: string | Buffer): Promise<CliResult> {
  return konsulctlWith({ KONSUL_HTTP_ADDR: address }, args, input);
}

/** The value of one `Label  value` line of `--detailed` or `status` output. */
function field(output: string, label: string): string | undefined {
  for (const line of output.split('\n')) {
    const m = /^(\S+) +(.*)$/.exec(line);
    if (m && m[1] === label) return m[2];
  }
  return undefined;
}

t.test('put then get round-trips a value', async (t) => {
  const put = await konsulctl(['kv', 'put', 'greeting', 'hello world']);
  t.equal(put.code, 0);
  t.equal(put.stdout.toString(), 'Success! Data written to: greeting\n');
  t.equal(put.stderr, '');
  const get = await konsulctl(['kv', 'get', 'greeting']);
  t.equal(get.code, 0);
  t.equal(get.stdout.toString(), 'hello world\n');
  t.equal((await konsulctl(['kv', 'get', '/greeting'])).stdout.toString(), 'hello world\n', 'a leading slash is stripped, as consul does');
});

t.test('put reads the value from stdin with "-" or no value, byte for byte', async (t) => {
  t.equal((await konsulctl(['kv', 'put', 'stdin/dash', '-'], 'line one\nline two\n')).code, 0);
  t.equal((await konsulctl(['kv', 'get', 'stdin/dash'])).stdout.toString(), 'line one\nline two\n\n');
  t.equal((await konsulctl(['kv', 'put', 'stdin/none'], 'piped')).code, 0);
  t.equal((await konsulctl(['kv', 'get', 'stdin/none'])).stdout.toString(), 'piped\n');
  t.equal((await konsulctl(['kv', 'put', 'stdin/empty'], '')).code, 0);
  t.equal((await konsulctl(['kv', 'get', 'stdin/empty'])).stdout.toString(), '\n', 'an empty value prints an empty line');
});

t.test('binary values are safe through --base64 and through raw stdin/stdout', async (t) => {
  const bytes = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x0a, 0x0d, 0x80, 0xc3, 0x28]);
  const put = await konsulctl(['kv', 'put', '--base64', 'bin/a', bytes.toString('base64')]);
  t.equal(put.code, 0, put.stderr);
  const got = await konsulctl(['kv', 'get', '--base64', 'bin/a']);
  t.equal(got.stdout.toString(), `${bytes.toString('base64')}\n`);
  const raw = await konsulctl(['kv', 'get', 'bin/a']);
  t.same(raw.stdout, Buffer.concat([bytes, Buffer.from('\n')]), 'raw get writes the exact bytes');

  t.equal((await konsulctl(['kv', 'put', 'bin/stdin'], bytes)).code, 0);
  t.equal((await konsulctl(['kv', 'get', '--base64', 'bin/stdin'])).stdout.toString(), `${bytes.toString('base64')}\n`);

  const wrapped = `${Buffer.alloc(100, 7).toString('base64').replace(/(.{76})/g, '$1\n')}\n`;
  t.equal((await konsulctl(['kv', 'put', '--base64', 'bin/wrapped'], wrapped)).code, 0, 'line-wrapped base64 on stdin (as base64(1) writes it)');
  t.same((await konsulctl(['kv', 'get', 'bin/wrapped'])).stdout, Buffer.concat([Buffer.alloc(100, 7), Buffer.from('\n')]));

  const bad = await konsulctl(['kv', 'put', '--base64', 'bin/bad', 'not base64!']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /^konsulctl: the value is not valid base64/);
});

t.test('get --detailed prints every field as consul kv get -detailed', async (t) => {
  await konsulctl(['kv', 'put', '--flags', '42', 'detailed/key', 'v1']);
  const { code, stdout } = await konsulctl(['kv', 'get', '--detailed', 'detailed/key']);
  t.equal(code, 0);
  const out = stdout.toString();
  const lines = out.trimEnd().split('\n');
  t.same(lines.map((l) => l.split(/ +/)[0]), ['CreateIndex', 'Flags', 'Key', 'LockIndex', 'ModifyIndex', 'Session', 'Value']);
  t.ok(lines.every((l) => /^\S+ +/.test(l) && /^.{17}/.test(l) && l[16] === ' ' && l[17] !== ' '), 'values start at column 18');
  t.equal(field(out, 'Flags'), '42');
  t.equal(field(out, 'Key'), 'detailed/key');
  t.equal(field(out, 'LockIndex'), '0');
  t.equal(field(out, 'Session'), '-');
  t.equal(field(out, 'Value'), 'v1');
  t.match(field(out, 'CreateIndex'), /^[1-9]\d*$/);
  t.equal(field(out, 'ModifyIndex'), field(out, 'CreateIndex'), 'a new key');

  await seed('detailed/key', 'v2');
  const again = (await konsulctl(['kv', 'get', '--detailed', 'detailed/key'])).stdout.toString();
  t.ok(BigInt(field(again, 'ModifyIndex')!) > BigInt(field(again, 'CreateIndex')!), 'ModifyIndex moves on a write');
  t.equal(field(again, 'Flags'), '0', 'a put without --flags stores 0, as Consul does');
  t.equal(field((await konsulctl(['kv', 'get', '--detailed', '--base64', 'detailed/key'])).stdout.toString(), 'Value'), Buffer.from('v2').toString('base64'));
});

t.test('flags keep all 64 bits: 18446744073709551615', async (t) => {
  const put = await konsulctl(['kv', 'put', '--flags', UINT64_MAX, 'flags/max', 'x']);
  t.equal(put.code, 0, put.stderr);
  t.equal(field((await konsulctl(['kv', 'get', '--detailed', 'flags/max'])).stdout.toString(), 'Flags'), UINT64_MAX);
  const wire = await (await fetch(`${address}/v1/kv/flags/max`)).text();
  t.match(wire, `"Flags":${UINT64_MAX}`, 'stored exactly on the server');

  const tooBig = await konsulctl(['kv', 'put', '--flags', '18446744073709551616', 'flags/over', 'x']);
  t.equal(tooBig.code, 2);
  t.match(tooBig.stderr, /^konsulctl: option '--flags <n>' argument '18446744073709551616' is invalid\..*18446744073709551615/);
  t.equal((await konsulctl(['kv', 'put', '--flags', '-1', 'flags/over', 'x'])).code, 2);
  t.equal((await konsulctl(['kv', 'get', 'flags/over'])).code, 1, 'nothing was written');
});

t.test('put --cas: create-only with index 0, and a mismatched index fails with exit 1', async (t) => {
  const created = await konsulctl(['kv', 'put', '--cas', '--modify-index', '0', 'cas/key', 'first']);
  t.equal(created.code, 0);
  t.equal(created.stdout.toString(), 'Success! Data written to: cas/key\n');

  const exists = await konsulctl(['kv', 'put', '--cas', '--modify-index', '0', 'cas/key', 'second']);
  t.equal(exists.code, 1);
  t.equal(exists.stdout.toString(), '');
  t.equal(exists.stderr, 'Error! Did not write to cas/key: CAS failed\n');

  const modifyIndex = field((await konsulctl(['kv', 'get', '--detailed', 'cas/key'])).stdout.toString(), 'ModifyIndex')!;
  const stale = await konsulctl(['kv', 'put', '--cas', '--modify-index', String(BigInt(modifyIndex) + 1000n), 'cas/key', 'third']);
  t.equal(stale.code, 1);
  t.equal(stale.stderr, 'Error! Did not write to cas/key: CAS failed\n');
  t.equal((await konsulctl(['kv', 'get', 'cas/key'])).stdout.toString(), 'first\n', 'failed CAS writes left the value');

  const matching = await konsulctl(['kv', 'put', '--cas', '--modify-index', modifyIndex, 'cas/key', 'fourth']);
  t.equal(matching.code, 0, matching.stderr);
  t.equal((await konsulctl(['kv', 'get', 'cas/key'])).stdout.toString(), 'fourth\n');

  const usage = await konsulctl(['kv', 'put', '--modify-index', '3', 'cas/key', 'x']);
  t.equal(usage.code, 2);
  t.equal(usage.stderr, 'konsulctl: --modify-index needs --cas (see --help)\n');
});

t.test('list prints keys, all of them or one level with --separator', async (t) => {
  for (const key of ['list/a', 'list/b/c', 'list/b/d', 'list/e']) await seed(key, 'v');
  t.equal((await konsulctl(['kv', 'list', 'list/'])).stdout.toString(), 'list/a\nlist/b/c\nlist/b/d\nlist/e\n');
  t.equal((await konsulctl(['kv', 'list', 'list/', '--separator', '/'])).stdout.toString(), 'list/a\nlist/b/\nlist/e\n');
  const none = await konsulctl(['kv', 'list', 'no-such-prefix/']);
  t.equal(none.code, 0);
  t.equal(none.stdout.toString(), '');
  t.match((await konsulctl(['kv', 'list'])).stdout.toString(), /^list\/a$/m, 'no prefix lists every key');
});

t.test('get --recurse prints key:value lines', async (t) => {
  await seed('recurse/x', '1');
  await seed('recurse/y/z', '2');
  const out = await konsulctl(['kv', 'get', '--recurse', 'recurse/']);
  t.equal(out.code, 0);
  t.equal(out.stdout.toString(), 'recurse/x:1\nrecurse/y/z:2\n');
  const none = await konsulctl(['kv', 'get', '--recurse', 'recurse-none/']);
  t.equal(none.code, 0);
  t.equal(none.stdout.toString(), '');
});

t.test('delete removes a key; delete --recurse removes a prefix; delete --cas checks the index', async (t) => {
  for (const key of ['del/a', 'del/b/c', 'del/b/d', 'delx']) await seed(key, 'v');
  const one = await konsulctl(['kv', 'delete', 'del/a']);
  t.equal(one.code, 0);
  t.equal(one.stdout.toString(), 'Success! Deleted key: del/a\n');
  t.equal((await konsulctl(['kv', 'get', 'del/a'])).code, 1);

  const tree = await konsulctl(['kv', 'delete', '--recurse', 'del/']);
  t.equal(tree.code, 0);
  t.equal(tree.stdout.toString(), 'Success! Deleted keys with prefix: del/\n');
  t.equal((await konsulctl(['kv', 'list', 'del'])).stdout.toString(), 'delx\n', 'only keys under the prefix are gone');

  const modifyIndex = field((await konsulctl(['kv', 'get', '--detailed', 'delx'])).stdout.toString(), 'ModifyIndex')!;
  const stale = await konsulctl(['kv', 'delete', '--cas', '--modify-index', String(BigInt(modifyIndex) + 1000n), 'delx']);
  t.equal(stale.code, 1);
  t.equal(stale.stderr, 'Error! Did not delete key delx: CAS failed\n');
  t.equal((await konsulctl(['kv', 'delete', '--cas', '--modify-index', modifyIndex, 'delx'])).code, 0);
  t.equal((await konsulctl(['kv', 'get', 'delx'])).code, 1);

  t.equal((await konsulctl(['kv', 'delete', 'never/existed'])).code, 0, 'deleting a missing key succeeds, as in Consul');
  t.equal((await konsulctl(['kv', 'delete', ''])).code, 2, 'an empty key needs --recurse');
});

t.test('get of a missing key exits 1 with one line on stderr', async (t) => {
  const { code, stdout, stderr } = await konsulctl(['kv', 'get', 'does/not/exist']);
  t.equal(code, 1);
  t.equal(stdout.toString(), '');
  t.equal(stderr, 'konsulctl: no key "does/not/exist"\n');
});

t.test('a 4xx answer is reported as one line with the status and the server\'s text', async (t) => {
  const { code, stderr } = await konsulctl(['kv', 'put', 'bad\u0001key', 'v']);
  t.equal(code, 1);
  t.match(stderr, /^konsulctl: Konsul answered 400 Bad Request: \S.*\n$/);
  t.equal(stderr.split('\n').length, 2, 'one line, no stack trace');
});

t.test('watch --count 2 prints the current value, then the value a concurrent put writes', async (t) => {
  await seed('watch/key', 'before');
  const watcher = startKonsulctl(['kv', 'watch', 'watch/key', '--count', '2', '--wait', '10s']);
  let seen = '';
  const firstValue = new Promise<void>((resolve) => {
    watcher.child.stdout!.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes('\n')) resolve();
    });
  });
  const result = watcher.result;
  await firstValue;
  t.equal(seen, 'before\n', 'the current value first');
  // Writes to other keys wake nothing visible.
  await seed('watch/other', 'noise');
  t.equal((await konsulctl(['kv', 'put', 'watch/key', 'after'])).code, 0);
  const { code, stdout, stderr } = await result;
  t.equal(code, 0, stderr);
  t.equal(stdout.toString(), 'before\nafter\n');
});

t.test('watch --prefix prints the listing each time a key under it changes', async (t) => {
  await seed('wprefix/a', '1');
  const watcher = startKonsulctl(['kv', 'watch', '--prefix', 'wprefix/', '--count', '2']);
  let seen = '';
  const firstListing = new Promise<void>((resolve) => {
    watcher.child.stdout!.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.endsWith('\n\n')) resolve();
    });
  });
  const result = watcher.result;
  await firstListing;
  await konsulctl(['kv', 'put', 'wprefix/b', '2']);
  const { code, stdout, stderr } = await result;
  t.equal(code, 0, stderr);
  t.equal(stdout.toString(), 'wprefix/a:1\n\nwprefix/a:1\nwprefix/b:2\n\n');
});

t.test('watch stops cleanly on SIGINT', async (t) => {
  await seed('watch/sigint', 'v');
  const watcher = startKonsulctl(['kv', 'watch', 'watch/sigint']);
  const printed = once(watcher.child.stdout!, 'data');
  const result = watcher.result;
  await printed;
  watcher.child.kill('SIGINT');
  const { code, stdout } = await result;
  t.equal(code, 0);
  t.equal(stdout.toString(), 'v\n');
});

t.test('status prints node, datacenter, leader, peers and Raft stats', async (t) => {
  const { code, stdout, stderr } = await konsulctl(['status']);
  t.equal(code, 0, stderr);
  const out = stdout.toString();
  t.equal(field(out, 'Node'), 'test');
  t.equal(field(out, 'Datacenter'), 'dc1');
  t.match(field(out, 'Leader'), /^\S+:\d+$/);
  t.equal(field(out, 'Peers'), field(out, 'Leader'), 'a dev server is its own only peer');
  t.equal(field(out, 'raft.state'), 'Leader');
  t.match(field(out, 'raft.term'), /^\d+$/);
  t.match(field(out, 'raft.commit_index'), /^\d+$/);
  t.ok(out.split('\n').filter(Boolean).every((line) => /^\S+ +\S+$/.test(line)), 'every line is "label value"');
});

t.test('a server that is down: one line naming the address, exit 1', async (t) => {
  const port = await closedPort();
  const flag = await konsulctlWith({}, ['--http-addr', `127.0.0.1:${port}`, 'kv', 'get', 'x']);
  t.equal(flag.code, 1);
  t.equal(flag.stderr, `konsulctl: cannot reach Konsul at http://127.0.0.1:${port}: connection refused\n`);
  const fromEnv = await konsulctlWith({ CONSUL_HTTP_ADDR: `http://127.0.0.1:${port}` }, ['status']);
  t.equal(fromEnv.code, 1);
  t.equal(fromEnv.stderr, `konsulctl: cannot reach Konsul at http://127.0.0.1:${port}: connection refused\n`);
  const watch = await konsulctlWith({}, ['--http-addr', `127.0.0.1:${port}`, 'kv', 'watch', 'x']);
  t.equal(watch.code, 1, 'watch fails fast when the first request cannot be sent');
});

t.test('the address and token come from flags, then KONSUL_*, then CONSUL_* variables', async (t) => {
  // A stand-in server records what konsulctl sends.
  const requests: { url: string; headers: IncomingHttpHeaders }[] = [];
  const fake = createHttpServer((req, res) => {
    requests.push({ url: req.url ?? '', headers: req.headers });
    res.setHeader('Content-Type', 'application/json');
    res.setHeader('X-Consul-Index', '7');
    res.end('["k"]');
  });
  fake.listen(0, '127.0.0.1');
  await once(fake, 'listening');
  t.teardown(() => fake.close());
  const fakeAddr = `127.0.0.1:${(fake.address() as AddressInfo).port}`;

  const flag = await konsulctlWith({ KONSUL_HTTP_TOKEN: 'from-env' }, ['kv', 'list', 'p/', '--token', 'from-flag', '--http-addr', fakeAddr]);
  t.equal(flag.stdout.toString(), 'k\n');
  t.equal(requests.at(-1)?.headers['x-consul-token'], 'from-flag');
  t.equal(requests.at(-1)?.url, '/v1/kv/p/?keys');

  await konsulctlWith({ KONSUL_HTTP_ADDR: fakeAddr, CONSUL_HTTP_ADDR: '127.0.0.1:1', KONSUL_HTTP_TOKEN: 'konsul', CONSUL_HTTP_TOKEN: 'consul' }, ['kv', 'list']);
  t.equal(requests.at(-1)?.headers['x-consul-token'], 'konsul');

  await konsulctlWith({ CONSUL_HTTP_ADDR: `http://${fakeAddr}`, CONSUL_HTTP_TOKEN: 'consul' }, ['kv', 'list']);
  t.equal(requests.at(-1)?.headers['x-consul-token'], 'consul');

  const count = requests.length;
  await konsulctlWith({}, ['kv', 'list', '--http-addr', fakeAddr]);
  t.equal(requests.length, count + 1);
  t.notOk('x-consul-token' in requests.at(-1)!.headers, 'no token, no header');
});

t.test('watch sends ?index=<X-Consul-Index>&wait=..., capping the wait below fetch\'s 300 s limit', async (t) => {
  // A stand-in server: the first answer is index 5, every later one a new write at index 6.
  const urls: string[] = [];
  const fake = createHttpServer((req, res) => {
    urls.push(req.url ?? '');
    const index = urls.length === 1 ? 5 : 6;
    res.setHeader('Content-Type', 'application/json');
    res.setHeader('X-Consul-Index', String(index));
    res.end(JSON.stringify([{ LockIndex: 0, Key: 'k', Flags: 0, Value: Buffer.from(`v${index}`).toString('base64'), CreateIndex: 5, ModifyIndex: index }]));
  });
  fake.listen(0, '127.0.0.1');
  await once(fake, 'listening');
  t.teardown(() => fake.close());
  const fakeAddr = `127.0.0.1:${(fake.address() as AddressInfo).port}`;

  const defaultWait = await konsulctlWith({}, ['kv', 'watch', 'k', '--count', '2', '--http-addr', fakeAddr]);
  t.equal(defaultWait.stdout.toString(), 'v5\nv6\n');
  t.same(urls, ['/v1/kv/k', '/v1/kv/k?index=5&wait=4m30s'], 'the default 5m is sent as 4m30s');
  urls.length = 0;
  await konsulctlWith({}, ['kv', 'watch', 'k', '--count', '2', '--wait', '20s', '--http-addr', fakeAddr]);
  t.same(urls, ['/v1/kv/k', '/v1/kv/k?index=5&wait=20s']);
});

/** A port on which nothing listens (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createTcpServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}
