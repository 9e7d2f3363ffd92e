// Preloaded by bench/scale.bench.ts (`node --import <this file> bin/konsul.js server ...`) into
// Konsul servers that do not report their own event-loop lag (a checkout from before
// server/event-loop-lag.ts, e.g. `--konsul-root /work/before`), so that "before" and "after" are
// measured the same way. It does nothing unless KONSUL_BENCH_LAG_DIR is set.
//
// Same measure as server/event-loop-lag.ts: perf_hooks.monitorEventLoopDelay at 10 ms resolution,
// lag = time between two ticks minus the resolution. Every second (as soon as the loop can) it
// appends one line to $KONSUL_BENCH_LAG_DIR/lag-<pid>.log:
//   <epoch ms> <max lag ms over the slice> <samples in the slice>
// A stall of S ms is in the line written right after it (whose slice it ends). Plain JavaScript:
// it runs before tsx is registered.
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import process from 'node:process';
import { setInterval } from 'node:timers';

const dir = process.env.KONSUL_BENCH_LAG_DIR;
if (dir) {
  const resolutionMs = 10;
  const file = join(dir, `lag-${process.pid}.log`);
  const h = monitorEventLoopDelay({ resolution: resolutionMs });
  h.enable();
  const timer = setInterval(() => {
    const max = h.count > 0 ? Math.max(0, h.max / 1e6 - resolutionMs) : 0;
    const line = `${Date.now()} ${max.toFixed(1)} ${h.count}\n`;
    h.reset();
    try {
      appendFileSync(file, line);
    } catch {
      /* the benchmark removed the directory: nothing left to report to */
    }
  }, 1000);
  timer.unref();
}
