// What a plugin sees of a server: the FSM's KV and catalog read in place, watches that wake after a
// change (coalesced, outside the apply), and routes on the server's fastify app.
import Fastify from 'fastify';
import t from 'tap';
import { catalogNodeSpec } from '../agent/core/node-registration.ts';
import { KonsulFsm } from '../fsm/konsul-fsm.ts';
import { serverPluginHosts } from './plugin-host.ts';
import { dnsPlugin } from '../dns/plugin.ts';

const tick = () => new Promise((resolve) => setImmediate(resolve));

t.test('kv and catalog views, watches, routes', async (t) => {
  const fsm = new KonsulFsm();
  const app = Fastify();
  t.teardown(() => app.close());
  const host = serverPluginHosts({ nodeName: 's1', datacenter: 'dc1', logLevel: 'silent', fsm, app })(dnsPlugin);
  t.equal(host.process, 'server');
  t.equal(host.catalog.datacenter, 'dc1');

  let kvWakes = 0;
  let catalogWakes = 0;
  const cancelKv = host.watches.kv('config/', () => kvWakes++);
  host.watches.catalog(() => catalogWakes++);
  fsm.applyCommand(fsm.appliedIndex + 1, { type: 'kvSet', key: 'config/a', value: 'dg==', flags: '7' });
  fsm.applyCommand(fsm.appliedIndex + 1, { type: 'kvSet', key: 'config/b', value: 'dw==', flags: '0' });
  t.equal(kvWakes, 0, 'not inside the apply');
  await tick();
  t.equal(kvWakes, 1, 'two changes under the prefix, one wake-up');
  fsm.applyCommand(fsm.appliedIndex + 1, { type: 'kvSet', key: 'other', value: 'eA==', flags: '0' });
  await tick();
  t.equal(kvWakes, 1, 'none for a key outside it');
  const a = await host.kv.get('config/a');
  t.equal(Buffer.from(a!.Value).toString(), 'v');
  t.equal(a!.Flags, 7n);
  t.same((await host.kv.list('config/')).map((e) => e.Key), ['config/a', 'config/b']);
  t.equal(await host.kv.get('missing'), undefined);
  cancelKv();
  fsm.applyCommand(fsm.appliedIndex + 1, { type: 'kvDelete', key: 'config/a', nowMs: 0 });
  await tick();
  t.equal(kvWakes, 1, 'a cancelled watch stays quiet');

  fsm.applyCommand(fsm.appliedIndex + 1, { type: 'catalogRegister', node: catalogNodeSpec('n1', '10.0.0.1', 'dc1'), skipNodeUpdate: false, checks: [] });
  await tick();
  t.equal(catalogWakes, 1);
  t.equal(host.catalog.node('n1')?.address, '10.0.0.1');

  host.routes(async (plugged) => {
    plugged.get('/v1/konsul/example', async () => ({ ok: true }));
  });
  const res = await app.inject({ method: 'GET', url: '/v1/konsul/example' });
  t.same(res.json(), { ok: true });
});
