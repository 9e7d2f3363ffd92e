// Bad input gets a clear 4xx and never corrupts state or crashes the server. The server runs in
// this process (real LevelDB in a temp dir, real socket on 127.0.0.1) so thousands of fuzzed
// requests stay fast.
import { request as httpRequest } from 'node:http';
import t from 'tap';
import { mergeConfig } from '../config.ts';
import { startServer, type RunningServer } from '../main.ts';
import { removeDir, tempDataDir } from '../../test/kit/server-process.ts';
import { Prng } from '../../raft/core/prng.ts';

let server: RunningServer;
let base: string;
const dataDir = tempDataDir('konsul-badinput-');

t.before(async () => {
  server = await startServer(mergeConfig({ dataDir, dev: true, nodeName: 'fuzz', httpAddr: { host: '127.0.0.1', port: 0 }, logLevel: 'silent' }));
  base = `http://127.0.0.1:${server.httpAddress.port}`;
});

t.teardown(async () => {
  await server.stop();
  removeDir(dataDir);
});

async function call(method: string, path: string, body?: string | Buffer) {
  const res = await fetch(`${base}${path}`, { method, ...(body !== undefined ? { body } : {}) });
  return { status: res.status, text: await res.text() };
}

t.test('malformed query parameters are 400 with Consul\'s messages', async (t) => {
  await call('PUT', '/v1/kv/ok', 'v');
  t.same(await call('GET', '/v1/kv/ok?index=abc'), { status: 400, text: 'Invalid index' });
  t.same(await call('GET', '/v1/kv/ok?index=-5'), { status: 400, text: 'Invalid index' });
  t.same(await call('GET', '/v1/kv/ok?wait=forever'), { status: 400, text: 'Invalid wait time' });
  t.same(await call('GET', '/v1/kv/ok?stale&consistent'), { status: 400, text: 'Cannot specify ?stale with ?consistent, conflicting semantics.' });
  t.equal((await call('PUT', '/v1/kv/ok?flags=-1', 'v')).status, 400);
  t.equal((await call('PUT', '/v1/kv/ok?flags=18446744073709551616', 'v')).status, 400, 'one past the uint64 range');
  t.equal((await call('PUT', '/v1/kv/ok?flags=1e3', 'v')).status, 400);
  t.same(await call('PUT', '/v1/kv/ok?cas=x', 'v'), { status: 400, text: 'Invalid CAS index' });
  t.same(await call('DELETE', '/v1/kv/ok?cas=1.5'), { status: 400, text: 'Invalid CAS index' });
  t.match((await call('PUT', '/v1/kv/ok?cas=1&acquire=abc', 'v')).text, /^Conflicting flags: /);
  t.match((await call('DELETE', '/v1/kv/ok?cas=1&recurse')).text, /^Conflicting flags: /);
});

t.test('bad keys are 400 with the rule that was broken', async (t) => {
  t.same(await call('PUT', '/v1/kv/', 'v'), { status: 400, text: 'Missing key name' });
  t.same(await call('GET', '/v1/kv/'), { status: 400, text: 'Missing key name' });
  t.same(await call('DELETE', '/v1/kv/'), { status: 400, text: 'Missing key name' });
  t.match(await call('PUT', '/v1/kv//leading', 'v'), { status: 400, text: /must not begin with a '\/'/ });
  t.match(await call('PUT', '/v1/kv/a%00b', 'v'), { status: 400, text: /control characters/ });
  t.match(await call('PUT', `/v1/kv/${'k'.repeat(1025)}`, 'v'), { status: 400, text: /longer than 1024 bytes/ });
  t.equal((await call('PUT', `/v1/kv/${'k'.repeat(1024)}`, 'v')).status, 200, 'exactly at the limit is fine');
  t.equal((await call('PUT', '/v1/kv/unicode/%E2%9C%93/key.json', 'v')).text, 'true', 'UTF-8 and dots are fine');
});

t.test('a value over 512 KiB is 413 with Consul\'s message, and nothing is written', async (t) => {
  const big = Buffer.alloc(512 * 1024 + 1, 1);
  const res = await call('PUT', '/v1/kv/big', big);
  t.equal(res.status, 413);
  t.equal(res.text, `Request body(${big.length} bytes) too large, max size: 524288 bytes. See https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size.`);
  t.equal((await call('GET', '/v1/kv/big')).status, 404);
  t.equal((await call('PUT', '/v1/kv/big', Buffer.alloc(512 * 1024, 1))).status, 200, 'exactly 512 KiB is accepted');
});

t.test('an oversized chunked body (no Content-Length) is cut off with 413', async (t) => {
  const status = await new Promise<number>((resolve, reject) => {
    const req = httpRequest(`${base}/v1/kv/chunked`, { method: 'PUT', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    for (let i = 0; i < 9; i++) req.write(Buffer.alloc(64 * 1024, 2));
    req.end();
  });
  t.equal(status, 413);
  t.equal((await call('GET', '/v1/kv/chunked')).status, 404);
});

t.test('unsupported methods are 405', async (t) => {
  const res = await call('PATCH', '/v1/kv/ok', 'x');
  t.equal(res.status, 405);
});

t.test('unknown paths are 404 with a message', async (t) => {
  const res = await call('GET', '/v1/nope');
  t.equal(res.status, 404);
  t.match(res.text, /Not found/);
});

t.test('fuzz: thousands of random requests never get a 5xx and leave state intact', async (t) => {
  const rng = new Prng(Number(process.env.FUZZ_SEED ?? 20261122));
  await call('PUT', '/v1/kv/fuzz/anchor', 'anchor-value');
  const pieces = ['', '/', '?', '&', '=', '%', '%zz', '%00', '..', 'recurse', 'keys', 'cas=', 'flags=', 'index=', 'wait=', 'raw', 'acquire=', 'separator=/', 'stale', 'consistent', '\u00e9', '\ud83d\ude00', 'a', 'b/c', '9999999999999999999999', '-1', '0x1f', ' '];
  const methods = ['GET', 'PUT', 'DELETE', 'GET', 'PUT'];
  const statuses = new Map<number, number>();
  const fiveHundreds: string[] = [];
  for (let i = 0; i < 1500; i++) {
    let path = '/v1/kv/fuzz/';
    const n = 1 + rng.int(6);
    for (let j = 0; j < n; j++) path += pieces[rng.int(pieces.length)];
    const method = methods[rng.int(methods.length)]!;
    const body = method === 'PUT' && rng.chance(0.7) ? Buffer.from(Array.from({ length: rng.int(200) }, () => rng.int(256))) : undefined;
    let status: number;
    try {
      status = (await call(method, encodeURI(path).replace(/%25/g, '%'), body)).status;
    } catch {
      // A URL that fetch itself refuses never reaches the server.
      continue;
    }
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
    if (status >= 500) fiveHundreds.push(`${method} ${path}`);
  }
  t.same(fiveHundreds, [], 'no request got a 5xx');
  t.ok((statuses.get(200) ?? 0) > 100 && [...statuses.keys()].some((s) => s >= 400 && s < 500), `status mix ${JSON.stringify([...statuses])}`);
  t.equal((await call('GET', '/v1/kv/fuzz/anchor?raw')).text, 'anchor-value', 'unrelated data untouched');
  t.equal((await call('PUT', '/v1/kv/after-fuzz', 'fine')).text, 'true', 'the server still serves writes');
});

t.test('raw socket garbage does not crash the server', async (t) => {
  const { connect } = await import('node:net');
  for (const garbage of ['GARBAGE\r\n\r\n', 'PUT /v1/kv/x HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\nabc', '\x00\x01\x02\x03', 'GET /v1/kv/x HTTP/9.9\r\n\r\n']) {
    await new Promise<void>((resolve) => {
      const sock = connect(server.httpAddress.port, '127.0.0.1', () => sock.end(garbage));
      sock.on('data', () => {});
      sock.on('close', () => resolve());
      sock.on('error', () => resolve());
    });
  }
  t.equal((await call('GET', '/v1/kv/fuzz/anchor?raw')).text, 'anchor-value', 'still alive and intact');
});
