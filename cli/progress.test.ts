// Progress lines: a redrawn bar on a terminal, rate-limited plain lines otherwise, nothing at all
// for an operation over within the first interval.
import t from 'tap';
import { formatBytes, formatCount, ProgressLine } from './progress.ts';

function output(isTTY: boolean) {
  const written: string[] = [];
  return { out: { isTTY, columns: 60, write: (text: string) => written.push(text) }, written };
}

t.test('on a terminal: one line redrawn in place, with a bar when the total is known, cleared at the end', async (t) => {
  let now = 0;
  const { out, written } = output(true);
  const progress = new ProgressLine(out, () => now);
  progress.update('Saving: 1 key', 1, 4);
  t.same(written, [], 'nothing within the first 100 ms');
  now = 150;
  progress.update('Saving: 2 keys', 2, 4);
  t.equal(written.length, 1);
  t.equal(written[0], `\r\u001b[K[${'#'.repeat(12)}${'-'.repeat(12)}]  50% Saving: 2 keys`);
  now = 200;
  progress.update('Saving: 3 keys', 3, 4);
  t.equal(written.length, 1, 'at most one redraw per 100 ms');
  now = 400;
  progress.update('a very long line '.repeat(10));
  t.ok(written[1]!.length <= '\r\x1b[K'.length + 59, 'cut to the terminal width');
  progress.finish();
  t.equal(written[2], '\r\x1b[K');
});

t.test('elsewhere: plain lines, at most one every 2 s, with a percentage; nothing to clear', async (t) => {
  let now = 0;
  const { out, written } = output(false);
  const progress = new ProgressLine(out, () => now);
  now = 1000;
  progress.update('Restoring: sent 1 MB', 1, 10);
  t.same(written, []);
  now = 2500;
  progress.update('Restoring: sent 2 MB', 2, 10);
  now = 3000;
  progress.update('Restoring: sent 3 MB', 3, 10);
  now = 5000;
  progress.update('Restoring: waiting');
  progress.finish();
  t.same(written, ['Restoring: sent 2 MB (20%)\n', 'Restoring: waiting\n']);
});

t.test('sizes and counts', async (t) => {
  t.equal(formatBytes(999), '999 B');
  t.equal(formatBytes(1_234_567), '1.2 MB');
  t.equal(formatBytes(155_023_978_000), '155.0 GB');
  t.equal(formatCount(1_000_000), '1,000,000');
});
