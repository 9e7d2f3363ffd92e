// /v1/event against a real Konsul server (in this process, over a real socket) with the npm `consul` client: fire, list, name filter,
// blocking queries and the client's watch, and the errors.
import Consul from 'consul';
import t from 'tap';
import { uuidToUint64 } from '../../fsm/state/events.ts';
import { startInProcessServer, type InProcessServer } from '../../test/kit/in-process-server.ts';
import { sleep, waitFor } from '../../test/kit/wait.ts';

let server: InProcessServer;
let consul: Consul;

t.before(async () => {
  server = await startInProcessServer({ config: { nodeName: 'event-int' } });
  consul = new Consul({ host: '127.0.0.1', port: Number(new URL(server.url).port) });
});

t.teardown(() => server.stop());

const http = (path: string, init?: RequestInit) => fetch(`${server.url}${path}`, init);

interface EventAnswer {
  ID: string;
  Name: string;
  Payload: string | null;
  NodeFilter: string;
  ServiceFilter: string;
  TagFilter: string;
  Version: number;
  LTime: number;
}

t.test('fire answers the event; list shows it, oldest first', async (t) => {
  const fired = (await consul.event.fire({ name: 'deploy', payload: 'v1.2.3', node: 'web-.*', service: 'api', tag: 'canary' } as never)) as EventAnswer;
  t.match(fired, { Name: 'deploy', Payload: 'v1.2.3', NodeFilter: 'web-.*', ServiceFilter: 'api', TagFilter: 'canary', Version: 1, LTime: Number });
  t.match(fired.ID, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  const raw = (await (await http('/v1/event/fire/restart', { method: 'PUT' })).json()) as EventAnswer;
  t.equal(raw.Payload, null, 'no payload is null on the wire');
  const all = (await consul.event.list()) as EventAnswer[];
  t.same(all.slice(-2).map((e) => e.Name), ['deploy', 'restart']);
  t.ok(all[all.length - 1]!.LTime > all[all.length - 2]!.LTime);
  const wire = (await (await http('/v1/event/list?name=deploy')).json()) as EventAnswer[];
  t.equal(wire[wire.length - 1]!.Payload, Buffer.from('v1.2.3').toString('base64'), 'the payload is base64 on the wire');
});

t.test('the name filter and X-Consul-Index: uuidToUint64 of the newest listed event, growing', async (t) => {
  await consul.event.fire('alpha', 'a1');
  await consul.event.fire('beta', 'b1');
  const res = await http('/v1/event/list?name=alpha');
  const events = (await res.json()) as EventAnswer[];
  t.ok(events.length > 0 && events.every((e) => e.Name === 'alpha'));
  const index = BigInt(res.headers.get('x-consul-index')!);
  t.equal(index, uuidToUint64(events[events.length - 1]!.ID), 'Go clients find the new events with IDToIndex(ID) == index');
  const all = await http('/v1/event/list');
  t.ok(BigInt(all.headers.get('x-consul-index')!) > index, 'the newer beta event raised the unfiltered index');
  const none = await http('/v1/event/list?name=never-fired');
  t.same(await none.json(), []);
  t.equal(none.headers.get('x-consul-index'), '1', 'no events: 1, as Consul answers');
});

t.test('a blocking list waits for a matching event and ignores others', async (t) => {
  await consul.event.fire('block-me', 'first');
  const first = await http('/v1/event/list?name=block-me');
  const index = first.headers.get('x-consul-index')!;
  let answered = false;
  const blocked = http(`/v1/event/list?name=block-me&index=${index}&wait=5s`).finally(() => (answered = true));
  await server.waitForBlockedQueries(1);
  await consul.event.fire('noise', 'x');
  // Proving that nothing happens takes a window: the noise event must not answer the query.
  await sleep(100);
  t.notOk(answered, 'the noise event did not end the wait');
  const fired = Date.now();
  await consul.event.fire('block-me', 'second');
  const res = await blocked;
  const events = (await res.json()) as EventAnswer[];
  t.same(events.map((e) => Buffer.from(e.Payload!, 'base64').toString()), ['first', 'second']);
  t.ok(Date.now() - fired < 4000, 'the matching event did');
  t.ok(BigInt(res.headers.get('x-consul-index')!) > BigInt(index));
  const quiet = Date.now();
  const timedOut = await http(`/v1/event/list?name=block-me&index=${res.headers.get('x-consul-index')}&wait=300ms`);
  t.equal(timedOut.status, 200);
  t.ok(Date.now() - quiet >= 290, 'nothing new: it waits out its wait');
});

t.test('the npm client\'s watch sees each event once', async (t) => {
  const seen: string[][] = [];
  const watch = consul.watch({ method: consul.event.list, options: { name: 'watched', wait: '5s' } as never });
  const done = new Promise<void>((resolve, reject) => {
    watch.on('change', (data: EventAnswer[]) => {
      // The watch hands over the list as the server sent it: payloads base64.
      seen.push(data.map((e) => Buffer.from(e.Payload ?? '', 'base64').toString()));
      if (data.length === 3) resolve();
    });
    watch.on('error', reject);
  });
  // Each event is fired once the watch has seen the previous one and is parked again.
  for (const [i, payload] of ['one', 'two', 'three'].entries()) {
    await waitFor(() => seen.length === i + 1 && server.fsm.watches.size >= 1, { what: `the watch to see ${i} events and block` });
    await consul.event.fire('watched', payload);
    await consul.event.fire('unwatched', payload);
  }
  await done;
  watch.end();
  t.same(seen, [[], ['one'], ['one', 'two'], ['one', 'two', 'three']], 'one change per event, none twice');
});

t.test('errors', async (t) => {
  const missing = await http('/v1/event/fire/', { method: 'PUT' });
  t.equal(missing.status, 400);
  t.equal(await missing.text(), 'Missing name');
  const tagOnly = await http('/v1/event/fire/x?tag=v1', { method: 'PUT' });
  t.equal(tagOnly.status, 400);
  t.equal(await tagOnly.text(), 'Cannot provide tag filter without service filter');
  const badRegexp = await http('/v1/event/fire/x?node=(', { method: 'PUT' });
  t.equal(badRegexp.status, 400);
  t.match(await badRegexp.text(), /^Invalid node filter: /);
  const big = await http('/v1/event/fire/x', { method: 'PUT', body: Buffer.alloc(64 * 1024 + 1) });
  t.equal(big.status, 413);
  t.equal((await http('/v1/event/fire/x')).status, 405);
  t.equal((await http('/v1/event/list', { method: 'PUT' })).status, 405);
  t.equal((await http('/v1/event/list?index=nope')).status, 400);
});

t.test('a name with slashes is the whole rest of the path, as in Consul', async (t) => {
  const fired = (await (await http('/v1/event/fire/team/deploy', { method: 'PUT', body: 'x' })).json()) as EventAnswer;
  t.equal(fired.Name, 'team/deploy');
  t.equal(((await (await http('/v1/event/list?name=team%2Fdeploy')).json()) as EventAnswer[]).length, 1);
});
