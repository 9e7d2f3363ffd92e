// The workload and its checks against an in-process fake of Konsul's KV API: a correct one, and
// ones with the bugs the cluster scenarios hunt for (stale reads, lost acknowledged writes, a
// "No cluster leader" answer for a write that was applied).
import t from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkHistory, checkLedger, classifyRead, classifyWrite, describeStats, readPrefix, Workload } from './workload.ts';

interface Entry {
  value: string;
  modifyIndex: number;
}

interface FakeBehaviour {
  /** Reads answer the state as it was this many writes ago. */
  staleBy?: number;
  /** Every n-th write is answered true but not applied. */
  dropEvery?: number;
  /** Every n-th write is applied but answered 500 "No cluster leader". */
  lieNoLeaderEvery?: number;
  /** Every n-th write is applied and answered 500 "leadership lost" (outcome unknown: allowed). */
  unknownEvery?: number;
  /** Every n-th write is not applied and answered 500 "No cluster leader" (allowed). */
  failEvery?: number;
}

async function fakeKv(t: Tap, behaviour: FakeBehaviour = {}): Promise<{ url: string; writes: () => number }> {
  const kv = new Map<string, Entry>();
  const past: Map<string, Entry>[] = [];
  let index = 1;
  let writes = 0;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    const key = decodeURIComponent(url.pathname.replace(/^\/v1\/kv\//, ''));
    const q = url.searchParams;
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      if (req.method === 'PUT') {
        writes++;
        const n = writes;
        if (behaviour.failEvery && n % behaviour.failEvery === 0) return void res.writeHead(500).end('No cluster leader');
        const cur = kv.get(key);
        let ok = true;
        if (q.has('cas')) ok = Number(q.get('cas')) === (cur?.modifyIndex ?? 0);
        const drop = behaviour.dropEvery !== undefined && n % behaviour.dropEvery === 0;
        if (ok && !drop) {
          past.push(new Map(kv));
          kv.set(key, { value: body, modifyIndex: ++index });
        }
        if (behaviour.lieNoLeaderEvery && n % behaviour.lieNoLeaderEvery === 0) return void res.writeHead(500).end('No cluster leader');
        if (behaviour.unknownEvery && n % behaviour.unknownEvery === 0) return void res.writeHead(500).end('leadership lost while committing log');
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(ok ? 'true' : 'false');
      }
      const view = behaviour.staleBy ? (past[past.length - behaviour.staleBy] ?? new Map<string, Entry>()) : kv;
      if (q.has('recurse')) {
        const list = [...view.entries()].filter(([k]) => k.startsWith(key));
        if (list.length === 0) return void res.writeHead(404).end();
        return void res.writeHead(200).end(JSON.stringify(list.map(([k, e]) => ({ Key: k, Value: Buffer.from(e.value).toString('base64'), ModifyIndex: e.modifyIndex }))));
      }
      const e = view.get(key);
      if (!e) return void res.writeHead(404).end();
      if (q.has('raw')) return void res.writeHead(200).end(e.value);
      return void res.writeHead(200).end(JSON.stringify([{ Key: key, Value: Buffer.from(e.value).toString('base64'), ModifyIndex: e.modifyIndex }]));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, writes: () => writes };
}

type Tap = { teardown(fn: () => unknown): void };

async function run(url: string, ops = 400): Promise<Workload> {
  const w = new Workload({ targets: () => [{ name: 'fake', url }], clients: 4, keyCount: 2, thinkMs: 1, seed: 7, prefix: 'w/' });
  await w.runDuring(() => w.waitOps(ops));
  await w.finalReads({ name: 'fake', url });
  return w;
}

t.test('classifyWrite', async (t) => {
  t.same(classifyWrite(200, 'true'), { kind: 'answered', ok: true });
  t.same(classifyWrite(200, 'false\n'), { kind: 'answered', ok: false });
  t.equal(classifyWrite(200, '').kind, 'unknown');
  t.equal(classifyWrite(400, 'Invalid key').kind, 'failed');
  t.equal(classifyWrite(500, 'No cluster leader').kind, 'failed');
  t.equal(classifyWrite(500, 'not the leader; the leader is s2').kind, 'failed');
  t.equal(classifyWrite(500, 'leadership transfer in progress').kind, 'failed');
  t.equal(classifyWrite(500, 'leadership lost while committing log: the write was discarded').kind, 'failed');
  t.equal(classifyWrite(500, 'leadership lost while committing log').kind, 'unknown');
  t.equal(classifyWrite(500, 'lost contact with the leader while forwarding the write; its outcome is unknown').kind, 'unknown');
  t.equal(classifyWrite(503, 'server is shutting down').kind, 'unknown');
});

t.test('classifyRead', async (t) => {
  t.same(classifyRead(404, '', false), { ok: true, value: null, modifyIndex: 0 });
  t.same(classifyRead(200, 'v1', false), { ok: true, value: 'v1', modifyIndex: -1 });
  t.same(classifyRead(200, JSON.stringify([{ Value: Buffer.from('v2').toString('base64'), ModifyIndex: 9 }]), true), { ok: true, value: 'v2', modifyIndex: 9 });
  t.equal(classifyRead(500, 'No cluster leader', false).ok, false);
  t.equal(classifyRead(200, 'not json', true).ok, false);
});

t.test('a correct store: linearizable, every acknowledged ledger write present', async (t) => {
  const kv = await fakeKv(t);
  const w = await run(kv.url);
  const stats = w.stats();
  t.comment(describeStats(stats));
  for (const kind of ['put', 'get-default', 'get-consistent', 'cas', 'ledger']) t.ok((stats.byKind[kind]?.ok ?? 0) > 0, `some ${kind} succeeded`);
  t.ok((stats.byKind.cas?.failed ?? 0) >= 0);
  const verdict = checkHistory(w.history());
  t.ok(verdict.ok, verdict.message);
  const ledger = checkLedger(w.ledger, await readPrefix(kv.url, w.ledgerPrefix));
  t.ok(ledger.ok, ledger.message);
  t.ok(ledger.acked > 10);
});

t.test('unknown outcomes and definite failures the server may give are accepted', async (t) => {
  const kv = await fakeKv(t, { unknownEvery: 5, failEvery: 7 });
  const w = await run(kv.url);
  const stats = w.stats();
  t.ok((stats.byKind.put?.unknown ?? 0) > 0, 'some puts unknown');
  t.ok((stats.byKind.put?.failed ?? 0) > 0, 'some puts failed');
  const verdict = checkHistory(w.history());
  t.ok(verdict.ok, verdict.message);
  t.ok(checkLedger(w.ledger, await readPrefix(kv.url, w.ledgerPrefix)).ok);
});

t.test('stale reads are caught, and the failing key is printed', async (t) => {
  const kv = await fakeKv(t, { staleBy: 3 });
  const w = await run(kv.url);
  const verdict = checkHistory(w.history());
  t.notOk(verdict.ok);
  t.match(verdict.message, /NOT linearizable/);
  t.match(verdict.message, /Full history of "w\/k\d"/);
  t.match(verdict.message, /client \d+ \[/, 'formatted operations');
});

t.test('acknowledged writes that were dropped are caught', async (t) => {
  const kv = await fakeKv(t, { dropEvery: 9 });
  const w = await run(kv.url);
  const ledger = checkLedger(w.ledger, await readPrefix(kv.url, w.ledgerPrefix));
  const verdict = checkHistory(w.history());
  t.ok(!ledger.ok || !verdict.ok, 'lost acknowledged writes are noticed');
});

t.test('"No cluster leader" for a write that was applied is caught', async (t) => {
  const kv = await fakeKv(t, { lieNoLeaderEvery: 4 });
  const w = await run(kv.url);
  const ledger = checkLedger(w.ledger, await readPrefix(kv.url, w.ledgerPrefix));
  const verdict = checkHistory(w.history());
  t.ok(!verdict.ok || ledger.ghosts.length > 0, `caught: ${verdict.ok ? ledger.message.split('\n')[0] : 'not linearizable'}`);
});

t.test('connection errors and timeouts are unknown outcomes', async (t) => {
  // A server that accepts and never answers, and a port with nobody behind it.
  const hang = http.createServer(() => {});
  await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    hang.closeAllConnections();
    return new Promise<void>((r) => hang.close(() => r()));
  });
  const url = `http://127.0.0.1:${(hang.address() as AddressInfo).port}`;
  const w = new Workload({ targets: () => [{ name: 'hang', url }], clients: 2, requestTimeoutMs: 200, thinkMs: 0, weights: { get: 0, getConsistent: 0, cas: 0, ledger: 0 } });
  await w.runDuring(() => w.waitOps(4, 5000));
  const h = w.history();
  t.ok(h.length >= 4);
  t.ok(
    h.every((o) => o.kind === 'put' && o.completeMs === null),
    'every put unknown',
  );
  t.match(Object.keys(w.stats().reasons).join('\n'), /put: timeout/);
});
