// The KV API against a real Konsul server (in this process, over a real socket), driven by the npm
// `consul` client (node-consul), a Consul client nobody here wrote.
import Consul from 'consul';
import t from 'tap';
import { startInProcessServer, type InProcessServer } from '../../test/kit/in-process-server.ts';
import { removeDir, tempDataDir } from '../../test/kit/server-process.ts';
import { sleep, waitFor } from '../../test/kit/wait.ts';

let server: InProcessServer;
let consul: Consul;

t.before(async () => {
  server = await startInProcessServer({ config: { nodeName: 'kv-int', dataDir: tempDataDir() } });
  consul = new Consul({ host: '127.0.0.1', port: Number(new URL(server.url).port) });
});

t.teardown(async () => {
  await server.stop();
  removeDir(server.config.dataDir);
});

const http = (path: string, init?: RequestInit) => fetch(`${server.url}${path}`, init);
/** node-consul's kv.get is untyped; the tests name the shape they expect. */
const getAs = async <T>(options: string | { key: string; recurse?: boolean; buffer?: boolean }): Promise<T | undefined> =>
  (await (consul.kv.get as (o: unknown) => Promise<unknown>)(options)) as T | undefined;

t.test('set, get and overwrite a key', async (t) => {
  t.equal(await consul.kv.set('app/name', 'konsul'), true);
  const got = await getAs<{ Key: string; Value: string; CreateIndex: number; ModifyIndex: number; LockIndex: number; Flags: number }>('app/name');
  t.equal(got?.Key, 'app/name');
  t.equal(got?.Value, 'konsul');
  t.equal(got?.LockIndex, 0);
  t.equal(got?.Flags, 0);
  t.equal(got?.CreateIndex, got?.ModifyIndex);
  await consul.kv.set('app/name', 'konsul 2');
  const updated = await getAs<{ Value: string; CreateIndex: number; ModifyIndex: number }>('app/name');
  t.equal(updated?.Value, 'konsul 2');
  t.equal(updated?.CreateIndex, got?.CreateIndex, 'CreateIndex survives updates');
  t.ok(updated!.ModifyIndex > got!.ModifyIndex, 'ModifyIndex grows');
});

t.test('a missing key is undefined (404) and still carries X-Consul-Index', async (t) => {
  t.equal(await getAs('does/not/exist'), undefined);
  const res = await http('/v1/kv/does/not/exist');
  t.equal(res.status, 404);
  t.ok(Number(res.headers.get('x-consul-index')) >= 1);
  t.equal(res.headers.get('x-consul-knownleader'), 'true');
});

t.test('check-and-set: cas=0 creates only, cas=N needs the current ModifyIndex', async (t) => {
  // node-consul reports Consul's `false` as a falsy value; the wire answer is checked with fetch.
  t.equal(await consul.kv.set({ key: 'cas/k', value: 'v1', cas: 0 }), true, 'created');
  t.notOk(await consul.kv.set({ key: 'cas/k', value: 'v2', cas: 0 }), 'exists: create-only fails');
  t.equal(await (await http('/v1/kv/cas/k?cas=0', { method: 'PUT', body: 'v2' })).text(), 'false', 'the wire says false');
  const cur = await getAs<{ ModifyIndex: number }>('cas/k');
  t.notOk(await consul.kv.set({ key: 'cas/k', value: 'v3', cas: cur!.ModifyIndex + 1000 }), 'stale index fails');
  t.equal(await consul.kv.set({ key: 'cas/k', value: 'v3', cas: cur!.ModifyIndex }), true, 'current index wins');
  const after = await getAs<{ Value: string; ModifyIndex: number }>('cas/k');
  t.equal(after?.Value, 'v3');
  t.notOk(await consul.kv.del({ key: 'cas/k', cas: cur!.ModifyIndex }), 'delete with a stale index fails');
  t.equal(await (await http(`/v1/kv/cas/k?cas=${cur!.ModifyIndex}`, { method: 'DELETE' })).text(), 'false');
  t.equal(await consul.kv.del({ key: 'cas/k', cas: after!.ModifyIndex }), true);
  t.equal(await getAs('cas/k'), undefined);
});

t.test('flags keep all 64 bits', async (t) => {
  const res = await http('/v1/kv/flags/max?flags=18446744073709551615', { method: 'PUT', body: 'x' });
  t.equal(await res.text(), 'true');
  const text = await (await http('/v1/kv/flags/max')).text();
  t.match(text, /"Flags":18446744073709551615[,}]/, 'no rounding through a float');
  t.equal(await consul.kv.set({ key: 'flags/small', value: 'x', flags: 42 }), true);
  t.equal((await getAs<{ Flags: number }>('flags/small'))?.Flags, 42);
});

t.test('recurse, keys and separator', async (t) => {
  for (const k of ['tree/a', 'tree/b/1', 'tree/b/2', 'tree/c/x/y']) await consul.kv.set(k, k);
  const all = await getAs<{ Key: string }[]>({ key: 'tree/', recurse: true });
  t.same(all?.map((e) => e.Key), ['tree/a', 'tree/b/1', 'tree/b/2', 'tree/c/x/y'], 'sorted by key');
  t.same(await consul.kv.keys('tree/'), ['tree/a', 'tree/b/1', 'tree/b/2', 'tree/c/x/y']);
  t.same(await consul.kv.keys({ key: 'tree/', separator: '/' }), ['tree/a', 'tree/b/', 'tree/c/']);
  const res = await http('/v1/kv/tree/?recurse');
  const maxModify = Math.max(...((await res.json()) as { ModifyIndex: number }[]).map((e) => e.ModifyIndex));
  t.equal(Number(res.headers.get('x-consul-index')), maxModify, 'a listing answers the highest ModifyIndex under the prefix');
  t.equal((await http('/v1/kv/nothing-here/?keys')).status, 404);
  t.equal((await http('/v1/kv/?keys')).status, 200, 'the root lists, even if it were empty');
});

t.test('delete a key and a whole prefix', async (t) => {
  await consul.kv.set('del/one', '1');
  await consul.kv.set('del/sub/two', '2');
  await consul.kv.set('delx', 'outside the prefix');
  t.equal(await consul.kv.del('del/one'), true);
  t.equal(await getAs('del/one'), undefined);
  t.equal(await consul.kv.del({ key: 'del/', recurse: true }), true);
  t.equal(await getAs({ key: 'del/', recurse: true }), undefined);
  t.ok(await getAs('delx'), 'a key that only shares the prefix text outside the tree survives');
});

t.test('raw values are bytes in, bytes out', async (t) => {
  const bytes = Buffer.from([0, 1, 2, 250, 255, 10, 13]);
  await http('/v1/kv/bin/blob', { method: 'PUT', body: bytes });
  const raw = Buffer.from(await (await http('/v1/kv/bin/blob?raw')).arrayBuffer());
  t.same([...raw], [...bytes]);
  const viaClient = await getAs<{ Value: Buffer }>({ key: 'bin/blob', buffer: true });
  t.same([...viaClient!.Value], [...bytes]);
  await http('/v1/kv/bin/empty', { method: 'PUT' });
  const empty = (await (await http('/v1/kv/bin/empty')).json()) as { Value: unknown }[];
  t.equal(empty[0]!.Value, null, 'an empty value is null, as in Consul');
});

t.test('blocking query on a key wakes on its change, not on other writes', async (t) => {
  await consul.kv.set('watch/me', 'v1');
  const first = await http('/v1/kv/watch/me');
  const index = first.headers.get('x-consul-index')!;
  let answered = false;
  const blocked = http(`/v1/kv/watch/me?index=${index}&wait=5s`).finally(() => (answered = true));
  await server.waitForBlockedQueries(1);
  await consul.kv.set('watch/other', 'noise');
  // Proving that nothing happens takes a window: the noise must not answer the query.
  await sleep(100);
  t.notOk(answered, 'still blocked after a write to another key');
  await consul.kv.set('watch/me', 'v2');
  const res = await blocked;
  const body = (await res.json()) as { Value: string }[];
  t.equal(Buffer.from(body[0]!.Value, 'base64').toString(), 'v2', 'it answered the change instead of the noise');
  t.ok(Number(res.headers.get('x-consul-index')) > Number(index));
});

t.test('blocking query on a missing key wakes when it is created', async (t) => {
  const miss = await http('/v1/kv/later/key');
  t.equal(miss.status, 404);
  const blocked = http(`/v1/kv/later/key?index=${miss.headers.get('x-consul-index')}&wait=5s`);
  await server.waitForBlockedQueries(1);
  await consul.kv.set('later/key', 'here');
  t.equal((await blocked).status, 200);
});

t.test('a blocking query with nothing to wait for ends at its wait time', async (t) => {
  const first = await http('/v1/kv/app/name');
  const started = Date.now();
  const res = await http(`/v1/kv/app/name?index=${first.headers.get('x-consul-index')}&wait=300ms`);
  const elapsed = Date.now() - started;
  t.equal(res.status, 200);
  t.ok(elapsed >= 290 && elapsed < 3000, `returned after ${elapsed} ms`);
  t.equal(res.headers.get('x-consul-index'), first.headers.get('x-consul-index'));
});

t.test('the node-consul watcher sees changes through blocking queries', async (t) => {
  await consul.kv.set('watched', 'a');
  const seen: string[] = [];
  const watch = consul.watch({ method: consul.kv.get, options: { key: 'watched', wait: '5s' } as never, backoffFactor: 100 });
  const done = new Promise<void>((resolve, reject) => {
    watch.on('change', (data: { Value: string } | undefined) => {
      if (data) seen.push(data.Value);
      if (seen.includes('c')) resolve();
    });
    watch.on('error', reject);
  });
  // Each value is written once the watcher is parked on the previous one, so it sees every change.
  await waitFor(() => seen.length === 1 && server.fsm.watches.size >= 1, { what: 'the watcher to see a and block' });
  await consul.kv.set('watched', 'b');
  await waitFor(() => seen.length === 2 && server.fsm.watches.size >= 1, { what: 'the watcher to see b and block' });
  await consul.kv.set('watched', 'c');
  await done;
  watch.end();
  t.same(seen, ['a', 'b', 'c']);
});

t.test('consistency modes', async (t) => {
  await consul.kv.set('mode/k', 'v');
  for (const mode of ['stale', 'consistent']) {
    const res = await http(`/v1/kv/mode/k?${mode}`);
    t.equal(res.status, 200, mode);
    t.equal(res.headers.get('x-consul-effective-consistency'), mode);
  }
  t.equal((await http('/v1/kv/mode/k')).headers.get('x-consul-effective-consistency'), 'leader');
  const conflict = await http('/v1/kv/mode/k?stale&consistent');
  t.equal(conflict.status, 400);
});

t.test('status and agent endpoints', async (t) => {
  const leader = await consul.status.leader();
  t.equal(leader, server.rpcAddress);
  t.same(await consul.status.peers(), [leader]);
  const self = (await consul.agent.self()) as unknown as { Config: { NodeName: string; Datacenter: string } };
  t.equal(self.Config.NodeName, 'kv-int');
  t.equal(self.Config.Datacenter, 'dc1');
});

// (That a server process exits 0 on SIGTERM is test/cluster/harness.int.test.ts's.)
t.test('writes survive a graceful restart', async (t) => {
  await consul.kv.set('persist/me', 'still here');
  await server.stop();
  server = await startInProcessServer({ config: { nodeName: 'kv-int', dataDir: server.config.dataDir } });
  consul = new Consul({ host: '127.0.0.1', port: Number(new URL(server.url).port) });
  t.equal((await getAs<{ Value: string }>('persist/me'))?.Value, 'still here');
  t.equal((await getAs<{ Value: string }>('app/name'))?.Value, 'konsul 2');
});
