// Event-loop lag of this process (issue 11), from perf_hooks.monitorEventLoopDelay: how long the
// event loop was held up beyond a timer's due time. A server whose loop stalls sends no heartbeats
// and answers no HTTP, so followers call an election; this is the figure that shows it.
//
// monitorEventLoopDelay arms a native timer every `resolution` ms and records the time between two
// of its callbacks: an idle loop records about `resolution`, a loop blocked for 100 ms records
// 100–110 ms. Lag is that value minus the resolution (never below 0), as @fastify/under-pressure
// reports it: a block of B ms is reported as B - resolution to B ms.
//
// Two figures are kept:
// - since start: one histogram that is never reset;
// - recent window: two histograms reset in turn every windowMs / 2, so the older of the two always
//   covers the last windowMs / 2 to windowMs (exact percentiles, no merging of histograms). The
//   covered span is reported with the figures.
// The timers are unref'd: the monitor never keeps a process alive. One monitor per process is
// enough (the loop is the process's), so servers share sharedEventLoopLagMonitor().
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

export interface LagFigures {
  /** Histogram samples (one per resolution tick the loop managed to run). */
  readonly samples: number;
  readonly maxMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
  /** The span these figures cover, ms. */
  readonly spanMs: number;
}

export interface LagReport {
  readonly resolutionMs: number;
  readonly window: LagFigures;
  readonly sinceStart: LagFigures;
}

export interface EventLoopLagOptions {
  /** Timer period of the histogram, ms (Node's default 10; at least 1). */
  readonly resolutionMs?: number;
  /** Length of the recent window, ms (the report covers between half of it and all of it). */
  readonly windowMs?: number;
}

export class EventLoopLagMonitor {
  readonly resolutionMs: number;
  readonly windowMs: number;
  private readonly total: IntervalHistogram;
  /** The two window histograms; `older` indexes the one reset longer ago. */
  private readonly halves: [IntervalHistogram, IntervalHistogram];
  private readonly resetAt: [number, number] = [0, 0];
  private older = 0;
  private startedAt = 0;
  private rotation: NodeJS.Timeout | null = null;

  constructor(options: EventLoopLagOptions = {}) {
    this.resolutionMs = Math.max(1, Math.round(options.resolutionMs ?? 10));
    this.windowMs = Math.max(2 * this.resolutionMs, Math.round(options.windowMs ?? 10_000));
    const make = () => monitorEventLoopDelay({ resolution: this.resolutionMs });
    // Created and enabled together, their timers stay in phase: one wake-up serves all three.
    this.total = make();
    this.halves = [make(), make()];
  }

  get running(): boolean {
    return this.rotation !== null;
  }

  start(): this {
    if (this.rotation) return this;
    const now = performance.now();
    this.startedAt = now;
    this.resetAt[0] = now;
    this.resetAt[1] = now;
    this.older = 0;
    for (const h of [this.total, ...this.halves]) {
      h.reset();
      h.enable();
    }
    this.rotation = setInterval(() => this.rotate(), Math.max(1, Math.floor(this.windowMs / 2)));
    this.rotation.unref();
    return this;
  }

  stop(): void {
    if (!this.rotation) return;
    clearInterval(this.rotation);
    this.rotation = null;
    for (const h of [this.total, ...this.halves]) h.disable();
  }

  /** The lag figures now: over the recent window and since start (zeros before any sample). */
  report(): LagReport {
    const now = performance.now();
    const win = this.halves[this.older]!;
    return {
      resolutionMs: this.resolutionMs,
      window: this.figures(win, now - this.resetAt[this.older]!),
      sinceStart: this.figures(this.total, now - this.startedAt),
    };
  }

  /** Starts the next window half: the older histogram is reset and becomes the newer one. */
  private rotate(): void {
    const reset = this.older;
    this.halves[reset]!.reset();
    this.resetAt[reset] = performance.now();
    this.older = 1 - reset;
  }

  private figures(h: IntervalHistogram, spanMs: number): LagFigures {
    const samples = h.count;
    if (samples === 0) return { samples: 0, maxMs: 0, p50Ms: 0, p99Ms: 0, meanMs: 0, spanMs };
    const lag = (ns: number) => (Number.isFinite(ns) ? Math.max(0, ns / 1e6 - this.resolutionMs) : 0);
    return { samples, maxMs: lag(h.max), p50Ms: lag(h.percentile(50)), p99Ms: lag(h.percentile(99)), meanMs: lag(h.mean), spanMs };
  }
}

let shared: EventLoopLagMonitor | null = null;

/** This process's monitor (10 ms resolution, 10 s window), started on first use and never stopped. */
export function sharedEventLoopLagMonitor(): EventLoopLagMonitor {
  shared ??= new EventLoopLagMonitor().start();
  return shared;
}
