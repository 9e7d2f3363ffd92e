// `konsulctl session` and `konsulctl lock` end to end: real konsulctl processes (each `lock` in its
// own process group, so a test can kill -9 or freeze it with its command) against a real Konsul dev
// server that accepts 1 s session TTLs (session_ttl_min_ms).
//
// The lock tests record hold intervals: each command appends "start" when it begins and "end" (or
// "term" when stopped) when it finishes, with Date.now() on this one machine. A process killed or
// frozen by the test ends its interval at that moment: from then on it cannot act. Mutual exclusion
// holds if the intervals never overlap.
import t, { type Test } from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KONSULCTL_BIN, konsulctl as runKonsulctl, spawnCli, type CliResult, type CliRun } from '../test/kit/cli.ts';
import { startInProcessServer, type InProcessServer } from '../test/kit/in-process-server.ts';
import { removeDir, tempDataDir } from '../test/kit/server-process.ts';
import { waitFor } from '../test/kit/wait.ts';

const TTL = '1s';
const LOCK_DELAY = '1s';

let server: InProcessServer;
let workDir: string;
let childScript: string;

t.before(async () => {
  workDir = tempDataDir('konsul-lock-test-');
  // The locked command: records start, then end after <holdMs> (or term on SIGTERM).
  childScript = join(workDir, 'child.mjs');
  writeFileSync(
    childScript,
    [
      "import { appendFileSync } from 'node:fs';",
      'const [log, holdMs, label] = process.argv.slice(2);',
      "const record = (what) => appendFileSync(log, `${what} ${label} ${Date.now()} ${process.env.KONSUL_LOCK_SESSION}\\n`);",
      "record('start');",
      "process.on('SIGTERM', () => { record('term'); process.exit(143); });",
      "setTimeout(() => { record('end'); process.exit(Number(process.env.CHILD_EXIT ?? 0)); }, Number(holdMs));",
    ].join('\n'),
  );
  // The server runs in this process (test/kit/in-process-server.ts); konsulctl is the real program.
  server = await startInProcessServer({ config: { nodeName: 'lock-int', sessionTtlMinMs: 1000 } });
});

t.teardown(async () => {
  await server.stop();
  removeDir(workDir);
});

interface Run {
  readonly child: CliRun['child'];
  readonly exited: Promise<number | null>;
  /** stderr, then stdout. */
  stderr(): string;
}

function konsulctl(args: string[], extraEnv: Record<string, string> = {}): Run {
  // detached: a process group of its own, so that a signal to -pid reaches the locked command too.
  const run = spawnCli(KONSULCTL_BIN, args, { env: { KONSUL_HTTP_ADDR: server.url, ...extraEnv }, detached: true });
  return { child: run.child, exited: run.exited, stderr: () => run.stderr() + run.stdout() };
}

function output(args: string[]): Promise<CliResult> {
  return runKonsulctl(server.url, args);
}

/** `konsulctl lock` with short TTL, lock-delay and retry, running the recording command. */
function lock(prefix: string, log: string, label: string, holdMs: number, extraArgs: string[] = [], extraEnv: Record<string, string> = {}): Run {
  return konsulctl(
    ['lock', '--ttl', TTL, '--lock-delay', LOCK_DELAY, '--retry', '100ms', '--kill-grace', '500ms', '--no-shell', ...extraArgs, prefix, '--', process.execPath, childScript, log, String(holdMs), label],
    extraEnv,
  );
}

interface Interval {
  label: string;
  start: number;
  end: number;
  how: string;
  session: string;
}

function readLog(log: string): { records: { what: string; label: string; at: number; session: string }[] } {
  let text = '';
  try {
    text = readFileSync(log, 'utf8');
  } catch {
    return { records: [] };
  }
  const records = text.trim().split('\n').filter((l) => l !== '').map((line) => {
    const [what, label, at, session] = line.split(' ');
    return { what: what!, label: label!, at: Number(at), session: session! };
  });
  return { records };
}

/** Intervals per label; `cut` ends the ones the test killed or froze at the given time. */
function intervals(log: string, cut: Record<string, number> = {}): Interval[] {
  const byLabel = new Map<string, Interval>();
  for (const r of readLog(log).records) {
    if (r.what === 'start') byLabel.set(r.label, { label: r.label, start: r.at, end: Infinity, how: 'running', session: r.session });
    else {
      const i = byLabel.get(r.label);
      if (i && i.end === Infinity) {
        i.end = r.at;
        i.how = r.what;
      }
    }
  }
  for (const [label, at] of Object.entries(cut)) {
    const i = byLabel.get(label);
    if (i && at < i.end) {
      i.end = at;
      i.how = 'cut';
    }
  }
  return [...byLabel.values()].sort((a, b) => a.start - b.start);
}

function assertNoOverlap(t: Test, list: Interval[]): void {
  for (let i = 1; i < list.length; i++) {
    const previous = list[i - 1]!;
    const current = list[i]!;
    t.ok(current.start >= previous.end, `${current.label} starts (${current.start}) after ${previous.label} ends (${previous.end})`);
  }
}

async function sessionCount(): Promise<number> {
  return ((await (await fetch(`${server.url}/v1/session/list`)).json()) as unknown[]).length;
}

async function kvEntry(key: string): Promise<{ LockIndex: number; Session?: string } | undefined> {
  const res = await fetch(`${server.url}/v1/kv/${key}`);
  if (res.status === 404) return undefined;
  return ((await res.json()) as { LockIndex: number; Session?: string }[])[0];
}

t.test('session create, list, info, renew, destroy', async (t) => {
  const created = await output(['session', 'create', '--name', 'cli test', '--ttl', '30s', '--lock-delay', '2s', '--behavior', 'delete']);
  t.equal(created.code, 0, created.stderr);
  const id = created.stdout.trim();
  t.match(id, /^[0-9a-f-]{36}$/);
  const list = await output(['session', 'list']);
  t.equal(list.code, 0);
  const lines = list.stdout.trim().split('\n');
  t.match(lines[0], /^ID\s+Name\s+Node\s+TTL\s+Behavior\s+LockDelay\s+Checks$/);
  const row = lines.find((l) => l.startsWith(id))!.split(/\s+/);
  t.same(row, [id, 'cli_test', 'lock-int', '30s', 'delete', '2s', 'serfHealth']);
  const byNode = await output(['session', 'list', '--node', 'lock-int', '--format', 'json']);
  t.ok((JSON.parse(byNode.stdout) as { ID: string }[]).some((s) => s.ID === id));
  const info = await output(['session', 'info', id, '--format', 'json']);
  t.equal((JSON.parse(info.stdout) as { Name: string }).Name, 'cli test');
  const renewed = await output(['session', 'renew', id]);
  t.equal(renewed.stdout, `Renewed session ${id} (TTL 30s)\n`);
  const destroyed = await output(['session', 'destroy', id]);
  t.equal(destroyed.stdout, `Destroyed session ${id}\n`);
  const missing = await output(['session', 'info', id]);
  t.equal(missing.code, 1);
  t.equal(missing.stderr, `konsulctl: no session "${id}"\n`);
  const renewMissing = await output(['session', 'renew', id]);
  t.equal(renewMissing.code, 1);
  const noChecks = await output(['session', 'create', '--no-checks']);
  const bare = await output(['session', 'info', noChecks.stdout.trim(), '--format', 'json']);
  t.same((JSON.parse(bare.stdout) as { NodeChecks: string[] }).NodeChecks, []);
  const badTtl = await output(['session', 'create', '--ttl', '100ms']);
  t.equal(badTtl.code, 1);
  t.match(badTtl.stderr, /Invalid Session TTL/);
});

t.test('lock: runs the command holding <prefix>/.lock, exits with its status, releases', async (t) => {
  const log = join(workDir, 'simple.log');
  const run = lock('simple', log, 'only', 50, [], { CHILD_EXIT: '3' });
  t.equal(await run.exited, 3, "the command's exit status");
  const [i] = intervals(log);
  t.equal(i!.how, 'end');
  const entry = await kvEntry('simple/.lock');
  t.equal(entry!.Session, undefined, 'released');
  t.equal(entry!.LockIndex, 1);
  t.match(await (await fetch(`${server.url}/v1/kv/simple/.lock`)).text(), /"Flags":3304740253564472344[,}]/, "Consul's lock flag value");
  const sessions = (await (await fetch(`${server.url}/v1/session/list`)).json()) as { ID: string }[];
  t.notOk(sessions.some((s) => s.ID === i!.session), 'and its session destroyed');
});

t.test('lock: several contenders, several rounds each: the holds never overlap', async (t) => {
  const log = join(workDir, 'contend.log');
  const contenders = 4;
  const rounds = 2;
  const codes: (number | null)[] = [];
  await Promise.all(
    Array.from({ length: contenders }, async (_, c) => {
      for (let r = 0; r < rounds; r++) codes.push(await lock('contend', log, `c${c}r${r}`, 150).exited);
    }),
  );
  t.same(codes, Array(contenders * rounds).fill(0), 'every run got the lock and ended well');
  const list = intervals(log);
  t.equal(list.length, contenders * rounds);
  t.ok(list.every((i) => i.how === 'end'));
  assertNoOverlap(t, list);
  t.equal((await kvEntry('contend/.lock'))!.LockIndex, contenders * rounds, 'one acquisition per run: LockIndex counts them');
});

t.test('lock: the holder is kill -9ed; its session expires, lock-delay passes, a contender takes over', async (t) => {
  const log = join(workDir, 'kill.log');
  const holder = lock('killed', log, 'holder', 60_000);
  await waitFor(() => intervals(log).length === 1, { what: 'the holder to start' });
  const sessionsBefore = await sessionCount();
  const others = [lock('killed', log, 'b', 200), lock('killed', log, 'c', 200)];
  // The contenders are in the race once each has its session.
  await waitFor(async () => (await sessionCount()) >= sessionsBefore + 2, { what: 'both contenders to create their sessions' });
  const killedAt = Date.now();
  process.kill(-holder.child.pid!, 'SIGKILL');
  await holder.exited;
  const codes = await Promise.all(others.map((o) => o.exited));
  t.same(codes, [0, 0], 'both contenders got the lock in the end');
  const list = intervals(log, { holder: killedAt });
  t.equal(list.length, 3);
  assertNoOverlap(t, list);
  const next = list[1]!;
  t.ok(next.start - killedAt >= 1000, `the next holder started ${next.start - killedAt} ms after the kill: not before the session's TTL and the lock-delay`);
});

t.test('lock: a frozen holder loses the lock when its session expires, and stops its command when it wakes', async (t) => {
  const log = join(workDir, 'frozen.log');
  const holder = lock('frozen', log, 'holder', 60_000);
  await waitFor(() => intervals(log).length === 1, { what: 'the holder to start' });
  const sessionsBefore = await sessionCount();
  const contender = lock('frozen', log, 'next', 200);
  await waitFor(async () => (await sessionCount()) >= sessionsBefore + 1, { what: 'the contender to create its session' });
  // Freeze konsulctl and its command: no more renewals; the session expires after TTL..2 x TTL.
  const frozenAt = Date.now();
  process.kill(-holder.child.pid!, 'SIGSTOP');
  t.equal(await contender.exited, 0, 'the contender got the lock after the expiry');
  const list = intervals(log, { holder: frozenAt });
  assertNoOverlap(t, list);
  const next = list.find((i) => i.label === 'next')!;
  t.ok(next.start - frozenAt >= 2000, `taken over ${next.start - frozenAt} ms after the freeze: no sooner than TTL + lock-delay after the last renewal`);
  // Wake the old holder: it must see that the lock is gone and stop its command.
  const wokeAt = Date.now();
  process.kill(-holder.child.pid!, 'SIGCONT');
  t.equal(await holder.exited, 1, 'konsulctl lock exits 1 when the lock was lost');
  t.ok(Date.now() - wokeAt < 5000, 'soon after waking');
  t.match(holder.stderr(), /lost the lock on frozen\/\.lock|was invalidated/);
  const old = intervals(log).find((i) => i.label === 'holder')!;
  t.equal(old.how, 'term', 'its command was stopped with SIGTERM');
});

t.test('lock: losing the lock (session destroyed) stops the command at once', async (t) => {
  const log = join(workDir, 'destroyed.log');
  const holder = lock('destroyed', log, 'holder', 60_000);
  await waitFor(() => intervals(log).length === 1, { what: 'the holder to start' });
  const [i] = intervals(log);
  const destroyedAt = Date.now();
  await fetch(`${server.url}/v1/session/destroy/${i!.session}`, { method: 'PUT' });
  t.equal(await holder.exited, 1);
  t.ok(Date.now() - destroyedAt < 3000, 'stopped promptly');
  t.equal(intervals(log)[0]!.how, 'term');
  t.match(holder.stderr(), /lost the lock on destroyed\/\.lock/);
});

t.test('lock: --timeout gives up while another holds the lock; signals reach the command', async (t) => {
  const log = join(workDir, 'timeout.log');
  const holder = lock('timeout', log, 'holder', 60_000);
  await waitFor(() => intervals(log).length === 1, { what: 'the holder to start' });
  const started = Date.now();
  const impatient = lock('timeout', log, 'impatient', 100, ['--timeout', '500ms']);
  t.equal(await impatient.exited, 1);
  t.ok(Date.now() - started < 5000);
  t.match(impatient.stderr(), /timed out waiting for the lock on timeout\/\.lock/);
  process.kill(holder.child.pid!, 'SIGTERM');
  t.equal(await holder.exited, 143, 'SIGTERM is passed to the command, whose status is 128 + 15');
  t.equal(intervals(log)[0]!.how, 'term');
  t.equal((await kvEntry('timeout/.lock'))!.Session, undefined, 'and the lock is released');
});
