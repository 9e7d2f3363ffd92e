// The runner's scheduling, thresholds, timeouts, TTLs and history against a fake clock and scripted
// probes (the probes themselves are tested against real targets in the *.int.test.ts files).
import t from 'tap';
import { CheckRunner, CheckRunnerError, ProbeTimeoutError, type CheckClock, type Probe, type ProbeContext, type ProbeResult } from './check-runner.ts';
import type { CheckStatus, NormalizedCheck } from './definition.ts';

/** Timers that fire only when the test advances time; promise callbacks run between timers. */
class FakeClock implements CheckClock {
  private nowMs = 0;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; seq: number; fn: () => void }>();

  now(): number {
    return this.nowMs;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.nowMs + Math.max(0, ms), seq: id, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  pending(): number {
    return this.timers.size;
  }

  /** Moves time forward to `now + ms`, firing due timers in order and settling promises after each. */
  async advance(ms: number): Promise<void> {
    const target = this.nowMs + ms;
    await settle();
    for (;;) {
      let next: [number, { at: number; seq: number; fn: () => void }] | undefined;
      for (const entry of this.timers) {
        if (entry[1].at > target) continue;
        if (next === undefined || entry[1].at < next[1].at || (entry[1].at === next[1].at && entry[1].seq < next[1].seq)) next = entry;
      }
      if (next === undefined) break;
      this.timers.delete(next[0]);
      this.nowMs = next[1].at;
      next[1].fn();
      await settle();
    }
    this.nowMs = target;
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

interface Call {
  readonly checkId: string;
  readonly atMs: number;
  readonly ctx: ProbeContext;
}

/** Probes answering from a per-check script of results; `hang` never answers unless aborted. */
class ScriptedProbes {
  readonly calls: Call[] = [];
  private readonly scripts = new Map<string, (ProbeResult | 'hang' | 'hang-ignoring-abort')[]>();

  constructor(private readonly clock: FakeClock) {}

  script(checkId: string, results: (ProbeResult | 'hang' | 'hang-ignoring-abort')[]): void {
    this.scripts.set(checkId, [...results]);
  }

  factory = (check: NormalizedCheck): Probe => {
    return (ctx) => {
      this.calls.push({ checkId: check.checkId, atMs: this.clock.now(), ctx });
      const list = this.scripts.get(check.checkId) ?? [];
      const next = list.length > 1 ? list.shift()! : (list[0] ?? { status: 'passing', output: 'ok' });
      if (next === 'hang-ignoring-abort') return new Promise<ProbeResult>(() => {});
      if (next === 'hang') {
        return new Promise<ProbeResult>((resolve) => {
          ctx.signal.addEventListener('abort', () =>
            resolve({ status: 'critical', output: ctx.signal.reason instanceof ProbeTimeoutError ? `timeout after ${ctx.signal.reason.timeoutMs}` : 'aborted' }),
          );
        });
      }
      return Promise.resolve(next);
    };
  };

  times(checkId: string): number[] {
    return this.calls.filter((c) => c.checkId === checkId).map((c) => c.atMs);
  }
}

function setup(options: { random?: () => number; minIntervalMs?: number; enableScriptChecks?: boolean } = {}) {
  const clock = new FakeClock();
  const probes = new ScriptedProbes(clock);
  const results: { checkId: string; status: CheckStatus; output: string; atMs: number }[] = [];
  const runner = new CheckRunner({
    onResult: (checkId, status, output) => results.push({ checkId, status, output, atMs: clock.now() }),
    clock,
    random: options.random ?? (() => 0),
    minIntervalMs: options.minIntervalMs ?? 100,
    probeFactory: probes.factory,
    enableScriptChecks: options.enableScriptChecks,
  });
  return { clock, probes, results, runner };
}

const pass = (output = 'ok'): ProbeResult => ({ status: 'passing', output });
const fail = (output = 'down'): ProbeResult => ({ status: 'critical', output });
const warn = (output = 'meh'): ProbeResult => ({ status: 'warning', output });

t.test('first run is staggered by random × interval, then every interval after the probe ends', async (t) => {
  const { clock, probes, runner } = setup({ random: () => 0.37 });
  runner.add({ Name: 'web', TCP: '127.0.0.1:1', Interval: '1s' });
  await clock.advance(369);
  t.same(probes.times('web'), [], 'nothing before the stagger');
  await clock.advance(1);
  t.same(probes.times('web'), [370]);
  await clock.advance(3000);
  t.same(probes.times('web'), [370, 1370, 2370, 3370]);
  await runner.stop();
  t.equal(clock.pending(), 0, 'stop clears every timer');
});

t.test('staggers differ per check with the random source', async (t) => {
  const draws = [0.1, 0.6, 0.9];
  const { clock, probes, runner } = setup({ random: () => draws.shift() ?? 0 });
  for (const name of ['a', 'b', 'c']) runner.add({ Name: name, TCP: '127.0.0.1:1', Interval: '1s' });
  await clock.advance(999);
  t.same([probes.times('a'), probes.times('b'), probes.times('c')], [[100], [600], [900]]);
  await runner.stop();
});

t.test('an interval below the minimum is raised to it', async (t) => {
  const { clock, probes, runner } = setup({ minIntervalMs: 1000 });
  runner.add({ Name: 'fast', TCP: '127.0.0.1:1', Interval: '10ms' });
  await clock.advance(2500);
  t.same(probes.times('fast'), [0, 1000, 2000]);
  await runner.stop();
});

t.test('initial status: critical unless the definition gives one; onResult only on changes', async (t) => {
  const { clock, probes, results, runner } = setup();
  runner.add({ Name: 'a', TCP: 'x:1', Interval: '100ms' });
  runner.add({ Name: 'b', TCP: 'x:1', Interval: '100ms', Status: 'passing' });
  t.equal(runner.status('a')?.status, 'critical');
  t.equal(runner.status('b')?.status, 'passing');
  t.same(results, [], 'no callback for the initial status');
  probes.script('a', [pass('same')]);
  probes.script('b', [pass('same')]);
  await clock.advance(450);
  t.same(
    results.map((r) => [r.checkId, r.status, r.output]),
    [
      ['a', 'passing', 'same'],
      ['b', 'passing', 'same'],
    ],
    'one callback each although five probes ran',
  );
  t.equal(probes.times('a').length, 5);
  probes.script('a', [pass('changed')]);
  await clock.advance(100);
  t.same(results.at(-1), { checkId: 'a', status: 'passing', output: 'changed', atMs: 500 }, 'an output change is reported');
  await runner.stop();
});

t.test('thresholds: the first result is reported at once, then consecutive counts apply', async (t) => {
  const { clock, probes, runner } = setup();
  probes.script('c', [pass('p1'), fail('f1'), fail('f2'), fail('f3'), pass('p2'), fail('f4'), pass('p3'), pass('p4'), pass('p5')]);
  runner.add({ Name: 'c', HTTP: 'http://x/', Interval: '100ms', SuccessBeforePassing: 2, FailuresBeforeWarning: 1, FailuresBeforeCritical: 3 });
  const seen: [string, string][] = [];
  for (let i = 0; i < 9; i++) {
    await clock.advance(i === 0 ? 0 : 100);
    const s = runner.status('c')!;
    seen.push([s.status, s.output]);
  }
  t.same(seen, [
    ['passing', 'p1'], // counters start at the thresholds: the first result counts at once
    ['warning', 'f1'], // 1 failure ≥ FailuresBeforeWarning
    ['warning', 'f2'],
    ['critical', 'f3'], // 3 consecutive failures
    ['critical', 'f3'], // 1 success < SuccessBeforePassing: nothing reported
    ['warning', 'f4'], // the success reset the failure count; 1 failure → warning again
    ['warning', 'f4'],
    ['passing', 'p4'], // 2 consecutive successes
    ['passing', 'p5'],
  ]);
  const history = runner.history('c');
  t.same(
    history.map((h) => [h.status, h.reportedStatus]),
    [
      ['passing', 'passing'],
      ['critical', 'warning'],
      ['critical', 'warning'],
      ['critical', 'critical'],
      ['passing', 'critical'],
      ['critical', 'warning'],
      ['passing', 'warning'],
      ['passing', 'passing'],
      ['passing', 'passing'],
    ],
    'history keeps the raw results and the reported status',
  );
  await runner.stop();
});

t.test('without FailuresBeforeWarning, failures stay silent until FailuresBeforeCritical', async (t) => {
  const { clock, probes, runner } = setup();
  probes.script('c', [pass(), fail(), fail(), fail()]);
  runner.add({ Name: 'c', HTTP: 'http://x/', Interval: '100ms', FailuresBeforeCritical: 3 });
  const statuses: string[] = [];
  for (let i = 0; i < 4; i++) {
    await clock.advance(i === 0 ? 0 : 100);
    statuses.push(runner.status('c')!.status);
  }
  t.same(statuses, ['passing', 'passing', 'passing', 'critical']);
  await runner.stop();
});

t.test('warning results count as successes', async (t) => {
  const { clock, probes, runner } = setup();
  probes.script('c', [fail(), warn('w1'), warn('w2')]);
  runner.add({ Name: 'c', HTTP: 'http://x/', Interval: '100ms', SuccessBeforePassing: 2 });
  await clock.advance(0);
  t.equal(runner.status('c')?.status, 'critical');
  await clock.advance(100);
  t.equal(runner.status('c')?.status, 'critical', 'one warning is not enough');
  await clock.advance(100);
  t.same(runner.status('c'), { status: 'warning', output: 'w2', criticalSinceMs: undefined });
  await runner.stop();
});

t.test('a probe is aborted at its timeout and the check carries on', async (t) => {
  const { clock, probes, runner } = setup();
  probes.script('slow', ['hang', pass()]);
  runner.add({ Name: 'slow', HTTP: 'http://x/', Interval: '1s', Timeout: '300ms' });
  await clock.advance(299);
  t.equal(runner.status('slow')?.status, 'critical');
  t.equal(probes.calls[0]!.ctx.signal.aborted, false);
  t.equal(probes.calls[0]!.ctx.timeoutMs, 300);
  await clock.advance(1);
  t.equal(probes.calls[0]!.ctx.signal.aborted, true);
  t.same(runner.status('slow'), { status: 'critical', output: 'timeout after 300', criticalSinceMs: 0 });
  await clock.advance(1000);
  t.same(probes.times('slow'), [0, 1300], 'the next run is one interval after the timed-out probe ended');
  t.equal(runner.status('slow')?.status, 'passing');
  await runner.stop();
});

t.test('default timeouts: 10 s for network checks, 30 s for scripts', async (t) => {
  const { clock, probes, runner } = setup({ enableScriptChecks: true });
  runner.add({ Name: 'h', HTTP: 'http://x/', Interval: '1m' });
  runner.add({ Name: 's', Args: ['true'], Interval: '1m' });
  await clock.advance(0);
  t.same(
    probes.calls.map((c) => [c.checkId, c.ctx.timeoutMs]),
    [
      ['h', 10_000],
      ['s', 30_000],
    ],
  );
  await runner.stop();
});

t.test('a probe that ignores its abort is abandoned after a grace period', async (t) => {
  const { clock, probes, runner } = setup();
  probes.script('stuck', ['hang-ignoring-abort', pass()]);
  runner.add({ Name: 'stuck', TCP: 'x:1', Interval: '1s', Timeout: '500ms', Status: 'passing', FailuresBeforeCritical: 5 });
  await clock.advance(2499);
  t.equal(runner.status('stuck')?.status, 'passing');
  await clock.advance(1);
  t.same(runner.status('stuck'), { status: 'critical', output: 'Timed out (500ms) running check', criticalSinceMs: 2500 }, 'reported despite FailuresBeforeCritical');
  await clock.advance(1000);
  t.same(probes.times('stuck'), [0, 3500]);
  await runner.stop();
});

t.test('a hung check does not delay the others', async (t) => {
  const { clock, probes, runner } = setup();
  probes.script('hung', ['hang']);
  probes.script('fine', [pass()]);
  runner.add({ Name: 'hung', HTTP: 'http://x/', Interval: '100ms', Timeout: '10s' });
  runner.add({ Name: 'fine', HTTP: 'http://y/', Interval: '100ms' });
  await clock.advance(1000);
  t.same(probes.times('hung'), [0], 'the hung probe is still in flight');
  t.same(probes.times('fine'), [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]);
  t.equal(runner.status('fine')?.status, 'passing');
  await runner.stop();
  t.equal(probes.calls[0]!.ctx.signal.aborted, true, 'stop aborts in-flight probes');
});

t.test('history keeps the last 10 results, oldest first', async (t) => {
  const { clock, probes, runner } = setup();
  probes.script('h', Array.from({ length: 15 }, (_, i) => pass(`r${i}`)));
  runner.add({ Name: 'h', HTTP: 'http://x/', Interval: '100ms' });
  await clock.advance(1400);
  const history = runner.history('h');
  t.equal(history.length, 10);
  t.same(
    history.map((h) => h.output),
    Array.from({ length: 10 }, (_, i) => `r${i + 5}`),
  );
  t.same(
    history.map((h) => h.timeMs),
    Array.from({ length: 10 }, (_, i) => (i + 5) * 100),
  );
  t.same(runner.history('unknown'), []);
  await runner.stop();
});

t.test('TTL checks expire to critical with Consul output and are reset by updates', async (t) => {
  const { clock, results, runner } = setup();
  runner.add({ Name: 'ttl', TTL: '1s' });
  t.equal(runner.status('ttl')?.status, 'critical');
  await clock.advance(1000);
  t.same(runner.status('ttl'), { status: 'critical', output: 'TTL expired', criticalSinceMs: 0 });
  t.equal(runner.ttlUpdate('ttl', 'passing', 'all good'), 'all good');
  t.same(runner.status('ttl'), { status: 'passing', output: 'all good', criticalSinceMs: undefined });
  await clock.advance(900);
  t.equal(runner.ttlUpdate('ttl', 'warning', 'tired'), 'tired');
  await clock.advance(900);
  t.equal(runner.status('ttl')?.status, 'warning', 'the update restarted the TTL');
  await clock.advance(100);
  t.same(runner.status('ttl'), { status: 'critical', output: 'TTL expired (last output before timeout follows): tired', criticalSinceMs: 2900 });
  t.same(
    results.map((r) => [r.status, r.atMs]),
    [
      ['critical', 1000],
      ['passing', 1000],
      ['warning', 1900],
      ['critical', 2900],
    ],
  );
  t.same(
    runner.history('ttl').map((h) => h.source),
    ['ttl-expired', 'ttl-update', 'ttl-update', 'ttl-expired'],
  );
  await clock.advance(5000);
  t.equal(results.length, 4, 'an expired TTL fires once');
  await runner.stop();
});

t.test('TTL output over the limit keeps its head with Consul note (bytes, not characters)', async (t) => {
  const { runner } = setup();
  runner.add({ Name: 'ttl', TTL: '1m' });
  const kept = runner.ttlUpdate('ttl', 'passing', 'é'.repeat(3000));
  t.equal(kept, `${'é'.repeat(2048)} ... (captured 4096 of 6000 bytes)`);
  runner.add({ Name: 'small', TTL: '1m', OutputMaxSize: 10 });
  t.equal(runner.ttlUpdate('small', 'passing', 'abcdefghijklmnop'), 'abcdefghij ... (captured 10 of 16 bytes)');
  await runner.stop();
});

t.test('ttlUpdate refuses unknown checks (404) and checks without TTL (500) with Consul texts', async (t) => {
  const { runner } = setup();
  runner.add({ Name: 'web', HTTP: 'http://x/', Interval: '1s' });
  t.throws(() => runner.ttlUpdate('nope', 'passing', ''), new CheckRunnerError(404, 'Unknown check ID "nope". Ensure that the check ID is passed, not the check name.'));
  const err = (() => {
    try {
      runner.ttlUpdate('web', 'passing', '');
    } catch (e) {
      return e as CheckRunnerError;
    }
    return undefined;
  })();
  t.equal(err?.httpStatus, 500);
  t.equal(err?.message, 'CheckID "web" does not have associated TTL');
  await runner.stop();
});

t.test('re-adding a check keeps its status and output; remove stops it', async (t) => {
  const { clock, probes, runner } = setup();
  probes.script('w', [pass('up')]);
  runner.add({ Name: 'w', HTTP: 'http://x/', Interval: '100ms' });
  await clock.advance(50);
  t.equal(runner.status('w')?.status, 'passing');
  runner.add({ Name: 'w', HTTP: 'http://x/', Interval: '200ms', Status: 'critical' });
  t.same(runner.status('w'), { status: 'passing', output: 'up', criticalSinceMs: undefined }, 'status snapshot kept (Consul AddCheck)');
  runner.add({ Name: 'w', HTTP: 'http://x/', Interval: '200ms' }, { status: 'warning', output: 'restored' });
  t.same(runner.status('w'), { status: 'warning', output: 'restored', criticalSinceMs: undefined }, 'an explicit status wins');
  const before = probes.calls.length;
  t.equal(runner.remove('w'), true);
  t.equal(runner.remove('w'), false);
  await clock.advance(1000);
  t.equal(probes.calls.length, before, 'no probe after remove');
  t.equal(runner.status('w'), undefined);
  t.equal(clock.pending(), 0);
  await runner.stop();
});

t.test('a probe result arriving after remove is ignored', async (t) => {
  const { clock, probes, results, runner } = setup();
  probes.script('r', ['hang']);
  runner.add({ Name: 'r', HTTP: 'http://x/', Interval: '100ms', Timeout: '1s' });
  await clock.advance(0);
  runner.remove('r');
  await clock.advance(2000);
  t.same(results, []);
  t.equal(probes.calls[0]!.ctx.signal.aborted, true);
  await runner.stop();
});

t.test('reapable: service checks critical longer than DeregisterCriticalServiceAfter (minimum 1m)', async (t) => {
  const { clock, probes, runner } = setup();
  probes.script('service:web1', [fail()]);
  runner.add({ HTTP: 'http://x/', Interval: '1s', DeregisterCriticalServiceAfter: '90s' }, { service: { id: 'web1', name: 'web' } });
  runner.add({ Name: 'short', TTL: '1s', DeregisterCriticalServiceAfter: '1s', ServiceID: 'api1' }, { status: 'passing' });
  runner.add({ Name: 'node-level', TTL: '1s', DeregisterCriticalServiceAfter: '1s' });
  t.equal(runner.get('service:web1')?.name, "Service 'web' check");
  await clock.advance(60_000);
  t.same(runner.reapable(), [], 'the 1 s one waits for the 60 s minimum');
  await clock.advance(1001);
  t.same(runner.reapable(), [{ checkId: 'short', serviceId: 'api1' }]);
  await clock.advance(30_000);
  t.same(
    runner.reapable().map((r) => r.serviceId),
    ['web1', 'api1'],
  );
  await runner.stop();
});

t.test('add refuses invalid definitions and scripts when disabled', async (t) => {
  const { runner } = setup();
  t.throws(() => runner.add({ Name: 'x', HTTP: 'http://x/' }), { httpStatus: 400, message: 'Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks' });
  t.throws(() => runner.add({ Name: 's', Args: ['true'], Interval: '1s' }), { httpStatus: 500, message: /^Scripts are disabled on this agent/ });
  t.same(runner.checkIds(), []);
  await runner.stop();
});

t.test('types Konsul does not run are kept at their status', async (t) => {
  const { clock, probes, runner } = setup();
  runner.add({ Name: 'alias', AliasService: 'web' });
  runner.add({ Name: 'udp', UDP: '127.0.0.1:53', Interval: '1s', Status: 'passing' });
  await clock.advance(5000);
  t.same(probes.calls, []);
  t.equal(runner.status('alias')?.status, 'critical');
  t.equal(runner.status('udp')?.status, 'passing');
  await runner.stop();
});
