// Helpers shared by the checks' integration tests (not shipped code: imported only by *.test.ts).
import { CheckRunner, type CheckRunnerOptions } from './check-runner.ts';
import type { CheckStatus } from './definition.ts';
import { waitFor } from '../../test/kit/wait.ts';

export { waitFor } from '../../test/kit/wait.ts';

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

/**
 * Wall-clock slack for "critical within interval × failures": the interval runs from the end of each
 * probe and timers fire late on a loaded machine (CI runs test files in parallel on 2 cores). The
 * exact number of failed probes before critical is asserted separately, from the history.
 */
export const SLACK_MS = 1000;

/** Waits for the next probe of `checkId` to finish (its history gets a new last record). */
export async function nextResult(runner: CheckRunner, checkId: string): Promise<void> {
  const last = runner.history(checkId).at(-1);
  await waitFor(() => runner.history(checkId).at(-1) !== last, { what: `another result of ${checkId}`, timeoutMs: 5000 });
}
