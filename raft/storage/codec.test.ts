import t from 'tap';
import type { Entry, HardState, SnapshotMeta } from '../core/types.ts';
import {
  decodeEntry,
  decodeHardState,
  decodeLogPosition,
  decodeSnapshotMeta,
  encodeEntry,
  encodeHardState,
  encodeLogPosition,
  encodeSnapshotMeta,
} from './codec.ts';
import { DecodeError } from './errors.ts';

const BIG = 2 ** 53 - 1;

t.test('entries round-trip, both kinds, edge values', async (t) => {
  const entries: Entry[] = [
    { type: 'normal', index: 1, term: 1, data: new Uint8Array(0) },
    { type: 'normal', index: 127, term: 128, data: Uint8Array.from([0, 1, 2, 255]) },
    { type: 'normal', index: 2 ** 32 + 5, term: BIG, data: new Uint8Array(70_000).fill(7) },
    { type: 'confChange', index: 3, term: 2, change: { type: 'addVoter', node: 'n1' } },
    { type: 'confChange', index: 4, term: 2, change: { type: 'removeNode', node: 'nœud-ünïcode' } },
    { type: 'confChange', index: 5, term: 2, change: { type: 'addLearner', node: '' } },
  ];
  for (const e of entries) {
    const decoded = decodeEntry(encodeEntry(e));
    t.same(decoded, e, `${e.type} ${e.index}`);
    if (decoded.type === 'normal') t.equal(decoded.data.constructor, Uint8Array, 'data is a plain Uint8Array');
  }
});

t.test('encoding is compact', async (t) => {
  // 4 checksum + 1 kind + 1 index + 1 term + 100 data
  t.equal(encodeEntry({ type: 'normal', index: 5, term: 2, data: new Uint8Array(100) }).length, 107);
  t.equal(encodeHardState({ term: 3, vote: 'n1', commit: 10 }).length, 9);
});

t.test('hard state, snapshot meta and log position round-trip', async (t) => {
  const states: HardState[] = [
    { term: 0, vote: '', commit: 0 },
    { term: 7, vote: 'n2', commit: 1234567 },
    { term: BIG, vote: 'ñ', commit: BIG },
  ];
  for (const hs of states) t.same(decodeHardState(encodeHardState(hs)), hs);
  const metas: SnapshotMeta[] = [
    { index: 0, term: 0, confState: { voters: [], learners: [] } },
    { index: 10_000, term: 5, confState: { voters: ['a', 'b', 'c'], learners: ['d'] } },
    { index: BIG, term: BIG, confState: { voters: ['x'.repeat(300)], learners: [] } },
  ];
  for (const m of metas) t.same(decodeSnapshotMeta(encodeSnapshotMeta(m)), m);
  t.same(decodeLogPosition(encodeLogPosition({ index: 99, term: 3 })), { index: 99, term: 3 });
});

t.test('refuses to encode numbers it cannot round-trip', async (t) => {
  t.throws(() => encodeEntry({ type: 'normal', index: -1, term: 1, data: new Uint8Array(0) }), RangeError);
  t.throws(() => encodeHardState({ term: 1.5, vote: '', commit: 0 }), RangeError);
  t.throws(() => encodeLogPosition({ index: 2 ** 53, term: 0 }), RangeError);
});

t.test('every flipped bit and every truncation is detected', async (t) => {
  const records = [
    encodeEntry({ type: 'normal', index: 300, term: 4, data: Uint8Array.from([1, 2, 3]) }),
    encodeEntry({ type: 'confChange', index: 301, term: 4, change: { type: 'addVoter', node: 'n3' } }),
    encodeHardState({ term: 4, vote: 'n1', commit: 300 }),
    encodeSnapshotMeta({ index: 300, term: 4, confState: { voters: ['n1'], learners: ['n2'] } }),
  ];
  const decoders = [decodeEntry, decodeEntry, decodeHardState, decodeSnapshotMeta];
  const undetected: string[] = [];
  const detects = (decode: (b: Uint8Array) => unknown, bytes: Uint8Array): boolean => {
    try {
      decode(bytes);
      return false;
    } catch (err) {
      return err instanceof DecodeError;
    }
  };
  let checked = 0;
  records.forEach((record, r) => {
    const decode = decoders[r]!;
    for (let bit = 0; bit < record.length * 8; bit++, checked++) {
      const damaged = Buffer.from(record);
      damaged[bit >> 3]! ^= 1 << (bit & 7);
      if (!detects(decode, damaged)) undetected.push(`record ${r}, bit ${bit}`);
    }
    for (let len = 0; len < record.length; len++, checked++) {
      if (!detects(decode, record.subarray(0, len))) undetected.push(`record ${r} cut to ${len} bytes`);
    }
  });
  t.same(undetected, [], `all ${checked} damaged variants raise DecodeError`);
});

t.test('a record of another kind is refused with a clear message', async (t) => {
  const hs = encodeHardState({ term: 1, vote: '', commit: 0 });
  t.throws(() => decodeEntry(hs), { name: 'DecodeError', message: /expected normal entry or conf-change entry, found hard state/ });
  t.throws(() => decodeSnapshotMeta(encodeLogPosition({ index: 1, term: 1 })), /expected snapshot meta/);
});
