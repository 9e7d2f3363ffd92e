// The snapshot byte format: exact, checksummed, and faithful for every kind of string and number.
import t from 'tap';
import { crc32, decodeSnapshot, encodeSnapshot, SnapshotFormatError, type FsmState } from './snapshot.ts';

const bytes = (s: string) => new TextEncoder().encode(s);

t.test('the checksum is CRC-32 as zlib computes it', async (t) => {
  t.equal(crc32(bytes('123456789')), 0xcbf43926, 'the standard check value');
  t.equal(crc32(new Uint8Array(0)), 0);
  for (const length of [1, 7, 8, 9, 63, 64, 65, 1000]) {
    const data = Uint8Array.from({ length }, (_, i) => (i * 131 + 7) & 255);
    t.equal(crc32(data), crcBitByBit(data), `length ${length}`);
  }
});

t.test('keys, sessions and values of every shape survive encode then decode', async (t) => {
  const longAscii = 'k/'.repeat(100);
  const longUnicode = '\u00e9\u4e2d\u{1F600}'.repeat(30);
  const state: FsmState = {
    appliedIndex: 2 ** 53 - 1,
    kv: {
      index: 77,
      entries: [
        { Key: '', CreateIndex: 1, ModifyIndex: 1, LockIndex: 0, Flags: 0n, Value: new Uint8Array(0) },
        { Key: 'a\u00e9', CreateIndex: 2, ModifyIndex: 3, LockIndex: 4, Flags: 2n ** 64n - 1n, Value: bytes('x'), Session: 'sess-\u00e9' },
        { Key: longAscii, CreateIndex: 5, ModifyIndex: 5, LockIndex: 0, Flags: 1n, Value: new Uint8Array(70_000).fill(255) },
        { Key: 'z' + longUnicode, CreateIndex: 6, ModifyIndex: 6, LockIndex: 0, Flags: 0n, Value: bytes(longUnicode) },
      ],
      tombstones: [
        { key: 'gone', index: 9 },
        { key: 'gone/\u{1F600}', index: 10 },
      ],
    },
  };
  const encoded = encodeSnapshot(state);
  t.same(decodeSnapshot(encoded), state);
  t.same(encodeSnapshot(decodeSnapshot(encoded)), encoded);
});

t.test('entries out of key order are refused (they would break the sorted index)', async (t) => {
  const state: FsmState = {
    appliedIndex: 2,
    kv: {
      index: 2,
      entries: [
        { Key: 'b', CreateIndex: 1, ModifyIndex: 1, LockIndex: 0, Flags: 0n, Value: new Uint8Array(0) },
        { Key: 'a', CreateIndex: 2, ModifyIndex: 2, LockIndex: 0, Flags: 0n, Value: new Uint8Array(0) },
      ],
      tombstones: [],
    },
  };
  t.throws(() => decodeSnapshot(encodeSnapshot(state)), SnapshotFormatError);
});

function crcBitByBit(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? 0xedb88320 ^ (crc >>> 1) : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}
