// Preloaded by bench/backup.bench.ts (`node --import <this file> bin/konsul.js server ...`): every
// event-loop lag sample of a server process, with its time, so that a benchmark can take the max
// AND the percentiles over any window it likes (lag-probe.mjs keeps only each second's max). It
// does nothing unless KONSUL_BENCH_LAG_SAMPLES_DIR is set.
//
// The measure is the one of server/event-loop-lag.ts and lag-probe.mjs, taken with a plain timer:
// a 10 ms interval, lag = time between two of its callbacks minus 10 ms (never below 0). An idle
// loop gives ~0; a loop blocked for S ms gives one sample of ~S, ending when the loop is free again.
// About once a second (at the first tick after a second has passed) it appends one line to
// $KONSUL_BENCH_LAG_SAMPLES_DIR/lag-<pid>.log:
//   <base epoch ms> <t1>:<lag1>[:<cpu1>] <t2>:<lag2>[:<cpu2>] ...
// where t is the sample's end, ms after base, and lag is in ms with one decimal. A sample's stall
// spans [base + t - lag, base + t]. For samples of 5 ms or more, cpu is the CPU time (user +
// system, ms, in 10 ms ticks) the main thread used between the two callbacks: close to the
// interval when the loop was busy, far below it when the process was not scheduled (a machine
// with more runnable threads than cores). Plain JavaScript: it runs before tsx is registered.
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { setInterval } from 'node:timers';

const dir = process.env.KONSUL_BENCH_LAG_SAMPLES_DIR;
if (dir) {
  const periodMs = 10;
  const file = join(dir, `lag-${process.pid}.log`);
  // performance.now() is monotonic; its origin in epoch ms converts it once.
  const origin = performance.timeOrigin;
  let last = performance.now();
  let base = Math.floor(origin + last);
  let pending = [];
  // The main thread's CPU time, ms: /proc/self/task/<pid>/stat utime + stime (1/100 s ticks).
  const statFile = `/proc/self/task/${process.pid}/stat`;
  const mainCpuMs = () => {
    try {
      const stat = readFileSync(statFile, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(rest[11]) + Number(rest[12])) * 10;
    } catch {
      return NaN;
    }
  };
  let lastCpu = mainCpuMs();
  const timer = setInterval(() => {
    const now = performance.now();
    const cpu = mainCpuMs();
    const lag = Math.max(0, now - last - periodMs);
    const cpuMs = cpu - lastCpu;
    last = now;
    lastCpu = cpu;
    const epoch = origin + now;
    pending.push(lag >= 5 && Number.isFinite(cpuMs) ? `${Math.round(epoch - base)}:${lag.toFixed(1)}:${cpuMs}` : `${Math.round(epoch - base)}:${lag.toFixed(1)}`);
    if (epoch - base >= 1000) {
      const line = `${base} ${pending.join(' ')}\n`;
      pending = [];
      base = Math.floor(epoch);
      try {
        appendFileSync(file, line);
      } catch {
        /* the benchmark removed the directory: nothing left to report to */
      }
    }
  }, periodMs);
  timer.unref();
}
