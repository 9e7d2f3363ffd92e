// /v1/txn against a real Konsul server (in this process, over a real socket), driven by the npm
// `consul` client (consul.transaction.create) and by raw HTTP where the wire itself is the point.
import Consul from 'consul';
import t from 'tap';
import { startInProcessServer, type InProcessServer } from '../../test/kit/in-process-server.ts';

let server: InProcessServer;
let consul: Consul;

t.before(async () => {
  server = await startInProcessServer({ config: { nodeName: 'txn-int' } });
  consul = new Consul({ host: '127.0.0.1', port: Number(new URL(server.url).port) });
});

t.teardown(() => server.stop());

const http = (path: string, init?: RequestInit) => fetch(`${server.url}${path}`, init);
const b64 = (s: string) => Buffer.from(s).toString('base64');
const put = (body: unknown, query = '') => http(`/v1/txn${query}`, { method: 'PUT', body: typeof body === 'string' ? body : JSON.stringify(body) });

interface KvResult {
  KV: { Key: string; Value: string | null; Flags: number; LockIndex: number; CreateIndex: number; ModifyIndex: number; Session?: string };
}
interface TxnAnswer {
  Results: KvResult[] | null;
  Errors: { OpIndex: number; What: string }[] | null;
}

/** node-consul's transaction.create rejects a 409; the tests look at both outcomes. */
async function create(ops: unknown[]): Promise<{ status: number; body: TxnAnswer }> {
  try {
    return { status: 200, body: (await consul.transaction.create(ops as never)) as TxnAnswer };
  } catch (err) {
    const e = err as { statusCode?: number; response?: { body?: TxnAnswer } };
    if (e.statusCode === undefined) throw err;
    return { status: e.statusCode, body: e.response!.body! };
  }
}

t.test('a write transaction applies every operation and answers Consul\'s result shape', async (t) => {
  const { status, body } = await create([
    { KV: { Verb: 'set', Key: 'txn/a', Value: b64('one'), Flags: 42 } },
    { KV: { Verb: 'set', Key: 'txn/b', Value: b64('two') } },
    { KV: { Verb: 'get', Key: 'txn/a' } },
    { KV: { Verb: 'get-tree', Key: 'txn/' } },
    { KV: { Verb: 'check-not-exists', Key: 'txn/c' } },
  ]);
  t.equal(status, 200);
  t.equal(body.Errors, null);
  const results = body.Results!;
  t.same(results.map((r) => [r.KV.Key, r.KV.Value]), [
    ['txn/a', null],
    ['txn/b', null],
    ['txn/a', b64('one')],
    ['txn/a', b64('one')],
    ['txn/b', b64('two')],
  ]);
  const index = results[0]!.KV.ModifyIndex;
  t.ok(results.every((r) => r.KV.ModifyIndex === index && r.KV.CreateIndex === index), 'one Raft index for the whole transaction');
  t.equal(results[0]!.KV.Flags, 42);
  const got = (await consul.kv.get('txn/a')) as { Value: string; Flags: number } | undefined;
  t.equal(got?.Value, 'one');
  t.equal(got?.Flags, 42);
});

t.test('a failed check rolls everything back: 409 with every error, nothing written', async (t) => {
  await consul.kv.set('roll/k', 'v');
  const before = (await consul.kv.get('roll/k')) as { ModifyIndex: number };
  const { status, body } = await create([
    { KV: { Verb: 'set', Key: 'roll/new', Value: b64('x') } },
    { KV: { Verb: 'delete', Key: 'roll/k' } },
    { KV: { Verb: 'cas', Key: 'roll/k', Value: b64('y'), Index: before.ModifyIndex + 100 } },
    { KV: { Verb: 'check-index', Key: 'roll/k', Index: 1 } },
  ]);
  t.equal(status, 409);
  t.same(body, {
    Results: null,
    Errors: [
      { OpIndex: 2, What: 'failed to set key "roll/k", index is stale' },
      { OpIndex: 3, What: 'failed to check index, key "roll/k" doesn\'t exist' },
    ],
  });
  t.equal(await consul.kv.get('roll/new'), undefined, 'the set was rolled back');
  const after = (await consul.kv.get('roll/k')) as { Value: string; ModifyIndex: number };
  t.equal(after.Value, 'v', 'the delete was rolled back');
  t.equal(after.ModifyIndex, before.ModifyIndex);
});

t.test('cas and delete-cas with the current index; lock with an unknown session fails', async (t) => {
  await consul.kv.set('cas/k', 'v1');
  const cur = (await consul.kv.get('cas/k')) as { ModifyIndex: number };
  const ok = await create([{ KV: { Verb: 'cas', Key: 'cas/k', Value: b64('v2'), Index: cur.ModifyIndex } }]);
  t.equal(ok.status, 200);
  const next = ok.body.Results![0]!.KV.ModifyIndex;
  t.equal((await create([{ KV: { Verb: 'delete-cas', Key: 'cas/k', Index: next } }])).status, 200);
  t.equal(await consul.kv.get('cas/k'), undefined);
  const lock = await create([{ KV: { Verb: 'lock', Key: 'cas/lock', Session: '5a6f7f3e-0000-4000-8000-000000000000' } }]);
  t.equal(lock.status, 409);
  t.match(lock.body.Errors![0]!.What, /^invalid session "5a6f7f3e-0000-4000-8000-000000000000"$/);
});

t.test('lock, check-session and unlock with real sessions; lock-delay after the holder is gone', async (t) => {
  const holder = ((await consul.session.create()) as { ID: string }).ID;
  const other = ((await consul.session.create()) as { ID: string }).ID;
  const locked = await create([
    { KV: { Verb: 'lock', Key: 'lock/leader', Value: b64('me'), Session: holder } },
    { KV: { Verb: 'check-session', Key: 'lock/leader', Session: holder } },
  ]);
  t.equal(locked.status, 200);
  t.match(locked.body.Results![0]!.KV, { Key: 'lock/leader', Session: holder, LockIndex: 1, Value: null });
  const held = await create([{ KV: { Verb: 'lock', Key: 'lock/leader', Session: other } }]);
  t.equal(held.status, 409);
  t.same(held.body.Errors, [{ OpIndex: 0, What: 'failed to lock key "lock/leader", lock is already held' }]);
  t.equal((await create([{ KV: { Verb: 'unlock', Key: 'lock/leader', Value: b64('bye'), Session: holder } }])).status, 200);
  t.equal(((await consul.kv.get('lock/leader')) as { Session?: string }).Session, undefined);
  // Locked again, then the holder's session is destroyed: the key is under the default 15 s lock-delay.
  t.equal((await create([{ KV: { Verb: 'lock', Key: 'lock/leader', Session: holder } }])).status, 200);
  await consul.session.destroy(holder);
  const delayed = await create([{ KV: { Verb: 'lock', Key: 'lock/leader', Session: other } }]);
  t.equal(delayed.status, 409);
  t.same(delayed.body.Errors, [{ OpIndex: 0, What: 'failed to lock key "lock/leader" due to lock delay' }]);
});

t.test('read-only transactions skip Raft: consistency modes, KnownLeader and LastContact, no index', async (t) => {
  await consul.kv.set('ro/k', 'v');
  for (const query of ['', '?stale', '?consistent']) {
    const res = await put([{ KV: { Verb: 'get', Key: 'ro/k' } }], query);
    t.equal(res.status, 200, `status ${query}`);
    t.equal(res.headers.get('x-consul-knownleader'), 'true');
    t.equal(res.headers.get('x-consul-lastcontact'), '0');
    t.equal(res.headers.get('x-consul-index'), null, 'Consul sends no index for a transaction');
    t.equal(((await res.json()) as TxnAnswer).Results![0]!.KV.Value, b64('v'));
  }
  t.equal((await put([{ KV: { Verb: 'get', Key: 'ro/k' } }], '?stale&consistent')).status, 400);
  const miss = await put([{ KV: { Verb: 'get', Key: 'ro/missing' } }]);
  t.equal(miss.status, 409);
  t.same(await miss.json(), { Results: null, Errors: [{ OpIndex: 0, What: 'key "ro/missing" doesn\'t exist' }] });
});

t.test('flags keep all 64 bits through a transaction', async (t) => {
  const res = await put('[{"KV":{"Verb":"set","Key":"flags/max","Flags":18446744073709551615}},{"KV":{"Verb":"get","Key":"flags/max"}}]');
  t.equal(res.status, 200);
  const text = await res.text();
  t.match(text, /"Flags":18446744073709551615,"Value":null/);
  t.match(text, /"Flags":18446744073709551615,"Value":null,"CreateIndex"/);
  t.match(await (await http('/v1/kv/flags/max')).text(), /"Flags":18446744073709551615/);
});

t.test('one blocking watcher wakes once for a transaction that changes several keys', async (t) => {
  await consul.kv.set('many/0', 'x');
  const first = await http('/v1/kv/many/?recurse');
  const index = first.headers.get('x-consul-index')!;
  const blocked = http(`/v1/kv/many/?recurse&index=${index}&wait=5s`);
  await server.waitForBlockedQueries(1);
  const { body } = await create(Array.from({ length: 10 }, (_, i) => ({ KV: { Verb: 'set', Key: `many/${i + 1}`, Value: b64(String(i)) } })));
  const res = await blocked;
  const entries = (await res.json()) as { Key: string }[];
  t.equal(entries.length, 11, 'the wake-up already sees every key of the transaction');
  t.equal(res.headers.get('x-consul-index'), String(body.Results![0]!.KV.ModifyIndex));
});

t.test('Consul\'s limits and errors', async (t) => {
  const tooMany = await put(Array.from({ length: 65 }, () => ({ KV: { Verb: 'get', Key: 'k' } })));
  t.equal(tooMany.status, 413);
  t.equal(await tooMany.text(), 'Transaction contains too many operations (65 > 64)');
  t.equal((await put(Array.from({ length: 64 }, () => ({ KV: { Verb: 'check-not-exists', Key: 'k' } })))).status, 200, '64 is fine');

  const bigValue = await put([{ KV: { Verb: 'set', Key: 'big', Value: Buffer.alloc(300 * 1024).toString('base64') } }, { KV: { Verb: 'set', Key: 'big2', Value: Buffer.alloc(300 * 1024).toString('base64') } }]);
  t.equal(bigValue.status, 413, 'the request body is over 512 KiB');
  t.equal(await bigValue.text(), 'Request body too large, max size: 524288 bytes');

  const badJson = await put('[{"KV":');
  t.equal(badJson.status, 400);
  t.match(await badJson.text(), /^Failed to parse body: /);
  t.equal((await put('{"KV":{}}')).status, 400, 'not an array');
  t.equal((await put([{ KV: { Verb: 'set', Key: 'k', Value: 'not base64!' } }])).status, 400);

  const noKey = await put([{ KV: { Verb: 'set', Value: b64('x') } }]);
  t.equal(noKey.status, 409);
  t.same(await noKey.json(), { Results: null, Errors: [{ OpIndex: 0, What: 'Must provide key' }] });
  const badVerb = await put([{ KV: { Verb: 'frobnicate', Key: 'k' } }]);
  t.equal(badVerb.status, 409);
  t.same(await badVerb.json(), { Results: null, Errors: [{ OpIndex: 0, What: 'unknown KV verb "frobnicate"' }] });

  const node = await put([{ Node: { Verb: 'set', Node: { Node: 'n1', Address: '10.0.0.1' } } }]);
  t.equal(node.status, 400);
  t.match(await node.text(), /Node operations are not supported/);
  t.equal((await put([{ KV: { Verb: 'set', Key: '/leading', Value: b64('x') } }])).status, 400, 'the KV key rules (ADR 0005)');
  t.equal((await http('/v1/txn')).status, 405);
  t.equal((await put('[{"kv":{"verb":"set","key":"lower/case","value":"' + b64('ok') + '"}}]')).status, 200, 'field names match case-insensitively, as Go decodes them');
  t.equal(((await consul.kv.get('lower/case')) as { Value: string }).Value, 'ok');
});
