// Waiting in tests: for a condition (polled, bounded), never for a guessed time. `sleep` remains
// for the one thing a condition cannot show: that nothing happens during a window.

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface WaitOptions {
  readonly timeoutMs?: number;
  readonly intervalMs?: number;
  /** Describes what is awaited, for the error message. */
  readonly what?: string;
}

/**
 * Polls `probe` until it returns something other than undefined or false (a probe that throws
 * counts as not yet); returns that value. Throws with the last reason after `timeoutMs`.
 */
export async function waitFor<T>(probe: () => Promise<T | undefined | false> | T | undefined | false, options: WaitOptions = {}): Promise<Exclude<T, undefined | false>> {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const deadline = Date.now() + timeoutMs;
  let last: unknown = 'no attempt finished';
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v as Exclude<T, undefined | false>;
      last = 'condition not met';
    } catch (err) {
      last = err instanceof Error ? err.message : err;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${options.what ?? 'a condition'} (last: ${String(last)})`);
    }
    await sleep(Math.min(options.intervalMs ?? 20, Math.max(0, deadline - Date.now())));
  }
}

/** The last `maxChars` characters of a log, for failure messages. */
export function tail(text: string, maxChars = 4000): string {
  return text.length <= maxChars ? text : `…${text.slice(-maxChars)}`;
}
