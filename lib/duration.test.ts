// Go's time.ParseDuration and Duration.String (lib/duration.ts), the rules Consul parses and prints durations by.
import t from 'tap';
import { formatGoDuration, formatGoDurationMs, parseGoDuration, parseGoDurationMs } from './duration.ts';

t.test('parses what Go parses, in nanoseconds', async (t) => {
  const cases: [string, number][] = [
    ['0', 0],
    ['0s', 0],
    ['-0', 0],
    ['15s', 15e9],
    ['15.0s', 15e9],
    ['0.001s', 1e6],
    ['1.5s', 1.5e9],
    ['.5m', 30e9],
    ['1.s', 1e9],
    ['1h30m', 5400e9],
    ['+10s', 10e9],
    ['-10s', -10e9],
    ['300ms', 300e6],
    ['500us', 500e3],
    ['500µs', 500e3],
    ['500μs', 500e3],
    ['7ns', 7],
    ['24h', 86400e9],
    ['1h1m1s1ms1us1ns', 3661001001001],
  ];
  for (const [text, ns] of cases) t.same(parseGoDuration(text), { ok: true, ns }, text);
});

t.test("refuses what Go refuses, with Go's texts", async (t) => {
  t.same(parseGoDuration(''), { ok: false, error: 'time: invalid duration ""' });
  t.same(parseGoDuration('abc'), { ok: false, error: 'time: invalid duration "abc"' });
  t.same(parseGoDuration('10'), { ok: false, error: 'time: missing unit in duration "10"' });
  t.same(parseGoDuration('10x'), { ok: false, error: 'time: unknown unit "x" in duration "10x"' });
  t.same(parseGoDuration('10 s'), { ok: false, error: 'time: unknown unit " s" in duration "10 s"' });
  t.same(parseGoDuration('.s'), { ok: false, error: 'time: invalid duration ".s"' });
  t.same(parseGoDuration('-'), { ok: false, error: 'time: invalid duration "-"' });
  t.same(parseGoDuration('3000000h'), { ok: false, error: 'time: invalid duration "3000000h"' }, 'beyond int64 nanoseconds');
});

t.test('formats as Duration.String does', async (t) => {
  const cases: [number, string][] = [
    [0, '0s'],
    [7, '7ns'],
    [1500, '1.5µs'],
    [500e3, '500µs'],
    [1e6, '1ms'],
    [1.5e6, '1.5ms'],
    [250e6, '250ms'],
    [1e9, '1s'],
    [10e9, '10s'],
    [15.5e9, '15.5s'],
    [60e9, '1m0s'],
    [90e9, '1m30s'],
    [3600e9, '1h0m0s'],
    [86400e9, '24h0m0s'],
    [-10e9, '-10s'],
  ];
  for (const [ns, text] of cases) t.equal(formatGoDuration(ns), text, text);
});

t.test('parseGoDurationMs: milliseconds, or null where Go reports an error', async (t) => {
  t.equal(parseGoDurationMs('5m'), 300_000);
  t.equal(parseGoDurationMs('1.5s'), 1500);
  t.equal(parseGoDurationMs('300ms'), 300);
  t.equal(parseGoDurationMs('1h2m'), 3_720_000);
  t.equal(parseGoDurationMs('250us'), 0.25);
  t.equal(parseGoDurationMs('0'), 0);
  t.equal(parseGoDurationMs('-1s'), -1000, 'Go accepts a sign; callers decide what a negative means');
  for (const bad of ['', '5', 'm', '5x', '1s ', ' 1s', '1s2', '1.5.3s', '00']) t.equal(parseGoDurationMs(bad), null, `"${bad}" is invalid`);
});

t.test('formatGoDurationMs rounds to the nanosecond before printing', async (t) => {
  const cases: [number, string][] = [
    [0, '0s'], [0.0005, '500ns'], [0.85, '850µs'], [0.0015, '1.5µs'], [4.123, '4.123ms'], [200, '200ms'], [999.9999, '999.9999ms'],
    [1000, '1s'], [1500, '1.5s'], [10_000, '10s'], [60_000, '1m0s'], [90_000, '1m30s'], [3_600_000, '1h0m0s'], [3_723_004, '1h2m3.004s'],
    [-250, '-250ms'],
  ];
  for (const [ms, text] of cases) t.equal(formatGoDurationMs(ms), text, `${ms} ms`);
});
