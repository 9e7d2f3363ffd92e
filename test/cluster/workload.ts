// A client workload against a running cluster that records a linearizability history.
//
// N concurrent clients each loop: pick a random live server, then one operation on a small set of
// register keys — PUT of a unique value, GET in default mode, GET ?consistent, or a CAS (a
// consistent GET for the ModifyIndex, then PUT ?cas=<ModifyIndex>) — plus, now and then, a write of
// a unique "ledger" key that is never overwritten, so that the end of a test can check that every
// acknowledged write is still there.
//
// A CAS on ModifyIndex is recorded as a CAS on the value: every value is written once, so the entry
// holding value v is the one created by the single write of v, whose index is the one read with v.
//
// Outcomes (see classifyWrite/classifyRead):
//  - write answered true/false → ok true/false; a plain PUT answered false is a rejection;
//  - timeout, connection error, 5xx that may have come after the proposal → unknown (op.unknown());
//    a refused connection (ECONNREFUSED) never carried the request: failed;
//  - 4xx, and 5xx whose text proves nothing was proposed ("No cluster leader", "not the leader",
//    "leadership transfer in progress", "...the write was discarded") → failed: ok false for a PUT;
//    for a CAS, unknown (the checker reads a CAS with ok false as "the value did not match");
//  - a read that fails in any way → ok: false (the checker ignores it).
import { performance } from 'node:perf_hooks';
import { checkLinearizable, type CheckResult } from '../linearizability/checker.ts';
import { formatHistory } from '../linearizability/format.ts';
import { HistoryRecorder, type History, type Operation, type PendingOp } from '../linearizability/history.ts';

export interface WorkloadTarget {
  readonly name: string;
  readonly url: string;
}

export interface OpWeights {
  readonly put: number;
  readonly get: number;
  readonly getConsistent: number;
  readonly cas: number;
  /** A write of a unique ledger key (not part of the register history). */
  readonly ledger: number;
}

export const DEFAULT_WEIGHTS: OpWeights = { put: 30, get: 20, getConsistent: 20, cas: 15, ledger: 15 };

export interface WorkloadOptions {
  /** The servers a client may pick, asked before every operation (so restarts and new ports count). */
  readonly targets: () => readonly WorkloadTarget[];
  readonly clients?: number;
  /** Register keys (default 4), all under `prefix`. */
  readonly keyCount?: number;
  /** Key prefix, e.g. "lin/leader-kill/"; ledger keys go under `${prefix}ledger/`. */
  readonly prefix?: string;
  readonly requestTimeoutMs?: number;
  readonly weights?: Partial<OpWeights>;
  /** Pause between one client's operations, chosen uniformly in [0, thinkMs] (bounds history size). */
  readonly thinkMs?: number;
  /** Stop a client after this many operations (a safety bound; default 5000). */
  readonly maxOpsPerClient?: number;
  /** Seed for the choices (targets, kinds, keys, pauses); timing still varies between runs. */
  readonly seed?: number;
  readonly clock?: () => number;
}

export type WriteOutcome = { readonly kind: 'answered'; readonly ok: boolean } | { readonly kind: 'failed'; readonly reason: string } | { readonly kind: 'unknown'; readonly reason: string };

/** 5xx texts that prove a write was never proposed (raft/host/raft-host.ts ProposalError, cluster-manager.ts). */
const NOT_PROPOSED = [/No cluster leader/i, /^not the leader/i, /leadership transfer in progress/i, /the write was discarded/i];

/** Maps a write's HTTP answer to an outcome for the history. */
export function classifyWrite(status: number, text: string): WriteOutcome {
  if (status === 200) {
    const body = text.trim();
    if (body === 'true') return { kind: 'answered', ok: true };
    if (body === 'false') return { kind: 'answered', ok: false };
    return { kind: 'unknown', reason: `200 with body ${JSON.stringify(body.slice(0, 80))}` };
  }
  if (status >= 400 && status < 500) return { kind: 'failed', reason: `${status} ${text.slice(0, 120)}` };
  if (status >= 500 && NOT_PROPOSED.some((re) => re.test(text.trim()))) return { kind: 'failed', reason: `${status} ${text.slice(0, 120)}` };
  return { kind: 'unknown', reason: `${status} ${text.slice(0, 120)}` };
}

export type ReadOutcome = { readonly ok: true; readonly value: string | null; readonly modifyIndex: number } | { readonly ok: false; readonly reason: string };

/** Maps a GET ?raw or JSON answer: 200 → the value, 404 → missing, anything else → failed. */
export function classifyRead(status: number, text: string, json: boolean): ReadOutcome {
  if (status === 404) return { ok: true, value: null, modifyIndex: 0 };
  if (status !== 200) return { ok: false, reason: `${status} ${text.slice(0, 120)}` };
  if (!json) return { ok: true, value: text, modifyIndex: -1 };
  try {
    const entries = JSON.parse(text) as { Value: string | null; ModifyIndex: number }[];
    const e = entries[0];
    if (e === undefined) return { ok: false, reason: 'empty entry list' };
    return { ok: true, value: e.Value === null ? '' : Buffer.from(e.Value, 'base64').toString('utf8'), modifyIndex: e.ModifyIndex };
  } catch (err) {
    return { ok: false, reason: `bad JSON: ${(err as Error).message}` };
  }
}

/** mulberry32. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

export interface LedgerWrite {
  readonly key: string;
  readonly value: string;
  readonly target: string;
  readonly outcome: 'acked' | 'failed' | 'unknown';
}

export interface WorkloadStats {
  readonly ops: number;
  readonly byKind: Record<string, { ok: number; failed: number; unknown: number }>;
  readonly byTarget: Record<string, number>;
  readonly reasons: Record<string, number>;
  readonly durationMs: number;
}

/** Both read modes go into the checked history: Konsul makes `default` linearizable too (ADR 0007). */
type Mode = 'default' | 'consistent';

/** Reason texts are grouped by shape (digits dropped) so a summary stays short. */
function reasonKey(kind: string, reason: string): string {
  return `${kind}: ${reason.replace(/\d+/g, 'N').slice(0, 100)}`;
}

export class Workload {
  readonly recorder: HistoryRecorder;
  readonly ledger: LedgerWrite[] = [];
  readonly keys: string[];
  readonly #options: WorkloadOptions;
  readonly #weights: OpWeights;
  readonly #random: () => number;
  readonly #byKind: Record<string, { ok: number; failed: number; unknown: number }> = {};
  readonly #byTarget: Record<string, number> = {};
  readonly #reasons: Record<string, number> = {};
  #running = false;
  #loops: Promise<void>[] = [];
  #startedMs = 0;
  #stoppedMs = 0;
  #ops = 0;
  #seq = 0;
  /** Client loops still running (they end on stop() or at maxOpsPerClient). */
  #activeClients = 0;

  constructor(options: WorkloadOptions) {
    this.#options = options;
    this.#weights = { ...DEFAULT_WEIGHTS, ...(options.weights ?? {}) };
    this.#random = prng(options.seed ?? 1);
    this.recorder = new HistoryRecorder(options.clock ?? (() => performance.now()));
    const prefix = options.prefix ?? 'lin/';
    this.keys = Array.from({ length: options.keyCount ?? 4 }, (_, i) => `${prefix}k${i}`);
  }

  get prefix(): string {
    return this.#options.prefix ?? 'lin/';
  }

  get ledgerPrefix(): string {
    return `${this.prefix}ledger/`;
  }

  get ops(): number {
    return this.#ops;
  }

  start(): void {
    if (this.#running) throw new Error('workload already running');
    this.#running = true;
    this.#startedMs = Date.now();
    const clients = this.#options.clients ?? 4;
    this.#activeClients = clients;
    this.#loops = Array.from({ length: clients }, (_, id) => this.#client(id).finally(() => this.#activeClients--));
  }

  /** Stops issuing operations and waits for those in flight (each bounded by the request timeout). */
  async stop(): Promise<WorkloadStats> {
    this.#running = false;
    await Promise.all(this.#loops);
    this.#loops = [];
    this.#stoppedMs = Date.now();
    return this.stats();
  }

  /** Runs until `during` settles, then stops; rethrows `during`'s error after stopping. */
  async runDuring<T>(during: () => Promise<T>): Promise<T> {
    this.start();
    try {
      return await during();
    } finally {
      await this.stop();
    }
  }

  /** Resolves once at least `n` more operations completed than when called (bounded). */
  async waitOps(n: number, timeoutMs = 20000): Promise<void> {
    const target = this.#ops + n;
    const deadline = Date.now() + timeoutMs;
    while (this.#ops < target) {
      this.#assertRunning();
      if (Date.now() > deadline) throw new Error(`workload: only ${this.#ops - (target - n)} of ${n} operations within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Resolves once `n` more writes were acknowledged (bounded): evidence the cluster makes progress. */
  async waitAcked(n: number, timeoutMs = 20000): Promise<void> {
    const count = (): number => Object.entries(this.#byKind).reduce((s, [k, v]) => s + (k.startsWith('put') || k.startsWith('cas') || k === 'ledger' ? v.ok : 0), 0);
    const target = count() + n;
    const deadline = Date.now() + timeoutMs;
    while (count() < target) {
      this.#assertRunning();
      if (Date.now() > deadline) throw new Error(`workload: fewer than ${n} writes acknowledged within ${timeoutMs} ms\n${JSON.stringify(this.stats(), null, 1)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  #assertRunning(): void {
    if (this.#activeClients === 0) throw new Error(`workload: no client is running (stopped, or every client reached maxOpsPerClient after ${this.#ops} operations)`);
  }

  history(): History {
    return this.recorder.history();
  }

  stats(): WorkloadStats {
    return {
      ops: this.#ops,
      byKind: structuredClone(this.#byKind),
      byTarget: { ...this.#byTarget },
      reasons: { ...this.#reasons },
      durationMs: (this.#stoppedMs || Date.now()) - this.#startedMs,
    };
  }

  /**
   * Records a consistent read of every register key through `target` as the last operations of the
   * history (client id = clients), so that the final state is checked against every acknowledged
   * write. Returns the values read.
   */
  async finalReads(target: WorkloadTarget): Promise<Map<string, string | null>> {
    const client = this.#options.clients ?? 4;
    const out = new Map<string, string | null>();
    for (const key of this.keys) {
      const r = await this.#read(client, target, key, 'consistent', false);
      if (!r.ok) throw new Error(`final read of ${key} on ${target.name} failed: ${r.reason}`);
      out.set(key, r.value);
    }
    return out;
  }

  async #client(id: number): Promise<void> {
    const max = this.#options.maxOpsPerClient ?? 5000;
    for (let n = 0; this.#running && n < max; n++) {
      const targets = this.#options.targets();
      if (targets.length === 0) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      const target = targets[Math.floor(this.#random() * targets.length)]!;
      const key = this.keys[Math.floor(this.#random() * this.keys.length)]!;
      const w = this.#weights;
      let pick = this.#random() * (w.put + w.get + w.getConsistent + w.cas + w.ledger);
      this.#byTarget[target.name] = (this.#byTarget[target.name] ?? 0) + 1;
      if ((pick -= w.put) < 0) await this.#put(id, target, key);
      else if ((pick -= w.get) < 0) await this.#read(id, target, key, 'default', false);
      else if ((pick -= w.getConsistent) < 0) await this.#read(id, target, key, 'consistent', false);
      else if ((pick -= w.cas) < 0) await this.#cas(id, target, key);
      else await this.#ledgerWrite(id, target);
      this.#ops++;
      const think = this.#options.thinkMs ?? 5;
      if (think > 0) await new Promise((r) => setTimeout(r, this.#random() * think));
    }
  }

  #value(client: number): string {
    return `c${client}-${++this.#seq}`;
  }

  /**
   * One request. `refused` marks a connection that was never established (ECONNREFUSED): the
   * request cannot have reached the server. After any connection failure the client backs off
   * briefly, so that a server that is down is not hammered in a tight loop.
   */
  async #http(url: string, method: string, body?: string): Promise<{ status: number; text: string } | { error: string; refused: boolean }> {
    try {
      const res = await fetch(url, { method, ...(body !== undefined ? { body } : {}), signal: AbortSignal.timeout(this.#options.requestTimeoutMs ?? 3000) });
      return { status: res.status, text: await res.text() };
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      await new Promise((r) => setTimeout(r, 50));
      if (e.name === 'TimeoutError') return { error: 'timeout', refused: false };
      return { error: `${e.cause?.code ?? e.name}: ${e.cause?.message ?? e.message}`, refused: e.cause?.code === 'ECONNREFUSED' };
    }
  }

  #writeOutcome(answer: { status: number; text: string } | { error: string; refused: boolean }): WriteOutcome {
    if (!('error' in answer)) return classifyWrite(answer.status, answer.text);
    return answer.refused ? { kind: 'failed', reason: answer.error } : { kind: 'unknown', reason: answer.error };
  }

  #count(kind: string, outcome: 'ok' | 'failed' | 'unknown', reason?: string): void {
    const slot = (this.#byKind[kind] ??= { ok: 0, failed: 0, unknown: 0 });
    slot[outcome]++;
    if (reason !== undefined) this.#reasons[reasonKey(kind, reason)] = (this.#reasons[reasonKey(kind, reason)] ?? 0) + 1;
  }

  #settleWrite(op: PendingOp, kind: string, answer: { status: number; text: string } | { error: string; refused: boolean }): WriteOutcome {
    const outcome = this.#writeOutcome(answer);
    switch (outcome.kind) {
      case 'answered':
        op.complete({ ok: outcome.ok });
        this.#count(kind, outcome.ok ? 'ok' : 'failed', outcome.ok ? undefined : 'answered false');
        break;
      case 'failed':
        // A rejected put had no effect: ok false. A cas answered false means "the value did not
        // match" to the checker, which a rejection does not prove; "may or may not" is still true.
        if (kind === 'cas') op.unknown();
        else op.complete({ ok: false });
        this.#count(kind, 'failed', outcome.reason);
        break;
      case 'unknown':
        op.unknown();
        this.#count(kind, 'unknown', outcome.reason);
        break;
    }
    return outcome;
  }

  async #put(client: number, target: WorkloadTarget, key: string): Promise<void> {
    const value = this.#value(client);
    const op = this.recorder.invoke(client, { kind: 'put', key, value });
    this.#settleWrite(op, 'put', await this.#http(`${target.url}/v1/kv/${key}`, 'PUT', value));
  }

  async #read(client: number, target: WorkloadTarget, key: string, mode: Mode, json: boolean): Promise<ReadOutcome> {
    const op = this.recorder.invoke(client, { kind: 'get', key });
    const query = [json ? '' : 'raw', mode === 'consistent' ? 'consistent' : ''].filter((q) => q !== '').join('&');
    const answer = await this.#http(`${target.url}/v1/kv/${key}${query ? `?${query}` : ''}`, 'GET');
    const outcome: ReadOutcome = 'error' in answer ? { ok: false, reason: answer.error } : classifyRead(answer.status, answer.text, json);
    const kind = `get-${mode}`;
    if (outcome.ok) {
      op.complete({ ok: true, value: outcome.value });
      this.#count(kind, 'ok');
    } else {
      op.complete({ ok: false });
      this.#count(kind, 'failed', outcome.reason);
    }
    return outcome;
  }

  async #cas(client: number, target: WorkloadTarget, key: string): Promise<void> {
    const read = await this.#read(client, target, key, 'consistent', true);
    if (!read.ok) return;
    const value = this.#value(client);
    const op = this.recorder.invoke(client, { kind: 'cas', key, value, expected: read.value });
    this.#settleWrite(op, 'cas', await this.#http(`${target.url}/v1/kv/${key}?cas=${read.modifyIndex}`, 'PUT', value));
  }

  async #ledgerWrite(client: number, target: WorkloadTarget): Promise<void> {
    const value = this.#value(client);
    const key = `${this.ledgerPrefix}${value}`;
    const outcome = this.#writeOutcome(await this.#http(`${target.url}/v1/kv/${key}`, 'PUT', value));
    const recorded = outcome.kind === 'answered' ? (outcome.ok ? 'acked' : 'failed') : outcome.kind;
    this.ledger.push({ key, value, target: target.name, outcome: recorded });
    this.#count('ledger', recorded === 'acked' ? 'ok' : recorded, recorded === 'acked' ? undefined : outcome.kind === 'answered' ? 'answered false' : outcome.reason);
  }
}

// -----------------------------------------------------------------------------------------------
// Checks
// -----------------------------------------------------------------------------------------------

export interface HistoryVerdict {
  readonly ok: boolean;
  readonly result: CheckResult;
  /** A one-line summary, or on failure the checker's explanation and the failing key's history. */
  readonly message: string;
}

const MAX_HISTORY_LINES = 400;

/** Checks a history and, on failure, renders the failing key's operations for the test output. */
export function checkHistory(history: History, options: { timeoutMs?: number } = {}): HistoryVerdict {
  const started = performance.now();
  const result = checkLinearizable(history, { timeoutMs: options.timeoutMs ?? 60000 });
  const took = Math.round(performance.now() - started);
  const counts = `${history.length} ops (${history.filter((o) => o.completeMs === null).length} unknown), checked in ${took} ms`;
  if (result.ok === true) return { ok: true, result, message: `linearizable: ${counts}` };
  if (result.ok === 'unknown') return { ok: false, result, message: `linearizability check gave up (${result.reason}): ${counts}` };
  const keyOps = history.filter((o) => o.key === result.key);
  let rendered: Operation[] = keyOps;
  let note = '';
  if (keyOps.length > MAX_HISTORY_LINES) {
    // Around the end of the linearizable prefix, where the anomaly is.
    const last = result.partialOrder?.at(-1);
    const pivot = last === undefined ? 0 : Math.max(0, keyOps.indexOf(last));
    const from = Math.max(0, pivot - MAX_HISTORY_LINES / 2);
    rendered = keyOps.slice(from, from + MAX_HISTORY_LINES);
    note = ` (operations ${from + 1}..${from + rendered.length} of ${keyOps.length})`;
  }
  return {
    ok: false,
    result,
    message: `NOT linearizable: ${counts}\n${result.explanation}\n\nFull history of ${JSON.stringify(result.key)}${note}:\n${formatHistory(rendered)}`,
  };
}

export interface LedgerVerdict {
  readonly ok: boolean;
  readonly acked: number;
  readonly missing: string[];
  readonly wrongValue: string[];
  /** Keys present although their write was definitely rejected. */
  readonly ghosts: string[];
  readonly message: string;
}

/**
 * Compares the ledger keys found under the prefix (from `GET ?recurse` on one server) with what
 * the workload recorded: every acknowledged write present with its value, no rejected one present.
 */
export function checkLedger(ledger: readonly LedgerWrite[], found: ReadonlyMap<string, string>): LedgerVerdict {
  const missing: string[] = [];
  const wrongValue: string[] = [];
  const ghosts: string[] = [];
  let acked = 0;
  for (const w of ledger) {
    const v = found.get(w.key);
    if (w.outcome === 'acked') {
      acked++;
      if (v === undefined) missing.push(`${w.key} (acknowledged by ${w.target})`);
      else if (v !== w.value) wrongValue.push(`${w.key}: ${JSON.stringify(v)} instead of ${JSON.stringify(w.value)}`);
    } else if (w.outcome === 'failed' && v !== undefined) {
      ghosts.push(`${w.key} (rejected by ${w.target})`);
    }
  }
  const ok = missing.length === 0 && wrongValue.length === 0 && ghosts.length === 0;
  const message = ok
    ? `all ${acked} acknowledged ledger writes present`
    : `ledger: ${missing.length} acknowledged missing, ${wrongValue.length} wrong values, ${ghosts.length} rejected but present\n` +
      [...missing, ...wrongValue, ...ghosts].slice(0, 50).join('\n');
  return { ok, acked, missing, wrongValue, ghosts, message };
}

/** Reads every key under `prefix` from one server (`?recurse`, in the given consistency mode). */
export async function readPrefix(url: string, prefix: string, mode: 'stale' | 'consistent' | 'default' = 'stale', timeoutMs = 5000): Promise<Map<string, string>> {
  const q = mode === 'default' ? 'recurse' : `recurse&${mode}`;
  const res = await fetch(`${url}/v1/kv/${prefix}?${q}`, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  if (res.status === 404) return new Map();
  if (res.status !== 200) throw new Error(`GET ${prefix}?${q}: ${res.status} ${text.slice(0, 200)}`);
  const entries = JSON.parse(text) as { Key: string; Value: string | null }[];
  return new Map(entries.map((e) => [e.Key, e.Value === null ? '' : Buffer.from(e.Value, 'base64').toString('utf8')]));
}

/** A short human summary of a run, for t.comment. */
export function describeStats(s: WorkloadStats): string {
  const kinds = Object.entries(s.byKind)
    .map(([k, v]) => `${k} ${v.ok}/${v.failed}/${v.unknown}`)
    .join(', ');
  const targets = Object.entries(s.byTarget)
    .map(([k, v]) => `${k}:${v}`)
    .join(' ');
  const reasons = Object.entries(s.reasons)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
    .map(([k, v]) => `${v}× ${k}`)
    .join('; ');
  return `${s.ops} ops in ${s.durationMs} ms [ok/failed/unknown: ${kinds}] targets ${targets}${reasons ? ` | non-ok: ${reasons}` : ''}`;
}
