// Mutual TLS between transports, with certificates made by the openssl CLI in a temporary directory.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { TransportError } from './tcp-transport.ts';
import { makeCa, makeCert as makeLeaf, requireOpenssl } from '../test/pki.ts';
import type { AddressBook } from './test-helpers.ts';
import { heartbeat, startNode, waitUntil } from './test-helpers.ts';

/** Transport TLS options for a leaf certificate. */
function makeCert(dir: string, ca: string, name: string): { cert: Buffer; key: Buffer; ca: Buffer } {
  const leaf = makeLeaf(dir, ca, name);
  return { cert: leaf.cert, key: leaf.key, ca: leaf.ca };
}

t.test('mutual TLS: same-CA servers talk, a certificate from another CA is refused both ways', async (t) => {
  requireOpenssl();
  const dir = mkdtempSync(join(tmpdir(), 'konsul-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  makeCa(dir, 'ca1');
  makeCa(dir, 'ca2');
  const n1Tls = makeCert(dir, 'ca1', 'n1');
  const n2Tls = makeCert(dir, 'ca1', 'n2');
  // The rogue trusts ca1 (so it would accept n1) but its own certificate comes from ca2.
  const rogueTls = { ...makeCert(dir, 'ca2', 'rogue'), ca: readFileSync(join(dir, 'ca1.crt')) };

  const book: AddressBook = new Map();
  const n1 = await startNode('n1', book, { tls: n1Tls });
  const n2 = await startNode('n2', book, { tls: n2Tls, listen: { host: '127.0.0.2', port: 0 } });
  const rogue = await startNode('rogue', book, { tls: rogueTls });
  t.teardown(() => Promise.all([n1, n2, rogue].map((n) => n.transport.stop())));

  n1.transport.send([heartbeat('n1', 'n2', 5)]);
  n2.transport.send([heartbeat('n2', 'n1', 6)]);
  await waitUntil(() => n1.received.length === 1 && n2.received.length === 1, 5000, 'messages over TLS');
  t.same(n2.received[0], heartbeat('n1', 'n2', 5), 'n1 → n2');
  t.same(n1.received[0], heartbeat('n2', 'n1', 6), 'n2 → n1');
  const res = await n1.transport.request(n2.address, 'echo', Buffer.from('over tls'));
  t.equal(Buffer.from(res.body).toString(), 'over tls', 'request over TLS');
  t.equal(res.peer.id, 'n2');

  // Rogue dials n1: n1 refuses its client certificate.
  try {
    await rogue.transport.request(n1.address, 'echo', Buffer.from('let me in'), { timeoutMs: 5000 });
    t.fail('the rogue got an answer');
  } catch (err) {
    t.ok(err instanceof TransportError && (err.code === 'unreachable' || err.code === 'connectionLost'), `rogue client refused (${String(err)})`);
  }
  rogue.transport.send([heartbeat('rogue', 'n1')]);
  await waitUntil(() => n1.errors.some((e) => /refused a TLS client/.test(e.message)), 5000, 'n1 reporting the refused handshake');
  t.pass(`n1 reported: ${n1.errors.map((e) => e.message).join('; ')}`);

  // A client with no certificate at all gets nothing either.
  const errorsBefore = n1.errors.length;
  const anonymous = tls.connect({ host: '127.0.0.1', port: n1.transport.boundAddress().port, ca: n1Tls.ca, checkServerIdentity: () => undefined });
  anonymous.on('error', () => {});
  anonymous.resume();
  await new Promise<void>((resolve) => anonymous.once('close', () => resolve()));
  await waitUntil(() => n1.errors.length > errorsBefore, 5000, 'n1 reporting the anonymous client');
  t.match(n1.errors.at(-1)?.message, /refused a TLS client/, 'a client without a certificate is refused');

  // n1 dials rogue: rogue's server certificate does not chain to ca1.
  try {
    await n1.transport.request(rogue.address, 'echo', new Uint8Array(0), { timeoutMs: 5000 });
    t.fail('n1 accepted the rogue server');
  } catch (err) {
    t.ok(err instanceof TransportError && err.code === 'unreachable', `rogue server refused (${String(err)})`);
  }
  await new Promise((r) => setTimeout(r, 50));
  t.equal(n1.received.length, 1, 'nothing from the rogue reached n1');
  t.equal(rogue.received.length, 0, 'nothing reached the rogue');
});
