// Blocking reads that fan out cheaply. When one write wakes W requests waiting on the same query,
// the answer (status, headers and body) is read and serialised once, and the same Buffer is written
// to all W of them.
//
// - An answer is cached per query key (everything the answer depends on, see `answerKey`) for one
//   state version (the FSM's applied index): a request arriving while nothing was applied gets the
//   cached bytes, one arriving after any apply reads the state again. The cache is emptied whenever
//   the version moves, so it only ever holds answers to the current state.
// - Requests waiting on the same query form one group with ONE watcher in the FSM's registry and
//   one wake-up per write (not one watcher, one setImmediate and one promise per request).
// - Deadlines sit in shared buckets (deadline-wheel.ts): one timer per bucket, not per request.
// - A client that goes away is noticed through one 'close' listener per waiting request, a shared
//   function (no closure per request).
// - Answers are written straight to the Node response (`writeHead` + `end` with the shared Buffer):
//   fastify's reply pipeline (onSend hooks, payload checks) is skipped for them, which is why the
//   route hands the reply over (`reply.hijack()`). The wire format is the one fastify sent: same
//   headers in the same order (see answer-hub.test.ts and the route's tests); HEAD drops the body
//   in Node as it did in fastify; during shutdown the answer says `connection: close`, as the app's
//   onSend hook does for every other reply. Any route-level onSend/onResponse hook added later does
//   not see these answers: give it to `AnswerHub` instead.
//
// X-Consul-KnownLeader and X-Consul-LastContact are read when an answer is written; requests
// answered together (one wake-up, one expired bucket) share the values read at that moment.
import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';
import type { ServerContext } from './context.ts';
import { bucketDeadline, DeadlineWheel, type DeadlineSlot, type HasDeadline } from './deadline-wheel.ts';
import type { Consistency, QueryOptions } from '../../http/query-options.ts';

/** What a query reads from the state: its index, and the serialised answer. */
export interface AnswerContent {
  /** X-Consul-Index (0 is sent as 1: clients treat 0 as "do not block" and would spin). */
  readonly index: number;
  readonly status: number;
  /**
   * Headers after the X-Consul-* ones, as a flat [name, value, ...] list with lower-case names
   * (content-type first). `content-length` is added.
   */
  readonly headers: readonly string[];
  readonly body: Buffer;
}

/** A blocking read the hub can share: its cache key, its watcher, and how to read it. */
export interface SharedQuery {
  /** Identifies the answer: two queries with the same key MUST read the same bytes from the same state. */
  readonly key: string;
  /** Registers `wake` on the data this query reads; returns the cancel function. */
  watch(wake: () => void): () => void;
  /** Reads the state and serialises the answer (once per key and state version). */
  read(): AnswerContent;
}

/** What X-Consul-KnownLeader and X-Consul-LastContact say. */
export interface LeaderView {
  readonly knownLeader: boolean;
  /** Milliseconds since this server last heard from the leader (0 on the leader; negative = never). */
  readonly lastContactMs: number;
}

export interface AnswerHubOptions {
  /** Changes whenever anything a query reads may have changed: the FSM's applied index. */
  readonly stateVersion: () => number;
  readonly leaderView: () => LeaderView;
  /** When aborted, every waiting request is answered at once (and its connection closed). */
  readonly shutdownSignal: AbortSignal;
  /** Receives an exception thrown while reading an answer for waiting requests (they get a 500). */
  readonly onError?: (error: unknown) => void;
  /** Bounds of the answers kept for the current state version. */
  readonly maxCachedAnswers?: number;
  readonly maxCachedBytes?: number;
  /** Monotonic milliseconds (tests may pass their own). */
  readonly now?: () => number;
  /** How long answers are written before the event loop gets a turn (default 10 ms). */
  readonly sliceMs?: number;
}

export interface AnswerHubStats {
  /** Answers read and serialised (cache misses). */
  readonly reads: number;
  /** Answers taken from the cache. */
  readonly cacheHits: number;
  /** Responses written. */
  readonly written: number;
  /** Requests waiting now. */
  readonly waiting: number;
  /** Queries with waiting requests now (= watchers in the FSM's registry). */
  readonly groups: number;
  /** Deadline buckets (= timers) now. */
  readonly deadlineBuckets: number;
}

/**
 * The cache key of an answer, from everything it depends on besides the state (route, query shape,
 * key, parameters; with ACLs, the request's permissions). Parts are kept apart unambiguously
 * whatever characters they contain.
 */
export function answerKey(parts: readonly string[]): string {
  return JSON.stringify(parts);
}

/** One serialised answer to one query at one state version. */
class Answer {
  readonly index: number;
  /** What the answer costs the cache (the body, and about what its headers take). */
  readonly size: number;
  /** Header lists already built, by consistency mode and leader view (usually one). */
  private readonly heads = new Map<string, string[]>();
  /** The last header list built or found, and what it was for: a fan-out asks 10,000 times in a row. */
  private last: { consistency: Consistency; view: LeaderView; closing: boolean; head: string[] } | null = null;

  constructor(readonly content: AnswerContent) {
    this.index = content.index >= 1 ? content.index : 1;
    this.size = content.body.length + 256;
  }

  head(consistency: Consistency, view: LeaderView, closing: boolean): string[] {
    const last = this.last;
    if (last !== null && last.view === view && last.consistency === consistency && last.closing === closing) return last.head;
    const memo = `${consistency}|${view.knownLeader ? 1 : 0}|${view.lastContactMs}|${closing ? 1 : 0}`;
    let head = this.heads.get(memo);
    if (head === undefined) {
      // The order and spelling of fastify's replies (http/read-endpoint.ts's setQueryMeta, then the route's).
      head = [
        'x-consul-index',
        String(this.index),
        'x-consul-knownleader',
        view.knownLeader ? 'true' : 'false',
        'x-consul-lastcontact',
        String(Math.max(0, view.lastContactMs)),
        'x-consul-effective-consistency',
        consistency === 'default' ? 'leader' : consistency,
        ...this.content.headers,
        'content-length',
        String(this.content.body.length),
      ];
      if (closing) head.push('connection', 'close');
      if (this.heads.size >= 8) this.heads.clear();
      this.heads.set(memo, head);
    }
    this.last = { consistency, view, closing, head };
    return head;
  }
}

/** One waiting request. */
class Waiter implements HasDeadline<Waiter> {
  deadlineSlot: DeadlineSlot<Waiter> | null = null;
  done = false;

  constructor(
    readonly res: ServerResponse,
    readonly minIndex: number,
    readonly consistency: Consistency,
    readonly group: Group,
  ) {}
}

/** The requests waiting on one query, and its one watcher. */
class Group {
  readonly waiters = new Set<Waiter>();
  cancelWatch: () => void = () => {};
  wakeScheduled = false;

  constructor(
    readonly hub: AnswerHub,
    readonly query: SharedQuery,
  ) {}
}

const WAITER = Symbol('konsul.waiter');
type TaggedResponse = ServerResponse & { [WAITER]?: Waiter };

/** A waiting request's response closed before it was answered: the client went away. */
function onResponseClose(this: TaggedResponse): void {
  const waiter = this[WAITER];
  if (waiter === undefined || waiter.done) return;
  waiter.group.hub.forget(waiter);
}

/** How many answers are written between two looks at the clock. */
const SLICE_CHECK_EVERY = 32;

function scheduleWake(group: Group): void {
  if (group.wakeScheduled) return;
  group.wakeScheduled = true;
  setImmediate(wakeGroup, group);
}

function wakeGroup(group: Group): void {
  group.wakeScheduled = false;
  group.hub.wake(group);
}

export class AnswerHub {
  private readonly groups = new Map<string, Group>();
  private readonly wheel: DeadlineWheel<Waiter>;
  private readonly cache = new Map<string, Answer>();
  private cacheVersion = Number.NaN;
  private cacheBytes = 0;
  private readonly maxCachedAnswers: number;
  private readonly maxCachedBytes: number;
  private readonly now: () => number;
  private readonly sliceMs: number;
  private waitingCount = 0;
  private readonly counters = { reads: 0, cacheHits: 0, written: 0 };

  constructor(private readonly options: AnswerHubOptions) {
    this.now = options.now ?? (() => performance.now());
    this.sliceMs = options.sliceMs ?? 10;
    this.maxCachedAnswers = options.maxCachedAnswers ?? 4096;
    this.maxCachedBytes = options.maxCachedBytes ?? 32 * 1024 * 1024;
    this.wheel = new DeadlineWheel<Waiter>((waiters) => this.expire(waiters), this.now);
    if (options.shutdownSignal.aborted) return;
    options.shutdownSignal.addEventListener('abort', () => this.answerAll(), { once: true });
  }

  get stats(): AnswerHubStats {
    return { ...this.counters, waiting: this.waitingCount, groups: this.groups.size, deadlineBuckets: this.wheel.buckets };
  }

  /**
   * Answers a read with Consul's blocking semantics: at once unless the client already has the
   * current index (`opts.minIndex`), else when the query's index moves (a watcher fired and the
   * state answers another index: newer, or older after a restore), the wait ends, the client goes
   * away (no answer) or the server shuts down. Takes the reply over from fastify.
   */
  serve(reply: FastifyReply, opts: QueryOptions, query: SharedQuery): void {
    // Read before taking the reply over: a read that throws is an ordinary error reply.
    const answer = this.answerFor(query);
    reply.hijack();
    const res = reply.raw;
    const closing = this.options.shutdownSignal.aborted;
    if (opts.minIndex === 0 || answer.index !== opts.minIndex || closing) {
      this.write(res, answer, opts.consistency, this.options.leaderView(), closing);
      return;
    }
    if (res.destroyed || res.closed) return; // the client is already gone
    let group = this.groups.get(query.key);
    if (group === undefined) {
      const g = new Group(this, query);
      // One wake-up per group and write, on the next turn of the event loop: the write that fired
      // the watch answers its own client first.
      g.cancelWatch = query.watch(() => scheduleWake(g));
      this.groups.set(query.key, g);
      group = g;
    }
    const waiter = new Waiter(res, opts.minIndex, opts.consistency, group);
    group.waiters.add(waiter);
    this.waitingCount++;
    const start = this.now();
    this.wheel.add(waiter, bucketDeadline(start, opts.waitBaseMs, opts.waitMs));
    (res as TaggedResponse)[WAITER] = waiter;
    res.once('close', onResponseClose);
  }

  /** The answer to `query` at the current state version, read and serialised at most once. */
  private answerFor(query: SharedQuery): Answer {
    const version = this.options.stateVersion();
    if (version !== this.cacheVersion) {
      this.cache.clear();
      this.cacheBytes = 0;
      this.cacheVersion = version;
    }
    const cached = this.cache.get(query.key);
    if (cached !== undefined) {
      this.counters.cacheHits++;
      return cached;
    }
    const answer = new Answer(query.read());
    this.counters.reads++;
    if (answer.size <= this.maxCachedBytes) {
      // Oldest first (Map order) until the new answer fits.
      for (const [key, old] of this.cache) {
        if (this.cache.size < this.maxCachedAnswers && this.cacheBytes + answer.size <= this.maxCachedBytes) break;
        this.cache.delete(key);
        this.cacheBytes -= old.size;
      }
      this.cache.set(query.key, answer);
      this.cacheBytes += answer.size;
    }
    return answer;
  }

  /**
   * @internal A watcher of `group` fired: answer every waiter whose index the state no longer has.
   * Thousands of answers are written in slices of `sliceMs`, so that the event loop (Raft heartbeats,
   * other requests) never stalls behind a fan-out; the rest follows on the next turn, from the same
   * cached answer unless something was applied in between.
   */
  wake(group: Group): void {
    if (group.waiters.size === 0) {
      this.dropIfEmpty(group);
      return;
    }
    let answer: Answer;
    try {
      answer = this.answerFor(group.query);
    } catch (error) {
      this.fail(group, error);
      return;
    }
    const view = this.options.leaderView();
    const closing = this.options.shutdownSignal.aborted;
    const started = this.now();
    let written = 0;
    for (const waiter of group.waiters) {
      // A wake-up that did not move this query's index (a write that changed nothing it reads) keeps waiting.
      if (waiter.minIndex === answer.index && !closing) continue;
      this.settle(waiter);
      this.write(waiter.res, answer, waiter.consistency, view, closing);
      if (++written % SLICE_CHECK_EVERY === 0 && this.now() - started >= this.sliceMs) {
        scheduleWake(group);
        return;
      }
    }
    this.dropIfEmpty(group);
  }

  /** @internal The client of `waiter` went away: it is forgotten without an answer. */
  forget(waiter: Waiter): void {
    if (waiter.done) return;
    this.settle(waiter);
    this.dropIfEmpty(waiter.group);
  }

  /** Waiters whose wait ended: each gets its query's current answer (in slices, as in `wake`). */
  private expire(waiters: readonly Waiter[], from = 0): void {
    const view = this.options.leaderView();
    const closing = this.options.shutdownSignal.aborted;
    const started = this.now();
    for (let i = from; i < waiters.length; i++) {
      const waiter = waiters[i]!;
      if (waiter.done) continue;
      let answer: Answer;
      try {
        answer = this.answerFor(waiter.group.query);
      } catch (error) {
        this.fail(waiter.group, error);
        continue;
      }
      this.settle(waiter);
      this.write(waiter.res, answer, waiter.consistency, view, closing);
      this.dropIfEmpty(waiter.group);
      if ((i - from + 1) % SLICE_CHECK_EVERY === 0 && this.now() - started >= this.sliceMs) {
        setImmediate(() => this.expire(waiters, i + 1));
        return;
      }
    }
  }

  /** Shutdown: every waiting request is answered now. */
  private answerAll(): void {
    const view = this.options.leaderView();
    for (const group of [...this.groups.values()]) {
      let answer: Answer;
      try {
        answer = this.answerFor(group.query);
      } catch (error) {
        this.fail(group, error);
        continue;
      }
      for (const waiter of group.waiters) {
        this.settle(waiter);
        this.write(waiter.res, answer, waiter.consistency, view, true);
      }
      this.dropIfEmpty(group);
    }
    this.wheel.clear();
  }

  /** Reading the answer failed (a bug): the group's waiters get a 500 instead of hanging. */
  private fail(group: Group, error: unknown): void {
    this.options.onError?.(error);
    const message = Buffer.from(error instanceof Error ? error.message : String(error));
    for (const waiter of group.waiters) {
      this.settle(waiter);
      const res = waiter.res;
      if (res.headersSent || res.destroyed) continue;
      res.writeHead(500, ['content-type', 'text/plain; charset=utf-8', 'content-length', String(message.length)]);
      res.end(message);
    }
    this.dropIfEmpty(group);
  }

  /** Takes `waiter` out of its group and the wheel (it is being answered or forgotten). */
  private settle(waiter: Waiter): void {
    waiter.done = true;
    waiter.group.waiters.delete(waiter);
    this.wheel.remove(waiter);
    this.waitingCount--;
  }

  private dropIfEmpty(group: Group): void {
    if (group.waiters.size > 0) return;
    group.cancelWatch();
    if (this.groups.get(group.query.key) === group) this.groups.delete(group.query.key);
  }

  private write(res: ServerResponse, answer: Answer, consistency: Consistency, view: LeaderView, closing: boolean): void {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(answer.content.status, answer.head(consistency, view, closing));
    res.end(answer.content.body);
    this.counters.written++;
  }
}

/** The hub of a server: state version = the FSM's applied index, leader view from Raft. */
export function createAnswerHub(ctx: ServerContext, options: Partial<AnswerHubOptions> = {}): AnswerHub {
  const { fsm, raft } = ctx;
  return new AnswerHub({
    stateVersion: () => fsm.appliedIndex,
    // What setQueryMeta (http/read-endpoint.ts) sends on every other read.
    leaderView: () => ({ knownLeader: raft.leader() !== '', lastContactMs: raft.lastContactMs() }),
    shutdownSignal: ctx.shutdownSignal,
    ...options,
  });
}
