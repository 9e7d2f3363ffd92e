// The agent's read cache (Consul's agent/cache with "background refresh" semantics,
// developer.hashicorp.com/consul/api-docs/features/caching):
//
// - An entry is one upstream read (path and query without index/wait/cached). The first request is
//   a MISS: it is fetched, stored, and from then on kept fresh by a background blocking query
//   (`minIndex` = the entry's index) that wakes when the servers' data changes.
// - Later requests are HITs answered from memory. Age is 0 while the background refresh is
//   healthy, and the time since the last successful fetch while it fails (Consul's behaviour).
//   `max-age` refetches an entry older than that (a MISS); `stale-if-error` serves the old value if
//   that refetch fails and it is not older than max-age + stale-if-error; `must-revalidate` never
//   serves a value older than max-age.
// - A blocking request (`minIndex`) waits for the entry's index to pass minIndex (the one upstream
//   watch serves every waiter), up to its wait time, then answers with what it has.
// - Bounded: at most `maxEntries` entries and `maxBytes` of bodies; the least recently used goes
//   first. An entry nobody asked for within `entryTtlMs` is dropped and its refresh stopped.
// - Only answers worth keeping are stored (200, and 404 which carries an index clients block on);
//   others (400, 403, 5xx) are handed back uncached, as MISS.
//
// Time and timers come from an injected clock, so unit tests drive them (cache.test.ts).

export interface CacheClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemCacheClock: CacheClock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => {
    const t = setTimeout(callback, ms);
    t.unref();
    return t;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface CachedResult {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
  /** X-Consul-Index of the answer (0 when absent). */
  readonly index: number;
}

/**
 * Fetches `key` from the servers. minIndex > 0: a blocking query that returns once the index
 * passes minIndex or the server's wait ends (whichever first). The signal aborts it.
 */
export type CacheFetcher = (key: string, minIndex: number, signal: AbortSignal) => Promise<CachedResult>;

export interface CacheOptions {
  readonly fetch: CacheFetcher;
  readonly clock?: CacheClock;
  readonly maxEntries: number;
  readonly maxBytes: number;
  readonly entryTtlMs: number;
  /** First retry delay of a failing background refresh; doubles up to maxBackoffMs. */
  readonly backoffMs?: number;
  readonly maxBackoffMs?: number;
}

export interface CacheGetOptions {
  /** Block until the entry's index is greater than this (0: no blocking). */
  readonly minIndex?: number;
  /** How long a blocking get waits at most. */
  readonly waitMs?: number;
  /** Cache-Control max-age, in ms (undefined: any age). */
  readonly maxAgeMs?: number;
  /** Cache-Control stale-if-error, in ms. */
  readonly staleIfErrorMs?: number;
  readonly mustRevalidate?: boolean;
  readonly signal?: AbortSignal;
}

export interface CacheAnswer {
  readonly result: CachedResult;
  readonly hit: boolean;
  /** Seconds-granularity age is computed by the caller; this is milliseconds. */
  readonly ageMs: number;
}

export interface CacheStats {
  readonly entries: number;
  readonly bytes: number;
  readonly hits: number;
  readonly misses: number;
  readonly evictions: number;
  readonly expirations: number;
  readonly refreshes: number;
  readonly refreshErrors: number;
}

interface Entry {
  readonly key: string;
  value: CachedResult | null;
  /** When the value was last confirmed by a successful fetch. */
  fetchedAt: number;
  lastGetAt: number;
  /** The background refresh's last attempt failed. */
  failing: boolean;
  backoffMs: number;
  size: number;
  /** The refresh loop (first fetch, then blocking refreshes) is running. */
  running: boolean;
  first: Promise<void> | null;
  readonly abort: AbortController;
  readonly waiters: Set<() => void>;
  retryTimer: unknown;
}

export class AgentCache {
  private readonly options: CacheOptions;
  private readonly clock: CacheClock;
  /** Insertion order is recency order: a get moves its entry to the end. */
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  private sweepTimer: unknown = null;
  private stopped = false;
  private counters = { hits: 0, misses: 0, evictions: 0, expirations: 0, refreshes: 0, refreshErrors: 0 };

  constructor(options: CacheOptions) {
    this.options = options;
    this.clock = options.clock ?? systemCacheClock;
    this.scheduleSweep();
  }

  stats(): CacheStats {
    return { entries: this.entries.size, bytes: this.bytes, ...this.counters };
  }

  has(key: string): boolean {
    return this.entries.get(key)?.value != null;
  }

  stop(): void {
    this.stopped = true;
    if (this.sweepTimer !== null) this.clock.clearTimeout(this.sweepTimer);
    for (const entry of [...this.entries.values()]) this.drop(entry);
  }

  /**
   * The synchronous hit path: the entry's value when it can be served as is (present, young enough
   * for maxAgeMs, past minIndex); undefined when get() must be used.
   */
  peek(key: string, options: CacheGetOptions = {}): CacheAnswer | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined || entry.value === null || this.stopped) return undefined;
    const now = this.clock.now();
    const ageMs = this.ageMs(entry, now);
    if (options.maxAgeMs !== undefined && ageMs > options.maxAgeMs) return undefined;
    if ((options.minIndex ?? 0) > 0 && entry.value.index <= options.minIndex!) return undefined;
    this.entries.delete(key);
    this.entries.set(key, entry);
    entry.lastGetAt = now;
    this.counters.hits++;
    return { result: entry.value, hit: true, ageMs };
  }

  async get(key: string, options: CacheGetOptions = {}): Promise<CacheAnswer> {
    if (this.stopped) throw new Error('the cache is stopped');
    const now = this.clock.now();
    let entry = this.entries.get(key);
    if (entry === undefined) {
      entry = this.create(key, now);
    } else {
      // Most recently used goes to the end.
      this.entries.delete(key);
      this.entries.set(key, entry);
      entry.lastGetAt = now;
    }
    let hit = true;
    if (entry.value === null) {
      hit = false;
      this.start(entry);
      await entry.first;
      if (entry.value === null) {
        // The first fetch failed or answered something not cached: hand that over, uncached.
        return this.uncached(entry, key);
      }
    } else if (options.maxAgeMs !== undefined && this.ageMs(entry, now) > options.maxAgeMs) {
      // Too old for this client: fetch now (a MISS); on failure maybe serve it stale.
      const age = this.ageMs(entry, now);
      try {
        const fresh = await this.options.fetch(key, 0, entry.abort.signal);
        this.store(entry, fresh);
        hit = false;
      } catch (err) {
        const allowed = options.mustRevalidate !== true && options.staleIfErrorMs !== undefined && age <= options.maxAgeMs + options.staleIfErrorMs;
        if (!allowed) throw err;
      }
      if (entry.value === null) return this.uncached(entry, key);
    }
    const minIndex = options.minIndex ?? 0;
    if (minIndex > 0 && entry.value !== null && entry.value.index <= minIndex) {
      await this.waitForChange(entry, minIndex, options.waitMs ?? 300_000, options.signal);
    }
    const value = entry.value;
    if (value === null) return this.uncached(entry, key);
    if (hit) this.counters.hits++;
    else this.counters.misses++;
    return { result: value, hit, ageMs: hit ? this.ageMs(entry, this.clock.now()) : 0 };
  }

  /** Age in Consul's sense: 0 while the background refresh keeps up, else time since the last success. */
  private ageMs(entry: Entry, now: number): number {
    return entry.failing || !entry.running ? Math.max(0, now - entry.fetchedAt) : 0;
  }

  private lastUncached = new Map<string, { result: CachedResult | null; error: Error | null }>();

  private uncached(entry: Entry, key: string): CacheAnswer {
    this.counters.misses++;
    const last = this.lastUncached.get(key);
    this.lastUncached.delete(key);
    // An entry that never held a value is not kept: the next request tries again.
    if (entry.value === null) this.drop(entry);
    if (last?.result) return { result: last.result, hit: false, ageMs: 0 };
    throw last?.error ?? new Error('the servers gave no answer');
  }

  private create(key: string, now: number): Entry {
    const entry: Entry = {
      key,
      value: null,
      fetchedAt: 0,
      lastGetAt: now,
      failing: false,
      backoffMs: 0,
      size: 0,
      running: false,
      first: null,
      abort: new AbortController(),
      waiters: new Set(),
      retryTimer: null,
    };
    this.entries.set(key, entry);
    return entry;
  }

  /** Starts the entry's fetch loop once: a first fetch, then background blocking refreshes. */
  private start(entry: Entry): void {
    if (entry.first !== null) return;
    entry.first = (async () => {
      try {
        const result = await this.options.fetch(entry.key, 0, entry.abort.signal);
        if (!cacheable(result)) {
          this.lastUncached.set(entry.key, { result, error: null });
          return;
        }
        this.store(entry, result);
        entry.running = true;
        void this.refreshLoop(entry);
      } catch (err) {
        this.lastUncached.set(entry.key, { result: null, error: err as Error });
      }
    })();
  }

  private async refreshLoop(entry: Entry): Promise<void> {
    while (!this.stopped && this.entries.get(entry.key) === entry && !entry.abort.signal.aborted) {
      try {
        const result = await this.options.fetch(entry.key, entry.value?.index ?? 0, entry.abort.signal);
        this.counters.refreshes++;
        entry.failing = false;
        entry.backoffMs = 0;
        if (cacheable(result)) this.store(entry, result);
        else {
          // The data went away in a way not worth caching (e.g. 403): stop serving it.
          this.drop(entry);
          return;
        }
      } catch {
        if (entry.abort.signal.aborted) return;
        this.counters.refreshErrors++;
        entry.failing = true;
        entry.backoffMs = Math.min(this.options.maxBackoffMs ?? 30_000, entry.backoffMs === 0 ? (this.options.backoffMs ?? 250) : entry.backoffMs * 2);
        await new Promise<void>((resolve) => {
          entry.retryTimer = this.clock.setTimeout(resolve, entry.backoffMs);
          entry.abort.signal.addEventListener('abort', () => resolve(), { once: true });
        });
      }
    }
  }

  private store(entry: Entry, result: CachedResult): void {
    const previous = entry.value;
    entry.fetchedAt = this.clock.now();
    entry.value = result;
    const size = result.body.length + 256;
    this.bytes += size - entry.size;
    entry.size = size;
    if (previous === null || previous.index !== result.index || !previous.body.equals(result.body)) {
      for (const wake of [...entry.waiters]) wake();
    }
    this.enforceBounds(entry);
  }

  private waitForChange(entry: Entry, minIndex: number, waitMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let timer: unknown = null;
      const done = () => {
        entry.waiters.delete(check);
        if (timer !== null) this.clock.clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const check = () => {
        // Gone (evicted, expired) or moved past minIndex: answer now.
        if (entry.value === null || entry.value.index > minIndex || this.entries.get(entry.key) !== entry) done();
      };
      entry.waiters.add(check);
      timer = this.clock.setTimeout(done, waitMs);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  private enforceBounds(keep: Entry): void {
    for (const entry of this.entries.values()) {
      if (this.entries.size <= this.options.maxEntries && this.bytes <= this.options.maxBytes) return;
      if (entry === keep) continue;
      this.counters.evictions++;
      this.drop(entry);
    }
  }

  private drop(entry: Entry): void {
    if (this.entries.get(entry.key) === entry) this.entries.delete(entry.key);
    this.bytes -= entry.size;
    entry.size = 0;
    entry.running = false;
    entry.abort.abort();
    if (entry.retryTimer !== null) this.clock.clearTimeout(entry.retryTimer);
    for (const wake of [...entry.waiters]) wake();
  }

  /** Drops entries nobody asked for within entryTtlMs. */
  sweep(): void {
    const now = this.clock.now();
    for (const entry of [...this.entries.values()]) {
      if (now - entry.lastGetAt > this.options.entryTtlMs && entry.waiters.size === 0) {
        this.counters.expirations++;
        this.drop(entry);
      }
    }
  }

  private scheduleSweep(): void {
    if (this.stopped) return;
    const every = Math.max(10, Math.min(60_000, Math.floor(this.options.entryTtlMs / 4)));
    this.sweepTimer = this.clock.setTimeout(() => {
      this.sweep();
      this.scheduleSweep();
    }, every);
  }
}

function cacheable(result: CachedResult): boolean {
  return result.status === 200 || result.status === 404;
}
