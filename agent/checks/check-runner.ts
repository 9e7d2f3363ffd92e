// CheckRunner: runs an agent's health checks (HTTP, TCP, gRPC, TTL, script) the way Consul's agent
// does (agent/checks/check.go, agent/agent.go addCheck), and reports status changes to its owner.
//
// PUBLIC API (the agent codes against this; see also README.md beside this file)
//
//   const runner = new CheckRunner({
//     onResult(checkId, status, output) { ... },   // only when status or output changed
//     clock?, random?,                              // injectable; default real timers, Math.random
//     enableScriptChecks?: boolean,                 // default false (Consul's enable_script_checks)
//     outputMaxBytes?: number,                      // agent's check_output_max_size, default 4096
//     minIntervalMs?: number,                       // default 1000 (Consul's MinInterval)
//     deregisterMinMs?: number,                     // default 60000 (check_deregister_interval_min)
//     historySize?: number,                         // default 10
//     tlsCa?: string | Buffer,                      // CA bundle for HTTPS / TCP+TLS / gRPC+TLS probes
//     probeFactory?: (check) => Probe | undefined,  // replace probes (unit tests); default real ones
//     logger?: (level, message) => void,
//   });
//   runner.add(definition, { service?, status?, output? }): NormalizedCheck   // throws CheckDefinitionError
//   runner.addParsed(check: NormalizedCheck, { status?, output? }): void
//   runner.remove(checkId): boolean
//   runner.ttlUpdate(checkId, status, output): string      // truncated output; throws CheckRunnerError
//   runner.status(checkId): CheckState | undefined         // { status, output, criticalSinceMs }
//   runner.history(checkId): readonly CheckResultRecord[]  // oldest first, at most historySize
//   runner.get(checkId): NormalizedCheck | undefined ; runner.checkIds(): string[]
//   runner.reapable(nowMs?): { checkId, serviceId }[]      // DeregisterCriticalServiceAfter elapsed
//   runner.stop(): Promise<void>                           // aborts probes, clears timers
//
// Behaviour (Consul's):
// - A check starts with the definition's Status, else critical. Re-adding an existing ID keeps its
//   current status and output (agent.AddCheck snapshots them "to avoid flapping") unless the caller
//   passes `status`; the counters restart.
// - Interval checks first run at a random offset in [0, interval) (lib.RandomStagger), then every
//   interval measured from the end of the previous probe; one probe per check at a time. Each probe
//   has its own timer and AbortSignal: a hung target only delays its own check.
// - Timeouts: the definition's Timeout, else 10 s (HTTP, TCP, gRPC) or 30 s (script). Consul does not
//   cap the timeout by the interval, and neither does Konsul. A probe that does not settle within
//   timeout + 2 s (a bug, never a target) is reported critical and abandoned.
// - Thresholds (StatusHandler): passing/warning results count successes, critical results failures;
//   a result is reported only once its count reaches SuccessBeforePassing / FailuresBeforeCritical
//   (FailuresBeforeWarning reports "warning" earlier). The counters start at the thresholds, so the
//   first probe after add is reported at once. TTL updates, TTL expiry, a script's timeout and a
//   script that cannot start bypass the thresholds, as in Consul.
// - TTL: expires to critical with "TTL expired" or "TTL expired (last output before timeout
//   follows): <output>"; ttlUpdate resets the TTL and truncates the output Consul's way.
// - Check IDs are compared exactly (the caller folds case if it wants Consul's catalog semantics).
import { formatGoDuration } from '../../lib/duration.ts';
import {
  CheckDefinitionError,
  DEFAULT_NETWORK_TIMEOUT_MS,
  DEFAULT_OUTPUT_MAX_BYTES,
  DEFAULT_SCRIPT_TIMEOUT_MS,
  MIN_INTERVAL_MS,
  parseCheckDefinition,
  RUNNABLE_CHECK_TYPES,
  type CheckStatus,
  type NormalizedCheck,
  type ParseCheckOptions,
} from './definition.ts';
import { truncateHead } from './output.ts';
import { ProbeTimeoutError, type Probe, type ProbeResult } from './probe.ts';
import { defaultProbe } from './probes.ts';

/** Timers and time, injectable so that unit tests drive them. */
export interface CheckClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The longest delay Node's setTimeout takes: a longer one fires after 1 ms (TimeoutOverflowWarning). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Real time; timers are unref'd so that checks never keep a process alive. A delay beyond
 * MAX_TIMER_MS (an Interval, Timeout or TTL over ~24.8 days, which Go durations allow) waits
 * MAX_TIMER_MS instead of running the check back to back every millisecond.
 */
export const systemClock: CheckClock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => {
    const timer = setTimeout(callback, Math.min(ms, MAX_TIMER_MS));
    timer.unref();
    return timer;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export { ProbeTimeoutError, type Probe, type ProbeContext, type ProbeResult } from './probe.ts';

export type CheckResultSource = 'probe' | 'ttl-update' | 'ttl-expired';

/** One entry of a check's history (seed BACK-024). */
export interface CheckResultRecord {
  readonly timeMs: number;
  /** What the probe, update or expiry said. */
  readonly status: CheckStatus;
  readonly output: string;
  readonly source: CheckResultSource;
  /** The check's status after this result, thresholds applied. */
  readonly reportedStatus: CheckStatus;
}

export interface CheckState {
  readonly status: CheckStatus;
  readonly output: string;
  /** When the reported status became critical (clock time); undefined while not critical. */
  readonly criticalSinceMs: number | undefined;
}

export type CheckLogger = (level: 'debug' | 'info' | 'warn', message: string) => void;

export interface CheckRunnerOptions {
  readonly onResult: (checkId: string, status: CheckStatus, output: string) => void;
  readonly clock?: CheckClock;
  /** Uniform in [0, 1). */
  readonly random?: () => number;
  readonly enableScriptChecks?: boolean;
  readonly outputMaxBytes?: number;
  readonly minIntervalMs?: number;
  readonly deregisterMinMs?: number;
  readonly historySize?: number;
  readonly tlsCa?: string | Buffer;
  readonly probeFactory?: (check: NormalizedCheck) => Probe | undefined;
  readonly logger?: CheckLogger;
}

export interface AddCheckOptions {
  /** Start with this status (and output) instead of the definition's / the existing check's. */
  readonly status?: CheckStatus;
  readonly output?: string;
}

/** A refused runner call, with the HTTP status and Consul's text. */
export class CheckRunnerError extends Error {
  constructor(
    readonly httpStatus: 404 | 500,
    message: string,
  ) {
    super(message);
    this.name = 'CheckRunnerError';
  }
}

/** Extra time a probe gets past its timeout to settle before the runner gives up on it. */
const PROBE_GRACE_MS = 2000;

interface Entry {
  readonly check: NormalizedCheck;
  readonly probe: Probe | undefined;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly outputMaxBytes: number;
  status: CheckStatus;
  output: string;
  criticalSinceMs: number | undefined;
  successCounter: number;
  failuresCounter: number;
  /** The next run (interval checks) or the expiry (TTL checks). */
  timer: unknown;
  inFlight: { controller: AbortController; settled: Promise<void> } | null;
  lastTtlOutput: string;
  readonly history: CheckResultRecord[];
  removed: boolean;
}

export class CheckRunner {
  private readonly options: CheckRunnerOptions;
  private readonly clock: CheckClock;
  private readonly random: () => number;
  private readonly entries = new Map<string, Entry>();
  private stopped = false;

  constructor(options: CheckRunnerOptions) {
    this.options = options;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
  }

  /**
   * Parses a definition (Consul's wire shape) and starts running it; replaces a check with the same
   * ID. Throws CheckDefinitionError (httpStatus + Consul's text) for an invalid definition.
   */
  add(definition: unknown, options: AddCheckOptions & { readonly service?: ParseCheckOptions['service'] } = {}): NormalizedCheck {
    const parsed = parseCheckDefinition(definition, { enableScriptChecks: this.options.enableScriptChecks === true, service: options.service });
    if (!parsed.ok) throw parsed.error;
    this.addParsed(parsed.check, options);
    return parsed.check;
  }

  /** Starts running an already parsed check (replacing one with the same ID). */
  addParsed(check: NormalizedCheck, options: AddCheckOptions = {}): void {
    if (this.stopped) throw new Error('CheckRunner is stopped');
    if (check.type === 'script' && this.options.enableScriptChecks !== true) {
      throw new CheckDefinitionError(500, "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true");
    }
    const existing = this.entries.get(check.checkId);
    if (existing !== undefined) this.dispose(existing);
    const agentMax = this.options.outputMaxBytes ?? DEFAULT_OUTPUT_MAX_BYTES;
    const status = options.status ?? existing?.status ?? check.status ?? 'critical';
    const output = options.output ?? (options.status === undefined ? existing?.output : undefined) ?? '';
    const runnable = RUNNABLE_CHECK_TYPES.includes(check.type);
    const probe = runnable && check.type !== 'ttl' ? (this.options.probeFactory ?? defaultProbe)(check) : undefined;
    const entry: Entry = {
      check,
      probe,
      intervalMs: Math.max(check.intervalMs, this.options.minIntervalMs ?? MIN_INTERVAL_MS),
      timeoutMs: check.timeoutMs > 0 ? check.timeoutMs : check.type === 'script' ? DEFAULT_SCRIPT_TIMEOUT_MS : DEFAULT_NETWORK_TIMEOUT_MS,
      outputMaxBytes: check.outputMaxSize > 0 ? Math.min(check.outputMaxSize, agentMax) : agentMax,
      status,
      output,
      criticalSinceMs: status === 'critical' ? (existing?.status === 'critical' ? existing.criticalSinceMs : this.clock.now()) : undefined,
      successCounter: check.successBeforePassing,
      failuresCounter: check.failuresBeforeCritical,
      timer: null,
      inFlight: null,
      lastTtlOutput: check.type === 'ttl' ? output : '',
      history: [],
      removed: false,
    };
    if (check.intervalMs > 0 && check.intervalMs < entry.intervalMs) {
      this.log('warn', `check ${check.checkId}: interval below minimum, using ${formatGoDuration(entry.intervalMs * 1e6)}`);
    }
    if (!runnable) this.log('info', `check ${check.checkId}: ${check.type} checks are not run by Konsul; it keeps its status`);
    this.entries.set(check.checkId, entry);
    if (check.type === 'ttl') this.armTtl(entry);
    else if (probe !== undefined) this.schedule(entry, Math.floor(this.random() * entry.intervalMs));
  }

  /** Stops and forgets a check. Answers whether it existed. */
  remove(checkId: string): boolean {
    const entry = this.entries.get(checkId);
    if (entry === undefined) return false;
    this.dispose(entry);
    this.entries.delete(checkId);
    return true;
  }

  /**
   * /v1/agent/check/pass|warn|fail|update: sets a TTL check's status and restarts its TTL. Answers
   * the output as kept (truncated). Unknown check: 404; not a TTL check: 500 (Consul's texts).
   */
  ttlUpdate(checkId: string, status: CheckStatus, output: string): string {
    const entry = this.entries.get(checkId);
    if (entry === undefined) throw new CheckRunnerError(404, `Unknown check ID ${JSON.stringify(checkId)}. Ensure that the check ID is passed, not the check name.`);
    if (entry.check.type !== 'ttl') throw new CheckRunnerError(500, `CheckID ${JSON.stringify(checkId)} does not have associated TTL`);
    const kept = truncateHead(output, entry.outputMaxBytes);
    entry.lastTtlOutput = kept;
    this.report(entry, status, kept);
    this.record(entry, status, kept, 'ttl-update');
    this.armTtl(entry);
    return kept;
  }

  status(checkId: string): CheckState | undefined {
    const entry = this.entries.get(checkId);
    return entry === undefined ? undefined : { status: entry.status, output: entry.output, criticalSinceMs: entry.criticalSinceMs };
  }

  history(checkId: string): readonly CheckResultRecord[] {
    return [...(this.entries.get(checkId)?.history ?? [])];
  }

  get(checkId: string): NormalizedCheck | undefined {
    return this.entries.get(checkId)?.check;
  }

  checkIds(): string[] {
    return [...this.entries.keys()];
  }

  /**
   * Service checks whose DeregisterCriticalServiceAfter has passed while critical (at least
   * deregisterMinMs): the agent deregisters their services (Consul's reapServices).
   */
  reapable(nowMs: number = this.clock.now()): { checkId: string; serviceId: string }[] {
    const minimum = this.options.deregisterMinMs ?? 60_000;
    const out: { checkId: string; serviceId: string }[] = [];
    for (const entry of this.entries.values()) {
      const after = entry.check.deregisterCriticalServiceAfterMs;
      if (after <= 0 || entry.check.serviceId === '' || entry.criticalSinceMs === undefined) continue;
      if (nowMs - entry.criticalSinceMs > Math.max(after, minimum)) out.push({ checkId: entry.check.checkId, serviceId: entry.check.serviceId });
    }
    return out;
  }

  /** Stops every check: timers cleared, probes aborted (and awaited). The runner cannot be reused. */
  async stop(): Promise<void> {
    this.stopped = true;
    const pending: Promise<void>[] = [];
    for (const entry of this.entries.values()) {
      if (entry.inFlight) pending.push(entry.inFlight.settled);
      this.dispose(entry);
    }
    this.entries.clear();
    await Promise.allSettled(pending);
  }

  // ---------------------------------------------------------------------------------------------

  private dispose(entry: Entry): void {
    entry.removed = true;
    if (entry.timer !== null) this.clock.clearTimeout(entry.timer);
    entry.timer = null;
    entry.inFlight?.controller.abort(new Error('check removed'));
  }

  private schedule(entry: Entry, delayMs: number): void {
    if (entry.removed) return;
    entry.timer = this.clock.setTimeout(() => {
      entry.timer = null;
      this.runProbe(entry);
    }, delayMs);
  }

  private runProbe(entry: Entry): void {
    if (entry.removed || entry.probe === undefined) return;
    const controller = new AbortController();
    let done = false;
    let timeoutTimer: unknown = null;
    let graceTimer: unknown = null;
    const finish = (result: ProbeResult): void => {
      if (done) return;
      done = true;
      if (timeoutTimer !== null) this.clock.clearTimeout(timeoutTimer);
      if (graceTimer !== null) this.clock.clearTimeout(graceTimer);
      entry.inFlight = null;
      if (entry.removed) return;
      this.apply(entry, result);
      this.schedule(entry, entry.intervalMs);
    };
    timeoutTimer = this.clock.setTimeout(() => {
      timeoutTimer = null;
      controller.abort(new ProbeTimeoutError(entry.timeoutMs));
    }, entry.timeoutMs);
    graceTimer = this.clock.setTimeout(() => {
      graceTimer = null;
      this.log('warn', `check ${entry.check.checkId}: probe did not settle after its timeout; abandoning it`);
      finish({ status: 'critical', output: `Timed out (${formatGoDuration(entry.timeoutMs * 1e6)}) running check`, bypassThresholds: true });
    }, entry.timeoutMs + PROBE_GRACE_MS);
    let settled: Promise<void>;
    try {
      settled = entry.probe({ signal: controller.signal, timeoutMs: entry.timeoutMs, outputMaxBytes: entry.outputMaxBytes, tlsCa: this.options.tlsCa }).then(finish, (err: unknown) =>
        finish({ status: 'critical', output: err instanceof Error ? err.message : String(err) }),
      );
    } catch (err) {
      settled = Promise.resolve();
      finish({ status: 'critical', output: err instanceof Error ? err.message : String(err) });
    }
    if (!done) entry.inFlight = { controller, settled };
  }

  /** Consul's StatusHandler.updateCheck. */
  private apply(entry: Entry, result: ProbeResult): void {
    const { check } = entry;
    if (result.bypassThresholds === true) {
      this.report(entry, result.status, result.output);
    } else if (result.status === 'passing' || result.status === 'warning') {
      entry.successCounter++;
      entry.failuresCounter = 0;
      if (entry.successCounter >= check.successBeforePassing) this.report(entry, result.status, result.output);
    } else {
      entry.failuresCounter++;
      entry.successCounter = 0;
      if (entry.failuresCounter >= check.failuresBeforeCritical) this.report(entry, 'critical', result.output);
      else if (entry.failuresCounter >= check.failuresBeforeWarning) this.report(entry, 'warning', result.output);
    }
    this.record(entry, result.status, result.output, 'probe');
  }

  private armTtl(entry: Entry): void {
    if (entry.timer !== null) this.clock.clearTimeout(entry.timer);
    entry.timer = this.clock.setTimeout(() => {
      entry.timer = null;
      if (entry.removed) return;
      const output = entry.lastTtlOutput === '' ? 'TTL expired' : `TTL expired (last output before timeout follows): ${entry.lastTtlOutput}`;
      this.log('warn', `check ${entry.check.checkId} missed its TTL, now critical`);
      this.report(entry, 'critical', output);
      this.record(entry, 'critical', output, 'ttl-expired');
    }, entry.check.ttlMs);
  }

  private report(entry: Entry, status: CheckStatus, output: string): void {
    if (entry.status === status && entry.output === output) return;
    if (status === 'critical' && entry.status !== 'critical') entry.criticalSinceMs = this.clock.now();
    if (status !== 'critical') entry.criticalSinceMs = undefined;
    entry.status = status;
    entry.output = output;
    try {
      this.options.onResult(entry.check.checkId, status, output);
    } catch (err) {
      this.log('warn', `check ${entry.check.checkId}: onResult threw: ${(err as Error).message}`);
    }
  }

  private record(entry: Entry, status: CheckStatus, output: string, source: CheckResultSource): void {
    entry.history.push({ timeMs: this.clock.now(), status, output, source, reportedStatus: entry.status });
    const size = this.options.historySize ?? 10;
    if (entry.history.length > size) entry.history.splice(0, entry.history.length - size);
  }

  private log(level: 'debug' | 'info' | 'warn', message: string): void {
    this.options.logger?.(level, message);
  }
}
