// Deadlines of waiting blocking queries, kept in shared buckets: one timer per bucket instead of one
// per request. 10,000 requests waiting 5 minutes share about 20 timers.
//
// Consul answers a blocking query that nothing woke after its wait plus a random stagger of up to
// wait/16 (`parseQueryOptions` draws it). A bucket's time is a multiple of a granularity G, a power
// of two no larger than wait/256, chosen inside that same window: [wait, wait + wait/16) from the
// request's start. The jitter survives at G's resolution (5 m waits: 1,024 ms buckets, about 18 of
// them across the 18.75 s window), so watchers that started together still spread their re-polls.
// Below 512 ms of wait (G = 1 ms) a request keeps its exact deadline.

export interface DeadlineSlot<T> {
  readonly at: number;
  readonly items: Set<T>;
  timer: ReturnType<typeof setTimeout> | null;
}

/** Something with a deadline: the wheel keeps its slot on it so that removing it costs O(1). */
export interface HasDeadline<T> {
  deadlineSlot: DeadlineSlot<T> | null;
}

/**
 * The time (on the clock `startMs` is read from) at which a request that started at `startMs` and
 * waits `waitMs` (its jittered wait, within [baseMs, baseMs + baseMs/16)) expires: a bucket time
 * inside Consul's window, as close after `startMs + waitMs` as the bucket granularity allows.
 */
export function bucketDeadline(startMs: number, baseMs: number, waitMs: number): number {
  const target = startMs + waitMs;
  const granularity = bucketGranularity(baseMs);
  if (granularity <= 1) return target;
  let at = Math.ceil(target / granularity) * granularity;
  // The window is at least 16 granularities wide, so one step back is still inside it.
  if (at >= startMs + baseMs + baseMs / 16) at -= granularity;
  return at;
}

/** The largest power of two no larger than wait/256, at least 1 (ms). */
export function bucketGranularity(baseMs: number): number {
  const g = baseMs / 256;
  return g < 2 ? 1 : 2 ** Math.floor(Math.log2(g));
}

export class DeadlineWheel<T extends HasDeadline<T>> {
  private readonly slots = new Map<number, DeadlineSlot<T>>();
  private count = 0;

  /**
   * `onExpire` receives every item of a bucket whose time has come, already removed from the wheel.
   * `now` is the clock deadlines are given on (monotonic milliseconds).
   */
  constructor(
    private readonly onExpire: (items: T[]) => void,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Schedules `item` to expire at `at` (a time from `bucketDeadline`, on this wheel's clock). */
  add(item: T, at: number): void {
    if (item.deadlineSlot !== null) this.remove(item);
    let slot = this.slots.get(at);
    if (slot === undefined) {
      slot = { at, items: new Set(), timer: null };
      this.slots.set(at, slot);
      slot.timer = setTimeout(fireSlot, Math.max(0, at - this.now()), this, slot);
    }
    slot.items.add(item);
    item.deadlineSlot = slot;
    this.count++;
  }

  /** Forgets `item`'s deadline (it was answered some other way); does nothing if it has none. */
  remove(item: T): void {
    const slot = item.deadlineSlot;
    if (slot === null) return;
    item.deadlineSlot = null;
    if (!slot.items.delete(item)) return;
    this.count--;
    if (slot.items.size === 0) this.dropSlot(slot);
  }

  /** Removes every item and stops every timer (the items do not expire). */
  clear(): void {
    for (const slot of this.slots.values()) {
      for (const item of slot.items) item.deadlineSlot = null;
      slot.items.clear();
      this.dropSlot(slot);
    }
    this.count = 0;
  }

  /** How many items wait for their deadline. */
  get size(): number {
    return this.count;
  }

  /** How many buckets (and so timers) there are. */
  get buckets(): number {
    return this.slots.size;
  }

  /** @internal Called by the slot's timer. */
  expire(slot: DeadlineSlot<T>): void {
    slot.timer = null;
    if (this.slots.get(slot.at) !== slot) return;
    this.slots.delete(slot.at);
    const items = [...slot.items];
    slot.items.clear();
    for (const item of items) item.deadlineSlot = null;
    this.count -= items.length;
    if (items.length > 0) this.onExpire(items);
  }

  private dropSlot(slot: DeadlineSlot<T>): void {
    if (slot.timer !== null) clearTimeout(slot.timer);
    slot.timer = null;
    if (this.slots.get(slot.at) === slot) this.slots.delete(slot.at);
  }
}

function fireSlot<T extends HasDeadline<T>>(wheel: DeadlineWheel<T>, slot: DeadlineSlot<T>): void {
  wheel.expire(slot);
}
