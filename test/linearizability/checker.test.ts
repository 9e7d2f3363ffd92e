import t from 'tap';
import { performance } from 'node:perf_hooks';
import { checkLinearizable, type CheckResult } from './checker.ts';
import { HistoryRecorder, type History, type OpKind, type Operation } from './history.ts';

// ---------- helpers ----------

interface OpSpec {
  c?: number;
  value?: string;
  expected?: string | null;
  ok?: boolean;
  read?: string | null;
}

/** op('put', 'k', 0, 10, { value: 'a' }); completeMs null = unknown outcome. */
function op(kind: OpKind, key: string, invokeMs: number, completeMs: number | null, spec: OpSpec = {}): Operation {
  const o: Operation = {
    clientId: spec.c ?? 0,
    kind,
    key,
    invokeMs,
    completeMs,
    result: kind === 'get' ? { ok: true, value: spec.read ?? null } : { ok: spec.ok ?? true },
  };
  if (spec.value !== undefined) o.value = spec.value;
  if (spec.expected !== undefined) o.expected = spec.expected;
  return o;
}

function failure(r: CheckResult): Extract<CheckResult, { ok: false }> | undefined {
  return r.ok === false ? r : undefined;
}

/** mulberry32: small seeded PRNG so failures reproduce. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

interface SimOptions {
  clients: number;
  keys: number;
  ops: number;
  /** Probability that an op gets no answer (outcome unknown). */
  unknownRate: number;
}

/**
 * A history from a real sequential execution: each op takes effect atomically at a random instant
 * inside [invoke, complete] (for unknown outcomes: at a random instant after invoke, or never), and
 * its result is what a single in-memory map returns at that instant.
 */
function simulate(seed: number, o: SimOptions): History {
  const rnd = prng(seed);
  const int = (n: number): number => Math.floor(rnd() * n);
  const written = new Map<string, string[]>();
  const planned: { op: Operation; at: number }[] = [];
  const perClient = Math.ceil(o.ops / o.clients);
  for (let c = 0; c < o.clients; c++) {
    let cursor = rnd() * 5;
    for (let n = 0; n < perClient && planned.length < o.ops; n++) {
      const key = `k${int(o.keys)}`;
      const r = rnd();
      const kind: OpKind = r < 0.4 ? 'get' : r < 0.7 ? 'put' : r < 0.88 ? 'cas' : 'delete';
      const invoke = cursor + rnd() * 3;
      const duration = 0.5 + rnd() * 20;
      const unknown = kind !== 'get' && rnd() < o.unknownRate;
      const complete = invoke + duration;
      const at = unknown ? (rnd() < 0.5 ? Infinity : invoke + rnd() * duration * 4) : invoke + rnd() * duration;
      const operation: Operation = { clientId: c, kind, key, invokeMs: invoke, completeMs: unknown ? null : complete, result: { ok: true } };
      if (kind === 'put' || kind === 'cas') {
        operation.value = `c${c}-${n}`;
        const prev = written.get(key) ?? [];
        if (kind === 'cas') operation.expected = prev.length === 0 || rnd() < 0.25 ? null : prev[int(prev.length)]!;
        prev.push(operation.value);
        written.set(key, prev);
      }
      planned.push({ op: operation, at });
      cursor = complete;
    }
  }
  const store = new Map<string, string>();
  for (const { op: p, at } of [...planned].sort((a, b) => a.at - b.at)) {
    if (at === Infinity) break; // never took effect
    const cur = store.get(p.key) ?? null;
    switch (p.kind) {
      case 'put':
        store.set(p.key, p.value!);
        break;
      case 'delete':
        store.delete(p.key);
        break;
      case 'get':
        p.result = { ok: true, value: cur };
        break;
      case 'cas':
        p.result = { ok: cur === p.expected };
        if (cur === p.expected) store.set(p.key, p.value!);
        break;
    }
  }
  return planned.map((p) => p.op).sort((a, b) => a.invokeMs - b.invokeMs);
}

// ---------- tests ----------

t.test('an empty history is linearizable', async (t) => {
  t.same(checkLinearizable([]), { ok: true });
});

t.test('a sequential history passes', async (t) => {
  const h = [
    op('get', 'k', 0, 1, { read: null }),
    op('put', 'k', 2, 3, { value: 'a' }),
    op('get', 'k', 4, 5, { read: 'a' }),
    op('put', 'k', 6, 7, { value: 'b' }),
    op('get', 'k', 8, 9, { read: 'b' }),
  ];
  t.same(checkLinearizable(h), { ok: true });
});

t.test('concurrent overlapping ops pass in any valid order', async (t) => {
  // Two overlapping puts: a later read may see either, as long as all reads agree on one order.
  for (const last of ['a', 'b']) {
    const h = [
      op('put', 'k', 0, 10, { c: 1, value: 'a' }),
      op('put', 'k', 2, 8, { c: 2, value: 'b' }),
      op('get', 'k', 20, 21, { c: 3, read: last }),
      op('get', 'k', 22, 23, { c: 3, read: last }),
    ];
    t.same(checkLinearizable(h), { ok: true }, `last write ${last}`);
  }
  // A read concurrent with a put may return the old or the new value.
  for (const read of [null, 'a']) {
    const h = [op('put', 'k', 0, 10, { c: 1, value: 'a' }), op('get', 'k', 5, 6, { c: 2, read })];
    t.same(checkLinearizable(h), { ok: true }, `concurrent read ${String(read)}`);
  }
  // But two sequential reads cannot flip back: new then old is not linearizable.
  const flip = [
    op('put', 'k', 0, 100, { c: 1, value: 'a' }),
    op('get', 'k', 10, 20, { c: 2, read: 'a' }),
    op('get', 'k', 30, 40, { c: 2, read: null }),
  ];
  t.equal(checkLinearizable(flip).ok, false, 'new-then-old reads fail');
});

t.test('a stale read fails with a readable explanation', async (t) => {
  const h = [
    op('put', 'k', 0, 10, { c: 1, value: 'v1' }),
    op('put', 'k', 20, 30, { c: 1, value: 'v2' }),
    op('get', 'k', 40, 50, { c: 2, read: 'v1' }),
  ];
  const r = checkLinearizable(h);
  const f = failure(r);
  t.ok(f, 'not linearizable');
  if (!f) return;
  t.equal(f.key, 'k');
  t.match(f.explanation, /key "k"/);
  t.match(f.explanation, /read "v1" but the key is "v2"/);
  t.match(f.explanation, /put\("v2"\) -> true/);
  t.match(f.explanation, /\[40, 50\]/);
  t.same(f.partialOrder?.map((o) => o.value), ['v1', 'v2']);
  t.comment(f.explanation);
});

t.test('a lost acknowledged write fails', async (t) => {
  // Client 1's put of "new" is acknowledged at 30; nobody else writes; client 2 later reads "old".
  const h = [
    op('put', 'k', 0, 10, { c: 1, value: 'old' }),
    op('get', 'k', 12, 14, { c: 2, read: 'old' }),
    op('put', 'k', 20, 30, { c: 1, value: 'new' }),
    op('get', 'k', 40, 45, { c: 2, read: 'old' }),
  ];
  const f = failure(checkLinearizable(h));
  t.ok(f, 'not linearizable');
  t.match(f?.explanation ?? '', /read "old" but the key is "new"/);
});

t.test('an unknown-outcome put that later becomes visible passes', async (t) => {
  const h = [
    op('put', 'k', 0, 10, { c: 1, value: 'a' }),
    op('put', 'k', 20, null, { c: 2, value: 'b' }),
    op('get', 'k', 30, 31, { c: 3, read: 'a' }), // not applied yet
    op('get', 'k', 500, 501, { c: 3, read: 'b' }), // applied long after the client gave up
    op('get', 'k', 600, 601, { c: 1, read: 'b' }),
  ];
  t.same(checkLinearizable(h), { ok: true });
});

t.test('an unknown-outcome put that never becomes visible passes', async (t) => {
  const h = [
    op('put', 'k', 0, 10, { c: 1, value: 'a' }),
    op('put', 'k', 20, null, { c: 2, value: 'b' }),
    op('get', 'k', 30, 31, { c: 3, read: 'a' }),
    op('get', 'k', 500, 501, { c: 3, read: 'a' }),
  ];
  t.same(checkLinearizable(h), { ok: true });
});

t.test('an unknown-outcome put cannot take effect before it was invoked', async (t) => {
  const h = [op('get', 'k', 0, 5, { c: 1, read: 'b' }), op('put', 'k', 20, null, { c: 2, value: 'b' })];
  t.equal(checkLinearizable(h).ok, false);
});

t.test('an unknown-outcome put takes effect at most once', async (t) => {
  const h = [
    op('put', 'k', 0, null, { c: 1, value: 'b' }),
    op('get', 'k', 10, 11, { c: 2, read: 'b' }),
    op('put', 'k', 20, 21, { c: 2, value: 'c' }),
    op('get', 'k', 30, 31, { c: 2, read: 'b' }),
  ];
  t.equal(checkLinearizable(h).ok, false);
});

t.test('cas semantics', async (t) => {
  t.same(
    checkLinearizable([
      op('cas', 'k', 0, 1, { value: 'a', expected: null, ok: true }),
      op('cas', 'k', 2, 3, { value: 'b', expected: null, ok: false }),
      op('cas', 'k', 4, 5, { value: 'c', expected: 'a', ok: true }),
      op('cas', 'k', 6, 7, { value: 'd', expected: 'a', ok: false }),
      op('get', 'k', 8, 9, { read: 'c' }),
    ]),
    { ok: true },
    'create-if-missing, compare, and mismatches behave',
  );
  t.equal(
    checkLinearizable([op('put', 'k', 0, 1, { value: 'a' }), op('cas', 'k', 2, 3, { value: 'b', expected: 'x', ok: true })]).ok,
    false,
    'a cas that succeeds against the wrong value fails',
  );
  t.equal(
    checkLinearizable([op('put', 'k', 0, 1, { value: 'a' }), op('cas', 'k', 2, 3, { value: 'b', expected: 'a', ok: false })]).ok,
    false,
    'a cas that fails although the value matched fails',
  );
  t.equal(
    checkLinearizable([
      op('cas', 'k', 0, 10, { c: 1, value: 'a', expected: null, ok: true }),
      op('cas', 'k', 0, 10, { c: 2, value: 'b', expected: null, ok: true }),
    ]).ok,
    false,
    'two concurrent create-if-missing cas cannot both win',
  );
  t.same(
    checkLinearizable([
      op('cas', 'k', 0, 10, { c: 1, value: 'a', expected: null, ok: true }),
      op('cas', 'k', 0, 10, { c: 2, value: 'b', expected: null, ok: false }),
      op('get', 'k', 11, 12, { read: 'a' }),
    ]),
    { ok: true },
    'one concurrent create-if-missing cas wins',
  );
  t.same(
    checkLinearizable([
      op('put', 'k', 0, 1, { value: 'a' }),
      op('cas', 'k', 2, null, { value: 'b', expected: 'a' }),
      op('get', 'k', 50, 51, { read: 'b' }),
    ]),
    { ok: true },
    'an unknown cas may have succeeded',
  );
  t.equal(
    checkLinearizable([
      op('put', 'k', 0, 1, { value: 'a' }),
      op('cas', 'k', 2, null, { value: 'b', expected: 'x' }),
      op('get', 'k', 50, 51, { read: 'b' }),
    ]).ok,
    false,
    'an unknown cas cannot succeed against the wrong value',
  );
});

t.test('delete then get returns null', async (t) => {
  t.same(
    checkLinearizable([
      op('put', 'k', 0, 1, { value: 'a' }),
      op('delete', 'k', 2, 3),
      op('get', 'k', 4, 5, { read: null }),
      op('cas', 'k', 6, 7, { value: 'b', expected: null, ok: true }),
    ]),
    { ok: true },
  );
  const f = failure(checkLinearizable([op('put', 'k', 0, 1, { value: 'a' }), op('delete', 'k', 2, 3), op('get', 'k', 4, 5, { read: 'a' })]));
  t.ok(f, 'reading the deleted value fails');
  t.match(f?.explanation ?? '', /the key is missing/);
});

t.test('independent keys are checked separately', async (t) => {
  // As a single register this would be a stale read; as two keys it is fine.
  t.same(
    checkLinearizable([
      op('put', 'a', 0, 1, { value: '1' }),
      op('put', 'b', 2, 3, { value: '2' }),
      op('get', 'a', 4, 5, { read: '1' }),
      op('get', 'b', 6, 7, { read: '2' }),
    ]),
    { ok: true },
  );
  const f = failure(
    checkLinearizable([
      op('put', 'a', 0, 1, { value: '1' }),
      op('put', 'b', 0, 1, { value: '1' }),
      op('put', 'b', 2, 3, { value: '2' }),
      op('get', 'b', 4, 5, { read: '1' }),
      op('get', 'a', 4, 5, { read: '1' }),
    ]),
  );
  t.equal(f?.key, 'b', 'the failing key is reported');
  t.notMatch(f?.explanation ?? '', /key "a"/);
});

t.test('rejected writes and failed reads do not constrain the history', async (t) => {
  t.same(
    checkLinearizable([
      op('put', 'k', 0, 1, { value: 'a' }),
      op('put', 'k', 2, 3, { value: 'b', ok: false }),
      { ...op('get', 'k', 4, 5), result: { ok: false } },
      op('get', 'k', 6, 7, { read: 'a' }),
      op('get', 'k', 8, null, { read: 'zzz' }),
    ]),
    { ok: true },
  );
});

t.test('malformed operations are rejected', async (t) => {
  t.throws(() => checkLinearizable([op('put', 'k', 5, 1, { value: 'a' })]), /before invokeMs/);
  t.throws(() => checkLinearizable([op('put', 'k', 0, 1)]), /needs a string value/);
  t.throws(() => checkLinearizable([op('cas', 'k', 0, 1, { value: 'a' })]), /cas needs expected/);
});

t.test('HistoryRecorder records with the injected clock', async (t) => {
  let now = 100;
  const rec = new HistoryRecorder(() => now);
  const p = rec.invoke(1, { kind: 'put', key: 'k', value: 'a' });
  now = 110;
  const g = rec.invoke(2, { kind: 'get', key: 'k' });
  now = 120;
  p.complete({ ok: true });
  g.complete({ ok: true, value: 'a' });
  const lost = rec.invoke(3, { kind: 'put', key: 'k', value: 'b' });
  now = 130;
  lost.unknown();
  rec.invoke(3, { kind: 'delete', key: 'k' }); // never settled: reported as unknown
  t.throws(() => p.complete({ ok: true }), /already settled/);
  const h = rec.history();
  t.equal(rec.size, 4);
  t.same(
    h.map((o) => [o.clientId, o.kind, o.invokeMs, o.completeMs]),
    [
      [1, 'put', 100, 120],
      [2, 'get', 110, 120],
      [3, 'put', 120, null],
      [3, 'delete', 130, null],
    ],
  );
  t.same(h[1]?.result, { ok: true, value: 'a' });
  t.same(checkLinearizable(h), { ok: true });
});

/** The randomized workloads: 1-3 keys, 2-6 clients, 60-180 ops, some with unknown outcomes. */
function randomHistory(seed: number, unknownRate: number): History {
  return simulate(seed, { clients: 2 + (seed % 5), keys: 1 + (seed % 3), ops: 60 + (seed % 7) * 20, unknownRate });
}

t.test('randomized: histories from a sequential simulation all pass', async (t) => {
  let n = 0;
  for (let seed = 1; seed <= 150; seed++) {
    const rate = [0, 0.3, 0, 0.1][seed % 4]!;
    const r = checkLinearizable(randomHistory(seed, rate), { timeoutMs: 10_000 });
    if (r.ok !== true) {
      t.fail(`seed ${seed} (unknown rate ${rate}) should be linearizable`, { result: r });
      return;
    }
    n++;
  }
  t.equal(n, 150, 'all simulated histories are linearizable');
});

t.test('randomized: a read of a never-written value makes a simulated history fail', async (t) => {
  let failed = 0;
  for (let seed = 1; seed <= 150; seed++) {
    const h = randomHistory(seed, seed % 2 === 0 ? 0.1 : 0);
    const gets = h.filter((o) => o.kind === 'get' && o.completeMs !== null);
    const victim = gets[Math.floor(prng(seed * 7919)() * gets.length)];
    if (victim === undefined) continue;
    victim.result = { ok: true, value: 'never-written' };
    const m = failure(checkLinearizable(h, { timeoutMs: 10_000 }));
    if (m === undefined || m.key !== victim.key || !/read "never-written"/.test(m.explanation)) {
      t.fail(`seed ${seed}: mutated history should fail on key ${victim.key} naming the bad read`, { explanation: m?.explanation });
      return;
    }
    failed++;
  }
  t.ok(failed > 100, `${failed} mutated histories failed as expected`);
});

/** Reference checker: tries every subset of unknown ops and every real-time-respecting order. */
function bruteForce(history: History): boolean {
  const ops = history.filter((o) => o.completeMs !== null || o.kind !== 'get');
  const unknown = ops.filter((o) => o.completeMs === null);
  const known = ops.filter((o) => o.completeMs !== null);
  const before = (a: Operation, b: Operation): boolean => a.completeMs !== null && a.completeMs < b.invokeMs;
  const search = (state: string | null, left: Operation[]): boolean => {
    if (left.every((o) => o.completeMs === null)) return true;
    for (const o of left) {
      if (left.some((p) => p !== o && before(p, o))) continue; // something must precede o
      let next: string | null | undefined;
      if (o.kind === 'put') next = o.result.ok || o.completeMs === null ? o.value! : state;
      else if (o.kind === 'delete') next = o.result.ok || o.completeMs === null ? null : state;
      else if (o.kind === 'get') next = o.result.ok && (o.result.value ?? null) !== state ? undefined : state;
      else {
        const match = state === o.expected;
        if (o.completeMs === null) next = match ? o.value! : state;
        else next = o.result.ok === match ? (match ? o.value! : state) : undefined;
      }
      if (next !== undefined && search(next, left.filter((p) => p !== o))) return true;
    }
    return false;
  };
  for (let mask = 0; mask < 1 << unknown.length; mask++) {
    if (search(null, [...known, ...unknown.filter((_, i) => mask & (1 << i))])) return true;
  }
  return false;
}

t.test('agrees with a brute-force checker on small random histories', async (t) => {
  const counts = { linearizable: 0, not: 0 };
  for (let seed = 1; seed <= 3000; seed++) {
    const rnd = prng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const h: Operation[] = [];
    const n = 3 + Math.floor(rnd() * 6);
    for (let i = 0; i < n; i++) {
      const kind = pick(['put', 'put', 'get', 'get', 'cas', 'delete'] as const);
      const invoke = Math.floor(rnd() * 20);
      const complete = rnd() < 0.35 ? null : invoke + Math.floor(rnd() * 8);
      const spec: OpSpec = { c: i, ok: rnd() < 0.8 };
      if (kind === 'put' || kind === 'cas') spec.value = pick(['x', 'y', 'z', `u${i}`]);
      if (kind === 'cas') spec.expected = pick([null, 'x', 'y']);
      if (kind === 'get') spec.read = pick([null, 'x', 'y', 'z']);
      h.push(op(kind, 'k', invoke, complete, spec));
    }
    const expected = bruteForce(h);
    const got = checkLinearizable(h).ok;
    if (got !== expected) {
      t.fail(`seed ${seed}: checker says ${String(got)}, brute force says ${String(expected)}`, { history: h });
      return;
    }
    counts[expected ? 'linearizable' : 'not']++;
  }
  t.comment(`${counts.linearizable} linearizable, ${counts.not} not`);
  t.ok(counts.linearizable > 100 && counts.not > 100, 'both verdicts are exercised');
});

t.test('performance: 2,000 ops over 10 keys with 8 concurrent clients', async (t) => {
  const h = simulate(424242, { clients: 8, keys: 10, ops: 2000, unknownRate: 0.05 });
  t.equal(h.length, 2000);
  const start = performance.now();
  const r = checkLinearizable(h, { timeoutMs: 30_000 });
  const ms = performance.now() - start;
  t.same(r, { ok: true });
  t.comment(`checked ${h.length} ops in ${ms.toFixed(1)} ms`);
  t.ok(ms < 10_000, `under 10 s (took ${ms.toFixed(1)} ms)`);
});

t.test('many unknown-outcome writes do not blow up a failing check', async (t) => {
  const h: Operation[] = [op('put', 'k', 0, 1, { c: 0, value: 'a' })];
  for (let i = 0; i < 40; i++) {
    h.push(op(i % 3 === 0 ? 'delete' : 'put', 'k', 2 + i, null, { c: 1 + i, value: i % 3 === 0 ? undefined : `lost-${i}` }));
    h.push(op('get', 'k', 2 + i, 3 + i, { c: 100, read: 'a' }));
  }
  h.push(op('put', 'k', 50, 51, { c: 0, value: 'b' }), op('get', 'k', 60, 61, { c: 100, read: 'a' }));
  const start = performance.now();
  const r = checkLinearizable(h, { timeoutMs: 20_000 });
  t.comment(`decided in ${(performance.now() - start).toFixed(1)} ms`);
  t.equal(r.ok, false);
  t.match(failure(r)?.explanation ?? '', /read "a" but the key is "b"/);
});

t.test('a timeout yields ok: unknown', async (t) => {
  const h = simulate(7, { clients: 8, keys: 1, ops: 2000, unknownRate: 0 });
  let tick = 0;
  const r = checkLinearizable(h, { timeoutMs: 0, now: () => tick++ });
  t.same(r, { ok: 'unknown', reason: 'timeout' });
});
