import t from 'tap';
import { badRequest } from '../lib/errors.ts';
import { parseQueryOptions, parseUint } from './query-options.ts';

t.test('indexes are unsigned decimal integers', async (t) => {
  t.equal(parseUint('0'), 0);
  t.equal(parseUint('123'), 123);
  for (const bad of ['', '-1', '1.5', 'abc', '0x10', '99999999999999999999']) t.equal(parseUint(bad), null, `"${bad}" is invalid`);
});

t.test('query options', async (t) => {
  const noJitter = () => 0;
  t.same(parseQueryOptions({}, noJitter), { minIndex: 0, waitMs: 300_000, waitBaseMs: 300_000, consistency: 'default' }, 'wait defaults to 5 minutes');
  t.equal(parseQueryOptions({ wait: '20m' }, noJitter).waitMs, 600_000, 'wait is capped at 10 minutes');
  t.equal(parseQueryOptions({ wait: '-1s' }, noJitter).waitMs, 300_000, 'a negative wait (Go parses it, as Consul does) means the default');
  t.equal(parseQueryOptions({ index: '7', wait: '2s' }, noJitter).minIndex, 7);
  t.equal(parseQueryOptions({ stale: '' }).consistency, 'stale');
  t.equal(parseQueryOptions({ consistent: '' }).consistency, 'consistent');
  const jittered = parseQueryOptions({ wait: '16s' }, () => 0.999).waitMs;
  t.ok(jittered > 16_000 && jittered < 17_000, 'jitter adds at most wait/16');
  t.equal(parseQueryOptions({ wait: '16s' }, () => 0.999).waitBaseMs, 16_000, 'the wait before the jitter');
  t.throws(() => parseQueryOptions({ index: 'x' }), badRequest('Invalid index'));
  t.throws(() => parseQueryOptions({ wait: '10 minutes' }), badRequest('Invalid wait time'));
  t.throws(() => parseQueryOptions({ stale: '', consistent: '' }), badRequest('Cannot specify ?stale with ?consistent, conflicting semantics.'));
});
