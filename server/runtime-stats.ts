// Konsul's sections of GET /v1/agent/self "Stats" beyond Consul's "raft": the process runtime
// (Consul's "runtime" keys, plus event-loop lag and memory) and the Raft host's snapshot figures.
// Like every Stats section, they map names to strings.
import { arch, cpus, platform } from 'node:os';
import type { StagedRestoreProgress } from '../fsm/staged-restore.ts';
import type { EventLoopLagMonitor, LagFigures } from './event-loop-lag.ts';

/** A number as a Stats string: integers as they are, others with up to 3 decimals. */
export function statNumber(n: number): string {
  if (!Number.isFinite(n)) return '0';
  return Number.isInteger(n) ? String(n) : String(Math.round(n * 1000) / 1000);
}

function lagEntries(prefix: string, f: LagFigures): Record<string, string> {
  return {
    [`${prefix}max_ms`]: statNumber(f.maxMs),
    [`${prefix}p50_ms`]: statNumber(f.p50Ms),
    [`${prefix}p99_ms`]: statNumber(f.p99Ms),
    [`${prefix}mean_ms`]: statNumber(f.meanMs),
    [`${prefix}samples`]: statNumber(f.samples),
  };
}

/**
 * Stats.runtime: Consul's keys (arch, os, cpu_count, version — Node's here), uptime and memory, and
 * the event-loop lag over the recent window (`event_loop_lag_*`, covering `event_loop_lag_window_ms`)
 * and since the monitor started (`event_loop_lag_since_start_*`), when a monitor runs.
 */
export function runtimeSection(monitor: EventLoopLagMonitor | undefined): Record<string, string> {
  const mem = process.memoryUsage();
  const section: Record<string, string> = {
    arch: arch(),
    os: platform(),
    cpu_count: String(cpus().length),
    version: process.version,
    uptime_s: statNumber(Math.round(process.uptime())),
    rss_bytes: String(mem.rss),
    heap_used_bytes: String(mem.heapUsed),
    heap_total_bytes: String(mem.heapTotal),
  };
  if (monitor?.running) {
    const r = monitor.report();
    Object.assign(section, {
      event_loop_lag_resolution_ms: statNumber(r.resolutionMs),
      event_loop_lag_window_ms: statNumber(Math.round(r.window.spanMs)),
      ...lagEntries('event_loop_lag_', r.window),
      ...lagEntries('event_loop_lag_since_start_', r.sinceStart),
    });
  }
  return section;
}

/** The Raft host's snapshot figures, when it keeps them (RaftHost.snapshotStats()). */
export interface SnapshotStatsSource {
  snapshotStats?: () => object;
}

const snake = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * Stats.snapshot from `raft.snapshotStats()` ({ taken, lastIndex, lastBytes, lastDurationMs,
 * maxDurationMs, installs, lastInstallDurationMs } as snake_case strings: taken, last_index, ...),
 * or undefined when the host has no such method. Every number, string or boolean field is shown.
 */
export function snapshotSection(raft: object): Record<string, string> | undefined {
  const source = raft as SnapshotStatsSource;
  if (typeof source.snapshotStats !== 'function') return undefined;
  const stats = source.snapshotStats() as Record<string, unknown>;
  const section: Record<string, string> = {};
  for (const [name, value] of Object.entries(stats)) {
    if (typeof value === 'number') section[snake(name)] = statNumber(value);
    else if (typeof value === 'string' || typeof value === 'boolean') section[snake(name)] = String(value);
  }
  return section;
}

/** Stats.restore: the staged restore (PUT /v1/snapshot) this server's state machine is building. */
export function restoreSection(progress: StagedRestoreProgress | null): Record<string, string> {
  if (progress === null) return { in_progress: 'false' };
  return {
    in_progress: 'true',
    id: progress.id,
    begin_index: String(progress.beginIndex),
    bytes: String(progress.bytes),
    received_bytes: String(progress.receivedBytes),
    chunks: String(progress.chunks),
    kv_entries: String(progress.kvEntries),
  };
}
