// What a probe is: one execution of a check, given an AbortSignal and its limits, answering a
// status and an output. The runner owns scheduling, timeouts and thresholds; probes own the
// protocol and Consul's output texts (including the text of their own timeout).
import type { CheckStatus } from './definition.ts';

export interface ProbeContext {
  /** Aborted when the check's timeout passes (reason: a ProbeTimeoutError) or the check is removed. */
  readonly signal: AbortSignal;
  readonly timeoutMs: number;
  /** The most output bytes to keep. */
  readonly outputMaxBytes: number;
  /** CA bundle for TLS targets (the runner's tlsCa); the system's roots when absent. */
  readonly tlsCa?: string | Buffer;
}

export interface ProbeResult {
  readonly status: CheckStatus;
  readonly output: string;
  /** Report at once, bypassing SuccessBeforePassing / FailuresBeforeCritical (Consul's direct Notify). */
  readonly bypassThresholds?: boolean;
}

/** One execution of a check. Must settle promptly once `signal` aborts. */
export type Probe = (ctx: ProbeContext) => Promise<ProbeResult>;

/** The reason a probe's signal carries when its timeout passes. */
export class ProbeTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`probe timed out after ${timeoutMs} ms`);
    this.name = 'ProbeTimeoutError';
  }
}

/** The signal was aborted by the check's timeout (not by its removal). */
export function timedOut(signal: AbortSignal): boolean {
  return signal.aborted && signal.reason instanceof ProbeTimeoutError;
}
