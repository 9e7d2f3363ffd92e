// JSON parsing that keeps uint64 values (Consul's Flags, indexes) exact.
import t from 'tap';
import { parseJsonLossless, uint64Field } from './lossless-json.ts';

t.test('integers beyond 2^53 become digit strings; everything else parses as JSON.parse does', async (t) => {
  const text = '[{"Flags":18446744073709551615,"ModifyIndex":12,"F":1.5,"E":1e300,"N":-3,"Big":-9007199254740993}]';
  t.same(parseJsonLossless(text), [{ Flags: '18446744073709551615', ModifyIndex: 12, F: 1.5, E: 1e300, N: -3, Big: '-9007199254740993' }]);
  t.equal(parseJsonLossless('9007199254740991'), 9007199254740991, 'MAX_SAFE_INTEGER stays a number');
  t.equal(parseJsonLossless('9007199254740992'), '9007199254740992');
});

t.test('digits inside strings are left alone, including after escaped quotes', async (t) => {
  const text = JSON.stringify({ Key: 'a\\"Flags\\":18446744073709551615 "x" 99999999999999999999', Flags: 1 });
  t.same(parseJsonLossless(text), JSON.parse(text));
  t.same(parseJsonLossless('["\\\\", 18446744073709551615]'), ['\\', '18446744073709551615'], 'an escaped backslash ends before the quote');
});

t.test('invalid JSON still throws', async (t) => {
  t.throws(() => parseJsonLossless('[1,'), SyntaxError);
  t.throws(() => parseJsonLossless('{"a": 99999999999999999999'), SyntaxError);
  t.throws(() => parseJsonLossless('-x'), SyntaxError);
});

t.test('uint64Field reads numbers and digit strings as canonical digits', async (t) => {
  t.equal(uint64Field(0, 'Flags'), '0');
  t.equal(uint64Field(7, 'Flags'), '7');
  t.equal(uint64Field('18446744073709551615', 'Flags'), '18446744073709551615');
  t.equal(uint64Field(undefined, 'Flags'), '0');
  t.equal(uint64Field(null, 'Flags'), '0');
  for (const bad of [-1, 1.5, 'x', true, {}]) t.throws(() => uint64Field(bad, 'Flags'), TypeError);
});
