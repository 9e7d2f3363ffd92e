// Commands: what may enter the Raft log, and how it is encoded.
import t from 'tap';
import { decodeCommand, encodeCommand, InvalidCommandError, kvSetCommand, tryDecodeCommand, validateCommand, type Command } from './commands.ts';

const utf8 = (s: string) => new TextEncoder().encode(s);

t.test('every command type survives encode then decode unchanged', async (t) => {
  const commands: Command[] = [
    { type: 'kvSet', key: 'a/b', value: 'aGVsbG8=', flags: '18446744073709551615' },
    { type: 'kvSet', key: 'a', value: '', flags: '0', cas: 0 },
    { type: 'kvSet', key: 'a', value: '', flags: '0', acquire: 'sess-1' },
    { type: 'kvSet', key: 'a', value: '', flags: '0', release: 'sess-1' },
    { type: 'kvDelete', key: 'a' },
    { type: 'kvDelete', key: 'a', cas: 7 },
    { type: 'kvDeleteTree', prefix: '' },
    { type: 'kvReapTombstones', upToIndex: 100 },
  ];
  for (const command of commands) t.same(decodeCommand(encodeCommand(command)), command, command.type);
});

t.test('the encoding is JSON: readable in a log dump', async (t) => {
  const bytes = encodeCommand({ type: 'kvDelete', key: 'a', cas: 3 });
  t.equal(new TextDecoder().decode(bytes), '{"type":"kvDelete","key":"a","cas":3}');
});

t.test('kvSetCommand base64-encodes the value and writes Flags as a decimal string', async (t) => {
  t.same(kvSetCommand({ key: 'k', value: utf8('hello'), flags: 2n ** 64n - 1n, cas: 4 }), {
    type: 'kvSet',
    key: 'k',
    value: 'aGVsbG8=',
    flags: '18446744073709551615',
    cas: 4,
  });
  t.same(kvSetCommand({ key: 'k', value: new Uint8Array(0) }), { type: 'kvSet', key: 'k', value: '', flags: '0' });
});

t.test('Flags must be a canonical decimal in 0..2^64-1', async (t) => {
  const withFlags = (flags: unknown) => validateCommand({ type: 'kvSet', key: 'k', value: '', flags });
  t.equal(withFlags('0'), null);
  t.equal(withFlags('18446744073709551615'), null);
  for (const bad of ['18446744073709551616', '99999999999999999999', '-1', '01', '1.5', '', ' 1', '0x10', 1, null]) {
    t.not(withFlags(bad), null, `refuses ${JSON.stringify(bad)}`);
  }
});

t.test('cas and upToIndex must be non-negative safe integers', async (t) => {
  for (const bad of [-1, 1.5, 2 ** 53, '3', null]) {
    t.not(validateCommand({ type: 'kvDelete', key: 'k', cas: bad }), null, `cas ${String(bad)}`);
    t.not(validateCommand({ type: 'kvReapTombstones', upToIndex: bad }), null, `upToIndex ${String(bad)}`);
  }
});

t.test('cas, acquire and release are mutually exclusive (Consul: "Conflicting flags")', async (t) => {
  t.match(validateCommand({ type: 'kvSet', key: 'k', value: '', flags: '0', acquire: 's', release: 's' }), /conflicting/);
  t.match(validateCommand({ type: 'kvSet', key: 'k', value: '', flags: '0', cas: 1, release: 's' }), /conflicting/);
});

t.test('keys must be non-empty (prefixes may be empty) and well-formed Unicode', async (t) => {
  t.not(validateCommand({ type: 'kvSet', key: '', value: '', flags: '0' }), null);
  t.not(validateCommand({ type: 'kvDelete', key: '' }), null);
  t.equal(validateCommand({ type: 'kvDeleteTree', prefix: '' }), null);
  t.not(validateCommand({ type: 'kvDelete', key: 'x\udc00' }), null, 'lone low surrogate');
  t.not(validateCommand({ type: 'kvDeleteTree', prefix: '\ud83d' }), null, 'lone high surrogate');
  t.equal(validateCommand({ type: 'kvDelete', key: '\u{1F600}' }), null, 'a surrogate pair is fine');
});

t.test('a field the version does not know is refused, so a newer command is never half-applied', async (t) => {
  t.match(validateCommand({ type: 'kvDeleteTree', prefix: 'a', dryRun: true }), /unknown field dryRun/);
});

t.test('encodeCommand refuses an invalid command instead of logging it', async (t) => {
  t.throws(() => encodeCommand({ type: 'kvSet', key: 'k', value: '***', flags: '0' }), InvalidCommandError);
});

t.test('decodeCommand throws on garbage; tryDecodeCommand reports it', async (t) => {
  t.throws(() => decodeCommand(utf8('nope')), InvalidCommandError);
  t.match(tryDecodeCommand(utf8('nope')), { ok: false, error: String });
  t.match(tryDecodeCommand(utf8('{"type":"kvDelete","key":"a"}')), { ok: true, command: { type: 'kvDelete', key: 'a' } });
});
