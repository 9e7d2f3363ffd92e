// What `konsulctl lock` does; its arguments, options and help are in lock.ts, which imports
// this module only when the command runs.
import { spawn, type ChildProcess } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { parseDuration, UsageError } from '../args.ts';
import { clientFor, EXIT_FAILURE, reportError } from '../command-support.ts';
import { CliError, encodePathSegments, HttpStatusError, UnreachableError, type KonsulClient, type KonsulResponse } from '../http-client.ts';
import { parseKvEntries, type KvEntry } from '../kv-entries.ts';
import { createSession } from './session-actions.ts';

/** Consul's api.LockFlagValue: the Flags of a key used as a lock. */
export const LOCK_FLAG_VALUE = '3304740253564472344';
/** How long one blocking query on the lock key waits (Consul's DefaultLockWaitTime). */
const LOCK_WAIT = '15s';
const LOCK_WAIT_MS = 15_000;

interface LockOptions {
  name?: string;
  ttl: string;
  lockDelay?: string;
  timeout?: number;
  retry: number;
  killGrace: number;
  shell: boolean;
  passStdin?: boolean;
  verbose?: boolean;
}

export const runLock = async (prefix: string, words: string[], options: LockOptions, command: Command) => {
  let code: number;
  try {
    if (words.length === 0 || words[0] === '') throw new UsageError('the command is empty');
    const key = `${prefix.replace(/^\/+/, '').replace(/\/+$/, '')}/.lock`;
    if (key === '/.lock') throw new UsageError('the prefix must not be empty');
    code = await new LockRunner(clientFor(command), key, words, options).run();
  } catch (err) {
    if (err instanceof CliError) {
      reportError(err.message, { bare: err.bare });
      code = err.exitCode;
    } else if (err instanceof UsageError) {
      reportError(`${err.message} (see --help)`);
      code = 2;
    } else {
      throw err;
    }
  }
  // Outstanding blocking queries and timers must not keep the process: the outcome is decided.
  process.exit(code);
};

const transient = (err: unknown): boolean => err instanceof UnreachableError || (err instanceof HttpStatusError && err.status >= 500);

class LockRunner {
  private sessionId = '';
  /** Aborted when the lock is lost, the command ended or a signal arrived: stops every loop. */
  private readonly stopped = new AbortController();
  private lostReason: string | null = null;
  private child: ChildProcess | null = null;
  private lastRenewOkMs = 0;
  private readonly ttlMs: number;

  constructor(
    private readonly client: KonsulClient,
    private readonly key: string,
    private readonly words: string[],
    private readonly options: LockOptions,
  ) {
    this.ttlMs = parseDuration(options.ttl, '--ttl');
  }

  async run(): Promise<number> {
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    const received: { signal: NodeJS.Signals | null } = { signal: null };
    const onSignal = (sig: NodeJS.Signals) => {
      received.signal = sig;
      if (this.child !== null && this.child.exitCode === null) this.child.kill(sig);
      else this.stopped.abort();
    };
    for (const sig of signals) process.on(sig, onSignal);
    try {
      this.sessionId = await createSession(this.client, {
        Name: this.options.name ?? `konsulctl lock ${this.key.slice(0, -'/.lock'.length)}`,
        TTL: this.options.ttl,
        Behavior: 'release',
        ...(this.options.lockDelay !== undefined ? { LockDelay: this.options.lockDelay } : {}),
      });
      this.log(`created session ${this.sessionId}`);
      this.lastRenewOkMs = Date.now();
      const renewing = this.renewLoop();
      let code: number;
      try {
        const heldIndex = await this.acquire();
        if (heldIndex === null) {
          if (received.signal !== null) return 128 + (osConstants.signals[received.signal] ?? 0);
          throw new CliError(this.lostReason ?? `timed out waiting for the lock on ${this.key}`);
        }
        this.log(`acquired ${this.key}`);
        code = await this.runHolding(heldIndex);
      } finally {
        this.stopped.abort();
        await renewing;
      }
      if (this.lostReason !== null) {
        reportError(`${this.lostReason}; the command was stopped`);
        return EXIT_FAILURE;
      }
      await this.release();
      return code;
    } finally {
      for (const sig of signals) process.off(sig, onSignal);
      await this.destroySession();
    }
  }

  private log(message: string): void {
    if (this.options.verbose) reportError(`lock: ${message}`);
  }

  private lost(reason: string): void {
    if (this.lostReason !== null || this.stopped.signal.aborted) return;
    this.lostReason = reason;
    this.log(reason);
    this.stopped.abort();
    this.stopChild();
  }

  /** SIGTERM, then SIGKILL after the grace period if the command still runs. */
  private stopChild(): void {
    const child = this.child;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }, this.options.killGrace);
    child.once('exit', () => clearTimeout(killer));
  }

  private get kvPath(): string {
    return `/v1/kv/${encodePathSegments(this.key)}`;
  }

  /** Renews every TTL/2. A vanished session, or no successful renewal for a whole TTL, loses the lock. */
  private async renewLoop(): Promise<void> {
    const signal = this.stopped.signal;
    while (!signal.aborted) {
      try {
        await sleep(Math.max(50, this.ttlMs / 2), undefined, { signal });
      } catch {
        return;
      }
      try {
        const response = await this.client.put(`/v1/session/renew/${this.sessionId}`, { acceptStatuses: [404], signal, timeoutMs: Math.max(1000, this.ttlMs / 2) });
        if (response.status === 404) {
          this.lost(`session ${this.sessionId} was invalidated: lost the lock on ${this.key}`);
          return;
        }
        this.lastRenewOkMs = Date.now();
      } catch (err) {
        if (signal.aborted) return;
        if (!transient(err)) {
          this.lost(`cannot renew session ${this.sessionId}: ${(err as Error).message}`);
          return;
        }
        this.log(`renewal failed: ${(err as Error).message}`);
        if (Date.now() - this.lastRenewOkMs >= this.ttlMs) {
          this.lost(`could not renew session ${this.sessionId} for ${this.options.ttl}: the lock on ${this.key} may be lost`);
          return;
        }
      }
    }
  }

  /** Takes the lock; the key's ModifyIndex once held, or null (timed out, stopped). */
  private async acquire(): Promise<string | null> {
    const signal = this.stopped.signal;
    const deadline = this.options.timeout !== undefined ? Date.now() + this.options.timeout : Infinity;
    while (!signal.aborted && Date.now() < deadline) {
      try {
        const answer = await this.client.put(this.kvPath, { query: { acquire: this.sessionId, flags: LOCK_FLAG_VALUE }, signal });
        if (answer.json() === true) {
          const held = await this.read();
          if (held.entry?.session === this.sessionId) return held.entry.modifyIndex;
          continue;
        }
        const { entry, index } = await this.read();
        if (entry !== undefined && entry.flags !== LOCK_FLAG_VALUE) throw new CliError(`the key ${this.key} exists and is not a lock (its Flags are not the lock flag value)`);
        if (entry !== undefined && entry.session !== '') {
          // Held by another session: wait for the key to change.
          const waitMs = Math.min(LOCK_WAIT_MS, deadline - Date.now());
          if (waitMs <= 0) break;
          await this.client.get(this.kvPath, { query: { index, wait: `${Math.ceil(waitMs)}ms` }, acceptStatuses: [404], signal, timeoutMs: waitMs + 15_000 });
        } else {
          // Free but refused: the key is under lock-delay after an invalidation.
          this.log(`${this.key} is under lock-delay; retrying in ${this.options.retry} ms`);
          await sleep(Math.min(this.options.retry, Math.max(0, deadline - Date.now())), undefined, { signal });
        }
      } catch (err) {
        if (signal.aborted) return null;
        if (err instanceof HttpStatusError && err.status === 500 && /invalid session/.test(err.bodyText)) {
          this.lostReason = `session ${this.sessionId} was invalidated before it got the lock on ${this.key}`;
          return null;
        }
        if (!transient(err)) throw err;
        this.log(`${(err as Error).message}; retrying`);
        await sleep(1000, undefined, { signal }).catch(() => undefined);
      }
    }
    return null;
  }

  private async read(): Promise<{ entry: KvEntry | undefined; index: string }> {
    const response = await this.client.get(this.kvPath, { acceptStatuses: [404], signal: this.stopped.signal });
    return { entry: entryOf(response), index: response.index ?? '1' };
  }

  /** Runs the command, watching the lock meanwhile; resolves with its exit status. */
  private async runHolding(heldIndex: string): Promise<number> {
    const stdin = this.options.passStdin ? 'inherit' : 'ignore';
    const env = { ...process.env, KONSUL_LOCK_KEY: this.key, KONSUL_LOCK_SESSION: this.sessionId };
    const child = this.options.shell
      ? spawn('/bin/sh', ['-c', this.words.join(' ')], { stdio: [stdin, 'inherit', 'inherit'], env })
      : spawn(this.words[0]!, this.words.slice(1), { stdio: [stdin, 'inherit', 'inherit'], env });
    this.child = child;
    const exited = new Promise<number>((resolve) => {
      child.once('error', (err) => {
        reportError(`cannot run ${JSON.stringify(this.words[0])}: ${err.message}`);
        resolve(127);
      });
      child.once('exit', (code, signal) => resolve(code ?? 128 + (signal ? (osConstants.signals[signal] ?? 0) : 0)));
    });
    const monitoring = this.monitor(heldIndex);
    const code = await exited;
    this.log(`the command exited with status ${code}`);
    this.stopped.abort();
    await monitoring;
    return code;
  }

  /** Blocking queries on the key until it no longer names our session (the lock is lost) or we stop. */
  private async monitor(heldIndex: string): Promise<void> {
    const signal = this.stopped.signal;
    let index = heldIndex;
    while (!signal.aborted) {
      try {
        const response = await this.client.get(this.kvPath, {
          query: { index, wait: LOCK_WAIT, consistent: true },
          acceptStatuses: [404],
          signal,
          timeoutMs: LOCK_WAIT_MS + 15_000,
        });
        const entry = entryOf(response);
        if (entry === undefined || entry.session !== this.sessionId) {
          const why = entry === undefined ? 'the key was deleted' : entry.session === '' ? 'it was released (its session was invalidated?)' : 'another session holds it';
          this.lost(`lost the lock on ${this.key}: ${why}`);
          return;
        }
        index = response.index ?? index;
      } catch (err) {
        if (signal.aborted) return;
        if (!transient(err)) {
          this.lost(`cannot watch the lock on ${this.key}: ${(err as Error).message}`);
          return;
        }
        // The renewal loop decides when an outage has lasted too long.
        await sleep(1000, undefined, { signal }).catch(() => undefined);
      }
    }
  }

  /** Gives the lock up (keeping the key and its flags, as api.Lock's Unlock does). */
  private async release(): Promise<void> {
    try {
      await this.client.put(this.kvPath, { query: { release: this.sessionId, flags: LOCK_FLAG_VALUE }, timeoutMs: 10_000 });
      this.log(`released ${this.key}`);
    } catch (err) {
      reportError(`could not release ${this.key}: ${(err as Error).message} (destroying the session releases it)`);
    }
  }

  private async destroySession(): Promise<void> {
    if (this.sessionId === '') return;
    try {
      await this.client.put(`/v1/session/destroy/${this.sessionId}`, { timeoutMs: 10_000 });
      this.log(`destroyed session ${this.sessionId}`);
    } catch (err) {
      reportError(`could not destroy session ${this.sessionId}: ${(err as Error).message} (it expires with its TTL)`);
    }
  }
}

function entryOf(response: KonsulResponse): KvEntry | undefined {
  if (response.status === 404) return undefined;
  return parseKvEntries(response.json())[0];
}
