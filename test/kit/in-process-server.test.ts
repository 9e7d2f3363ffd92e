// The in-process server of the test kit, driven through fastify's inject(): it is a real server
// (Raft writes, blocking reads, the server's own catalog entry, restarts on the same data).
import t from 'tap';
import { startInProcessServer } from './in-process-server.ts';
import { removeDir, tempDataDir } from './server-process.ts';

t.test('a dev server through inject(): writes, reads, headers, errors', async (t) => {
  const server = await startInProcessServer({ config: { nodeName: 'kit-node', kvMaxValueSize: 16 }, t });
  t.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/, 'the API listens on an ephemeral loopback port');
  const leader = await server.get('/v1/status/leader');
  t.equal(leader.status, 200);
  t.equal(leader.json<string>(), server.rpcAddress, 'it leads itself');

  const put = await server.put('/v1/kv/kit/key', 'value');
  t.same([put.status, put.text], [200, 'true']);
  const raw = await server.get('/v1/kv/kit/key?raw');
  t.equal(raw.text, 'value');
  t.equal(raw.headers['x-consul-knownleader'], 'true');
  t.ok(Number(raw.headers['x-consul-index']) > 0, 'X-Consul-Index');
  const entries = (await server.get('/v1/kv/kit/key')).json<{ Key: string; Value: string }[]>();
  t.same(entries.map((e) => [e.Key, Buffer.from(e.Value, 'base64').toString()]), [['kit/key', 'value']]);

  t.equal((await server.put('/v1/kv/kit/big', 'x'.repeat(17))).status, 413, 'kv_max_value_size is enforced');
  t.equal((await server.get('/v1/kv/kit/missing')).status, 404);
  const unknown = await server.get('/v1/nothing-here');
  t.equal(unknown.status, 404);
  t.match(unknown.text, /^Not found: GET \/v1\/nothing-here/);

  const nodes = (await server.get('/v1/catalog/nodes')).json<{ Node: string }[]>();
  t.same(nodes.map((n) => n.Node), ['kit-node'], 'the server registered its own node');
});

t.test('a blocking read parks until a write, and the kit can see it parked', async (t) => {
  const server = await startInProcessServer({ t });
  await server.put('/v1/kv/watched', 'a');
  const index = (await server.get('/v1/kv/watched')).headers['x-consul-index'];
  const blocked = server.get(`/v1/kv/watched?raw&index=${String(index)}&wait=10s`);
  await server.waitForBlockedQueries(1);
  await server.put('/v1/kv/watched', 'b');
  const answer = await blocked;
  t.equal(answer.text, 'b');
  t.ok(Number(answer.headers['x-consul-index']) > Number(index));
});

t.test('a server started again on the same data directory has the same state', async (t) => {
  const dataDir = tempDataDir('konsul-kit-');
  t.teardown(() => removeDir(dataDir));
  const first = await startInProcessServer({ config: { dataDir } });
  t.match(first.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.equal(await (await fetch(`${first.url}/v1/kv/kept`, { method: 'PUT', body: 'yes' })).text(), 'true', 'served over a real socket too');
  await first.stop();
  const second = await startInProcessServer({ config: { dataDir }, t });
  t.equal((await second.get('/v1/kv/kept?raw')).text, 'yes');
});
