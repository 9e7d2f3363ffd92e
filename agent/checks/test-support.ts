// Helpers shared by the checks' integration tests (not shipped code: imported only by *.test.ts).
import { CheckRunner, type CheckRunnerOptions } from './check-runner.ts';
import type { CheckStatus } from './definition.ts';

export interface RecordedResult {
  readonly checkId: string;
  readonly status: CheckStatus;
  readonly output: string;
  readonly atMs: number;
}

/** A runner on real time and real probes, recording every reported change. */
export function realRunner(options: Partial<CheckRunnerOptions> = {}): { runner: CheckRunner; results: RecordedResult[] } {
  const results: RecordedResult[] = [];
  const runner = new CheckRunner({
    minIntervalMs: 50,
    ...options,
    onResult: (checkId, status, output) => results.push({ checkId, status, output, atMs: Date.now() }),
  });
  return { runner, results };
}

/** Polls until `predicate` holds; fails with `what` after `timeoutMs`. Answers the elapsed time. */
export async function waitFor(what: string, predicate: () => boolean, timeoutMs = 10_000): Promise<number> {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return Date.now() - start;
}

/**
 * Wall-clock slack for "critical within interval × failures": the interval runs from the end of each
 * probe and timers fire late on a loaded machine (CI runs test files in parallel on 2 cores). The
 * exact number of failed probes before critical is asserted separately, from the history.
 */
export const SLACK_MS = 1000;

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
