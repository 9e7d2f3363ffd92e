// KV entries from Consul's JSON and the `kv get` output formats.
import t from 'tap';
import { parseJsonLossless } from '../lib/lossless-json.ts';
import { decodeBase64Strict, formatDetailed, formatDetailedBlocks, formatKeyValueLines, formatValue, parseKvEntries } from './kv-entries.ts';

const body = '[{"LockIndex":0,"Key":"app/cfg","Flags":18446744073709551615,"Value":"aGVsbG8=","CreateIndex":5,"ModifyIndex":9},'
  + '{"LockIndex":2,"Key":"app/empty","Flags":0,"Value":null,"CreateIndex":6,"ModifyIndex":6,"Session":"adf4238a-882b-9ddc-4a9d-5b6758e4159e"}]';

t.test('parseKvEntries decodes values and keeps uint64 fields exact', async (t) => {
  const [cfg, empty] = parseKvEntries(parseJsonLossless(body));
  t.same(cfg, { key: 'app/cfg', value: Buffer.from('hello'), flags: '18446744073709551615', createIndex: '5', modifyIndex: '9', lockIndex: '0', session: '' });
  t.equal(empty!.value, null);
  t.equal(empty!.session, 'adf4238a-882b-9ddc-4a9d-5b6758e4159e');
  t.equal(empty!.lockIndex, '2');
});

t.test('parseKvEntries rejects bodies that are not KV entries', async (t) => {
  t.throws(() => parseKvEntries({}), TypeError);
  t.throws(() => parseKvEntries([{ Value: 'eA==' }]), TypeError);
  t.throws(() => parseKvEntries([{ Key: 'k', Value: 5 }]), TypeError);
  t.throws(() => parseKvEntries([{ Key: 'k', Flags: -1 }]), TypeError);
});

t.test('formats', async (t) => {
  const [cfg, empty] = parseKvEntries(parseJsonLossless(body));
  t.equal(formatValue(cfg!, false).toString(), 'hello\n');
  t.equal(formatValue(cfg!, true).toString(), 'aGVsbG8=\n');
  t.equal(formatValue(empty!, false).toString(), '\n');
  t.equal(formatKeyValueLines([cfg!, empty!], false).toString(), 'app/cfg:hello\napp/empty:\n');
  t.equal(formatDetailed(cfg!, false).toString(), [
    'CreateIndex      5',
    'Flags            18446744073709551615',
    'Key              app/cfg',
    'LockIndex        0',
    'ModifyIndex      9',
    'Session          -',
    'Value            hello',
    '',
  ].join('\n'));
  t.match(formatDetailed(empty!, true).toString(), /^Session {10}adf4238a-882b-9ddc-4a9d-5b6758e4159e\nValue {12}\n$/m);
  t.equal(formatDetailedBlocks([cfg!, empty!], false).toString().split('\n\n').length, 2, 'blocks separated by an empty line');
});

t.test('values are binary-safe', async (t) => {
  const bytes = Buffer.from([0, 255, 10, 13, 0x80]);
  const [entry] = parseKvEntries([{ Key: 'b', Value: bytes.toString('base64') }]);
  t.same(formatValue(entry!, false), Buffer.concat([bytes, Buffer.from('\n')]));
});

t.test('decodeBase64Strict', async (t) => {
  t.same(decodeBase64Strict('aGVsbG8='), Buffer.from('hello'));
  t.same(decodeBase64Strict('aGVs\nbG8=\n'), Buffer.from('hello'), 'line wraps are ignored');
  t.same(decodeBase64Strict(''), Buffer.alloc(0));
  t.equal(decodeBase64Strict('aGVsbG8'), null, 'missing padding');
  t.equal(decodeBase64Strict('aGV*bG8='), null);
  t.equal(decodeBase64Strict('aGVsbG8=='), null);
});
