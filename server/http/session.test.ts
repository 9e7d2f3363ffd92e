// Sessions and KV locks against a real Konsul server (in this process, over a real socket), driven by the npm `consul` client
// (node-consul) and by raw HTTP where the wire format itself is the point. The server allows TTLs
// from 1 s (config key session_ttl_min_ms) so that expiries take seconds, not tens of seconds.
import Consul from 'consul';
import t from 'tap';
import { startInProcessServer, type InProcessServer } from '../../test/kit/in-process-server.ts';
import { sleep } from '../../test/kit/wait.ts';

const NODE = 'session-int';
let server: InProcessServer;
let consul: Consul;

t.before(async () => {
  server = await startInProcessServer({ config: { nodeName: NODE, sessionTtlMinMs: 1000 } });
  consul = new Consul({ host: '127.0.0.1', port: Number(new URL(server.url).port) });
});

t.teardown(() => server.stop());

const http = (path: string, init?: RequestInit) => fetch(`${server.url}${path}`, init);
const put = (path: string, body?: string) => http(path, { method: 'PUT', ...(body !== undefined ? { body } : {}) });

interface SessionInfo {
  ID: string;
  Name: string;
  Node: string;
  LockDelay: number;
  Behavior: string;
  TTL: string;
  NodeChecks: string[] | null;
  ServiceChecks: { ID: string; Namespace: string }[] | null;
  Checks?: string[];
  CreateIndex: number;
  ModifyIndex: number;
}

interface KvInfo {
  Key: string;
  LockIndex: number;
  Session?: string;
  ModifyIndex: number;
  Value: string | null;
}

async function createSession(body?: object): Promise<string> {
  const res = await put('/v1/session/create', body === undefined ? undefined : JSON.stringify(body));
  if (res.status !== 200) throw new Error(`create failed: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { ID: string }).ID;
}

async function kvGet(key: string): Promise<KvInfo | undefined> {
  const res = await http(`/v1/kv/${key}`);
  if (res.status === 404) return undefined;
  return ((await res.json()) as KvInfo[])[0];
}

const acquire = async (key: string, session: string, value = 'v') => (await put(`/v1/kv/${key}?acquire=${session}`, value)).text();

/** Registers (or updates) a node-level check on this server's node through the catalog API. */
async function registerCheck(checkId: string, status: string): Promise<void> {
  const res = await put('/v1/catalog/register', JSON.stringify({ Node: NODE, Address: '127.0.0.1', SkipNodeUpdate: true, Check: { CheckID: checkId, Name: checkId, Status: status } }));
  if (res.status !== 200) throw new Error(`catalog register failed: ${res.status} ${await res.text()}`);
}

t.test('create with defaults; info, list, node, renew and destroy through node-consul', async (t) => {
  const { ID } = await consul.session.create();
  t.match(ID, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'a UUID');
  const info = (await consul.session.info(ID)) as unknown as SessionInfo;
  t.same(info, {
    ID,
    Name: '',
    Node: NODE,
    LockDelay: 15_000_000_000,
    Behavior: 'release',
    TTL: '',
    NodeChecks: ['serfHealth'],
    ServiceChecks: null,
    CreateIndex: info.CreateIndex,
    ModifyIndex: info.CreateIndex,
  }, "Consul's defaults: this node, serfHealth, 15 s lock-delay, release");
  const list = (await consul.session.list()) as unknown as SessionInfo[];
  t.ok(list.some((s) => s.ID === ID));
  const mine = (await consul.session.node(NODE)) as unknown as SessionInfo[];
  t.ok(mine.some((s) => s.ID === ID));
  const renewed = (await consul.session.renew(ID)) as unknown as SessionInfo[];
  t.same(renewed, [info], 'renew answers a one-element array');
  await consul.session.destroy(ID);
  t.equal(await consul.session.info(ID), undefined, 'gone');
});

t.test('wire formats: create answers {"ID"}, info of an unknown id is [], destroy is true, renew of an unknown one is 404', async (t) => {
  const res = await put('/v1/session/create', JSON.stringify({ Name: 'wire', TTL: '30s', LockDelay: '0.001s', Behavior: 'delete', Checks: [] }));
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /application\/json/);
  const body = await res.text();
  t.match(body, /^\{"ID":"[0-9a-f-]{36}"\}$/);
  const id = (JSON.parse(body) as { ID: string }).ID;
  const info = await http(`/v1/session/info/${id}`);
  t.ok(Number(info.headers.get('x-consul-index')) >= 1);
  const [s] = (await info.json()) as SessionInfo[];
  t.equal(s!.LockDelay, 1_000_000, '0.001s is 1 ms, in nanoseconds');
  t.equal(s!.TTL, '30s');
  t.equal(s!.Behavior, 'delete');
  t.same(s!.NodeChecks, [], 'Checks: [] binds no check at all');
  const unknown = await http('/v1/session/info/00000000-0000-4000-8000-000000000000');
  t.equal(unknown.status, 200);
  t.equal(await unknown.text(), '[]');
  t.ok(Number(unknown.headers.get('x-consul-index')) >= 1, 'X-Consul-Index on an empty answer too');
  const renewUnknown = await put('/v1/session/renew/00000000-0000-4000-8000-000000000000');
  t.equal(renewUnknown.status, 404);
  t.equal(await renewUnknown.text(), "Session id '00000000-0000-4000-8000-000000000000' not found");
  const destroyUnknown = await put('/v1/session/destroy/not-a-session');
  t.equal(destroyUnknown.status, 200);
  t.equal(await destroyUnknown.text(), 'true');
  t.equal(await (await put(`/v1/session/destroy/${id}`)).text(), 'true');
  t.equal((await put('/v1/session/destroy/')).status, 400, 'Missing session');
  t.equal(await (await http('/v1/session/info/')).text(), 'Missing session');
  t.equal(await (await http('/v1/session/node/')).text(), 'Missing node name');
  t.equal((await http('/v1/session/create')).status, 405, 'create is PUT only');
  t.equal((await put('/v1/session/list')).status, 405);
});

t.test('body decoding as Consul: case-insensitive fields, numeric LockDelay, unknown fields ignored', async (t) => {
  const id = await createSession({ name: 'lower', ttl: '10s', lockdelay: 5, behavior: 'delete', Whatever: 1 });
  const [s] = (await (await http(`/v1/session/info/${id}`)).json()) as SessionInfo[];
  t.equal(s!.Name, 'lower');
  t.equal(s!.TTL, '10s');
  t.equal(s!.LockDelay, 5_000_000_000, 'a number below 1000 is seconds');
  t.equal(s!.Behavior, 'delete');
  const ns = await createSession({ LockDelay: 2_000_000_000 });
  const [n] = (await (await http(`/v1/session/info/${ns}`)).json()) as SessionInfo[];
  t.equal(n!.LockDelay, 2_000_000_000, 'larger numbers are nanoseconds');
  await registerCheck('legacy-extra', 'passing');
  const legacy = await createSession({ Checks: ['serfHealth', 'legacy-extra'] });
  const [l] = (await (await http(`/v1/session/info/${legacy}`)).json()) as SessionInfo[];
  t.same(l!.Checks, ['serfHealth', 'legacy-extra'], 'legacy Checks other than the default are kept');
  t.same(l!.NodeChecks, ['serfHealth']);
  const bad = await put('/v1/session/create', '{"Name": ');
  t.equal(bad.status, 400);
  t.match(await bad.text(), /^Request decode failed: /);
  const badDelay = await put('/v1/session/create', JSON.stringify({ LockDelay: '5 seconds' }));
  t.equal(badDelay.status, 400);
  t.equal(await badDelay.text(), 'Request decode failed: time: unknown unit " seconds" in duration "5 seconds"');
  const badName = await put('/v1/session/create', JSON.stringify({ Name: 5 }));
  t.equal(badName.status, 400);
});

t.test("Consul's error texts that clients match on (Patroni: Invalid Session TTL, invalid session)", async (t) => {
  const short = await put('/v1/session/create', JSON.stringify({ TTL: '500ms' }));
  t.equal(short.status, 500);
  t.equal(await short.text(), "Invalid Session TTL '500000000', must be between [1s=24h0m0s]");
  const long = await put('/v1/session/create', JSON.stringify({ TTL: '86401s' }));
  t.equal(await long.text(), "Invalid Session TTL '86401000000000', must be between [1s=24h0m0s]");
  const garbage = await put('/v1/session/create', JSON.stringify({ TTL: 'soon' }));
  t.equal(garbage.status, 500);
  t.equal(await garbage.text(), 'Session TTL \'soon\' invalid: time: invalid duration "soon"');
  await t.rejects(consul.session.create({ ttl: '5ms' }), /Invalid Session TTL/, 'node-consul surfaces the text');
  const behavior = await put('/v1/session/create', JSON.stringify({ Behavior: 'keep' }));
  t.equal(await behavior.text(), "Invalid Behavior setting 'keep'");
  const noNode = await put('/v1/session/create', JSON.stringify({ Node: '' }));
  t.equal(await noNode.text(), 'Must provide Node');
  const ghost = await put('/v1/session/create', JSON.stringify({ Node: 'ghost' }));
  t.equal(ghost.status, 500);
  t.equal(await ghost.text(), 'Missing node registration');
  const unknownCheck = await put('/v1/session/create', JSON.stringify({ NodeChecks: ['serfHealth', 'nope'] }));
  t.equal(await unknownCheck.text(), "Missing check 'nope' registration");
  await registerCheck('broken', 'critical');
  const critical = await put('/v1/session/create', JSON.stringify({ NodeChecks: ['broken'] }));
  t.equal(await critical.text(), "Check 'broken' is in critical state");
  const gone = await createSession();
  await put(`/v1/session/destroy/${gone}`);
  const res = await put(`/v1/kv/patroni/leader?acquire=${gone}`, 'pg1');
  t.equal(res.status, 500);
  t.equal(await res.text(), `invalid session "${gone}"`);
  t.equal(await (await put('/v1/session/create', JSON.stringify({ TTL: '0s' }))).status, 200, 'a zero TTL means none');
});

t.test('KV acquire and release through node-consul: LockIndex, Session, holder re-acquire', async (t) => {
  const { ID: a } = await consul.session.create({ name: 'a' });
  const { ID: b } = await consul.session.create({ name: 'b' });
  t.equal(await consul.kv.set({ key: 'locks/one', value: 'a', acquire: a }), true);
  let entry = (await consul.kv.get('locks/one')) as unknown as KvInfo;
  t.equal(entry.Session, a);
  t.equal(entry.LockIndex, 1);
  t.notOk(await consul.kv.set({ key: 'locks/one', value: 'b', acquire: b }), 'held by a');
  t.equal(await consul.kv.set({ key: 'locks/one', value: 'a2', acquire: a }), true, 'the holder acquires again');
  entry = (await consul.kv.get('locks/one')) as unknown as KvInfo;
  t.equal(entry.LockIndex, 1, 'without a new LockIndex');
  t.equal(entry.Value, 'a2');
  t.notOk(await consul.kv.set({ key: 'locks/one', value: 'x', release: b }), 'b cannot release it');
  t.equal(await consul.kv.set({ key: 'locks/one', value: 'free', release: a }), true);
  entry = (await consul.kv.get('locks/one')) as unknown as KvInfo;
  t.equal(entry.Session, undefined);
  t.equal(entry.LockIndex, 1, 'release leaves LockIndex');
  t.equal(await consul.kv.set({ key: 'locks/one', value: 'b', acquire: b }), true, 'no lock-delay after an explicit release');
  t.equal(((await consul.kv.get('locks/one')) as unknown as KvInfo).LockIndex, 2);
});

t.test('Patroni-style leader key: delete behavior, 1 ms lock-delay, the next candidate takes over', async (t) => {
  const pg1 = await createSession({ Name: 'pg-pg1', TTL: '15.0s', LockDelay: '0.001s', Behavior: 'delete', Checks: [] });
  const pg2 = await createSession({ Name: 'pg-pg2', TTL: '15.0s', LockDelay: '0.001s', Behavior: 'delete', Checks: [] });
  t.equal(await acquire('service/pg/leader', pg1, 'pg1'), 'true');
  t.equal(await acquire('service/pg/leader', pg2, 'pg2'), 'false');
  t.equal((await (await put(`/v1/session/renew/${pg1}`)).json() as SessionInfo[])[0]!.ID, pg1);
  await put(`/v1/session/destroy/${pg1}`);
  t.equal(await kvGet('service/pg/leader'), undefined, 'the leader key is deleted with its session');
  await sleep(5);
  t.equal(await acquire('service/pg/leader', pg2, 'pg2'), 'true', 'after the 1 ms lock-delay the other candidate wins');
  t.equal((await kvGet('service/pg/leader'))!.Session, pg2);
});

t.test('lock-delay: a key released by invalidation cannot be acquired by another session until it ends', async (t) => {
  const holder = await createSession({ LockDelay: '1s' });
  const other = await createSession();
  t.equal(await acquire('delayed/key', holder), 'true');
  const destroyedAt = Date.now();
  await put(`/v1/session/destroy/${holder}`);
  const released = await kvGet('delayed/key');
  t.equal(released!.Session, undefined, 'released');
  t.equal(released!.LockIndex, 1);
  t.equal(await acquire('delayed/key', other), 'false', 'refused during the lock-delay although nobody holds it');
  t.equal((await kvGet('delayed/key'))!.ModifyIndex, released!.ModifyIndex, 'a refused acquire writes nothing');
  t.equal(await (await put('/v1/kv/delayed/key', 'plain')).text(), 'true', 'a plain PUT is not refused');
  while (Date.now() - destroyedAt < 1000) await sleep(50);
  t.equal(await acquire('delayed/key', other), 'true', 'accepted once the lock-delay has passed');
  t.equal((await kvGet('delayed/key'))!.LockIndex, 2);
});

t.test('a bound check turning critical invalidates the session and releases its locks', async (t) => {
  await registerCheck('app', 'passing');
  const bound = await createSession({ NodeChecks: ['serfHealth', 'app'], LockDelay: '0s' });
  const other = await createSession({ LockDelay: '0s' });
  t.equal(await acquire('bound/key', bound), 'true');
  t.equal(await acquire('other/key', other), 'true');
  await registerCheck('app', 'warning');
  t.ok(await consul.session.info(bound), 'warning keeps it');
  await registerCheck('app', 'critical');
  t.equal(await consul.session.info(bound), undefined, 'critical invalidates it');
  t.equal((await kvGet('bound/key'))!.Session, undefined, 'its lock is released');
  t.equal((await kvGet('other/key'))!.Session, other, 'an unbound session keeps its lock');
});

t.test('TTL: a session that is not renewed is destroyed after TTL..2 x TTL and its locks released', async (t) => {
  const renewed = await createSession({ TTL: '1s', LockDelay: '0s' });
  const idle = await createSession({ TTL: '1s', LockDelay: '0s' });
  const createdAt = Date.now();
  t.equal(await acquire('ttl/idle', idle), 'true');
  const keepRenewing = (async () => {
    while (Date.now() - createdAt < 3500) {
      await put(`/v1/session/renew/${renewed}`);
      await sleep(300);
    }
  })();
  await sleep(900);
  t.ok(await consul.session.info(idle), 'still alive before its TTL');
  // Block on the key until the expiry releases it.
  let entry = (await kvGet('ttl/idle'))!;
  while (entry.Session !== undefined && Date.now() - createdAt < 5000) {
    const res = await http(`/v1/kv/ttl/idle?index=${entry.ModifyIndex}&wait=5s`);
    entry = ((await res.json()) as KvInfo[])[0]!;
  }
  const expiredAfter = Date.now() - createdAt;
  t.equal(entry.Session, undefined, `released after ${expiredAfter} ms`);
  t.ok(expiredAfter >= 1000 && expiredAfter < 3500, 'between TTL and 2 x TTL plus the check interval');
  t.equal(await consul.session.info(idle), undefined, 'the idle session is gone');
  await keepRenewing;
  t.ok(await consul.session.info(renewed), 'the renewed session is alive after 3.5 s');
});

t.test('blocking queries: list wakes on a create; info wakes only for its own session', async (t) => {
  const first = await http('/v1/session/list');
  const index = Number(first.headers.get('x-consul-index'));
  const started = Date.now();
  const waiting = http(`/v1/session/list?index=${index}&wait=10s`);
  await server.waitForBlockedQueries(1);
  const id = await createSession({ Name: 'wake' });
  const woke = await waiting;
  t.ok(Date.now() - started < 5000, 'answered at the create');
  t.ok(Number(woke.headers.get('x-consul-index')) > index);
  t.ok(((await woke.json()) as SessionInfo[]).some((s) => s.ID === id));

  const infoIndex = Number((await http(`/v1/session/info/${id}`)).headers.get('x-consul-index'));
  const infoStarted = Date.now();
  const infoWaiting = http(`/v1/session/info/${id}?index=${infoIndex}&wait=500ms`);
  await server.waitForBlockedQueries(1);
  await createSession({ Name: 'unrelated' });
  const unrelated = await infoWaiting;
  t.ok(Date.now() - infoStarted >= 490, 'another session does not wake it: it waits out its wait');
  t.equal(((await unrelated.json()) as SessionInfo[]).length, 1);
  const index2 = Number(unrelated.headers.get('x-consul-index'));
  const destroyWait = http(`/v1/session/info/${id}?index=${index2}&wait=10s`);
  await server.waitForBlockedQueries(1);
  const destroyStarted = Date.now();
  await put(`/v1/session/destroy/${id}`);
  const destroyed = await destroyWait;
  t.ok(Date.now() - destroyStarted < 5000, 'its destroy wakes it');
  t.equal(await destroyed.text(), '[]');
});

t.test('bad input: random create bodies and ids get a 4xx or Consul 500, never a crash', async (t) => {
  let seed = 42;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const values = [null, true, 0, -1, 1e300, 'x', '', '15s', '-5s', '0.001s', '1h', [], ['serfHealth'], [null], [1], {}, { ID: 'x' }, '\ud800'];
  const fields = ['Name', 'Node', 'LockDelay', 'Behavior', 'TTL', 'NodeChecks', 'ServiceChecks', 'Checks', 'ID', 'CreateIndex', 'ttl'];
  const statuses = new Set<number>();
  for (let i = 0; i < 60; i++) {
    const body = i % 10 === 0 ? pick(['{', '[]', '"str"', '42', 'null', '\u0000']) : JSON.stringify(Object.fromEntries(fields.filter(() => random() < 0.3).map((f) => [f, pick(values)])));
    const res = await put('/v1/session/create', body);
    statuses.add(res.status);
    if (![200, 400, 500].includes(res.status)) t.fail(`status ${res.status} for ${body}`);
    if (res.status === 500) t.notMatch(await res.text(), /TypeError|undefined|at /, `a Consul error text, not a crash, for ${body}`);
    else await res.arrayBuffer();
  }
  for (const id of ['%00', '..%2F..', 'a'.repeat(5000), '%E2%82', encodeURIComponent('\u{1F600}')]) {
    t.ok([200, 400, 404].includes((await http(`/v1/session/info/${id}`)).status), `info ${id.slice(0, 20)}`);
    t.ok([200, 400, 404].includes((await put(`/v1/session/renew/${id}`)).status), `renew ${id.slice(0, 20)}`);
    t.ok([200, 400].includes((await put(`/v1/session/destroy/${id}`)).status), `destroy ${id.slice(0, 20)}`);
  }
  t.ok(statuses.has(200) && statuses.has(400), `a mix of answers: ${[...statuses].join(', ')}`);
  t.equal((await http('/v1/status/leader')).status, 200, 'the server is still up');
});
