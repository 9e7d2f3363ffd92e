// `konsul snapshot agent`: scheduled snapshots with one writer at a time, as Consul Enterprise's
// snapshot agent (docs/adr/0019-snapshot-agent.md).
//
// Every agent process, in a loop:
//  1. creates a session (TTL, lock-delay, behavior release) and renews it every TTL/2;
//  2. contends for the lock key with ?acquire (blocking on the key while another session holds
//     it, retrying while the free key is under lock-delay);
//  3. once it holds the lock (the leader): takes a snapshot at once and then every interval, each
//     after a consistent read confirms it still holds the lock, streamed to a temporary file,
//     verified, renamed into place, then rotation; meanwhile a blocking query watches the key and
//     the renewals watch the session, and losing either aborts everything in flight (the
//     temporary file is removed, nothing is renamed);
//  4. after `maxFailures` failures in a row it releases the lock and stands back for a while, so
//     that another agent (with a working disk, say) can take over;
//  5. on stop: releases the lock, destroys the session, deregisters its service.
// Each agent registers a service (`konsul-snapshot`) on the agent API of the server it talks to,
// with a TTL check "Konsul Snapshot Agent Alive"; the leader adds the check `konsul-snapshot-agent`,
// passing with the last file saved or critical with the last error.
import { setTimeout as sleep } from 'node:timers/promises';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { parseDuration } from './args.ts';
import { createSession } from './commands/session-actions.ts';
import { LOCK_FLAG_VALUE } from './commands/lock-actions.ts';
import { describeNetworkFailure, encodePathSegments, HttpStatusError, KonsulClient, UnreachableError } from './http-client.ts';
import { parseKvEntries, type KvEntry } from './kv-entries.ts';
import type { SnapshotAgentMetrics } from './snapshot-agent-metrics.ts';
import { rotateSnapshots, saveSnapshot, type SavedSnapshot } from './snapshot-files.ts';

export interface SnapshotAgentConfig {
  /** Base URLs of Konsul servers or agents, tried in order (failover on connection errors). */
  readonly httpAddrs: readonly string[];
  readonly token: string | undefined;
  readonly intervalMs: number;
  readonly dir: string;
  /** Newest snapshots kept; 0: all. */
  readonly retain: number;
  /** Snapshots older than this are deleted; 0: no age limit. */
  readonly retainDays: number;
  /** Let any server answer the snapshot from its own state (?stale). */
  readonly stale: boolean;
  readonly lockKey: string;
  /** Go durations, sent as they are to /v1/session/create. */
  readonly sessionTtl: string;
  readonly lockDelay: string;
  /** Failures in a row after which the leader lets another agent try; 0: never. */
  readonly maxFailures: number;
  /** Service name registered for every agent (Consul: consul-snapshot). */
  readonly service: string;
  /** Tells this agent apart from the others: its service and check IDs, its session name. */
  readonly instanceId: string;
  /** DeregisterCriticalServiceAfter of the service's alive check (Go duration). */
  readonly deregisterAfter: string;
}

export type LogLevel = 'INFO' | 'WARN' | 'ERROR';
export type Logger = (level: LogLevel, message: string) => void;

/** How long one blocking query on the lock key waits (Consul's DefaultLockWaitTime). */
const LOCK_WAIT_MS = 15_000;
const ALIVE_TTL_MS = 30_000;
const ALIVE_PASS_MS = 10_000;
const REQUEST_TIMEOUT_MS = 10_000;
/** A save that takes longer than this (or the interval, if longer) is abandoned. */
const MIN_SAVE_TIMEOUT_MS = 10 * 60_000;
/** Temporary files untouched this long were left by a crash (a live download writes continuously). */
const STALE_TEMP_MS = 10 * 60_000;

class LockLost extends Error {}

/** Several servers' clients; a connection failure moves to the next one. */
class ServerPool {
  readonly #clients: KonsulClient[];
  #current = 0;

  constructor(addresses: readonly string[], token: string | undefined) {
    if (addresses.length === 0) throw new Error('no HTTP address');
    this.#clients = addresses.map((a) => new KonsulClient(a, token));
  }

  get current(): KonsulClient {
    return this.#clients[this.#current]!;
  }

  async call<T>(fn: (client: KonsulClient) => Promise<T>): Promise<T> {
    let last: unknown;
    for (let tried = 0; tried < this.#clients.length; tried++) {
      try {
        return await fn(this.current);
      } catch (err) {
        if (!(err instanceof UnreachableError)) throw err;
        last = err;
        this.#current = (this.#current + 1) % this.#clients.length;
      }
    }
    throw last;
  }
}

interface LastSuccess {
  readonly saved: SavedSnapshot;
  readonly retained: number;
  readonly atMs: number;
}

interface LastFailure {
  readonly error: string;
  readonly atMs: number;
}

export class SnapshotAgent {
  readonly #config: SnapshotAgentConfig;
  readonly #metrics: SnapshotAgentMetrics;
  readonly #log: Logger;
  readonly #pool: ServerPool;
  readonly #stopping = new AbortController();
  readonly #sessionTtlMs: number;
  readonly #lockRetryMs: number;
  readonly #serviceId: string;
  readonly #aliveCheckId: string;
  readonly #savingCheckId: string;
  #running: Promise<void> | null = null;
  /** The server address the service is registered on; null: register (again) before the next update. */
  #registeredOn: string | null = null;
  #leader = false;
  #lastSuccess: LastSuccess | null = null;
  #lastFailure: LastFailure | null = null;
  #consecutiveFailures = 0;

  constructor(config: SnapshotAgentConfig, deps: { metrics: SnapshotAgentMetrics; log: Logger }) {
    this.#config = config;
    this.#metrics = deps.metrics;
    this.#log = deps.log;
    this.#pool = new ServerPool(config.httpAddrs, config.token);
    this.#sessionTtlMs = parseDuration(config.sessionTtl, 'session TTL');
    // A refused acquire of a free key means lock-delay: retry about when it should be over.
    this.#lockRetryMs = Math.min(5000, Math.max(100, parseDuration(config.lockDelay, 'lock delay') / 2));
    this.#serviceId = `${config.service}:${config.instanceId}`;
    this.#aliveCheckId = `konsul-snapshot-alive:${config.instanceId}`;
    this.#savingCheckId = `konsul-snapshot-agent:${config.instanceId}`;
  }

  get isLeader(): boolean {
    return this.#leader;
  }

  /** Runs until stop(); resolves once the lock is released and the session destroyed. */
  run(): Promise<void> {
    this.#running ??= this.#run();
    return this.#running;
  }

  async stop(): Promise<void> {
    this.#stopping.abort();
    await this.#running;
  }

  async #run(): Promise<void> {
    const signal = this.#stopping.signal;
    this.#log('INFO', `Snapshot agent running: every ${formatMs(this.#config.intervalMs)} into ${this.#config.dir}, lock ${this.#config.lockKey}, instance ${this.#config.instanceId}`);
    const alive = this.#aliveLoop(signal);
    let lastProblem = '';
    while (!signal.aborted) {
      let gaveUp = false;
      try {
        gaveUp = await this.#contend();
        lastProblem = '';
      } catch (err) {
        if (signal.aborted) break;
        // Once per kind of problem: an outage must not flood the log.
        const problem = (err as Error).message;
        if (problem !== lastProblem) this.#log('WARN', `Cannot contend for leadership: ${problem}; retrying`);
        lastProblem = problem;
      }
      // After giving up, stand back long enough for a standby agent to win the lock.
      const pauseMs = gaveUp ? Math.max(this.#sessionTtlMs, 4 * this.#lockRetryMs) : this.#lockRetryMs;
      await sleep(pauseMs, undefined, { signal }).catch(() => undefined);
    }
    await alive;
    await this.#deregisterService();
    this.#log('INFO', 'Snapshot agent stopped');
  }

  // ----- leadership -----

  /** One session: contend, lead while the lock holds, clean up. Resolves true if it gave up after failures. */
  async #contend(): Promise<boolean> {
    const term = new AbortController();
    const signal = AbortSignal.any([this.#stopping.signal, term.signal]);
    let lostReason: string | null = null;
    const lose = (reason: string) => {
      if (lostReason !== null || signal.aborted) return;
      lostReason = reason;
      term.abort(new LockLost(reason));
    };
    const sessionId = await this.#pool.call((c) =>
      createSession(c, {
        Name: `konsul snapshot agent ${this.#config.instanceId}`,
        TTL: this.#config.sessionTtl,
        LockDelay: this.#config.lockDelay,
        Behavior: 'release',
      }),
    );
    const renewing = this.#renewLoop(sessionId, signal, lose);
    let held = false;
    let gaveUp = false;
    try {
      const heldIndex = await this.#acquire(sessionId, signal, lose);
      if (heldIndex === null) return false;
      held = true;
      gaveUp = await this.#lead(sessionId, heldIndex, signal, lose);
      if (lostReason !== null) this.#log('WARN', `Lost leadership: ${lostReason}`);
    } finally {
      term.abort();
      await renewing;
      if (this.#leader) {
        this.#leader = false;
        this.#metrics.setLeader(false);
      }
      // A critical check stays after giving up: the failure is still this agent's to report.
      if (held && !gaveUp) await this.#deregisterSavingCheck();
      if (held && lostReason === null) await this.#release(sessionId);
      await this.#destroySession(sessionId);
    }
    return gaveUp;
  }

  async #acquire(sessionId: string, signal: AbortSignal, lose: (reason: string) => void): Promise<string | null> {
    const path = this.#kvPath();
    let waitingLogged = false;
    let lastProblem = '';
    while (!signal.aborted) {
      try {
        const answer = await this.#pool.call((c) =>
          c.put(path, {
            query: { acquire: sessionId, flags: LOCK_FLAG_VALUE },
            // The holder's name as the value: `konsulctl kv get <lock key>` says who writes.
            body: this.#config.instanceId,
            signal,
            timeoutMs: REQUEST_TIMEOUT_MS,
          }),
        );
        const { entry, index } = await this.#readLock(signal);
        if (answer.json() === true && entry?.session === sessionId) return entry.modifyIndex;
        if (entry !== undefined && entry.flags !== LOCK_FLAG_VALUE) {
          throw new Error(`the key ${this.#config.lockKey} exists and is not a lock (its Flags are not the lock flag value)`);
        }
        if (!waitingLogged) {
          this.#log('INFO', 'Waiting to obtain leadership...');
          waitingLogged = true;
        }
        if (entry !== undefined && entry.session !== '' && entry.session !== sessionId) {
          await this.#pool.call((c) =>
            c.get(path, { query: { index, wait: `${LOCK_WAIT_MS}ms` }, acceptStatuses: [404], signal, timeoutMs: LOCK_WAIT_MS + REQUEST_TIMEOUT_MS }),
          );
        } else {
          // Free but refused: under lock-delay after the last holder's session was invalidated.
          await sleep(this.#lockRetryMs, undefined, { signal });
        }
      } catch (err) {
        if (signal.aborted) return null;
        if (err instanceof HttpStatusError && err.status === 500 && /invalid session/i.test(err.bodyText)) {
          lose(`session ${sessionId} was invalidated before it got the lock`);
          return null;
        }
        const problem = (err as Error).message;
        if (problem !== lastProblem) this.#log('WARN', `Acquiring ${this.#config.lockKey}: ${problem}; retrying`);
        lastProblem = problem;
        await sleep(this.#lockRetryMs, undefined, { signal }).catch(() => undefined);
      }
    }
    return null;
  }

  /** Takes snapshots while the lock holds. Resolves true when it gave up after too many failures. */
  async #lead(sessionId: string, heldIndex: string, signal: AbortSignal, lose: (reason: string) => void): Promise<boolean> {
    this.#leader = true;
    this.#metrics.setLeader(true);
    this.#log('INFO', `Obtained leadership (${this.#config.lockKey}, session ${sessionId})`);
    await this.#registerSavingCheck(signal).catch((err: unknown) => {
      if (!signal.aborted) this.#log('WARN', `Cannot register the check ${this.#savingCheckId}: ${(err as Error).message}`);
    });
    // Its own stop, so that giving up (which is no loss: the lock is then released) ends it too.
    const leading = new AbortController();
    const monitoring = this.#monitor(sessionId, heldIndex, AbortSignal.any([signal, leading.signal]), lose);
    let consecutive = 0;
    let nextMs = Date.now();
    try {
      while (!signal.aborted) {
        const waitMs = nextMs - Date.now();
        if (waitMs > 0) await sleep(waitMs, undefined, { signal });
        const startedMs = Date.now();
        // Fixed rate: a slow save does not shift the schedule, an overlong one skips ahead.
        nextMs = Math.max(startedMs, nextMs + this.#config.intervalMs);
        try {
          await this.#confirmHolder(sessionId, signal, lose);
          await this.#snapshotOnce(signal);
          consecutive = 0;
        } catch (err) {
          if (signal.aborted) break;
          consecutive++;
          await this.#recordFailure((err as Error).message, consecutive, signal);
          if (this.#config.maxFailures > 0 && consecutive >= this.#config.maxFailures) {
            this.#log('ERROR', `Giving up leadership after ${consecutive} failed snapshots in a row`);
            return true;
          }
        }
      }
    } catch (err) {
      if (!signal.aborted) throw err;
    } finally {
      leading.abort();
      await monitoring;
    }
    return false;
  }

  /** A consistent read of the lock key: nobody else can have it when this answers ours. */
  async #confirmHolder(sessionId: string, signal: AbortSignal, lose: (reason: string) => void): Promise<void> {
    const { entry } = await this.#readLock(signal, true);
    if (entry?.session !== sessionId) {
      lose(entry === undefined ? 'the lock key was deleted' : 'the lock key no longer names this agent\'s session');
      signal.throwIfAborted();
    }
  }

  async #snapshotOnce(signal: AbortSignal): Promise<void> {
    const takenAtMs = Date.now();
    const timeoutMs = Math.max(MIN_SAVE_TIMEOUT_MS, this.#config.intervalMs);
    const saveSignal = AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]);
    let saved: SavedSnapshot;
    try {
      saved = await this.#pool.call(async (client) => {
        const response = await this.#fetchSnapshot(client, saveSignal);
        const header = response.headers.get('x-consul-index');
        const body = Readable.fromWeb(response.body as WebReadableStream<Uint8Array>);
        try {
          return await saveSnapshot(body, {
            dir: this.#config.dir,
            takenAtMs,
            headerIndex: header !== null && /^\d+$/.test(header) ? Number(header) : undefined,
            signal: saveSignal,
          });
        } finally {
          // A save that failed before reading everything must not leave the connection busy.
          body.destroy();
        }
      });
    } catch (err) {
      if (!signal.aborted && saveSignal.aborted) throw new Error(`the snapshot took longer than ${formatMs(timeoutMs)}`, { cause: err });
      throw err;
    }
    let retained = 0;
    let rotation = '';
    try {
      const result = await rotateSnapshots(this.#config.dir, {
        retain: this.#config.retain,
        retainDays: this.#config.retainDays,
        keep: saved.file,
        nowMs: Date.now(),
        staleTempMs: Math.max(STALE_TEMP_MS, 2 * this.#config.intervalMs),
      });
      retained = result.kept.length;
      rotation = `; ${retained} kept${result.deleted.length > 0 ? `, deleted ${result.deleted.join(', ')}` : ''}`;
    } catch (err) {
      // The snapshot itself is safe on disk; a rotation problem is reported, not counted as a failure.
      this.#log('WARN', `Rotation in ${this.#config.dir} failed: ${(err as Error).message}`);
    }
    const durationMs = Date.now() - takenAtMs;
    this.#consecutiveFailures = 0;
    this.#lastSuccess = { saved, retained, atMs: Date.now() };
    this.#metrics.recordSuccess({ bytes: saved.bytes, index: saved.index, durationMs, retained }, Date.now());
    this.#log('INFO', `Saved snapshot ${saved.file} (index ${saved.index}, ${saved.bytes} bytes, ${formatMs(durationMs)}, verified)${rotation}`);
    await this.#updateSavingCheck(signal);
  }

  async #fetchSnapshot(client: KonsulClient, signal: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = {};
    if (this.#config.token !== undefined) headers['X-Consul-Token'] = this.#config.token;
    let response: Response;
    try {
      response = await fetch(`${client.address}/v1/snapshot${this.#config.stale ? '?stale' : ''}`, { headers, signal });
    } catch (err) {
      if (signal.aborted) throw err;
      throw new UnreachableError(client.address, describeNetworkFailure(err));
    }
    if (!response.ok || response.body === null) {
      const text = await response.text().catch(() => '');
      throw new HttpStatusError(response.status, response.statusText, text);
    }
    return response;
  }

  async #recordFailure(error: string, consecutive: number, signal: AbortSignal): Promise<void> {
    this.#consecutiveFailures = consecutive;
    this.#lastFailure = { error, atMs: Date.now() };
    this.#metrics.recordFailure(consecutive, Date.now());
    this.#log('ERROR', `Snapshot failed (will retry at next interval; ${consecutive} in a row): ${error}`);
    await this.#updateSavingCheck(signal);
  }

  /** Renews every TTL/2; the session gone, or no renewal for a whole TTL, loses the lock. */
  async #renewLoop(sessionId: string, signal: AbortSignal, lose: (reason: string) => void): Promise<void> {
    let lastOkMs = Date.now();
    while (!signal.aborted) {
      try {
        await sleep(Math.max(50, this.#sessionTtlMs / 2), undefined, { signal });
      } catch {
        return;
      }
      try {
        const response = await this.#pool.call((c) =>
          c.put(`/v1/session/renew/${sessionId}`, { acceptStatuses: [404], signal, timeoutMs: Math.max(1000, this.#sessionTtlMs / 2) }),
        );
        if (response.status === 404) {
          lose(`session ${sessionId} was invalidated`);
          return;
        }
        lastOkMs = Date.now();
      } catch (err) {
        if (signal.aborted) return;
        if (Date.now() - lastOkMs >= this.#sessionTtlMs) {
          lose(`could not renew session ${sessionId} for ${this.#config.sessionTtl}: ${(err as Error).message}`);
          return;
        }
      }
    }
  }

  /** Blocking queries on the lock key until it stops naming our session. */
  async #monitor(sessionId: string, heldIndex: string, signal: AbortSignal, lose: (reason: string) => void): Promise<void> {
    let index = heldIndex;
    while (!signal.aborted) {
      try {
        const response = await this.#pool.call((c) =>
          c.get(this.#kvPath(), {
            query: { index, wait: `${LOCK_WAIT_MS}ms`, consistent: true },
            acceptStatuses: [404],
            signal,
            timeoutMs: LOCK_WAIT_MS + REQUEST_TIMEOUT_MS,
          }),
        );
        const entry = response.status === 404 ? undefined : parseKvEntries(response.json())[0];
        if (entry?.session !== sessionId) {
          lose(entry === undefined ? 'the lock key was deleted' : entry.session === '' ? 'the lock was released (session invalidated?)' : 'another session holds the lock');
          return;
        }
        index = response.index ?? index;
      } catch {
        if (signal.aborted) return;
        // The renewals decide when an outage has lasted too long.
        await sleep(Math.min(1000, this.#sessionTtlMs / 2), undefined, { signal }).catch(() => undefined);
      }
    }
  }

  async #readLock(signal: AbortSignal, consistent = false): Promise<{ entry: KvEntry | undefined; index: string }> {
    const response = await this.#pool.call((c) =>
      c.get(this.#kvPath(), { query: { consistent }, acceptStatuses: [404], signal, timeoutMs: REQUEST_TIMEOUT_MS }),
    );
    const entry = response.status === 404 ? undefined : parseKvEntries(response.json())[0];
    return { entry, index: response.index ?? '1' };
  }

  #kvPath(): string {
    return `/v1/kv/${encodePathSegments(this.#config.lockKey)}`;
  }

  async #release(sessionId: string): Promise<void> {
    try {
      await this.#pool.call((c) => c.put(this.#kvPath(), { query: { release: sessionId, flags: LOCK_FLAG_VALUE }, timeoutMs: REQUEST_TIMEOUT_MS }));
      this.#log('INFO', `Released ${this.#config.lockKey}`);
    } catch (err) {
      this.#log('WARN', `Could not release ${this.#config.lockKey}: ${(err as Error).message} (destroying the session releases it)`);
    }
  }

  async #destroySession(sessionId: string): Promise<void> {
    try {
      await this.#pool.call((c) => c.put(`/v1/session/destroy/${sessionId}`, { timeoutMs: REQUEST_TIMEOUT_MS }));
    } catch (err) {
      this.#log('WARN', `Could not destroy session ${sessionId}: ${(err as Error).message} (it expires with its TTL)`);
    }
  }

  // ----- the service and its health checks -----

  /** Registers the service once per server address, then passes the alive check every few seconds. */
  async #aliveLoop(signal: AbortSignal): Promise<void> {
    let healthy: boolean | null = null;
    while (!signal.aborted) {
      try {
        await this.#withRegistration(signal, (c) => c.put(`/v1/agent/check/pass/${encodeURIComponent(this.#aliveCheckId)}`, { signal, timeoutMs: REQUEST_TIMEOUT_MS }));
        if (healthy === false) this.#log('INFO', `Service ${this.#serviceId} registered and alive again`);
        healthy = true;
      } catch (err) {
        if (signal.aborted) break;
        if (healthy !== false) this.#log('WARN', `Cannot register or update the service ${this.#serviceId}: ${(err as Error).message}`);
        healthy = false;
      }
      await sleep(ALIVE_PASS_MS, undefined, { signal }).catch(() => undefined);
    }
  }

  /**
   * Runs an agent-API call on the current server, registering the service (and the leader's check)
   * there first if it is not yet: after a failover, or when the server forgot it (404).
   */
  async #withRegistration(signal: AbortSignal, call: (client: KonsulClient) => Promise<unknown>): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#pool.call(async (c) => {
          if (this.#registeredOn !== c.address) await this.#registerService(c, signal);
          await call(c);
        });
        return;
      } catch (err) {
        if (attempt === 0 && err instanceof HttpStatusError && err.status === 404) {
          this.#registeredOn = null;
          continue;
        }
        throw err;
      }
    }
  }

  async #registerService(client: KonsulClient, signal: AbortSignal): Promise<void> {
    await client.put('/v1/agent/service/register', {
      body: JSON.stringify({
        ID: this.#serviceId,
        Name: this.#config.service,
        Meta: { instance: this.#config.instanceId },
        Check: {
          CheckID: this.#aliveCheckId,
          Name: 'Konsul Snapshot Agent Alive',
          TTL: `${ALIVE_TTL_MS}ms`,
          Status: 'passing',
          DeregisterCriticalServiceAfter: this.#config.deregisterAfter,
        },
      }),
      contentType: 'application/json',
      signal,
      timeoutMs: REQUEST_TIMEOUT_MS,
    });
    if (this.#leader) await this.#putSavingCheck(client, signal);
    this.#registeredOn = client.address;
  }

  async #registerSavingCheck(signal: AbortSignal): Promise<void> {
    await this.#withRegistration(signal, (c) => this.#putSavingCheck(c, signal));
  }

  async #putSavingCheck(client: KonsulClient, signal: AbortSignal): Promise<void> {
    // A TTL of two intervals: a leader that stops reporting (hung, killed) turns it critical.
    const ttlMs = 2 * this.#config.intervalMs + 60_000;
    await client.put('/v1/agent/check/register', {
      body: JSON.stringify({
        CheckID: this.#savingCheckId,
        Name: 'konsul-snapshot-agent',
        Notes: `Snapshots of the Konsul state every ${formatMs(this.#config.intervalMs)} into ${this.#config.dir} (Konsul Snapshot Agent Saving Snapshots)`,
        ServiceID: this.#serviceId,
        TTL: `${ttlMs}ms`,
        Status: this.#checkStatus(),
      }),
      contentType: 'application/json',
      signal,
      timeoutMs: REQUEST_TIMEOUT_MS,
    });
    await this.#putCheckUpdate(client, signal);
  }

  async #updateSavingCheck(signal: AbortSignal): Promise<void> {
    if (!this.#leader) return;
    try {
      await this.#withRegistration(signal, (c) => this.#putCheckUpdate(c, signal));
    } catch (err) {
      if (!signal.aborted) this.#log('WARN', `Cannot update the check ${this.#savingCheckId}: ${(err as Error).message}`);
    }
  }

  async #putCheckUpdate(client: KonsulClient, signal: AbortSignal): Promise<void> {
    await client.put(`/v1/agent/check/update/${encodeURIComponent(this.#savingCheckId)}`, {
      body: JSON.stringify({ Status: this.#checkStatus(), Output: this.#checkOutput() }),
      contentType: 'application/json',
      signal,
      timeoutMs: REQUEST_TIMEOUT_MS,
    });
  }

  async #deregisterSavingCheck(): Promise<void> {
    try {
      await this.#pool.call((c) => c.put(`/v1/agent/check/deregister/${encodeURIComponent(this.#savingCheckId)}`, { acceptStatuses: [404], timeoutMs: REQUEST_TIMEOUT_MS }));
    } catch (err) {
      this.#log('WARN', `Cannot deregister the check ${this.#savingCheckId}: ${(err as Error).message}`);
    }
  }

  async #deregisterService(): Promise<void> {
    try {
      await this.#pool.call((c) => c.put(`/v1/agent/service/deregister/${encodeURIComponent(this.#serviceId)}`, { acceptStatuses: [404], timeoutMs: REQUEST_TIMEOUT_MS }));
    } catch (err) {
      this.#log('WARN', `Cannot deregister the service ${this.#serviceId}: ${(err as Error).message}`);
    }
  }

  #checkStatus(): 'passing' | 'critical' {
    return this.#consecutiveFailures > 0 ? 'critical' : 'passing';
  }

  #checkOutput(): string {
    const success = this.#lastSuccess;
    const lastSaved = success === null
      ? 'no snapshot saved yet'
      : `${success.saved.file} (index ${success.saved.index}, ${success.saved.bytes} bytes) at ${new Date(success.atMs).toISOString()}`;
    const failure = this.#lastFailure;
    if (this.#consecutiveFailures > 0 && failure !== null) {
      return `Snapshot failed at ${new Date(failure.atMs).toISOString()} (${this.#consecutiveFailures} in a row): ${failure.error}. Last saved: ${lastSaved}`;
    }
    return success === null ? `Leader; ${lastSaved}` : `Saved ${lastSaved}; ${success.retained} snapshots kept in ${this.#config.dir}`;
  }
}

function formatMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 120_000) return `${Math.round(ms / 100) / 10}s`;
  if (ms < 7_200_000) return `${Math.round(ms / 6000) / 10}m`;
  return `${Math.round(ms / 360_000) / 10}h`;
}
