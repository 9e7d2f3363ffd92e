// gRPC checks against a real @grpc/grpc-js server serving grpc.health.v1 through the
// `grpc-health-check` package (whose codec is proto-loader's, so it also checks the hand codec).
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import t from 'tap';
import { makeCa, makeCert, requireOpenssl } from '../../test/pki.ts';
import { nextResult, realRunner, SLACK_MS, waitFor } from './test-support.ts';

async function startServer(health: HealthImplementation, credentials = ServerCredentials.createInsecure()): Promise<{ server: Server; port: number }> {
  const server = new Server();
  health.addToServer(server);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err ? reject(err) : resolve(p))));
  return { server, port };
}

t.test('grpc.health.v1: serving, not serving, unknown service, server gone', async (t) => {
  const health = new HealthImplementation({ '': 'SERVING', 'pkg.Orders': 'SERVING', 'pkg.Billing': 'NOT_SERVING' });
  const { server, port } = await startServer(health);
  const { runner, results } = realRunner();
  t.teardown(async () => {
    await runner.stop();
    server.forceShutdown();
  });
  const addr = `127.0.0.1:${port}`;
  runner.add({ Name: 'whole', GRPC: addr, Interval: '150ms', Timeout: '5s' });
  runner.add({ Name: 'orders', GRPC: `${addr}/pkg.Orders`, Interval: '150ms', Timeout: '5s', FailuresBeforeCritical: 2 });
  runner.add({ Name: 'billing', GRPC: `${addr}/pkg.Billing`, Interval: '150ms', Timeout: '5s' });
  runner.add({ Name: 'missing', GRPC: `${addr}/pkg.Nope`, Interval: '150ms', Timeout: '5s' });
  await waitFor(() => runner.checkIds().every((id) => runner.history(id).length > 0), { what: 'all results', timeoutMs: 15_000 });
  t.same([runner.status('whole')?.status, runner.status('whole')?.output], ['passing', `gRPC check ${addr}: success`]);
  t.same([runner.status('orders')?.status, runner.status('orders')?.output], ['passing', `gRPC check ${addr}/pkg.Orders: success`]);
  t.same([runner.status('billing')?.status, runner.status('billing')?.output], ['critical', `gRPC ${addr}/pkg.Billing serving status: NOT_SERVING`]);
  t.same([runner.status('missing')?.status, runner.status('missing')?.output], ['critical', 'rpc error: code = NotFound desc = Health status unknown for service pkg.Nope']);

  // The service stops serving: critical after two failed probes.
  await nextResult(runner, 'orders');
  const flippedAt = Date.now();
  health.setStatus('pkg.Orders', 'NOT_SERVING');
  await waitFor(() => runner.status('orders')?.status === 'critical', { what: 'orders critical', timeoutMs: 5000 });
  const elapsed = Date.now() - flippedAt;
  t.ok(elapsed <= 150 * 2 + SLACK_MS, `orders critical ${elapsed} ms after NOT_SERVING (150 ms × 2)`);
  t.same(
    runner
      .history('orders')
      .slice(-2)
      .map((h) => [h.status, h.reportedStatus]),
    [
      ['critical', 'passing'],
      ['critical', 'critical'],
    ],
    'critical at the second failed probe',
  );
  t.equal(runner.status('orders')?.output, `gRPC ${addr}/pkg.Orders serving status: NOT_SERVING`);
  health.setStatus('pkg.Orders', 'SERVING');
  await waitFor(() => runner.status('orders')?.status === 'passing', { what: 'orders passing again', timeoutMs: 5000 });
  t.same(
    results.filter((r) => r.checkId === 'orders').map((r) => r.status),
    ['passing', 'critical', 'passing'],
  );

  // The server goes away: critical with the RPC error.
  const downAt = Date.now();
  server.forceShutdown();
  await waitFor(() => runner.status('whole')?.status === 'critical', { what: 'whole critical', timeoutMs: 3000 });
  const downFor = Date.now() - downAt;
  t.ok(downFor <= 150 + SLACK_MS, `critical ${downFor} ms after shutdown: within an interval (FailuresBeforeCritical 0)`);
  t.match(runner.status('whole')?.output, /^rpc error: code = Unavailable desc = /);
});

t.test('a hung gRPC server times out with DeadlineExceeded', async (t) => {
  // A plain TCP listener that accepts and never speaks HTTP/2.
  const sockets = new Set<net.Socket>();
  const silent = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const port = (silent.address() as net.AddressInfo).port;
  const { runner } = realRunner();
  t.teardown(async () => {
    await runner.stop();
    for (const s of sockets) s.destroy();
    silent.close();
  });
  runner.add({ Name: 'silent', GRPC: `127.0.0.1:${port}`, Interval: '100ms', Timeout: '400ms' });
  await waitFor(() => runner.history('silent').length > 0, { what: 'a result', timeoutMs: 3000 });
  t.same([runner.status('silent')?.status, runner.status('silent')?.output], ['critical', 'rpc error: code = DeadlineExceeded desc = context deadline exceeded']);
});

t.test('GRPCUseTLS with a self-signed certificate', async (t) => {
  requireOpenssl();
  const dir = mkdtempSync(join(tmpdir(), 'konsul-checks-grpc-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  makeCa(dir, 'ca');
  const leaf = makeCert(dir, 'ca', 'grpc');
  const health = new HealthImplementation({ '': 'SERVING' });
  const { server, port } = await startServer(health, ServerCredentials.createSsl(null, [{ private_key: leaf.key, cert_chain: leaf.cert }], false));
  const { runner } = realRunner();
  const withCa = realRunner({ tlsCa: leaf.ca });
  t.teardown(async () => {
    await runner.stop();
    await withCa.runner.stop();
    server.forceShutdown();
  });
  const addr = `127.0.0.1:${port}`;
  runner.add({ Name: 'skip', GRPC: addr, GRPCUseTLS: true, TLSSkipVerify: true, Interval: '200ms', Timeout: '5s' });
  runner.add({ Name: 'verify', GRPC: addr, GRPCUseTLS: true, Interval: '200ms', Timeout: '5s' });
  runner.add({ Name: 'plaintext', GRPC: addr, Interval: '200ms', Timeout: '5s' });
  withCa.runner.add({ Name: 'ca', GRPC: addr, GRPCUseTLS: true, TLSServerName: 'grpc.konsul.test', Interval: '200ms', Timeout: '5s' });
  await waitFor(() => ['skip', 'verify', 'plaintext'].every((id) => runner.history(id).length > 0) && withCa.runner.history('ca').length > 0, { what: 'results', timeoutMs: 15_000 });
  t.same([runner.status('skip')?.status, runner.status('skip')?.output], ['passing', `gRPC check ${addr}: success`]);
  t.equal(runner.status('verify')?.status, 'critical', 'an unknown authority is refused without TLSSkipVerify');
  t.match(runner.status('verify')?.output, /^rpc error: code = Unavailable desc = /);
  t.equal(runner.status('plaintext')?.status, 'critical', 'plaintext to a TLS server fails');
  t.same([withCa.runner.status('ca')?.status, withCa.runner.status('ca')?.output], ['passing', `gRPC check ${addr}: success`], 'the agent CA and TLSServerName verify it');
});
