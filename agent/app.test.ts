// The agent app's pure helpers: cache keys, Consul's wait parameter, Cache-Control directives.
import t from 'tap';
import { cacheKeyOf, parseCacheControl, parseWaitMs } from './app.ts';

t.test('cache keys ignore how a read is made, not what it reads', async (t) => {
  const key = (url: string) => {
    const [path, qs] = url.split('?');
    return cacheKeyOf(path!, new URLSearchParams(qs ?? ''));
  };
  t.equal(key('/v1/health/service/web?cached&index=5&wait=10s&stale'), '/v1/health/service/web');
  t.equal(key('/v1/health/service/web?passing&cached'), key('/v1/health/service/web?cached&passing='), 'a flag with or without "="');
  t.equal(key('/v1/health/service/web?tag=a&dc=dc1'), key('/v1/health/service/web?dc=dc1&tag=a'), 'parameter order');
  t.not(key('/v1/health/service/web?tag=a&tag=b'), key('/v1/health/service/web?tag=a'), 'repeated tags count');
  t.not(key('/v1/kv/a?raw'), key('/v1/kv/a'), 'raw is another answer');
  t.not(key('/v1/health/service/web?passing'), key('/v1/health/service/web'));
});

t.test("Consul's wait parameter", async (t) => {
  t.equal(parseWaitMs(null), 300_000, 'default 5 minutes');
  t.equal(parseWaitMs('10s'), 10_000);
  t.equal(parseWaitMs('250ms'), 250);
  t.equal(parseWaitMs('2m'), 120_000);
  t.equal(parseWaitMs('1m30s'), 90_000);
  t.equal(parseWaitMs('30'), null, 'no unit: Go (and so Consul) refuses it');
  t.equal(parseWaitMs('-1s'), 300_000, 'zero or less means the default, as on the servers');
  t.equal(parseWaitMs('1h'), 600_000, 'capped at 10 minutes');
  t.equal(parseWaitMs('soon'), null);
});

t.test('Cache-Control request directives', async (t) => {
  t.same(parseCacheControl(undefined), { mustRevalidate: false });
  t.same(parseCacheControl('max-age=30'), { maxAgeMs: 30_000, mustRevalidate: false });
  t.same(parseCacheControl('max-age=0, stale-if-error=600, must-revalidate'), { maxAgeMs: 0, staleIfErrorMs: 600_000, mustRevalidate: true });
  t.same(parseCacheControl('Max-Age=5,no-cache'), { maxAgeMs: 5000, mustRevalidate: false });
  t.same(parseCacheControl('max-age=abc'), { mustRevalidate: false }, 'a malformed value is ignored');
});
