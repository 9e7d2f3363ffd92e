// A linearizability checker for a key/value store, in the style of Porcupine / Knossos.
//
// Each key is an independent register, and linearizability is compositional (Herlihy & Wing), so
// the history is partitioned by key and each key is checked on its own with the Wing–Gong search as
// improved by Lowe (WGL): walk the time-ordered list of call/return events, tentatively linearize
// any pending call whose step is legal in the model, backtrack when a return is reached whose call
// has not been linearized, and memoize (set of linearized ops, model state) pairs already explored.
//
// Unknown outcomes (completeMs === null) get a return time of +∞: they may be linearized at any
// point after their invoke, and since their step is always legal they can also be "linearized at
// the end", which is the same as never having taken effect.
import { performance } from 'node:perf_hooks';
import { formatHistory, describeOp } from './format.ts';
import type { History, Operation } from './history.ts';

export type CheckResult =
  | { ok: true }
  | {
      ok: false;
      /** The first key (in sorted order) whose sub-history is not linearizable. */
      key: string;
      /** Human-readable account: the key's operations, the longest valid prefix and what failed next. */
      explanation: string;
      /** The longest linearizable prefix found for that key, in linearization order. */
      partialOrder?: Operation[];
    }
  | { ok: 'unknown'; reason: 'timeout' };

export interface CheckOptions {
  /** Give up (result ok: 'unknown') after this long. Default: no limit. */
  timeoutMs?: number;
  /** Clock used only for the timeout. Default: performance.now. */
  now?: () => number;
}

/**
 * Stands for every value that no operation ever observes (no get returns it, no cas expects it).
 * Such values are indistinguishable to the model, so collapsing them shrinks the memo table.
 */
const UNOBSERVED: unique symbol = Symbol('unobserved');

/** The register's value: a string, null when the key is missing, or UNOBSERVED (see above). */
type State = string | null | typeof UNOBSERVED;

type Canon = (value: string | undefined) => State;
const identity: Canon = (v) => v ?? null;

/** Applies `op` to `state`; returns the new state, or undefined when the op's result is impossible. */
function step(state: State, op: Operation, canon: Canon = identity): State | undefined {
  const known = op.completeMs !== null;
  switch (op.kind) {
    case 'put':
      return canon(op.value);
    case 'delete':
      return null;
    case 'get': {
      if (!known) return state;
      const read = op.result.value ?? null;
      return read === state ? state : undefined;
    }
    case 'cas': {
      const matches = state === (op.expected ?? null);
      if (!known) return matches ? canon(op.value) : state;
      if (op.result.ok) return matches ? canon(op.value) : undefined;
      return matches ? undefined : state;
    }
  }
}

function stateText(state: State): string {
  if (state === null) return 'missing (null)';
  if (state === UNOBSERVED) return 'an unobserved value';
  return JSON.stringify(state);
}

/** Why `op` cannot be applied to `state` (assumes step(state, op) === undefined). */
function whyIllegal(state: State, op: Operation): string {
  const cur = stateText(state);
  if (op.kind === 'get') {
    const read = op.result.value ?? null;
    return `read ${read === null ? 'null' : JSON.stringify(read)} but the key is ${cur} at this point`;
  }
  if (op.kind === 'cas') {
    return op.result.ok
      ? `cas succeeded but the key is ${cur}, not the expected ${op.expected === null || op.expected === undefined ? 'missing' : JSON.stringify(op.expected)}`
      : `cas failed but the key is ${cur}, which matches the expected value`;
  }
  return 'impossible here';
}

function validate(op: Operation, index: number): void {
  const where = `history[${index}] (${op.kind} ${JSON.stringify(op.key)} by client ${op.clientId})`;
  if (!Number.isFinite(op.invokeMs)) throw new TypeError(`${where}: invokeMs must be a finite number`);
  if (op.completeMs !== null && !(op.completeMs >= op.invokeMs)) {
    throw new TypeError(`${where}: completeMs ${op.completeMs} is before invokeMs ${op.invokeMs}`);
  }
  if ((op.kind === 'put' || op.kind === 'cas') && typeof op.value !== 'string') {
    throw new TypeError(`${where}: ${op.kind} needs a string value`);
  }
  if (op.kind === 'cas' && op.expected === undefined) {
    throw new TypeError(`${where}: cas needs expected (a string, or null for "key must be missing")`);
  }
}

/** Drops operations that cannot constrain the history. */
function relevant(op: Operation): boolean {
  if (op.kind === 'cas') return true;
  if (op.completeMs === null) return op.kind !== 'get'; // an unanswered read constrains nothing
  return op.result.ok; // a rejected put/delete had no effect; a failed get saw nothing
}

interface Entry {
  /** Index of the operation in the key's op list; -1 for the list head. */
  id: number;
  call: boolean;
  time: number;
  /** For a call entry: its return entry. */
  match: Entry | null;
  prev: Entry | null;
  next: Entry | null;
}

function buildEntries(ops: readonly Operation[]): Entry {
  const entries: Entry[] = [];
  ops.forEach((op, id) => {
    const ret: Entry = { id, call: false, time: op.completeMs ?? Infinity, match: null, prev: null, next: null };
    entries.push({ id, call: true, time: op.invokeMs, match: ret, prev: null, next: null }, ret);
  });
  // By time; at equal times calls come first, so ops that merely touch are treated as concurrent
  // (the permissive choice: millisecond clocks tie often, and a tie is no evidence of order).
  entries.sort((a, b) => a.time - b.time || (a.call === b.call ? 0 : a.call ? -1 : 1));
  const head: Entry = { id: -1, call: false, time: -Infinity, match: null, prev: null, next: null };
  let prev = head;
  for (const e of entries) {
    prev.next = e;
    e.prev = prev;
    prev = e;
  }
  return head;
}

function lift(entry: Entry): void {
  entry.prev!.next = entry.next;
  entry.next!.prev = entry.prev;
  const match = entry.match!;
  match.prev!.next = match.next;
  if (match.next !== null) match.next.prev = match.prev;
}

function unlift(entry: Entry): void {
  const match = entry.match!;
  match.prev!.next = match;
  if (match.next !== null) match.next.prev = match;
  entry.prev!.next = entry;
  entry.next!.prev = entry;
}

class Bitset {
  readonly words: Uint32Array;
  constructor(n: number) {
    this.words = new Uint32Array(Math.ceil(n / 32) || 1);
  }
  set(i: number): void {
    this.words[i >>> 5]! |= 1 << (i & 31);
  }
  clear(i: number): void {
    this.words[i >>> 5]! &= ~(1 << (i & 31));
  }
  has(i: number): boolean {
    return (this.words[i >>> 5]! & (1 << (i & 31))) !== 0;
  }
  /** Cache key for this set plus one more element, a model state and a tag. */
  keyWith(i: number, state: State, tag: string): string {
    const w = i >>> 5;
    let s = tag;
    for (let k = 0; k < this.words.length; k++) {
      const word = k === w ? (this.words[k]! | (1 << (i & 31))) >>> 0 : this.words[k]!;
      s += word.toString(36) + ',';
    }
    if (state === null) return s + '\u0000';
    if (state === UNOBSERVED) return s + '\u0002';
    return s + '\u0001' + state;
  }
}

class Timeout extends Error {}

interface KeyFailure {
  /** Longest linearizable prefix found, as indexes into the key's ops. */
  prefix: number[];
  linearized: Set<number>;
}

/** WGL search over one key's operations; returns null when linearizable. */
function searchKey(ops: readonly Operation[], expired: () => boolean): KeyFailure | null {
  const knownTotal = ops.filter((o) => o.completeMs !== null).length;
  let knownRemaining = knownTotal;
  if (knownRemaining === 0) return null;
  const head = buildEntries(ops);
  const linearized = new Bitset(ops.length);
  const cache = new Set<string>();
  const calls: { entry: Entry; state: State }[] = [];
  let state: State = null;

  const observed = new Set<string>();
  for (const op of ops) {
    if (op.kind === 'get' && typeof op.result.value === 'string') observed.add(op.result.value);
    if (op.kind === 'cas' && typeof op.expected === 'string') observed.add(op.expected);
  }
  const canon: Canon = (v) => (v === undefined ? null : observed.has(v) ? v : UNOBSERVED);

  // Symmetry reduction: unknown-outcome writes with the same effect (same canonical resulting
  // state; for cas also the same expected value) are interchangeable once invoked: any
  // linearization using a later-invoked one can use an earlier-invoked one instead. So within each
  // such group only the earliest-invoked unused op may be linearized next (list order = invoke
  // order), which turns 2^u subsets into counts.
  const group = new Int32Array(ops.length).fill(-1);
  const rank = new Int32Array(ops.length);
  const groupIds = new Map<string, number>();
  const enc = (v: State): string => (v === null ? 'n' : v === UNOBSERVED ? 'u' : `s${v}`);
  const groupSizes: number[] = [];
  for (let e = head.next; e !== null; e = e.next) {
    const op = ops[e.id]!;
    if (!e.call || op.completeMs !== null || op.kind === 'get') continue;
    const to = op.kind === 'delete' ? 'n' : enc(canon(op.value));
    const effect = op.kind === 'cas' ? `cas:${enc(op.expected ?? null)}:${to}` : `set:${to}`;
    let g = groupIds.get(effect);
    if (g === undefined) groupIds.set(effect, (g = groupSizes.push(0) - 1));
    group[e.id] = g;
    rank[e.id] = groupSizes[g]!++;
  }
  const nextRank = new Int32Array(groupSizes.length);
  let best: KeyFailure = { prefix: [], linearized: new Set() };
  let bestKnown = 0;
  let iterations = 0;
  const lastBlind = (): boolean => {
    const top = calls[calls.length - 1];
    if (top === undefined) return false;
    const prev = ops[top.entry.id]!;
    return prev.completeMs === null && (prev.kind === 'put' || prev.kind === 'delete');
  };

  let entry = head.next;
  while (entry !== null) {
    if ((++iterations & 1023) === 0 && expired()) throw new Timeout();
    if (entry.call) {
      const op = ops[entry.id]!;
      const g = group[entry.id]!;
      let next: State | undefined = g >= 0 && rank[entry.id] !== nextRank[g] ? undefined : step(state, op, canon);
      // Dominance pruning for unknown outcomes, which can always be deferred to the end (= never):
      // skip one that would not change the state, and a blind write (put/delete) right after
      // another unknown blind write, whose effect it would overwrite unseen.
      // Which successors are allowed then depends on whether the last op was such a blind write, so
      // that bit is part of the memo key (the allowed continuations are a function of the key).
      const blind = op.completeMs === null && (op.kind === 'put' || op.kind === 'delete');
      if (next !== undefined && op.completeMs === null) {
        if (next === state || (blind && lastBlind())) next = undefined;
      }
      if (next !== undefined) {
        const key = linearized.keyWith(entry.id, next, blind ? 'b' : 'k');
        if (!cache.has(key)) {
          cache.add(key);
          calls.push({ entry, state });
          state = next;
          linearized.set(entry.id);
          lift(entry);
          if (g >= 0) nextRank[g]!++;
          if (op.completeMs !== null && --knownRemaining === 0) return null;
          // Keep the prefix that linearizes the most answered ops: it points closest to the anomaly.
          if (knownTotal - knownRemaining > bestKnown) {
            bestKnown = knownTotal - knownRemaining;
            const prefix = calls.map((c) => c.entry.id);
            best = { prefix, linearized: new Set(prefix) };
          }
          entry = head.next;
          continue;
        }
      }
      entry = entry.next;
    } else {
      // A return whose call is still pending: that op must have happened by now, and could not.
      const top = calls.pop();
      if (top === undefined) return best;
      entry = top.entry;
      state = top.state;
      linearized.clear(entry.id);
      if (ops[entry.id]!.completeMs !== null) knownRemaining++;
      if (group[entry.id]! >= 0) nextRank[group[entry.id]!]!--;
      unlift(entry);
      entry = entry.next;
    }
  }
  return null; // unreachable while a known op remains: its return entry stops the scan
}

/**
 * Drops unanswered puts/cas whose value nobody ever observes, when no answered cas on the key
 * failed. Taking effect would leave the key holding a value in which no answered get or successful
 * cas is legal (only a failed cas could be), so the next state change must be a blind overwrite:
 * removing such an op (and deferring unanswered cas that were no-ops in between) keeps any
 * linearization valid. This is the common "lost write during a leader kill" case.
 */
function dropInvisibleUnknowns(ops: Operation[]): Operation[] {
  if (ops.some((o) => o.kind === 'cas' && o.completeMs !== null && !o.result.ok)) return ops;
  const observed = new Set<string>();
  for (const op of ops) {
    if (op.kind === 'get' && typeof op.result.value === 'string') observed.add(op.result.value);
    if (op.kind === 'cas' && typeof op.expected === 'string') observed.add(op.expected);
  }
  return ops.filter((o) => !(o.completeMs === null && (o.kind === 'put' || o.kind === 'cas') && !observed.has(o.value!)));
}

const MAX_RENDERED = 40;

function explain(key: string, ops: readonly Operation[], failure: KeyFailure, dropped: number): string {
  const labels = new Map<Operation, string>();
  const sortedIds = ops.map((_, i) => i).sort((a, b) => ops[a]!.invokeMs - ops[b]!.invokeMs || a - b);
  sortedIds.forEach((id, n) => labels.set(ops[id]!, `#${n + 1}`));
  const label = (id: number): string => labels.get(ops[id]!)!;

  // The earliest completion among ops not in the prefix bounds what had to happen next.
  const pending = ops.map((_, i) => i).filter((i) => !failure.linearized.has(i));
  let deadline = Infinity;
  let deadlineOp = -1;
  for (const i of pending) {
    const c = ops[i]!.completeMs;
    if (c !== null && c < deadline) {
      deadline = c;
      deadlineOp = i;
    }
  }
  const candidates = pending.filter((i) => ops[i]!.invokeMs <= deadline);

  const markers = new Map<Operation, string>();
  const lines: string[] = [];
  const origin = ops.reduce((m, o) => Math.min(m, o.invokeMs), Infinity);
  // The search ran on canonical states; replay the prefix with the real values for the account.
  let concrete: State = null;
  for (const i of failure.prefix) {
    const next = step(concrete, ops[i]!);
    if (next !== undefined) concrete = next;
  }
  const after = stateText(concrete);
  lines.push(
    `key ${JSON.stringify(key)} is not linearizable (${ops.length} operations` +
      `${dropped > 0 ? `, plus ${dropped} unanswered write(s) of values nobody read, which cannot matter and are not shown` : ''}).`,
  );
  if (failure.prefix.length === 0) {
    lines.push('No operation can be linearized first (the key starts missing).');
  } else {
    const shown = failure.prefix.slice(-12).map(label);
    lines.push(
      `Longest linearizable prefix: ${failure.prefix.length} operation(s)` +
        `${failure.prefix.length > 12 ? ', ending ' : ': '}${shown.join(', ')}; after it the key is ${after}.`,
    );
  }
  if (deadlineOp >= 0) {
    const d = ops[deadlineOp]!;
    lines.push(
      `${label(deadlineOp)} (client ${d.clientId}, ${describeOp(d)}) completed at ${+(d.completeMs! - origin).toFixed(3)} and so must be linearized by then, but none of the operations that could come next fits:`,
    );
  }
  const unknownCandidates = candidates.filter((i) => ops[i]!.completeMs === null).length;
  for (const i of candidates) {
    const op = ops[i]!;
    if (op.completeMs === null) continue;
    const legal = step(concrete, op) !== undefined;
    const why = legal ? 'legal here, but every continuation fails later' : whyIllegal(concrete, op);
    lines.push(`  ${label(i)} client ${op.clientId}: ${describeOp(op)}: ${why}`);
    if (!legal) markers.set(op, `<-- ${why}`);
  }

  if (unknownCandidates > 0) {
    lines.push(`  (${unknownCandidates} unanswered operation(s) could also take effect here, but none leads to a valid order)`);
  }

  let rendered: Operation[] = [...ops];
  let omitted = 0;
  if (ops.length > MAX_RENDERED) {
    const keep = new Set<number>([...failure.prefix.slice(-15), ...candidates]);
    const lo = candidates.reduce((m, i) => Math.min(m, ops[i]!.invokeMs), Infinity);
    ops.forEach((op, i) => {
      if ((op.completeMs ?? Infinity) >= lo && op.invokeMs <= deadline) keep.add(i);
    });
    rendered = [...keep].map((i) => ops[i]!);
    omitted = ops.length - rendered.length;
  }
  lines.push(`Operations on ${JSON.stringify(key)}${omitted > 0 ? ` (${omitted} not shown)` : ''}, times relative to the first invoke:`);
  lines.push(formatHistory(rendered, { labels, markers, originMs: origin }));
  return lines.join('\n');
}

/** Groups a history by key, dropping operations that cannot constrain it. */
export function partitionByKey(history: History): Map<string, Operation[]> {
  const byKey = new Map<string, Operation[]>();
  history.forEach((op, i) => {
    validate(op, i);
    if (!relevant(op)) return;
    let list = byKey.get(op.key);
    if (list === undefined) byKey.set(op.key, (list = []));
    list.push(op);
  });
  return byKey;
}

/**
 * Checks that `history` is linearizable with respect to a map of independent registers, each key
 * starting missing. Returns the first failing key with an explanation, ok: true, or ok: 'unknown'
 * when the timeout ran out before every key was decided (a failure found before that still counts).
 */
export function checkLinearizable(history: History, options: CheckOptions = {}): CheckResult {
  const now = options.now ?? (() => performance.now());
  const deadline = options.timeoutMs === undefined ? Infinity : now() + options.timeoutMs;
  const expired = (): boolean => now() > deadline;
  const byKey = partitionByKey(history);
  let timedOut = false;
  for (const key of [...byKey.keys()].sort()) {
    const all = byKey.get(key)!;
    const ops = dropInvisibleUnknowns(all);
    let failure: KeyFailure | null;
    try {
      failure = searchKey(ops, expired);
    } catch (err) {
      if (!(err instanceof Timeout)) throw err;
      timedOut = true;
      continue;
    }
    if (failure !== null) {
      return {
        ok: false,
        key,
        explanation: explain(key, ops, failure, all.length - ops.length),
        partialOrder: failure.prefix.map((i) => ops[i]!),
      };
    }
  }
  return timedOut ? { ok: 'unknown', reason: 'timeout' } : { ok: true };
}
