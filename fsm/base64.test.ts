// Base64 as Consul writes KV values: standard alphabet, padded, and strictly decoded.
import t from 'tap';
import { Prng } from '../raft/core/prng.ts';
import { decodeBase64, encodeBase64 } from './base64.ts';

t.test('encodes like Node (the reference) for every length remainder', async (t) => {
  const random = new Prng(7);
  for (let length = 0; length < 200; length++) {
    const bytes = Uint8Array.from({ length }, () => random.int(256));
    t.equal(encodeBase64(bytes), Buffer.from(bytes).toString('base64'), `length ${length}`);
  }
});

t.test('decodes what it encodes', async (t) => {
  const random = new Prng(8);
  for (let length = 0; length < 200; length++) {
    const bytes = Uint8Array.from({ length }, () => random.int(256));
    t.same(decodeBase64(encodeBase64(bytes)), bytes, `length ${length}`);
  }
});

t.test('round-trips a 512 KiB value (the largest Consul accepts)', async (t) => {
  const random = new Prng(9);
  const bytes = Uint8Array.from({ length: 512 * 1024 }, () => random.int(256));
  const text = encodeBase64(bytes);
  t.equal(text, Buffer.from(bytes).toString('base64'));
  const decoded = decodeBase64(text);
  t.ok(decoded !== null && Buffer.from(bytes).equals(decoded), 'decodes to the same bytes');
});

t.test('refuses anything but canonical padded base64', async (t) => {
  for (const bad of ['a', 'abc', 'ab=c', 'a===', '====', 'ab\u00e9=', 'YQ', 'YQ=', 'aGVsbG8', 'a b=', '-_-_', 'YR==', 'YWJ=']) {
    t.equal(decodeBase64(bad), null, JSON.stringify(bad));
  }
  t.same(decodeBase64(''), new Uint8Array(0));
  t.same(decodeBase64('YQ=='), new Uint8Array([0x61]));
});
