// Blocking KV reads through the answer hub, against the real app and a real KonsulFsm, on a real
// socket: one serialisation is shared by every request of one query at one state, answers to
// different queries and indexes never mix, and the wire format is the one fastify sent.
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import t, { type Test } from 'tap';
import type { Command } from '../../fsm/commands.ts';
import { KonsulFsm } from '../../fsm/konsul-fsm.ts';
import type { RaftHost } from '../../raft/host/raft-host.ts';
import { DEFAULTS } from '../config.ts';
import { AnswerHub, createAnswerHub, type AnswerHubOptions } from './answer-hub.ts';
import { buildApp } from './app.ts';
import type { ClusterAccess, ServerContext } from './context.ts';
import { parseQueryOptions, type Query } from '../../http/query-options.ts';

interface Answer {
  status: number;
  rawHeaders: string[];
  headers: IncomingHttpHeaders;
  body: Buffer;
}

interface Harness {
  readonly fsm: KonsulFsm;
  readonly hub: AnswerHub;
  readonly app: FastifyInstance;
  readonly shutdown: AbortController;
  readonly leader: { id: string; lastContactMs: number };
  /** Applies a KV write as the next log entry; returns its index. */
  set(key: string, value: string): number;
  del(key: string): number;
  /** An unrelated apply (no KV change): moves the state version only. */
  noop(): number;
  get(path: string, method?: string): Promise<Answer>;
  /** Resolves when `n` requests are waiting in the hub. */
  waiting(n: number): Promise<void>;
}

async function harness(t: Test, hubOptions: Partial<AnswerHubOptions> = {}): Promise<Harness> {
  const fsm = new KonsulFsm();
  const shutdown = new AbortController();
  const leader = { id: 'hub-test', lastContactMs: 0 };
  let index = 0;
  const apply = (command: Command) => {
    fsm.applyCommand(++index, command);
    return index;
  };
  const raft = { leader: () => leader.id, lastContactMs: () => leader.lastContactMs } as unknown as RaftHost;
  const cluster = {
    readBarrier: async () => {},
    propose: async () => {
      throw new Error('not in this test');
    },
  } as unknown as ClusterAccess;
  const ctx: ServerContext = { config: DEFAULTS, raft, fsm, cluster, version: 'test', shutdownSignal: shutdown.signal };
  const hub = createAnswerHub(ctx, hubOptions);
  const app = await buildApp(ctx, { answers: hub });
  await app.listen({ host: '127.0.0.1', port: 0 });
  // Keep-alive as clients use it; no limit on sockets, so waiting requests do not queue.
  const agent = new Agent({ keepAlive: true });
  t.teardown(async () => {
    shutdown.abort();
    agent.destroy();
    await app.close();
  });
  const port = (app.server.address() as AddressInfo).port;
  const h: Harness = {
    fsm,
    hub,
    app,
    shutdown,
    leader,
    set: (key, value) => apply({ type: 'kvSet', key, value: Buffer.from(value).toString('base64'), flags: '0' }),
    del: (key) => apply({ type: 'kvDelete', key }),
    noop: () => {
      fsm.applyNoop(++index);
      return index;
    },
    get: (path, method = 'GET') =>
      new Promise((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, path, method, agent }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, rawHeaders: res.rawHeaders, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      }),
    waiting: async (n) => {
      const deadline = Date.now() + 10_000;
      while (hub.stats.waiting !== n) {
        if (Date.now() > deadline) throw new Error(`expected ${n} waiting requests, have ${hub.stats.waiting}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
  };
  return h;
}

/** The headers as sent, in order, without Date (it changes every second). */
const withoutDate = (a: Answer) => {
  const out: string[] = [];
  for (let i = 0; i < a.rawHeaders.length; i += 2) if (a.rawHeaders[i] !== 'Date') out.push(a.rawHeaders[i]!, a.rawHeaders[i + 1]!);
  return out;
};

t.test('10 keys, 200 watchers of one prefix: one write, one serialisation, the same bytes for all', async (t) => {
  // sliceMs 0: a new turn of the event loop every 32 answers, as a large fan-out gets.
  const h = await harness(t, { sliceMs: 0 });
  for (let i = 0; i < 10; i++) h.set(`fan/k${i}`, `value ${i}`);
  const first = await h.get('/v1/kv/fan/?recurse');
  const index = Number(first.headers['x-consul-index']);
  const watchers = Array.from({ length: 200 }, () => h.get(`/v1/kv/fan/?recurse&index=${index}&wait=30s`));
  await h.waiting(200);
  t.equal(h.hub.stats.groups, 1, 'one group: one watcher in the FSM registry for 200 requests');
  t.equal(h.fsm.watches.size, 1);
  const before = h.hub.stats;
  const written = h.set('fan/k3', 'changed');
  const answers = await Promise.all(watchers);
  const after = h.hub.stats;
  t.equal(after.reads - before.reads, 1, 'the new listing was read and serialised once');
  t.equal(after.written - before.written, 200, 'and written 200 times');
  t.equal(after.waiting, 0);
  t.equal(after.groups, 0, 'the group and its watcher are gone');
  t.equal(h.fsm.watches.size, 0);
  t.equal(after.deadlineBuckets, 0, 'and so are their deadline timers');
  const fresh = await h.get('/v1/kv/fan/?recurse');
  for (const a of answers) {
    t.equal(a.status, 200);
    t.equal(a.headers['x-consul-index'], String(written));
    if (!a.body.equals(fresh.body)) t.fail('a watcher got other bytes than a fresh read');
  }
  t.ok(fresh.body.includes(Buffer.from(Buffer.from('changed').toString('base64'))), 'the body has the new value');
  t.same(withoutDate(answers[0]!), withoutDate(fresh), 'the same headers as a fresh read');
});

t.test('requests that arrive while nothing is applied share the cached answer; any apply invalidates it', async (t) => {
  const h = await harness(t);
  h.set('c/a', '1');
  const s0 = h.hub.stats;
  const a = await h.get('/v1/kv/c/a');
  const b = await h.get('/v1/kv/c/a?stale');
  const s1 = h.hub.stats;
  t.equal(s1.reads - s0.reads, 1, 'read once');
  t.equal(s1.cacheHits - s0.cacheHits, 1, 'the second request (another consistency mode) took the cached bytes');
  t.ok(a.body.equals(b.body));
  t.equal(a.headers['x-consul-effective-consistency'], 'leader');
  t.equal(b.headers['x-consul-effective-consistency'], 'stale', 'headers follow each request');
  h.noop();
  const c = await h.get('/v1/kv/c/a');
  t.equal(h.hub.stats.reads - s1.reads, 1, 'after an apply (even one that changed no key) the state is read again');
  t.ok(c.body.equals(a.body));
  h.leader.lastContactMs = 1234;
  const d = await h.get('/v1/kv/c/a');
  t.equal(d.headers['x-consul-lastcontact'], '1234', 'the leader view is read per answer, not cached with the body');
  t.ok(d.body.equals(a.body));
  h.leader.id = '';
  t.equal((await h.get('/v1/kv/c/a')).headers['x-consul-knownleader'], 'false');
});

t.test('answers to different queries and indexes are never mixed up', async (t) => {
  const h = await harness(t);
  h.set('m/x', 'x0');
  h.set('m/x', 'x1');
  h.set('m/sub/y', 'y1');
  h.set('n/z', 'z1');
  const idx = async (path: string) => Number((await h.get(path)).headers['x-consul-index']);
  const queries = ['/v1/kv/m/?recurse', '/v1/kv/m/?keys', '/v1/kv/m/?keys&separator=/', '/v1/kv/m/x', '/v1/kv/m/x?raw', '/v1/kv/m/x?stale', '/v1/kv/n/?recurse', '/v1/kv/m/missing', '/v1/kv/m/?recurse&stale'];
  const pending = new Map<string, Promise<Answer>>();
  for (const q of queries) pending.set(q, h.get(`${q}${q.includes('?') ? '&' : '?'}index=${await idx(q)}&wait=20s`));
  // An index older than the state's answers at once, with the current data.
  const old = await h.get('/v1/kv/m/x?index=1&wait=20s');
  t.equal(old.body.toString().includes(Buffer.from('x1').toString('base64')), true);
  t.equal(old.status, 200);
  t.equal(old.headers['x-consul-index'], String(await idx('/v1/kv/m/x')));
  // An index from the future (a client that saw a state since restored) answers at once too.
  t.equal((await h.get('/v1/kv/m/x?index=999&wait=20s')).status, 200);
  await h.waiting(queries.length);
  t.equal(h.hub.stats.groups, queries.length - 2, 'one group per query; consistency modes share a group');

  const reads0 = h.hub.stats.reads;
  h.set('m/x', 'x2');
  const woken = ['/v1/kv/m/?recurse', '/v1/kv/m/?keys', '/v1/kv/m/?keys&separator=/', '/v1/kv/m/x', '/v1/kv/m/x?raw', '/v1/kv/m/x?stale', '/v1/kv/m/?recurse&stale'];
  for (const q of woken) {
    const got = await pending.get(q)!;
    const fresh = await h.get(q);
    t.equal(got.status, 200, q);
    t.ok(got.body.equals(fresh.body), `${q}: the answer of its own query`);
    t.same(withoutDate(got), withoutDate(fresh), `${q}: its own headers`);
  }
  t.equal(h.hub.stats.reads - reads0, 5, 'one read per distinct query (recurse, keys, keys+separator, entry, raw)');
  t.equal((await pending.get('/v1/kv/m/x?raw')!).body.toString(), 'x2');
  t.equal((await pending.get('/v1/kv/m/?keys&separator=/')!).body.toString(), '["m/sub/","m/x"]');
  t.equal(h.hub.stats.waiting, 2, 'n/ and m/missing still wait: the write did not touch them');

  // A delete under n/ wakes only n/ (with a 404: nothing left under it); m/missing keeps waiting.
  const deleted = h.del('n/z');
  const n = await pending.get('/v1/kv/n/?recurse')!;
  t.equal(n.status, 404);
  t.equal(n.headers['x-consul-index'], String(deleted), 'the tombstone moved the prefix index');
  t.equal(n.body.length, 0);
  t.equal(h.hub.stats.waiting, 1);
  h.set('m/missing', 'here');
  const missing = await pending.get('/v1/kv/m/missing')!;
  t.equal(missing.status, 200);
  t.match(missing.body.toString(), /"Key":"m\/missing"/);
});

t.test('a write that does not move a query index keeps its requests waiting', async (t) => {
  const h = await harness(t);
  h.set('w/k', 'v');
  const index = Number((await h.get('/v1/kv/w/k')).headers['x-consul-index']);
  const waiting = h.get(`/v1/kv/w/k?index=${index}&wait=20s`);
  await h.waiting(1);
  // Deleting a key that does not exist notifies watchers of that key; w/k is not one of them.
  h.del('w/k2');
  h.set('w/other', 'x');
  await new Promise((r) => setTimeout(r, 30));
  t.equal(h.hub.stats.waiting, 1);
  h.set('w/k', 'v2');
  t.equal(Buffer.from(JSON.parse((await waiting).body.toString())[0].Value, 'base64').toString(), 'v2');
});

t.test('the wait ends after its time with the unchanged answer', async (t) => {
  const h = await harness(t);
  h.set('t/k', 'v');
  const index = Number((await h.get('/v1/kv/t/k')).headers['x-consul-index']);
  const started = performance.now();
  const waits = Array.from({ length: 20 }, () => h.get(`/v1/kv/t/k?index=${index}&wait=1s`).then((a) => ({ a, ms: performance.now() - started })));
  await h.waiting(20);
  for (const { a, ms } of await Promise.all(waits)) {
    t.equal(a.status, 200);
    t.equal(a.headers['x-consul-index'], String(index));
    if (ms < 999) t.fail(`answered after ${ms} ms, before the wait`);
  }
  t.equal(h.hub.stats.deadlineBuckets, 0, 'no timer left');
});

t.test('requests waiting minutes share a few deadline timers', async (t) => {
  const h = await harness(t);
  h.set('t/k', 'v');
  const index = Number((await h.get('/v1/kv/t/k')).headers['x-consul-index']);
  const waits = Array.from({ length: 100 }, (_, i) => h.get(i % 2 ? `/v1/kv/t/k?index=${index}&wait=5m` : `/v1/kv/t/?keys&index=${index}&wait=5m`));
  await h.waiting(100);
  // 5 m waits fall in 1,024 ms buckets across the 18.75 s jitter window: at most ~20 timers however many wait.
  t.ok(h.hub.stats.deadlineBuckets <= 20, `100 requests, ${h.hub.stats.deadlineBuckets} timers`);
  t.equal(h.hub.stats.groups, 2);
  h.shutdown.abort();
  await Promise.all(waits);
  t.equal(h.hub.stats.deadlineBuckets, 0);
});

t.test('a client that goes away is forgotten, with its watcher', async (t) => {
  const h = await harness(t);
  h.set('gone/k', 'v');
  const index = Number((await h.get('/v1/kv/gone/k')).headers['x-consul-index']);
  const port = (h.app.server.address() as AddressInfo).port;
  const req = httpRequest({ host: '127.0.0.1', port, path: `/v1/kv/gone/k?index=${index}&wait=30s`, agent: false });
  req.on('error', () => {});
  req.end();
  await h.waiting(1);
  t.equal(h.fsm.watches.size, 1);
  req.destroy();
  await h.waiting(0);
  t.equal(h.hub.stats.groups, 0);
  t.equal(h.fsm.watches.size, 0);
  t.equal(h.hub.stats.deadlineBuckets, 0);
});

t.test('shutdown answers every waiting request at once and closes its connection', async (t) => {
  const h = await harness(t);
  h.set('s/k', 'v');
  const index = Number((await h.get('/v1/kv/s/k')).headers['x-consul-index']);
  const waits = [h.get(`/v1/kv/s/k?index=${index}&wait=60s`), h.get(`/v1/kv/s/?keys&index=${index}&wait=60s`)];
  await h.waiting(2);
  h.shutdown.abort();
  for (const a of await Promise.all(waits)) {
    t.equal(a.status, 200);
    t.equal(a.headers['connection'], 'close');
  }
  t.equal(h.hub.stats.waiting, 0);
  t.equal(h.hub.stats.deadlineBuckets, 0);
});

t.test("the wire format is fastify's: headers in the same order, HEAD without a body", async (t) => {
  const h = await harness(t);
  const index = h.set('wire/a', 'hello');
  h.set('wire/empty', '');
  const meta = (i: number, consistency = 'leader') => ['x-consul-index', String(i), 'x-consul-knownleader', 'true', 'x-consul-lastcontact', '0', 'x-consul-effective-consistency', consistency];
  const keepAlive = ['Connection', 'keep-alive', 'Keep-Alive', 'timeout=72'];
  const json = (a: Answer) => ['content-type', 'application/json; charset=utf-8', 'content-length', String(a.body.length)];

  const entry = await h.get('/v1/kv/wire/a');
  t.same(withoutDate(entry), [...meta(index), ...json(entry), ...keepAlive]);
  t.equal(entry.body.toString(), `[{"LockIndex":0,"Key":"wire/a","Flags":0,"Value":"aGVsbG8=","CreateIndex":${index},"ModifyIndex":${index}}]`);
  const raw = await h.get('/v1/kv/wire/a?raw');
  t.same(withoutDate(raw), [...meta(index), 'content-type', 'text/plain', 'x-content-type-options', 'nosniff', 'content-security-policy', 'sandbox', 'content-length', '5', ...keepAlive]);
  t.equal(raw.body.toString(), 'hello');
  const missing = await h.get('/v1/kv/wire/missing?consistent');
  t.equal(missing.status, 404);
  t.same(withoutDate(missing), [...meta(index + 1, 'consistent'), 'content-length', '0', ...keepAlive]);
  const head = await h.get('/v1/kv/wire/a', 'HEAD');
  t.equal(head.status, 200);
  t.same(withoutDate(head), withoutDate(entry), 'HEAD: the same headers');
  t.equal(head.body.length, 0, 'and no body');
  const rootKeys = await h.get('/v1/kv/?keys');
  t.equal(rootKeys.body.toString(), '["wire/a","wire/empty"]');
  t.equal((await h.get('/v1/kv/none/?keys')).status, 404, 'a prefix without keys is a 404; the root is not');
  t.equal((await h.get('/v1/kv/')).status, 400, 'a missing key name is still a 400');
  t.equal((await h.get('/v1/kv/wire/a?stale&consistent')).status, 400);
});

t.test('the cache keeps at most maxCachedAnswers answers, oldest out first', async (t) => {
  const h = await harness(t, { maxCachedAnswers: 2 });
  h.set('b/1', '1');
  h.set('b/2', '2');
  h.set('b/3', '3');
  const reads = () => h.hub.stats.reads;
  const r0 = reads();
  await h.get('/v1/kv/b/1');
  await h.get('/v1/kv/b/2');
  await h.get('/v1/kv/b/2');
  t.equal(reads() - r0, 2, 'b/2 again: from the cache');
  await h.get('/v1/kv/b/3');
  t.equal(reads() - r0, 3);
  await h.get('/v1/kv/b/2');
  t.equal(reads() - r0, 3, 'b/2 is still cached');
  await h.get('/v1/kv/b/1');
  t.equal(reads() - r0, 4, 'b/1, the oldest, was evicted');
});

t.test('a read that throws answers its waiting requests with a 500 instead of leaving them hanging', async (t) => {
  // The hub on its own, with a query that is not KV: any route can hand it a SharedQuery.
  const shutdown = new AbortController();
  let version = 1;
  let broken = false;
  const wakes = new Set<() => void>();
  const errors: unknown[] = [];
  const hub = new AnswerHub({
    stateVersion: () => version,
    leaderView: () => ({ knownLeader: true, lastContactMs: 0 }),
    shutdownSignal: shutdown.signal,
    onError: (e) => errors.push(e),
  });
  const app = Fastify();
  app.get('/x', async (request, reply) => {
    hub.serve(reply, parseQueryOptions(request.query as Query), {
      key: 'x',
      watch: (wake) => {
        wakes.add(wake);
        return () => wakes.delete(wake);
      },
      read: () => {
        if (broken) throw new Error('the state is broken');
        return { index: version, status: 200, headers: ['content-type', 'text/plain'], body: Buffer.from(`v${version}`) };
      },
    });
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(async () => {
    shutdown.abort();
    await app.close();
  });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/x`;
  t.equal(await (await fetch(url)).text(), 'v1');
  const waiting = [fetch(`${url}?index=1`), fetch(`${url}?index=1`)];
  while (hub.stats.waiting < 2) await new Promise((r) => setTimeout(r, 5));
  t.equal(wakes.size, 1, 'one watcher for both');
  version = 2;
  broken = true;
  for (const wake of wakes) wake();
  for (const res of await Promise.all(waiting)) {
    t.equal(res.status, 500);
    t.equal(await res.text(), 'the state is broken');
  }
  t.equal(errors.length, 1, 'reported once');
  t.equal(wakes.size, 0, 'the watcher is gone');
  broken = false;
  const res = await fetch(url);
  t.equal(await res.text(), 'v2', 'the next read works again');
});
