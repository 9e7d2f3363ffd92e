// Recoverable deletes through a real Konsul process (docs/adr/0017-kv-recovery.md): deletes and
// overwrites under a kv_recovery prefix are kept, listed and written back with their flags (over
// HTTP and with konsulctl), survive a snapshot and a restart, and are reaped after the retention.
import { writeFileSync } from 'node:fs';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { KONSULCTL_BIN, runCli } from '../../test/kit/cli.ts';
import { removeDir, startServer, tempDataDir, type ServerProcess } from '../../test/kit/server-process.ts';
import { waitFor } from '../../test/kit/wait.ts';

interface Version {
  Key: string;
  Version: number;
  CreateIndex: number;
  ModifyIndex: number;
  Flags: number;
  Value: string | null;
  Size: number;
  Reason: string;
  RetiredIndex: number;
  RetiredAt: string;
  ExpiresAt: string;
}

const dataDir = tempDataDir('konsul-kvrec-');
const configFile = join(dataDir, 'konsul.json');
writeFileSync(
  configFile,
  JSON.stringify({
    snapshot_every_entries: 20,
    snapshot_trailing_entries: 5,
    kv_recovery: [
      { prefix: 'config/', retention: '720h', max_versions: 5 },
      { prefix: 'short/', retention: '3s' },
    ],
  }),
);
let server: ServerProcess;
const start = async () => (server = await startServer({ dataDir, node: 'kvrec', extraArgs: ['--config', configFile] }));

t.before(async () => {
  await start();
  // The leader proposes the configured rules soon after it is elected.
  await waitFor(async () => ((await getJson('/v1/konsul/kv-recovery-rules')) as { Rules: unknown[] }).Rules.length === 2, { what: 'rules in force' });
});
t.teardown(async () => {
  await server.kill9();
  removeDir(dataDir);
});

const http = (path: string, init?: RequestInit) => fetch(`${server.url}${path}`, init);
const put = async (key: string, value: string, query = '') => (await http(`/v1/kv/${key}${query}`, { method: 'PUT', body: value })).text();
const del = async (key: string, query = '') => (await http(`/v1/kv/${key}${query}`, { method: 'DELETE' })).text();
async function getJson(path: string): Promise<unknown> {
  const res = await http(path);
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return res.json();
}
const versionsOf = async (key: string) => (await getJson(`/v1/konsul/kv-recovery/${key}`)) as Version[];
const b64 = (s: string) => Buffer.from(s).toString('base64');

t.test('deletes and overwrites are kept and listed; other keys are not', async (t) => {
  t.equal(await put('config/db', 'v1', '?flags=42'), 'true');
  t.equal(await put('config/db', 'v2', '?flags=18446744073709551615'), 'true');
  t.equal(await put('config/db', 'v2', '?flags=18446744073709551615'), 'true', 'an unchanged write retires nothing');
  t.equal(await del('config/db'), 'true');
  t.equal(await put('plain/x', 'x'), 'true');
  t.equal(await del('plain/x'), 'true');

  const versions = await versionsOf('config/db');
  t.same(versions.map((v) => [v.Value, v.Reason]), [[b64('v2'), 'deleted'], [b64('v1'), 'overwritten']]);
  t.equal(versions[1]!.Flags, 42);
  const raw = await (await http('/v1/konsul/kv-recovery/config/db')).text();
  t.match(raw, /"Flags":18446744073709551615[,}]/, 'Flags keep 64 bits');
  t.ok(Math.abs(Date.parse(versions[0]!.RetiredAt) - Date.now()) < 60_000, 'retired at about now');
  t.ok(Date.parse(versions[0]!.ExpiresAt) - Date.parse(versions[0]!.RetiredAt) === 720 * 3600 * 1000);
  t.equal((await http('/v1/konsul/kv-recovery/plain/x')).status, 404);
  const res = await http('/v1/konsul/kv-recovery/?prefix=config/');
  t.ok(Number(res.headers.get('x-consul-index')) >= 1);
  const listed = (await res.json()) as Version[];
  t.same(listed.map((v) => [v.Key, v.Value, v.Size]), [['config/db', null, 2], ['config/db', null, 2]], 'listings leave values out');
});

t.test('tree deletes and transactions are kept', async (t) => {
  await put('config/tree/a', 'a');
  await put('config/tree/b', 'b');
  t.equal(await del('config/tree/', '?recurse'), 'true');
  await put('config/txn', 'before');
  const txn = await http('/v1/txn', { method: 'PUT', body: JSON.stringify([{ KV: { Verb: 'delete', Key: 'config/txn' } }]) });
  t.equal(txn.status, 200);
  const listed = (await getJson('/v1/konsul/kv-recovery/?prefix=config/t')) as Version[];
  t.same(listed.map((v) => [v.Key, v.Reason]), [['config/tree/a', 'deleted'], ['config/tree/b', 'deleted'], ['config/txn', 'deleted']]);
});

t.test('a version is written back with its flags, and the value it replaced is kept in turn', async (t) => {
  const [, v1] = await versionsOf('config/db');
  const res = await http(`/v1/konsul/kv-recovery/config/db?version=${v1!.Version}`, { method: 'PUT' });
  t.same(await res.json(), { Key: 'config/db', Version: v1!.Version, Written: true });
  const [entry] = (await getJson('/v1/kv/config/db')) as { Value: string; Flags: number }[];
  t.equal(entry!.Value, b64('v1'));
  t.equal(entry!.Flags, 42);
  // Through konsulctl, by ModifyIndex: the deleted v2 with its 64-bit flags.
  await put('config/db', 'v3');
  const out = await runCli(KONSULCTL_BIN, ['--http-addr', `127.0.0.1:${server.port}`, 'kv', 'recover', 'config/db', '--version', String((await versionsOf('config/db')).find((v) => v.Value === b64('v2'))!.Version)]);
  t.equal(out.code, 0, out.stderr);
  t.match(out.stdout, /^Success! Recovered config\/db version \d+\n$/);
  t.match(await (await http('/v1/kv/config/db')).text(), /"Flags":18446744073709551615,"Value":"djI="/);
  t.same((await versionsOf('config/db')).map((v) => v.Reason).slice(0, 2), ['overwritten', 'overwritten'], 'the writes back retired v1 and v3');
  const listing = await runCli(KONSULCTL_BIN, ['--http-addr', `127.0.0.1:${server.port}`, 'kv', 'recover', '--list', 'config/db']);
  const lines = listing.stdout.trim().split('\n');
  t.match(lines[0], /^KEY\s+MODIFY_INDEX\s+REASON\s+RETIRED_AT\s+EXPIRES_AT\s+SIZE\s+FLAGS$/);
  t.equal(lines.length, 1 + (await versionsOf('config/db')).length);
  t.equal((await http('/v1/konsul/kv-recovery/config/db?version=1', { method: 'PUT' })).status, 404, 'an unknown version');
  t.equal((await runCli(KONSULCTL_BIN, ['--http-addr', `127.0.0.1:${server.port}`, 'kv', 'recover', 'config/none'])).code, 1, 'no versions: exit 1');
});

t.test('at most max_versions per key', async (t) => {
  for (let i = 0; i < 8; i++) await put('config/many', `m${i}`);
  t.same((await versionsOf('config/many')).map((v) => Buffer.from(v.Value!, 'base64').toString()), ['m6', 'm5', 'm4', 'm3', 'm2']);
});

t.test('kept versions survive a snapshot and a restart', async (t) => {
  // Enough writes for a snapshot (snapshot_every_entries 20), then a restart from snapshot + log.
  for (let i = 0; i < 60; i++) await put(`filler/k${i}`, 'x');
  await waitFor(async () => readdirSync(join(dataDir, 'raft', 'snapshots')).some((f) => f.endsWith('.snap')), { what: 'a snapshot file' });
  const before = await getJson('/v1/konsul/kv-recovery/?prefix=');
  t.equal(await server.stop(), 0);
  await start();
  t.same(await getJson('/v1/konsul/kv-recovery/?prefix='), before);
  // The versions were retired before the filler writes: with 5 trailing entries kept, only the snapshot holds them.
  t.ok((await versionsOf('config/db')).some((v) => v.Flags === 42), 'flags intact after the restart');
});

t.test('versions are reaped after the retention; purging forgets at once', async (t) => {
  await put('short/k', 'gone soon');
  await del('short/k');
  t.equal((await versionsOf('short/k')).length, 1);
  await waitFor(async () => (await http('/v1/konsul/kv-recovery/short/k')).status === 404, { what: 'the 3s retention to pass', timeoutMs: 20_000 });
  t.ok((await versionsOf('config/db')).length > 0, 'the long retention stays');
  const purge = await http('/v1/konsul/kv-recovery/config/many', { method: 'DELETE' });
  t.same(await purge.json(), { Removed: 5 });
  t.equal((await http('/v1/konsul/kv-recovery/config/many')).status, 404);
});
