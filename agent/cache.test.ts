// The agent cache with an injected clock and a scripted fetcher: MISS then HIT, background refresh,
// blocking gets, Age / max-age / stale-if-error / must-revalidate, LRU bounds and TTL expiry.
import t from 'tap';
import { AgentCache, type CacheClock, type CachedResult } from './cache.ts';

class FakeClock implements CacheClock {
  nowMs = 1_000_000;
  private timers: { at: number; cb: () => void; id: number }[] = [];
  private nextId = 1;
  now(): number {
    return this.nowMs;
  }
  setTimeout(cb: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.push({ at: this.nowMs + ms, cb, id });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((x) => x.id !== handle);
  }
  async advance(ms: number): Promise<void> {
    const until = this.nowMs + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (!next || next.at > until) break;
      this.timers.shift();
      this.nowMs = next.at;
      next.cb();
      await flush();
    }
    this.nowMs = until;
    await flush();
  }
}

const flush = async () => {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
};

interface Call {
  key: string;
  minIndex: number;
  signal: AbortSignal;
  resolve(r: CachedResult): void;
  reject(e: Error): void;
}

function scripted() {
  const calls: Call[] = [];
  const fetch = (key: string, minIndex: number, signal: AbortSignal) =>
    new Promise<CachedResult>((resolve, reject) => {
      calls.push({ key, minIndex, signal, resolve, reject });
      signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
    });
  return { calls, fetch };
}

const result = (index: number, body: string, status = 200): CachedResult => ({ status, headers: { 'x-consul-index': String(index) }, body: Buffer.from(body), index });

function makeCache(t: { teardown(fn: () => void): void }, overrides: Partial<{ maxEntries: number; maxBytes: number; entryTtlMs: number }> = {}) {
  const clock = new FakeClock();
  const { calls, fetch } = scripted();
  const cache = new AgentCache({ fetch, clock, maxEntries: 100, maxBytes: 1 << 20, entryTtlMs: 60_000, backoffMs: 100, maxBackoffMs: 1000, ...overrides });
  t.teardown(() => cache.stop());
  return { clock, calls, cache };
}

t.test('a first get is a MISS, later ones HIT without reaching the servers', async (t) => {
  const { calls, cache } = makeCache(t);
  const first = cache.get('/v1/health/service/web');
  await flush();
  t.equal(calls.length, 1);
  t.equal(calls[0]!.minIndex, 0, 'the first fetch does not block');
  calls[0]!.resolve(result(5, 'v5'));
  const a = await first;
  t.equal(a.hit, false);
  t.equal(a.result.body.toString(), 'v5');
  await flush();
  t.equal(calls.length, 2, 'a background refresh started');
  t.equal(calls[1]!.minIndex, 5, 'it blocks on the entry index');
  const b = await cache.get('/v1/health/service/web');
  t.equal(b.hit, true);
  t.equal(b.ageMs, 0, 'Age is 0 while the refresh is healthy');
  t.equal(calls.length, 2, 'no request for a hit');
  t.equal(cache.peek('/v1/health/service/web')?.result.index, 5, 'peek serves a hit synchronously');
  t.equal(cache.peek('/v1/health/service/web', { minIndex: 5 }), undefined, 'but not one that must block');
  t.equal(cache.peek('/v1/health/service/other'), undefined);
  t.same(cache.stats().hits, 2);
  t.same(cache.stats().misses, 1);
});

t.test('concurrent misses share one fetch', async (t) => {
  const { calls, cache } = makeCache(t);
  const gets = [cache.get('k'), cache.get('k'), cache.get('k')];
  await flush();
  t.equal(calls.length, 1);
  calls[0]!.resolve(result(3, 'x'));
  const answers = await Promise.all(gets);
  t.same(answers.map((a) => a.result.index), [3, 3, 3]);
});

t.test('the background refresh updates the entry and wakes blocking gets', async (t) => {
  const { clock, calls, cache } = makeCache(t);
  const first = cache.get('k');
  await flush();
  calls[0]!.resolve(result(5, 'v5'));
  await first;
  await flush();
  const blocked = cache.get('k', { minIndex: 5, waitMs: 30_000 });
  let done = false;
  void blocked.then(() => (done = true));
  await clock.advance(1000);
  t.equal(done, false, 'blocks while the index is not past minIndex');
  calls[1]!.resolve(result(9, 'v9'));
  const answer = await blocked;
  t.equal(answer.result.index, 9);
  t.equal(answer.result.body.toString(), 'v9');
  t.equal(answer.hit, true);
  await flush();
  t.equal(calls[2]!.minIndex, 9, 'the next refresh blocks on the new index');
  const nonBlocking = await cache.get('k', { minIndex: 5 });
  t.equal(nonBlocking.result.index, 9, 'an old minIndex answers at once');
});

t.test('a blocking get answers the current value when its wait ends', async (t) => {
  const { clock, calls, cache } = makeCache(t);
  const first = cache.get('k');
  await flush();
  calls[0]!.resolve(result(5, 'v5'));
  await first;
  const blocked = cache.get('k', { minIndex: 5, waitMs: 10_000 });
  await clock.advance(9_999);
  let done = false;
  void blocked.then(() => (done = true));
  await flush();
  t.equal(done, false);
  await clock.advance(1);
  const answer = await blocked;
  t.equal(answer.result.index, 5);
});

t.test('a failing refresh ages the entry; max-age refetches; stale-if-error and must-revalidate', async (t) => {
  const { clock, calls, cache } = makeCache(t);
  const first = cache.get('k');
  await flush();
  calls[0]!.resolve(result(5, 'v5'));
  await first;
  await flush();
  calls[1]!.reject(new Error('server down'));
  await clock.advance(10_000);
  const aged = await cache.get('k');
  t.equal(aged.hit, true, 'still served (fail static)');
  t.ok(aged.ageMs >= 10_000, `Age counts from the last success (${aged.ageMs} ms)`);
  // max-age 5 s: too old, so the agent fetches now (the refresh loop keeps failing in the background).
  const fresh = cache.get('k', { maxAgeMs: 5000 });
  await flush();
  const refetch = calls.find((c, i) => i > 1 && c.minIndex === 0)!;
  t.ok(refetch, 'a non-blocking refetch was sent');
  refetch.resolve(result(6, 'v6'));
  const answer = await fresh;
  t.equal(answer.hit, false, 'a revalidated answer is a MISS');
  t.equal(answer.result.index, 6);
  // Now age it again with the servers down.
  await clock.advance(20_000);
  const stale = cache.get('k', { maxAgeMs: 5000, staleIfErrorMs: 60_000 });
  await flush();
  calls.filter((c) => c.minIndex === 0).at(-1)!.reject(new Error('server down'));
  const staleAnswer = await stale;
  t.equal(staleAnswer.result.index, 6, 'stale-if-error serves the old value');
  t.equal(staleAnswer.hit, true);
  const strict = cache.get('k', { maxAgeMs: 5000, staleIfErrorMs: 60_000, mustRevalidate: true });
  await flush();
  calls.filter((c) => c.minIndex === 0).at(-1)!.reject(new Error('server down'));
  await t.rejects(strict, /server down/, 'must-revalidate never serves a value older than max-age');
  const tooOld = cache.get('k', { maxAgeMs: 1000, staleIfErrorMs: 1000 });
  await flush();
  calls.filter((c) => c.minIndex === 0).at(-1)!.reject(new Error('server down'));
  await t.rejects(tooOld, /server down/, 'older than max-age + stale-if-error is an error');
});

t.test('answers not worth caching are handed back and not kept', async (t) => {
  const { calls, cache } = makeCache(t);
  const first = cache.get('k');
  await flush();
  calls[0]!.resolve(result(0, 'No cluster leader', 500));
  const answer = await first;
  t.equal(answer.result.status, 500);
  t.equal(answer.hit, false);
  t.equal(cache.stats().entries, 0);
  const again = cache.get('k');
  await flush();
  t.equal(calls.length, 2, 'the next get fetches again');
  calls[1]!.resolve(result(4, 'missing', 404));
  t.equal((await again).result.status, 404, 'a 404 is cached (clients block on absent keys)');
  t.equal(cache.stats().entries, 1);
});

t.test('LRU bounds on entries and bytes; evicted entries stop refreshing', async (t) => {
  const { calls, cache } = makeCache(t, { maxEntries: 2 });
  for (const key of ['a', 'b']) {
    const p = cache.get(key);
    await flush();
    calls.at(-1)!.resolve(result(1, key));
    await p;
    await flush();
  }
  await cache.get('a'); // a is now the most recently used
  const p = cache.get('c');
  await flush();
  calls.filter((c) => c.key === 'c')[0]!.resolve(result(1, 'c'));
  await p;
  t.equal(cache.stats().entries, 2);
  t.ok(cache.has('a') && cache.has('c') && !cache.has('b'), 'the least recently used (b) was evicted');
  t.ok(calls.filter((c) => c.key === 'b').every((c) => c.signal.aborted), "b's background refresh was aborted");
  t.equal(cache.stats().evictions, 1);

  const small = makeCache(t, { maxBytes: 1000 });
  for (const key of ['x', 'y', 'z']) {
    const q = small.cache.get(key);
    await flush();
    small.calls.filter((c) => c.key === key)[0]!.resolve(result(1, 'v'.repeat(300)));
    await q;
  }
  t.ok(small.cache.stats().bytes <= 1000, `bytes bounded (${small.cache.stats().bytes})`);
  t.ok(!small.cache.has('x') && small.cache.has('z'));
});

t.test('entries nobody asks for expire', async (t) => {
  const { clock, calls, cache } = makeCache(t, { entryTtlMs: 60_000 });
  const p = cache.get('k');
  await flush();
  calls[0]!.resolve(result(1, 'v'));
  await p;
  await flush();
  await clock.advance(30_000);
  await cache.get('k');
  await clock.advance(59_000);
  t.ok(cache.has('k'), 'asked for 59 s ago: kept');
  await clock.advance(20_000);
  t.notOk(cache.has('k'), 'not asked for within the TTL: dropped');
  t.ok(calls[1]!.signal.aborted, 'its refresh stopped');
  t.equal(cache.stats().expirations, 1);
});
