// Watchers for blocking queries: a watcher is called when the data it reads may have changed, and
// only then.
//
// Cost model (thousands of concurrent blocking queries):
// - key watchers sit in a map by key: a write to k looks up exactly one bucket;
// - prefix watchers sit in a map by prefix, and the registry remembers which prefix LENGTHS are
//   watched. A write to k looks up k.slice(0, n) for each watched length n <= k.length: at most
//   min(len(k) + 1, number of distinct watched lengths) map lookups, never a scan of the watchers.
//   10,000 watchers on `service/<name>/` prefixes cost a handful of lookups per write;
// - table watchers (`watchTable`) hear every change of their table.
//
// Watchers stay registered until cancelled; a blocking query cancels its watcher when it wakes or
// times out. Callbacks run synchronously inside `notify`, after the FSM has finished the apply
// (the state they read is complete). Each watcher is called at most once per notify, whatever the
// number of changed keys it matches. A callback may cancel watchers or add new ones; a watcher
// cancelled during a notify is not called afterwards, one added during a notify waits for the next.

/** Called with the Raft index of the apply that changed the watched data. */
export type WatchCallback = (index: number) => void;

/** Removes the watcher; calling it again does nothing. */
export type CancelWatch = () => void;

/** The FSM's tables. Key and prefix watches are per table; the KV table is the default. */
export type WatchTable = 'kv' | 'catalog' | 'health' | 'sessions' | 'acl' | 'events';

interface Watcher {
  readonly callback: WatchCallback;
  active: boolean;
}

/** The watchers of one table. */
class TableWatchers {
  readonly byKey = new Map<string, Set<Watcher>>();
  readonly byPrefix = new Map<string, Set<Watcher>>();
  readonly wholeTable = new Set<Watcher>();
  /** How many watched prefixes have each length. */
  private readonly prefixCountByLength = new Map<number, number>();
  /** The watched prefix lengths, ascending; rebuilt lazily after a length appears or disappears. */
  private sortedLengths: number[] = [];
  private lengthsStale = false;

  prefixLengths(): readonly number[] {
    if (this.lengthsStale) {
      this.sortedLengths = [...this.prefixCountByLength.keys()].sort((a, b) => a - b);
      this.lengthsStale = false;
    }
    return this.sortedLengths;
  }

  prefixAdded(prefix: string): void {
    const count = this.prefixCountByLength.get(prefix.length) ?? 0;
    this.prefixCountByLength.set(prefix.length, count + 1);
    if (count === 0) this.lengthsStale = true;
  }

  prefixRemoved(prefix: string): void {
    const count = this.prefixCountByLength.get(prefix.length) ?? 0;
    if (count <= 1) {
      this.prefixCountByLength.delete(prefix.length);
      this.lengthsStale = true;
    } else {
      this.prefixCountByLength.set(prefix.length, count - 1);
    }
  }

  get size(): number {
    let total = this.wholeTable.size;
    for (const bucket of this.byKey.values()) total += bucket.size;
    for (const bucket of this.byPrefix.values()) total += bucket.size;
    return total;
  }
}

/** Receives an exception thrown by a watcher callback (the other watchers still run). */
export type WatcherErrorHandler = (error: unknown) => void;

export class WatchRegistry {
  private readonly tables = new Map<WatchTable, TableWatchers>();
  private readonly onWatcherError: WatcherErrorHandler | undefined;

  /**
   * `onWatcherError` receives exceptions thrown by callbacks. Without it, `notify` calls every
   * watcher and then throws the first exception (callbacks are the host's code: a throw is a bug
   * that must not go unnoticed, but it must not starve the other watchers either).
   */
  constructor(options: { readonly onWatcherError?: WatcherErrorHandler } = {}) {
    this.onWatcherError = options.onWatcherError;
  }

  /** Calls `callback` when the entry at `key` changes (is created, updated or deleted). */
  watchKey(key: string, callback: WatchCallback, table: WatchTable = 'kv'): CancelWatch {
    const watchers = this.table(table);
    return this.register(watchers.byKey, key, callback);
  }

  /** Calls `callback` when any entry whose key starts with `prefix` changes ('' = any entry). */
  watchPrefix(prefix: string, callback: WatchCallback, table: WatchTable = 'kv'): CancelWatch {
    const watchers = this.table(table);
    watchers.prefixAdded(prefix);
    return this.register(watchers.byPrefix, prefix, callback, () => watchers.prefixRemoved(prefix));
  }

  /** Calls `callback` on every change of `table`. */
  watchTable(table: WatchTable, callback: WatchCallback): CancelWatch {
    const watchers = this.table(table);
    const watcher: Watcher = { callback, active: true };
    watchers.wholeTable.add(watcher);
    return () => {
      if (!watcher.active) return;
      watcher.active = false;
      watchers.wholeTable.delete(watcher);
    };
  }

  /** Wakes the watchers of `table` affected by changes to `changedKeys` at `index`. */
  notify(table: WatchTable, index: number, changedKeys: readonly string[]): void {
    if (changedKeys.length === 0) return;
    const watchers = this.tables.get(table);
    if (watchers === undefined) return;
    const due = new Set<Watcher>(watchers.wholeTable);
    const lengths = watchers.prefixLengths();
    for (const key of changedKeys) {
      const keyBucket = watchers.byKey.get(key);
      if (keyBucket !== undefined) for (const w of keyBucket) due.add(w);
      for (const length of lengths) {
        if (length > key.length) break;
        const prefixBucket = watchers.byPrefix.get(length === key.length ? key : key.slice(0, length));
        if (prefixBucket !== undefined) for (const w of prefixBucket) due.add(w);
      }
    }
    this.call(due, index);
  }

  /** Wakes every watcher of every table (after a snapshot restore: anything may have changed). */
  notifyAll(index: number): void {
    const due = new Set<Watcher>();
    for (const watchers of this.tables.values()) {
      for (const w of watchers.wholeTable) due.add(w);
      for (const bucket of watchers.byKey.values()) for (const w of bucket) due.add(w);
      for (const bucket of watchers.byPrefix.values()) for (const w of bucket) due.add(w);
    }
    this.call(due, index);
  }

  /** How many watchers are registered (all tables). */
  get size(): number {
    let total = 0;
    for (const watchers of this.tables.values()) total += watchers.size;
    return total;
  }

  private table(table: WatchTable): TableWatchers {
    let watchers = this.tables.get(table);
    if (watchers === undefined) {
      watchers = new TableWatchers();
      this.tables.set(table, watchers);
    }
    return watchers;
  }

  private register(buckets: Map<string, Set<Watcher>>, name: string, callback: WatchCallback, onRemoved?: () => void): CancelWatch {
    const watcher: Watcher = { callback, active: true };
    let bucket = buckets.get(name);
    if (bucket === undefined) {
      bucket = new Set();
      buckets.set(name, bucket);
    }
    bucket.add(watcher);
    return () => {
      if (!watcher.active) return;
      watcher.active = false;
      const current = buckets.get(name);
      if (current !== undefined) {
        current.delete(watcher);
        if (current.size === 0) buckets.delete(name);
      }
      onRemoved?.();
    };
  }

  private call(due: Set<Watcher>, index: number): void {
    let firstError: { error: unknown } | undefined;
    for (const watcher of due) {
      if (!watcher.active) continue;
      try {
        watcher.callback(index);
      } catch (error) {
        if (this.onWatcherError !== undefined) this.onWatcherError(error);
        else firstError ??= { error };
      }
    }
    if (firstError !== undefined) throw firstError.error;
  }
}
