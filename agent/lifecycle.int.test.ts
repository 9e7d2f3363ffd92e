// An agent's edges, with real processes: its servers going away (cached reads keep being served
// with a growing Age and stale-if-error, everything else fails fast with Consul's text) and its own
// shutdown while blocking queries are open (SIGTERM ends them at once instead of holding the exit),
// and durations past what a Node timer holds (Go durations allow ~292 years).
import { createServer as createHttpServer } from 'node:http';
import t from 'tap';
import { httpRequest } from '../test/kit/http.ts';
import { sleep } from '../test/kit/wait.ts';
import { agentDataDir, startAgentProcess } from '../test/kit/agent-process.ts';
import { removeDir, startServer } from '../test/kit/server-process.ts';

t.test('SIGTERM ends blocking queries at once, forwarded and cached', async (t) => {
  const server = await startServer({ node: 'life-s1' });
  t.teardown(async () => {
    await server.kill9();
    removeDir(server.dataDir);
  });
  const dataDir = agentDataDir();
  const agent = await startAgentProcess({ node: 'life-a1', retryJoin: [server.rpcAddress], dataDir });
  t.teardown(async () => {
    await agent.kill9();
    removeDir(dataDir);
  });
  t.equal((await httpRequest(`${agent.url}/v1/kv/life/key`, { method: 'PUT', body: 'v' })).text, 'true');
  const index = Number((await httpRequest(`${agent.url}/v1/kv/life/key`)).headers.get('x-consul-index'));
  t.ok(index > 0);
  // ?consistent blocking reads are forwarded to a server; default-mode blocking reads go through the cache.
  const settle = (p: Promise<{ status: number; text: string }>) => p.then((r) => r, (err: Error) => ({ status: -1, text: err.message }));
  const forwarded = settle(httpRequest(`${agent.url}/v1/kv/life/key?consistent&index=${index}&wait=5m`, { timeoutMs: 60_000 }));
  const cached = settle(httpRequest(`${agent.url}/v1/kv/life/key?index=${index}&wait=5m`, { timeoutMs: 60_000 }));
  // Both blocking queries are parked (one at the agent's cache, one forwarded to the server).
  await sleep(1000);
  const started = Date.now();
  const code = await agent.stop();
  const tookMs = Date.now() - started;
  t.equal(code, 0, 'a clean exit');
  t.ok(tookMs < 3000, `the agent exited ${tookMs} ms after SIGTERM (a forwarded blocking query used to hold it 5 s)`);
  const f = await forwarded;
  t.equal(f.status, 503, `the forwarded blocking query is answered, not cut (${f.text})`);
  t.equal(f.text, 'Agent is shutting down');
  const c = await cached;
  t.equal(c.status, 200, 'the cached blocking query is answered with what the agent holds');
});

t.test('all servers down: cached reads with Age and stale-if-error, the rest fails fast', async (t) => {
  const server = await startServer({ node: 'life-s2' });
  let serverDown = false;
  t.teardown(async () => {
    if (!serverDown) await server.kill9();
    removeDir(server.dataDir);
  });
  const dataDir = agentDataDir();
  const agent = await startAgentProcess({ node: 'life-a2', retryJoin: [server.rpcAddress], dataDir });
  t.teardown(async () => {
    await agent.kill9();
    removeDir(dataDir);
  });
  t.equal((await httpRequest(`${agent.url}/v1/kv/down/key`, { method: 'PUT', body: 'kept' })).text, 'true');
  const miss = await httpRequest(`${agent.url}/v1/kv/down/key?cached`);
  t.equal(miss.headers.get('x-cache'), 'MISS');
  t.equal(miss.headers.get('age'), null, 'no Age on a MISS (Consul sets it on hits only)');
  const hit = await httpRequest(`${agent.url}/v1/kv/down/key?cached`);
  t.equal(hit.headers.get('x-cache'), 'HIT');
  t.equal(hit.headers.get('age'), '0', 'Age 0 while the background refresh is healthy');

  await server.kill9();
  serverDown = true;
  // Age is in whole seconds and must pass max-age=1 below: a window of more than 2 s.
  await sleep(2200);
  const stale = await httpRequest(`${agent.url}/v1/kv/down/key?cached`);
  t.equal(stale.status, 200, 'fail static: the cached value is still served');
  t.equal(stale.headers.get('x-cache'), 'HIT');
  t.ok(Number(stale.headers.get('age')) >= 2, `Age grows while the servers are gone (${stale.headers.get('age')})`);
  t.equal((JSON.parse(stale.text) as { Value: string }[])[0]?.Value, Buffer.from('kept').toString('base64'));
  const tooOld = await httpRequest(`${agent.url}/v1/kv/down/key?cached`, { headers: { 'Cache-Control': 'max-age=1' } });
  t.equal(tooOld.status, 500, 'older than max-age and no server to refetch from');
  t.equal(tooOld.text, 'No known Consul servers');
  const allowed = await httpRequest(`${agent.url}/v1/kv/down/key?cached`, { headers: { 'Cache-Control': 'max-age=1, stale-if-error=60' } });
  t.equal(allowed.status, 200, 'stale-if-error serves it anyway');
  t.equal(allowed.headers.get('x-cache'), 'HIT');

  const started = Date.now();
  const write = await httpRequest(`${agent.url}/v1/kv/down/key`, { method: 'PUT', body: 'lost' });
  t.equal(write.status, 500);
  t.equal(write.text, 'No known Consul servers');
  const read = await httpRequest(`${agent.url}/v1/kv/down/other`);
  t.equal(read.status, 500);
  t.ok(Date.now() - started < 3000, `writes and uncached reads fail fast (${Date.now() - started} ms)`);
  const reg = await httpRequest(`${agent.url}/v1/agent/service/register`, { method: 'PUT', body: JSON.stringify({ Name: 'offline', Port: 1 }) });
  t.equal(reg.status, 200, 'a registration is kept locally for anti-entropy to send later');
});

t.test('an Interval or TTL beyond 2^31 ms neither runs back to back nor expires at once', async (t) => {
  const server = await startServer({ node: 'life-s3' });
  t.teardown(async () => {
    await server.kill9();
    removeDir(server.dataDir);
  });
  let hits = 0;
  const target = createHttpServer((_req, res) => {
    hits++;
    res.end('ok');
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  t.teardown(() => target.close());
  const port = (target.address() as { port: number }).port;
  const dataDir = agentDataDir();
  const agent = await startAgentProcess({ node: 'life-a3', retryJoin: [server.rpcAddress], dataDir });
  t.teardown(async () => {
    await agent.kill9();
    removeDir(dataDir);
  });
  const reg = await httpRequest(`${agent.url}/v1/agent/service/register`, {
    method: 'PUT',
    body: JSON.stringify({
      Name: 'slow',
      Port: port,
      Checks: [
        { CheckID: 'slow-http', HTTP: `http://127.0.0.1:${port}/`, Interval: '999999h' },
        { CheckID: 'slow-ttl', TTL: '999999h', Status: 'passing' },
      ],
    }),
  });
  t.equal(reg.status, 200, reg.text);
  // A window, not a condition: what is shown is that nothing runs (an overflowing timer fires every millisecond).
  await sleep(500);
  t.ok(hits <= 1, `the HTTP check ran ${hits} times in 0.5 s`);
  const checks = JSON.parse((await httpRequest(`${agent.url}/v1/agent/checks`)).text) as Record<string, { Status: string; Output: string }>;
  t.equal(checks['slow-ttl']?.Status, 'passing', `the TTL check has not expired (${checks['slow-ttl']?.Output})`);
  t.notMatch(agent.output(), /TimeoutOverflowWarning/);
});
