import t from 'tap';
import { createIndexOf, flagsOf, lockIndexOf, modifyIndexOf, packRecord, recordToEntry, sessionOf, valueEquals, valueLengthOf, valueOf } from './kv-record.ts';

t.test('every field survives packing, at its extremes', async (t) => {
  const big = new Uint8Array(70000).map((_, i) => (i * 31) & 0xff);
  const cases = [
    { fields: { createIndex: 1, modifyIndex: 2, lockIndex: 0, flags: 0n, session: undefined }, value: new Uint8Array(0) },
    { fields: { createIndex: 2 ** 53 - 1, modifyIndex: 2 ** 53 - 2, lockIndex: 2 ** 40 + 7, flags: 2n ** 64n - 1n, session: '11111111-2222-3333-4444-555555555555' }, value: new Uint8Array([0, 255, 128, 10]) },
    { fields: { createIndex: 0x123456789a, modifyIndex: 0xffffffff, lockIndex: 0x100000000, flags: 0x8000000000000001n, session: 's' }, value: big },
    { fields: { createIndex: 5, modifyIndex: 6, lockIndex: 1, flags: 3n, session: 'caf\u00e9-\u{1F600}' }, value: new Uint8Array([1, 2, 3]) },
  ];
  for (const [n, { fields, value }] of cases.entries()) {
    const r = packRecord(fields, value);
    t.equal(createIndexOf(r), fields.createIndex, `${n}: CreateIndex`);
    t.equal(modifyIndexOf(r), fields.modifyIndex, `${n}: ModifyIndex`);
    t.equal(lockIndexOf(r), fields.lockIndex, `${n}: LockIndex`);
    t.equal(flagsOf(r), fields.flags, `${n}: Flags`);
    t.equal(sessionOf(r), fields.session, `${n}: Session`);
    t.equal(valueLengthOf(r), value.length, `${n}: value length`);
    t.same(valueOf(r), value, `${n}: value`);
    t.ok(valueEquals(r, value), `${n}: valueEquals`);
    t.notOk(valueEquals(r, new Uint8Array([...value, 0])), `${n}: a longer value differs`);
    const entry = recordToEntry('k', r);
    t.equal(entry.Key, 'k');
    t.equal('Session' in entry, fields.session !== undefined, `${n}: Session only when locked`);
  }
});

t.test('a record is one flat one-byte string for the common shapes', async (t) => {
  const r = packRecord({ createIndex: 9, modifyIndex: 9, lockIndex: 0, flags: 0n, session: undefined }, new TextEncoder().encode('hello'));
  t.equal(r.length, 30 + 5, 'header of 30 chars, then the value');
  t.ok([...r].every((c) => c.charCodeAt(0) <= 0xff), 'latin1 chars only');
});
