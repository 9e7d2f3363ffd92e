// Key order: code points, as UTF-8 bytes sort.
import t from 'tap';
import { compareKeys } from './sorted-keys.ts';

const byUtf8 = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

t.test('compareKeys orders strings by their UTF-8 bytes', async (t) => {
  const samples = ['', 'a', 'ab', 'b', 'z', '\u00e9', '\u07ff', '\u0800', '\ud7ff', '\ue000', '\uffff', '\u{10000}', '\u{1F600}', '\u{10FFFF}', 'a\u{10000}', 'a\uffff'];
  for (const a of samples) {
    for (const b of samples) t.equal(Math.sign(compareKeys(a, b)), Math.sign(byUtf8(a, b)), `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
  }
});
