// Command-line value parsers: uint64 flags and indexes kept exact, durations as Consul's ?wait takes them.
import t from 'tap';
import { InvalidArgumentError } from 'commander';
import { commanderParser, parseDuration, parsePositiveInt, parseUint64, UsageError } from './args.ts';

t.test('parseUint64 accepts 0 to 2^64-1 and keeps the digits exact', async (t) => {
  t.equal(parseUint64('0', '--flags'), '0');
  t.equal(parseUint64('42', '--flags'), '42');
  t.equal(parseUint64('18446744073709551615', '--flags'), '18446744073709551615');
  t.equal(parseUint64('9007199254740993', '--flags'), '9007199254740993', 'beyond 2^53 is not rounded');
  t.equal(parseUint64('007', '--flags'), '7', 'canonical form');
  t.equal(parseUint64(' 5 ', '--flags'), '5');
});

t.test('parseUint64 rejects negatives, fractions, words and 2^64', async (t) => {
  for (const bad of ['', '-1', '1.5', '1e3', 'abc', '0x10', '18446744073709551616', '99999999999999999999999']) {
    t.throws(() => parseUint64(bad, '--flags'), UsageError, JSON.stringify(bad));
  }
  t.throws(() => parseUint64('18446744073709551616', '--flags'), { message: /--flags must be at most 18446744073709551615/ });
});

t.test('parsePositiveInt', async (t) => {
  t.equal(parsePositiveInt('3', '--count'), 3);
  for (const bad of ['0', '-2', '1.5', 'x', '', '99999999999999999999']) t.throws(() => parsePositiveInt(bad, '--count'), UsageError, bad);
});

t.test('parseDuration reads Go durations as milliseconds', async (t) => {
  t.equal(parseDuration('5m', '--wait'), 300_000);
  t.equal(parseDuration('30s', '--wait'), 30_000);
  t.equal(parseDuration('1m30s', '--wait'), 90_000);
  t.equal(parseDuration('250ms', '--wait'), 250);
  t.equal(parseDuration('1.5s', '--wait'), 1500);
  t.equal(parseDuration('1h', '--wait'), 3_600_000);
  for (const bad of ['', '5', '5x', 'm', '5m ', '-5s', '0s', '1m-3s']) t.throws(() => parseDuration(bad, '--wait'), UsageError, JSON.stringify(bad));
});

t.test('commanderParser turns UsageError into commander\'s InvalidArgumentError', async (t) => {
  const parse = commanderParser(parseUint64);
  t.equal(parse('12'), '12');
  t.throws(() => parse('-1'), InvalidArgumentError);
});
