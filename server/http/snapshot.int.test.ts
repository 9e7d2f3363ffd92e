// /v1/snapshot against a real Konsul process: save, change everything, restore, and the saved state
// is back (KV and events), blocked watchers wake, it survives kill -9 and a restart from a Raft
// snapshot; damaged or oversized archives are refused and change nothing.
import { gzipSync } from 'node:zlib';
import Consul from 'consul';
import t from 'tap';
import { removeDir, startServer, tempDataDir, type ServerProcess } from '../../test/kit/server-process.ts';

const dataDir = tempDataDir('konsul-snapshot-int-');
let server: ServerProcess;
let consul: Consul;

async function start(): Promise<void> {
  server = await startServer({ dataDir, node: 'snapshot-int' });
  consul = new Consul({ host: '127.0.0.1', port: server.port });
}

t.before(start);
t.teardown(async () => {
  await server.kill9();
  removeDir(dataDir);
});

const http = (path: string, init?: RequestInit) => fetch(`${server.url}${path}`, init);
const value = async (key: string): Promise<string | undefined> => ((await consul.kv.get(key)) as { Value: string } | undefined)?.Value;
const eventNames = async (): Promise<string[]> => ((await consul.event.list()) as { Name: string }[]).map((e) => e.Name);

async function save(): Promise<{ archive: Buffer; index: number }> {
  const res = await http('/v1/snapshot');
  t.equal(res.status, 200);
  t.equal(res.headers.get('content-type'), 'application/x-gzip');
  return { archive: Buffer.from(await res.arrayBuffer()), index: Number(res.headers.get('x-consul-index')) };
}

const restore = (archive: Uint8Array) => http('/v1/snapshot', { method: 'PUT', body: archive });

/** A ustar header announcing `size` bytes (12 octal digits reach 64 GiB), with no data after it. */
function tarHeader(name: string, size: number): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0);
  header.write('0000600\0', 100);
  header.write(size.toString(8).padStart(12, '0'), 124);
  header.write('        ', 148);
  header.write('0', 156);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return header;
}

let saved: Buffer;

t.test('save, change everything, restore: the saved state is back', async (t) => {
  await consul.kv.set('app/config', 'v1');
  await consul.kv.set('app/doomed', 'here');
  await consul.kv.set({ key: 'app/flags', value: 'f', flags: 7 } as never);
  await consul.event.fire('deploy', 'v1');
  const before = (await consul.kv.get('app/config')) as { ModifyIndex: number; CreateIndex: number };
  const { archive, index } = await save();
  saved = archive;
  t.ok(index >= before.ModifyIndex, 'X-Consul-Index: the applied index the snapshot was taken at');

  await consul.kv.set('app/config', 'v2');
  await consul.kv.del('app/doomed');
  await consul.kv.set('app/new', 'after the snapshot');
  await consul.event.fire('deploy', 'v2');
  await consul.event.fire('rollback');

  // A blocked watcher on a key the restore changes, and one on a key it does not touch.
  const configIndex = (await http('/v1/kv/app/config')).headers.get('x-consul-index');
  const blockedConfig = http(`/v1/kv/app/config?index=${configIndex}&wait=10s`);
  const eventsIndex = (await http('/v1/event/list')).headers.get('x-consul-index');
  const blockedEvents = http(`/v1/event/list?index=${eventsIndex}&wait=10s`);
  await new Promise((r) => setTimeout(r, 100));

  const res = await restore(archive);
  t.equal(res.status, 200);
  t.equal(await res.text(), '', 'Consul answers an empty body');

  t.equal(await value('app/config'), 'v1');
  t.equal(await value('app/doomed'), 'here', 'a key deleted after the snapshot is back');
  t.equal(await value('app/new'), undefined, 'a key written after the snapshot is gone');
  t.equal(((await consul.kv.get('app/flags')) as { Flags: number }).Flags, 7);
  const restored = (await consul.kv.get('app/config')) as { ModifyIndex: number; CreateIndex: number };
  t.same([restored.CreateIndex, restored.ModifyIndex], [before.CreateIndex, before.ModifyIndex], 'entries keep their indexes');
  t.same((await eventNames()).slice(-1), ['deploy']);

  const woke = await blockedConfig;
  t.same(((await woke.json()) as { Value: string }[]).map((e) => Buffer.from(e.Value, 'base64').toString()), ['v1'], 'the blocked watcher woke with the restored value');
  t.equal((await blockedEvents).status, 200, 'event watchers woke too');

  await consul.kv.set('app/after-restore', 'yes');
  t.equal(await value('app/after-restore'), 'yes', 'writes go on after a restore');
});

t.test('the restored state survives kill -9 and a restart', async (t) => {
  await server.kill9();
  await start();
  t.equal(await value('app/config'), 'v1');
  t.equal(await value('app/doomed'), 'here');
  t.equal(await value('app/new'), undefined);
  t.equal(await value('app/after-restore'), 'yes');
  t.same((await eventNames()).slice(-1), ['deploy']);
});

t.test('and a restart from a Raft snapshot taken after the restore', async (t) => {
  t.equal((await http('/v1/cluster/snapshot', { method: 'POST' })).status, 200);
  t.equal(await server.stop(), 0);
  await start();
  t.equal(await value('app/config'), 'v1');
  t.equal(await value('app/new'), undefined);
  t.same((await eventNames()).slice(-1), ['deploy']);
  // The events ring continues after both the restore and the restart.
  const fired = (await consul.event.fire('again')) as { LTime: number };
  t.ok(fired.LTime > 1);
});

t.test('damaged, foreign and oversized archives are refused; nothing changes', async (t) => {
  await consul.kv.set('guard/k', 'untouched');
  const flipped = Buffer.from(saved);
  flipped[flipped.length >> 1]! ^= 0x40;
  const cases: [string, Uint8Array, number, RegExp][] = [
    ['empty', Buffer.alloc(0), 400, /Missing snapshot archive/],
    ['not an archive', Buffer.from('hello'), 400, /not gzip data/],
    ['a flipped bit', flipped, 400, /failed reading snapshot|failed checking integrity/],
    ['truncated', saved.subarray(0, saved.length - 30), 400, /failed reading snapshot/],
    ['gzipped zeros (no tar entries)', gzipSync(Buffer.alloc(8 * 1024 * 1024)), 400, /file missing for "meta.json"/],
    ['a state.bin announced over the restore limit', gzipSync(tarHeader('state.bin', 20 * 1024 ** 3)), 413, /over the .*-byte limit/],
  ];
  for (const [name, body, status, message] of cases) {
    const res = await restore(body);
    t.equal(res.status, status, `${name}: status`);
    t.match(await res.text(), message, `${name}: message`);
  }
  t.equal(await value('guard/k'), 'untouched');
  t.equal(await value('app/config'), 'v1');
  t.equal((await http('/v1/snapshot', { method: 'POST' })).status, 405);
});

t.test('?stale saves from this server\'s own state', async (t) => {
  const res = await http('/v1/snapshot?stale');
  t.equal(res.status, 200);
  t.equal(res.headers.get('x-consul-knownleader'), 'true');
  t.ok(Number(res.headers.get('x-consul-index')) > 0);
});
