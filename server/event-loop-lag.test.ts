// The event-loop lag monitor (server/event-loop-lag.ts) and the Stats sections of GET /v1/agent/self
// (server/runtime-stats.ts). The server runs in this process (real LevelDB in a temp dir, real socket
// on 127.0.0.1), so a busy loop here is a stall of the server's event loop.
import t from 'tap';
import { mergeConfig } from './config.ts';
import { EventLoopLagMonitor } from './event-loop-lag.ts';
import { startServer, type RunningServer } from './main.ts';
import { snapshotSection, statNumber } from './runtime-stats.ts';
import { removeDir, tempDataDir } from '../test/kit/server-process.ts';
import { sleep } from '../test/kit/wait.ts';


/** Holds the event loop for `ms` milliseconds. */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    /* spin */
  }
}

t.test('a monitor reports a stall over its window and since start, and the window forgets it', async (t) => {
  const monitor = new EventLoopLagMonitor({ resolutionMs: 10, windowMs: 400 }).start();
  t.teardown(() => monitor.stop());
  t.ok(monitor.running);
  await sleep(50);
  busy(300);
  await sleep(30); // the histogram's timer records the late tick
  const blocked = monitor.report();
  t.equal(blocked.resolutionMs, 10);
  t.ok(blocked.window.maxMs >= 280 && blocked.window.maxMs < 2000, `window max ${blocked.window.maxMs} ms after a 300 ms stall`);
  t.ok(blocked.sinceStart.maxMs >= 280, `since-start max ${blocked.sinceStart.maxMs} ms`);
  t.ok(blocked.window.samples > 0 && blocked.sinceStart.samples >= blocked.window.samples);
  t.ok(blocked.sinceStart.meanMs >= 0 && blocked.sinceStart.p50Ms <= blocked.sinceStart.p99Ms && blocked.sinceStart.p99Ms <= blocked.sinceStart.maxMs);

  // Both window halves are reset (every 200 ms) after the stall: the window no longer holds it.
  await sleep(700);
  const later = monitor.report();
  t.ok(later.window.maxMs < 250, `window max ${later.window.maxMs} ms once the stall is older than the window`);
  t.ok(later.window.spanMs >= 150 && later.window.spanMs <= 700, `window covers ${later.window.spanMs} ms (half to all of 400 ms)`);
  t.ok(later.sinceStart.maxMs >= 280, 'since start still holds it');
  t.ok(later.sinceStart.spanMs >= 1000);

  monitor.stop();
  t.notOk(monitor.running);
});

t.test('Stats values are strings of numbers; the snapshot section mirrors the Raft host when it keeps figures', async (t) => {
  t.equal(statNumber(12), '12');
  t.equal(statNumber(1.23456), '1.235');
  t.equal(statNumber(NaN), '0');
  t.equal(snapshotSection({}), undefined, 'no snapshotStats(): no section');
  const figures = { taken: 3, lastIndex: 49152, lastBytes: 1048576, lastDurationMs: 12.5, maxDurationMs: 40, installs: 1, lastInstallDurationMs: 7, note: 'x', nested: { a: 1 } };
  t.same(snapshotSection({ snapshotStats: () => figures }), {
    taken: '3',
    last_index: '49152',
    last_bytes: '1048576',
    last_duration_ms: '12.5',
    max_duration_ms: '40',
    installs: '1',
    last_install_duration_ms: '7',
    note: 'x',
  });
});

t.test('GET /v1/agent/self: runtime stats with event-loop lag; a 100 ms stall of the server shows', async (t) => {
  const dataDir = tempDataDir('konsul-eld-');
  const server: RunningServer = await startServer(
    mergeConfig({ dataDir, dev: true, nodeName: 'eld', httpAddr: { host: '127.0.0.1', port: 0 }, dnsAddr: null, logLevel: 'silent' }),
  );
  t.teardown(async () => {
    await server.stop();
    removeDir(dataDir);
  });
  const url = `http://127.0.0.1:${server.httpAddress.port}/v1/agent/self`;
  interface Self {
    Config: { NodeName: string; Server: boolean };
    Member: { Name: string };
    Stats: Record<string, Record<string, string>>;
    Meta: object;
  }
  const self = async (): Promise<Self> => {
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    t.equal(res.status, 200);
    return (await res.json()) as Self;
  };

  const first = await self();
  t.equal(first.Config.NodeName, 'eld');
  t.equal(first.Config.Server, true);
  t.equal(first.Member.Name, 'eld');
  t.same(first.Meta, {});
  t.equal(first.Stats.raft?.state, 'Leader', 'the raft section is as before');
  t.match(first.Stats.raft?.term, /^\d+$/);
  const runtime = first.Stats.runtime!;
  t.ok(runtime, 'a runtime section');
  const lagKeys = ['max_ms', 'p50_ms', 'p99_ms', 'mean_ms', 'samples'].flatMap((k) => [`event_loop_lag_${k}`, `event_loop_lag_since_start_${k}`]);
  for (const key of [...lagKeys, 'event_loop_lag_resolution_ms', 'event_loop_lag_window_ms', 'cpu_count', 'uptime_s', 'rss_bytes', 'heap_used_bytes', 'heap_total_bytes']) {
    t.match(runtime[key], /^\d+(\.\d+)?$/, `${key} is a number (${runtime[key]})`);
  }
  t.equal(runtime.version, process.version);
  for (const section of Object.values(first.Stats)) for (const v of Object.values(section)) t.equal(typeof v, 'string');
  const hasSnapshotStats = typeof (server.raft as { snapshotStats?: unknown }).snapshotStats === 'function';
  t.equal(first.Stats.snapshot !== undefined, hasSnapshotStats, 'a snapshot section exactly when the Raft host keeps snapshot figures');
  if (first.Stats.snapshot) {
    for (const key of ['taken', 'last_index', 'last_bytes', 'last_duration_ms', 'max_duration_ms', 'installs', 'last_install_duration_ms']) {
      t.match(first.Stats.snapshot[key], /^\d+(\.\d+)?$/, `snapshot.${key} is a number (${first.Stats.snapshot[key]})`);
    }
  }

  // Start from a window without a stall (the server's own start may have held the loop).
  const deadline = performance.now() + 15_000;
  let before = Number(first.Stats.runtime!.event_loop_lag_max_ms);
  while (before >= 60 && performance.now() < deadline) {
    await sleep(500);
    before = Number((await self()).Stats.runtime!.event_loop_lag_max_ms);
  }
  t.ok(before < 60, `window max ${before} ms before the stall`);

  busy(100);
  await sleep(30);
  const after = (await self()).Stats.runtime!;
  t.ok(Number(after.event_loop_lag_max_ms) >= 80, `window max ${after.event_loop_lag_max_ms} ms after a 100 ms stall`);
  t.ok(Number(after.event_loop_lag_since_start_max_ms) >= 80, `since-start max ${after.event_loop_lag_since_start_max_ms} ms`);
  t.ok(Number(after.event_loop_lag_since_start_samples) > Number(runtime.event_loop_lag_since_start_samples), 'samples keep coming');
});
