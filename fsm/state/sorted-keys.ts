// An ordered set of strings for prefix scans over large tables.
//
// Why this shape: KV listings (`?recurse`, `?keys`) must come out sorted and must not sort the
// table per request. A single sorted array costs O(n) per insert (fine to ~1e5 keys, too slow
// beyond). A balanced tree or skip list is more code and more garbage per key. This is a
// two-level "blocked" sorted list (the design of Python's sortedcontainers): the keys live in
// sorted blocks of at most MAX_BLOCK entries, the blocks are kept in key order. Finding a key is
// two binary searches, O(log n); inserting or removing moves at most MAX_BLOCK array slots plus,
// on a split or merge, one slot per block (n / MAX_BLOCK). At 1e6 keys that is ~2,000 blocks:
// every operation stays in the microseconds. Scans walk blocks in order with no copying.
//
// Order is Unicode code point order, which is the byte order of the UTF-8 encodings: the order
// Consul (whose radix tree compares bytes) lists keys in. Plain `<` on JS strings compares UTF-16
// code units and disagrees for characters above U+FFFF versus U+E000..U+FFFF.

const MAX_BLOCK = 1024;
const MIN_BLOCK = MAX_BLOCK / 4;

/** Compares two strings by code point (= by their UTF-8 bytes). */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codeUnitRank(x) - codeUnitRank(y);
  }
  return a.length - b.length;
}

/**
 * Surrogates (U+D800..U+DFFF) start characters above U+FFFF, so they must rank above the BMP
 * characters U+E000..U+FFFF: shift surrogates up by 0x2000 and U+E000..U+FFFF down by 0x800.
 */
function codeUnitRank(unit: number): number {
  if (unit < 0xd800) return unit;
  return unit < 0xe000 ? unit + 0x2000 : unit - 0x800;
}

/** Where a key is, or would be inserted: block number and position inside the block. */
interface Position {
  block: number;
  offset: number;
}

export class SortedKeySet {
  /** Non-empty sorted blocks; every key of block i sorts before every key of block i + 1. */
  private blocks: string[][] = [];
  private count = 0;

  /** Builds a set from keys already in `compareKeys` order without duplicates (snapshot restore). */
  static fromSorted(sortedKeys: readonly string[]): SortedKeySet {
    const set = new SortedKeySet();
    for (let i = 0; i < sortedKeys.length; i += MAX_BLOCK / 2) {
      set.blocks.push(sortedKeys.slice(i, i + MAX_BLOCK / 2));
    }
    set.count = sortedKeys.length;
    return set;
  }

  get size(): number {
    return this.count;
  }

  has(key: string): boolean {
    const { block, offset } = this.lowerBound(key);
    return this.blocks[block]?.[offset] === key;
  }

  /** Adds `key`; returns false if it was already present. */
  add(key: string): boolean {
    if (this.blocks.length === 0) {
      this.blocks.push([key]);
      this.count = 1;
      return true;
    }
    let { block, offset } = this.lowerBound(key);
    if (block === this.blocks.length) {
      // Larger than every key: append to the last block.
      block = this.blocks.length - 1;
      offset = this.blocks[block]!.length;
    } else if (this.blocks[block]![offset] === key) {
      return false;
    }
    const target = this.blocks[block]!;
    target.splice(offset, 0, key);
    this.count++;
    if (target.length > MAX_BLOCK) this.blocks.splice(block + 1, 0, target.splice(MAX_BLOCK / 2));
    return true;
  }

  /** Removes `key`; returns false if it was not present. */
  delete(key: string): boolean {
    const { block, offset } = this.lowerBound(key);
    const target = this.blocks[block];
    if (target === undefined || target[offset] !== key) return false;
    target.splice(offset, 1);
    this.count--;
    this.rebalance(block);
    return true;
  }

  /** Removes every key that starts with `prefix`; returns them in order. */
  deletePrefix(prefix: string): string[] {
    const removed: string[] = [];
    let { block, offset } = this.lowerBound(prefix);
    while (block < this.blocks.length) {
      const target = this.blocks[block]!;
      let end = offset;
      while (end < target.length && target[end]!.startsWith(prefix)) end++;
      const reachedBlockEnd = end === target.length;
      if (end > offset) {
        for (const key of target.splice(offset, end - offset)) removed.push(key);
      }
      if (!reachedBlockEnd) {
        this.rebalance(block);
        break;
      }
      if (target.length === 0) {
        this.blocks.splice(block, 1);
      } else {
        block++;
      }
      offset = 0;
    }
    // The block before the removed run may have shrunk too.
    if (block > 0 && block - 1 < this.blocks.length) this.rebalance(block - 1);
    this.count -= removed.length;
    return removed;
  }

  /** The keys that start with `prefix`, in order. */
  withPrefix(prefix: string): string[] {
    const result: string[] = [];
    let { block, offset } = this.lowerBound(prefix);
    for (; block < this.blocks.length; block++, offset = 0) {
      const target = this.blocks[block]!;
      for (; offset < target.length; offset++) {
        const key = target[offset]!;
        if (!key.startsWith(prefix)) return result;
        result.push(key);
      }
    }
    return result;
  }

  /** Every key, in order. */
  all(): string[] {
    const result: string[] = new Array<string>(this.count);
    let i = 0;
    for (const target of this.blocks) for (const key of target) result[i++] = key;
    return result;
  }

  clear(): void {
    this.blocks = [];
    this.count = 0;
  }

  /** The position of the first key >= `key` ({block: blocks.length, offset: 0} if none). */
  private lowerBound(key: string): Position {
    const blocks = this.blocks;
    let lo = 0;
    let hi = blocks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const last = blocks[mid]!;
      if (compareKeys(last[last.length - 1]!, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    if (lo === blocks.length) return { block: lo, offset: 0 };
    const target = blocks[lo]!;
    let l = 0;
    let h = target.length;
    while (l < h) {
      const mid = (l + h) >>> 1;
      if (compareKeys(target[mid]!, key) < 0) l = mid + 1;
      else h = mid;
    }
    return { block: lo, offset: l };
  }

  /** Drops an empty block, or merges a small one into its successor so blocks stay dense. */
  private rebalance(block: number): void {
    const target = this.blocks[block];
    if (target === undefined) return;
    if (target.length === 0) {
      this.blocks.splice(block, 1);
      return;
    }
    if (target.length >= MIN_BLOCK) return;
    const next = this.blocks[block + 1];
    if (next !== undefined && target.length + next.length <= MAX_BLOCK) {
      for (const key of next) target.push(key);
      this.blocks.splice(block + 1, 1);
    }
  }
}
