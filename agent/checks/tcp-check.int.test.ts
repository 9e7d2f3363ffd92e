// TCP checks against real listeners on 127.0.0.1 ephemeral ports.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { makeCa, makeCert, requireOpenssl } from '../../test/pki.ts';
import { nextResult, realRunner, SLACK_MS, waitFor } from './test-support.ts';

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

function tracked(server: net.Server): () => Promise<void> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
  });
  return async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
}

t.test('a listener passes, and turns critical within interval × failures once closed', async (t) => {
  const server = net.createServer();
  const closeServer = tracked(server);
  const port = await listen(server);
  const address = `127.0.0.1:${port}`;
  const { runner, results } = realRunner();
  t.teardown(() => runner.stop());
  runner.add({ Name: 'db', TCP: address, Interval: '150ms', Timeout: '5s', FailuresBeforeCritical: 2 });
  await waitFor(() => runner.status('db')?.status === 'passing', { what: 'passing' });
  t.equal(runner.status('db')?.output, `TCP connect ${address}: Success`);
  await nextResult(runner, 'db');
  const downAt = Date.now();
  await closeServer();
  await waitFor(() => runner.status('db')?.status === 'critical', { what: 'critical', timeoutMs: 5000 });
  const elapsed = Date.now() - downAt;
  t.ok(elapsed <= 150 * 2 + SLACK_MS, `critical ${elapsed} ms after the listener closed (150 ms × 2)`);
  t.equal(runner.status('db')?.output, `dial tcp ${address}: connect: connection refused`);
  t.same(
    runner
      .history('db')
      .slice(-2)
      .map((h) => [h.status, h.reportedStatus]),
    [
      ['critical', 'passing'],
      ['critical', 'critical'],
    ],
    'critical at the second failed probe',
  );
  t.same(
    results.map((r) => r.status),
    ['passing', 'critical'],
  );
  // Back up on the same port: passing again at the next probe (SuccessBeforePassing 0).
  const again = net.createServer();
  const closeAgain = tracked(again);
  t.teardown(closeAgain);
  await new Promise<void>((resolve) => again.listen(port, '127.0.0.1', resolve));
  await waitFor(() => runner.status('db')?.status === 'passing', { what: 'passing again', timeoutMs: 2000 });
});

t.test('an address without a port fails at once with Go text', async (t) => {
  const { runner } = realRunner();
  t.teardown(() => runner.stop());
  runner.add({ Name: 'no-port', TCP: 'localhost', Interval: '1s' });
  await waitFor(() => runner.history('no-port').length > 0, { what: 'a result' });
  t.same([runner.status('no-port')?.status, runner.status('no-port')?.output], ['critical', 'dial tcp: address localhost: missing port in address']);
});

t.test('TCPUseTLS: the handshake must complete', async (t) => {
  requireOpenssl();
  const dir = mkdtempSync(join(tmpdir(), 'konsul-checks-tcp-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  makeCa(dir, 'ca');
  const leaf = makeCert(dir, 'ca', 'db');
  const server = tls.createServer({ cert: leaf.cert, key: leaf.key }, (s) => s.end());
  server.on('tlsClientError', () => {});
  const closeServer = tracked(server);
  const plain = net.createServer(); // accepts and stays silent: the handshake never completes
  const closePlain = tracked(plain);
  const port = await listen(server);
  const plainPort = await listen(plain);
  const { runner } = realRunner();
  t.teardown(async () => {
    await runner.stop();
    await closeServer();
    await closePlain();
  });
  const addedAt = Date.now();
  runner.add({ Name: 'tls-skip', TCP: `127.0.0.1:${port}`, TCPUseTLS: true, TLSSkipVerify: true, Interval: '1s' });
  runner.add({ Name: 'tls-verify', TCP: `127.0.0.1:${port}`, TCPUseTLS: true, Interval: '1s' });
  runner.add({ Name: 'tls-to-plain', TCP: `127.0.0.1:${plainPort}`, TCPUseTLS: true, TLSSkipVerify: true, Interval: '1s', Timeout: '500ms' });
  await waitFor(() => ['tls-skip', 'tls-verify', 'tls-to-plain'].every((id) => runner.history(id).length > 0), { what: 'results', timeoutMs: 10_000 });
  t.same(runner.status('tls-skip'), { status: 'passing', output: `TCP+TLS connect 127.0.0.1:${port}: Success`, criticalSinceMs: runner.status('tls-skip')?.criticalSinceMs });
  t.same([runner.status('tls-verify')?.status, runner.status('tls-verify')?.output], ['critical', 'tls: failed to verify certificate: x509: certificate signed by unknown authority']);
  t.same([runner.status('tls-to-plain')?.status, runner.status('tls-to-plain')?.output], ['critical', 'tls: DialWithDialer timed out']);
  const tookMs = runner.history('tls-to-plain')[0]!.timeMs - addedAt;
  t.ok(tookMs >= 490, `the silent server held the probe until its 500 ms timeout (${tookMs} ms)`);
});

t.test('many checks are staggered over their interval instead of firing together', async (t) => {
  const server = net.createServer((s) => s.destroy());
  const closeServer = tracked(server);
  const connectionTimes: number[] = [];
  server.on('connection', () => connectionTimes.push(Date.now()));
  const port = await listen(server);
  // A seeded PRNG (mulberry32) keeps the spread reproducible while the timers stay real.
  let seed = 12345;
  const random = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const { runner } = realRunner({ random });
  t.teardown(async () => {
    await runner.stop();
    await closeServer();
  });
  const start = Date.now();
  for (let i = 0; i < 40; i++) runner.add({ Name: `c${i}`, TCP: `127.0.0.1:${port}`, Interval: '1s' });
  await waitFor(() => runner.checkIds().every((id) => runner.history(id).length > 0), { what: 'every first probe', timeoutMs: 3000 });
  const first = connectionTimes.slice(0, 40).map((ms) => ms - start);
  const buckets = new Array<number>(10).fill(0);
  for (const ms of first) buckets[Math.min(9, Math.floor(ms / 100))]!++;
  t.ok(Math.max(...first) - Math.min(...first) >= 700, `first probes spread over ${Math.max(...first) - Math.min(...first)} ms of the 1 s interval`);
  t.ok(Math.max(...buckets) <= 10, `at most 10 of 40 in any 100 ms (${buckets.join(',')})`);
  t.ok(runner.checkIds().every((id) => runner.status(id)?.status === 'passing'));
});
