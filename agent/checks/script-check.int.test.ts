// Script checks with real `sh -c` children: exit codes, captured output, truncation, timeouts that
// kill the whole process group, and the enable_script_checks switch.
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { nextResult, realRunner, SLACK_MS, waitFor } from './test-support.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

t.test('exit codes: 0 passing, 1 warning, anything else critical; stdout and stderr captured', async (t) => {
  const { runner } = realRunner({ enableScriptChecks: true });
  t.teardown(() => runner.stop());
  const sh = (name: string, script: string) => runner.add({ Name: name, Args: ['sh', '-c', script], Interval: '200ms', Timeout: '10s' });
  sh('zero', 'echo fine; echo also >&2; exit 0');
  sh('one', 'echo degraded; exit 1');
  sh('two', 'echo broken; exit 2');
  sh('signal', 'kill -9 $$');
  runner.add({ Name: 'missing', Args: ['/nonexistent/check-binary'], Interval: '200ms' });
  runner.add({ Name: 'not-in-path', Args: ['konsul-no-such-command'], Interval: '200ms' });
  await waitFor(() => runner.checkIds().every((id) => runner.history(id).length > 0), { what: 'every result', timeoutMs: 20_000 });
  t.same([runner.status('zero')?.status, runner.status('zero')?.output], ['passing', 'fine\nalso\n']);
  t.same([runner.status('one')?.status, runner.status('one')?.output], ['warning', 'degraded\n']);
  t.same([runner.status('two')?.status, runner.status('two')?.output], ['critical', 'broken\n']);
  t.equal(runner.status('signal')?.status, 'critical', 'killed by a signal');
  t.same([runner.status('missing')?.status, runner.status('missing')?.output], ['critical', 'fork/exec /nonexistent/check-binary: no such file or directory']);
  t.same([runner.status('not-in-path')?.status, runner.status('not-in-path')?.output], ['critical', 'exec: "konsul-no-such-command": executable file not found in $PATH']);
});

t.test('arguments are passed without a shell', async (t) => {
  const { runner } = realRunner({ enableScriptChecks: true });
  t.teardown(() => runner.stop());
  runner.add({ Name: 'args', Args: ['printf', '%s|', 'a b', '$HOME', '; exit 2'], Interval: '1s' });
  await waitFor(() => runner.history('args').length > 0, { what: 'a result' });
  t.same([runner.status('args')?.status, runner.status('args')?.output], ['passing', 'a b|$HOME|; exit 2|']);
});

t.test('output over 4 KiB keeps the tail with Consul note', async (t) => {
  const { runner } = realRunner({ enableScriptChecks: true });
  t.teardown(() => runner.stop());
  // 5000 'x' then "END": 5003 bytes.
  runner.add({ Name: 'big', Args: ['sh', '-c', "head -c 5000 /dev/zero | tr '\\0' x; printf END"], Interval: '1s' });
  runner.add({ Name: 'capped', Args: ['sh', '-c', 'printf 0123456789abcdef'], Interval: '1s', OutputMaxSize: 6 });
  await waitFor(() => runner.history('big').length > 0 && runner.history('capped').length > 0, { what: 'results' });
  t.equal(runner.status('big')?.output, `Captured 4096 of 5003 bytes\n...\n${'x'.repeat(4093)}END`);
  t.equal(runner.status('capped')?.output, 'Captured 6 of 16 bytes\n...\nabcdef');
});

t.test('a timeout kills the process group and reports critical at once', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'konsul-checks-script-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pidFile = join(dir, 'grandchild.pid');
  const { runner, results } = realRunner({ enableScriptChecks: true });
  t.teardown(() => runner.stop());
  // The shell starts a grandchild sleeper in the same group and waits for it.
  runner.add({
    Name: 'slow',
    Args: ['sh', '-c', `echo started; sleep 30 & echo $! > ${pidFile}; wait`],
    Interval: '1s',
    Timeout: '300ms',
    Status: 'passing',
    FailuresBeforeCritical: 5,
  });
  runner.add({ Name: 'quick', Args: ['true'], Interval: '100ms' });
  await waitFor(() => runner.history('slow').length > 0, { what: 'the timeout', timeoutMs: 4000 });
  t.same(
    [runner.status('slow')?.status, runner.status('slow')?.output],
    ['critical', 'Timed out (300ms) running check\n\nstarted\n'],
    'reported at once despite FailuresBeforeCritical (Consul bypasses the handler here)',
  );
  t.ok(existsSync(pidFile));
  const grandchild = Number(readFileSync(pidFile, 'utf8'));
  await waitFor(() => !alive(grandchild), { what: 'the grandchild to die', timeoutMs: 2000 });
  t.notOk(alive(grandchild), `grandchild ${grandchild} killed with its group`);
  t.ok(runner.history('quick').length >= 3, 'the quick script kept running meanwhile');
  t.same(
    results.filter((r) => r.checkId === 'slow').map((r) => r.status),
    ['critical'],
  );
});

t.test('a target that goes down turns critical within interval × failures', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'konsul-checks-flag-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const flag = join(dir, 'up');
  writeFileSync(flag, '');
  const { runner } = realRunner({ enableScriptChecks: true });
  t.teardown(() => runner.stop());
  runner.add({ Name: 'flag', Args: ['sh', '-c', `test -e ${flag} || exit 2`], Interval: '150ms', FailuresBeforeCritical: 3 });
  await waitFor(() => runner.status('flag')?.status === 'passing', { what: 'passing' });
  await nextResult(runner, 'flag');
  const downAt = Date.now();
  unlinkSync(flag);
  await waitFor(() => runner.status('flag')?.status === 'critical', { what: 'critical', timeoutMs: 5000 });
  const elapsed = Date.now() - downAt;
  t.ok(elapsed <= 150 * 3 + SLACK_MS, `critical ${elapsed} ms after the flag went (150 ms × 3)`);
  t.ok(elapsed >= 150 * 2, `only at the third failure (${elapsed} ms)`);
  t.same(
    runner
      .history('flag')
      .slice(-3)
      .map((h) => [h.status, h.reportedStatus]),
    [
      ['critical', 'passing'],
      ['critical', 'passing'],
      ['critical', 'critical'],
    ],
  );
});

t.test('script checks are refused unless enabled', async (t) => {
  const { runner } = realRunner();
  t.teardown(() => runner.stop());
  t.throws(() => runner.add({ Name: 's', Args: ['true'], Interval: '1s' }), { httpStatus: 500, message: /^Scripts are disabled on this agent/ });
  t.same(runner.checkIds(), []);
});
