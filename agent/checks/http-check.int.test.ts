// HTTP checks against real node:http / node:https servers on 127.0.0.1 ephemeral ports.
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { makeCa, makeCert, requireOpenssl } from '../../test/pki.ts';
import { nextResult, realRunner, SLACK_MS, waitFor } from './test-support.ts';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function handler(seen: Seen[]): http.RequestListener {
  return (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() });
      const path = (req.url ?? '').split('?')[0];
      switch (path) {
        case '/ok':
          res.writeHead(200, { 'content-type': 'text/plain' }).end('all good');
          return;
        case '/created':
          res.writeHead(201).end('made');
          return;
        case '/busy':
          res.writeHead(429).end('slow down');
          return;
        case '/fail':
          res.writeHead(500).end('broken');
          return;
        case '/teapot':
          res.writeHead(418, 'Short And Stout').end();
          return;
        case '/hang':
          return; // never answers
        case '/slow-body':
          res.writeHead(200);
          res.write('first part;');
          return; // the rest never comes
        case '/large':
          res.writeHead(200).end('A'.repeat(6000) + 'B'.repeat(4000) + 'END');
          return;
        case '/redirect':
          res.writeHead(302, { location: '/ok' }).end();
          return;
        case '/redirect-post':
          res.writeHead(307, { location: '/echo' }).end();
          return;
        case '/loop':
          res.writeHead(302, { location: '/loop' }).end();
          return;
        case '/echo':
          res.writeHead(200).end(`${req.method} ${req.headers['x-token'] ?? '-'} ${Buffer.concat(chunks).toString()}`);
          return;
        default:
          res.writeHead(404).end('no such page');
      }
    });
  };
}

async function listen(server: http.Server | https.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

async function close(server: http.Server | https.Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

t.test('HTTP checks against a real server', async (t) => {
  const seen: Seen[] = [];
  const server = http.createServer(handler(seen));
  const port = await listen(server);
  const base = `http://127.0.0.1:${port}`;
  const { runner } = realRunner();
  t.teardown(async () => {
    await runner.stop();
    await close(server);
  });

  const add = (name: string, def: Record<string, unknown>) => runner.add({ Name: name, Interval: '100ms', Timeout: '5s', ...def });
  add('ok', { HTTP: `${base}/ok` });
  add('created', { HTTP: `${base}/created` });
  add('busy', { HTTP: `${base}/busy` });
  add('fail', { HTTP: `${base}/fail` });
  add('teapot', { HTTP: `${base}/teapot` });
  add('redirect', { HTTP: `${base}/redirect` });
  add('no-redirect', { HTTP: `${base}/redirect`, DisableRedirects: true });
  add('loop', { HTTP: `${base}/loop` });
  add('post', { HTTP: `${base}/echo`, Method: 'POST', Header: { 'X-Token': ['secret'] }, Body: 'payload' });
  add('post-307', { HTTP: `${base}/redirect-post`, Method: 'PUT', Body: 'kept' });
  add('bad-scheme', { HTTP: `ftp://127.0.0.1:${port}/` });

  const ids = runner.checkIds();
  await waitFor(() => ids.every((id) => runner.history(id).length > 0), { what: 'every check to report' });
  const status = (id: string) => runner.status(id);
  t.same(status('ok'), { status: 'passing', output: `HTTP GET ${base}/ok: 200 OK Output: all good`, criticalSinceMs: undefined });
  t.same([status('created')?.status, status('created')?.output], ['passing', `HTTP GET ${base}/created: 201 Created Output: made`]);
  t.same([status('busy')?.status, status('busy')?.output], ['warning', `HTTP GET ${base}/busy: 429 Too Many Requests Output: slow down`]);
  t.same([status('fail')?.status, status('fail')?.output], ['critical', `HTTP GET ${base}/fail: 500 Internal Server Error Output: broken`]);
  t.equal(status('teapot')?.output, `HTTP GET ${base}/teapot: 418 Short And Stout Output: `, 'the status line as the server sent it');
  t.same([status('redirect')?.status, status('redirect')?.output], ['passing', `HTTP GET ${base}/redirect: 200 OK Output: all good`], 'redirects followed like Go');
  t.same([status('no-redirect')?.status, status('no-redirect')?.output], ['critical', `HTTP GET ${base}/redirect: 302 Found Output: `]);
  t.same([status('loop')?.status, status('loop')?.output], ['critical', `Get "${base}/loop": stopped after 10 redirects`]);
  t.same([status('post')?.status, status('post')?.output], ['passing', `HTTP POST ${base}/echo: 200 OK Output: POST secret payload`]);
  t.equal(status('post-307')?.output, `HTTP PUT ${base}/redirect-post: 200 OK Output: PUT - kept`, '307 repeats method and body');
  t.same([status('bad-scheme')?.status, status('bad-scheme')?.output], ['critical', `Get "ftp://127.0.0.1:${port}/": unsupported protocol scheme "ftp"`]);

  const okRequest = seen.find((s) => s.url === '/ok')!;
  t.equal(okRequest.headers['user-agent'], 'Consul Health Check');
  t.equal(okRequest.headers['accept'], 'text/plain, text/*, */*');
  t.equal(okRequest.headers['connection'], 'close', 'no keep-alive');
  const postRequest = seen.find((s) => s.url === '/echo' && s.method === 'POST')!;
  t.equal(postRequest.headers['content-length'], '7');
});

t.test('header overrides: User-Agent, Accept and Host', async (t) => {
  const seen: Seen[] = [];
  const server = http.createServer(handler(seen));
  const port = await listen(server);
  const { runner } = realRunner();
  t.teardown(async () => {
    await runner.stop();
    await close(server);
  });
  runner.add({ Name: 'h', HTTP: `http://127.0.0.1:${port}/ok`, Interval: '1s', Header: { 'user-agent': ['probe/1'], Accept: ['application/json'], Host: ['api.example'], 'X-Multi': ['a', 'b'] } });
  await waitFor(() => seen.length > 0, { what: 'a request' });
  t.equal(seen[0]!.headers['user-agent'], 'probe/1');
  t.equal(seen[0]!.headers['accept'], 'application/json');
  t.equal(seen[0]!.headers['host'], 'api.example');
  t.equal(seen[0]!.headers['x-multi'], 'a, b');
});

t.test('output keeps the last 4 KiB of a large body, or OutputMaxSize', async (t) => {
  const server = http.createServer(handler([]));
  const port = await listen(server);
  const { runner } = realRunner();
  t.teardown(async () => {
    await runner.stop();
    await close(server);
  });
  const url = `http://127.0.0.1:${port}/large`;
  runner.add({ Name: 'large', HTTP: url, Interval: '1s' });
  runner.add({ Name: 'small', HTTP: url, Interval: '1s', OutputMaxSize: 10 });
  await waitFor(() => runner.history('large').length > 0 && runner.history('small').length > 0, { what: 'both checks' });
  const prefix = `HTTP GET ${url}: 200 OK Output: `;
  t.equal(runner.status('large')?.output, prefix + 'A'.repeat(93) + 'B'.repeat(4000) + 'END');
  t.equal(runner.status('large')!.output.length - prefix.length, 4096);
  t.equal(runner.status('small')?.output, `${prefix}BBBBBBBEND`);
});

t.test('timeouts: a hung server and a stalled body, without delaying another check', async (t) => {
  const server = http.createServer(handler([]));
  const port = await listen(server);
  const { runner } = realRunner({ historySize: 100 });
  t.teardown(async () => {
    await runner.stop();
    await close(server);
  });
  const base = `http://127.0.0.1:${port}`;
  runner.add({ Name: 'hang', HTTP: `${base}/hang`, Interval: '100ms', Timeout: '3s', Status: 'passing' });
  runner.add({ Name: 'slow-body', HTTP: `${base}/slow-body`, Interval: '100ms', Timeout: '1500ms' });
  runner.add({ Name: 'ok', HTTP: `${base}/ok`, Interval: '100ms', Timeout: '5s' });
  const started = Date.now();
  await waitFor(() => runner.history('hang').length > 0, { what: 'the hung check to time out', timeoutMs: 10_000 });
  const hungFor = Date.now() - started;
  t.ok(hungFor >= 2900, `the hung probe ran to its timeout (${hungFor} ms)`);
  t.same([runner.status('hang')?.status, runner.status('hang')?.output], ['critical', `Get "${base}/hang": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`]);
  const okRuns = runner.history('ok').filter((h) => h.timeMs <= started + hungFor);
  t.ok(okRuns.length >= 10, `the other check kept its interval meanwhile (${okRuns.length} runs in ${hungFor} ms)`);
  t.ok(okRuns.every((h) => h.status === 'passing'));
  t.same(
    [runner.status('slow-body')?.status, runner.status('slow-body')?.output],
    ['passing', `HTTP GET ${base}/slow-body: 200 OK Output: first part;`],
    'a body cut by the timeout keeps the status and what was read (Go client)',
  );
});

t.test('a server that goes down turns critical within interval × failures', async (t) => {
  const server = http.createServer(handler([]));
  const port = await listen(server);
  const { runner, results } = realRunner();
  t.teardown(() => runner.stop());
  const url = `http://127.0.0.1:${port}/ok`;
  runner.add({ Name: 'web', HTTP: url, Interval: '200ms', Timeout: '5s', FailuresBeforeCritical: 3 });
  await waitFor(() => runner.status('web')?.status === 'passing', { what: 'passing' });
  await nextResult(runner, 'web');
  const downAt = Date.now();
  await close(server);
  await waitFor(() => runner.status('web')?.status === 'critical', { what: 'critical', timeoutMs: 5000 });
  const elapsed = Date.now() - downAt;
  t.ok(elapsed <= 200 * 3 + SLACK_MS, `critical ${elapsed} ms after the server closed (interval 200 ms × 3 failures)`);
  t.ok(elapsed >= 200 * 2, `not before the third failure (${elapsed} ms)`);
  t.equal(runner.status('web')?.output, `Get "${url}": dial tcp 127.0.0.1:${port}: connect: connection refused`);
  t.same(
    results.map((r) => r.status),
    ['passing', 'critical'],
    'the first two failures were not reported',
  );
  const history = runner.history('web');
  t.same(
    history.slice(-3).map((h) => [h.status, h.reportedStatus]),
    [
      ['critical', 'passing'],
      ['critical', 'passing'],
      ['critical', 'critical'],
    ],
  );
});

t.test('HTTPS with a self-signed certificate: TLSSkipVerify', async (t) => {
  requireOpenssl();
  const dir = mkdtempSync(join(tmpdir(), 'konsul-checks-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  makeCa(dir, 'ca');
  const leaf = makeCert(dir, 'ca', 'web');
  const server = https.createServer({ cert: leaf.cert, key: leaf.key }, handler([]));
  const port = await listen(server);
  const url = `https://127.0.0.1:${port}/ok`;
  const { runner } = realRunner();
  const withCa = realRunner({ tlsCa: leaf.ca });
  t.teardown(async () => {
    await runner.stop();
    await withCa.runner.stop();
    await close(server);
  });
  runner.add({ Name: 'verify', HTTP: url, Interval: '200ms' });
  runner.add({ Name: 'skip', HTTP: url, Interval: '200ms', TLSSkipVerify: true });
  withCa.runner.add({ Name: 'ca-name', HTTP: url, Interval: '200ms', TLSServerName: 'web.konsul.test' });
  withCa.runner.add({ Name: 'ca-wrong-name', HTTP: url, Interval: '200ms', TLSServerName: 'other.konsul.test' });
  await waitFor(() => ['verify', 'skip'].every((id) => runner.history(id).length > 0) && ['ca-name', 'ca-wrong-name'].every((id) => withCa.runner.history(id).length > 0), { what: 'results' });
  t.same([runner.status('verify')?.status, runner.status('verify')?.output], ['critical', `Get "${url}": tls: failed to verify certificate: x509: certificate signed by unknown authority`]);
  t.same([runner.status('skip')?.status, runner.status('skip')?.output], ['passing', `HTTP GET ${url}: 200 OK Output: all good`]);
  t.equal(withCa.runner.status('ca-name')?.status, 'passing', 'the agent CA and TLSServerName verify the certificate');
  t.equal(withCa.runner.status('ca-wrong-name')?.status, 'critical');
  t.match(withCa.runner.status('ca-wrong-name')?.output, /^Get "https:.*": tls: failed to verify certificate: x509: .*other\.konsul\.test/);
});
