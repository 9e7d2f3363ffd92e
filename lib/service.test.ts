import t from 'tap';
import { service, ServiceStopError, Supervisor, type Service } from './service.ts';

/** A service that records its start and stop in `events`, and fails where told. */
function recorded(name: string, events: string[], fail: { start?: boolean; stop?: boolean } = {}): Service {
  return {
    name,
    start: async () => {
      events.push(`start ${name}`);
      if (fail.start) throw new Error(`${name} cannot start`);
    },
    stop: async () => {
      events.push(`stop ${name}`);
      if (fail.stop) throw new Error(`${name} cannot stop`);
    },
  };
}

t.test('starts in order, stops in reverse, each once', async (t) => {
  const events: string[] = [];
  const supervisor = new Supervisor();
  await supervisor.start(recorded('a', events));
  supervisor.adopt('b', () => void events.push('stop b'));
  await supervisor.startAll([recorded('c', events), recorded('d', events)]);
  t.same(supervisor.names(), ['a', 'b', 'c', 'd']);
  const first = supervisor.stop();
  t.equal(supervisor.stop(), first, 'a second stop shares the first');
  await first;
  t.same(events, ['start a', 'start c', 'start d', 'stop d', 'stop c', 'stop b', 'stop a']);
  await t.rejects(supervisor.start(recorded('late', events)), /cannot start late: the process is stopping/);
});

t.test('a failing stop does not stop the others from stopping; the failures are reported together', async (t) => {
  const events: string[] = [];
  const supervisor = new Supervisor();
  await supervisor.startAll([recorded('a', events, { stop: true }), recorded('b', events), recorded('c', events, { stop: true })]);
  const err = await supervisor.stop().then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof ServiceStopError);
  t.same((err as ServiceStopError).failures.map((f) => f.service), ['c', 'a']);
  t.match((err as Error).message, /stopping c: c cannot stop; a: a cannot stop/);
  t.same(events.filter((e) => e.startsWith('stop')), ['stop c', 'stop b', 'stop a']);
});

t.test('startAll: a failed start stops what this call started, keeps what was running, throws the start error', async (t) => {
  const events: string[] = [];
  const supervisor = new Supervisor();
  await supervisor.start(recorded('before', events));
  await t.rejects(supervisor.startAll([recorded('a', events), recorded('b', events, { start: true }), recorded('c', events)]), /b cannot start/);
  t.same(events, ['start before', 'start a', 'start b', 'stop a']);
  t.same(supervisor.names(), ['before'], 'the failed service is not recorded: it stopped itself');
  await supervisor.stop();
  t.same(events.at(-1), 'stop before');
});

t.test('service() names an object with start/stop methods, keeping `this`', async (t) => {
  class Part {
    running = false;
    start(): void {
      this.running = true;
    }
    stop(): void {
      this.running = false;
    }
  }
  const part = new Part();
  const supervisor = new Supervisor();
  await supervisor.start(service('part', part));
  t.ok(part.running);
  await supervisor.stop();
  t.notOk(part.running);
  t.equal(service('stop only', { stop: () => undefined }).start, undefined);
});
