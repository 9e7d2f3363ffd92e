// A sorted map from strings (in compareKeys order: code points, = UTF-8 byte order, as Consul
// lists keys) to values, as a B+tree whose nodes can be shared between versions.
//
// Why: a Raft snapshot of millions of keys must not stop the event loop (issue 11, ADR 0015).
// `freeze()` is O(1): it hands out the current root as a read-only view and moves the map to a
// new epoch. A node belongs to the epoch it was made in; a write modifies the nodes of the current
// epoch in place and copies a node of an older epoch (one that a view may still hold) before
// changing it, so a write after a freeze copies at most one node per level, and views never
// change. Without views alive the cost is that of a plain mutable B+tree: one copy per node per
// freeze, then in-place updates (the same trick as Clojure's transients and immer's owner ids).
//
// Shape: leaves hold up to MAX_ENTRIES sorted keys with their values; a branch holds up to
// MAX_ENTRIES children and one separator fewer: `separators[i]` is <= every key of child i + 1 and
// > every key of child i. Leaves shrink below half on deletes; a leaf or branch at a quarter or
// less merges with a neighbour when they fit in one node (no borrowing: fewer cases, and a sparse
// node costs only array slack). At 1e6 keys the tree is 4 levels of 64: a lookup is ~24 key
// comparisons, a write copies at most 4 nodes of 64 slots after a freeze.

import { compareKeys } from './sorted-keys.ts';

const MAX_ENTRIES = 64;
const MERGE_BELOW = MAX_ENTRIES / 4;

interface Leaf<V> {
  readonly leaf: true;
  epoch: number;
  keys: string[];
  values: V[];
}

interface Branch<V> {
  readonly leaf: false;
  epoch: number;
  separators: string[];
  children: TreeNode<V>[];
}

type TreeNode<V> = Leaf<V> | Branch<V>;

/** A read-only version of a map: what `freeze()` hands out. Never changes. */
export class SortedMapView<V> {
  /** @internal */
  constructor(
    /** @internal */ readonly root: TreeNode<V>,
    readonly size: number,
  ) {}

  /** The leaves' key and value arrays in order, from the first key >= `from` (offset into the first). Read only. */
  *leaves(from = ''): Generator<LeafRun<V>> {
    yield* leafRuns(this.root, from);
  }
}

/** A run of entries of one leaf: keys[offset..] and values[offset..], in order. Never modify them. */
export interface LeafRun<V> {
  readonly keys: readonly string[];
  readonly values: readonly V[];
  readonly offset: number;
}

export class CowSortedMap<V> {
  private root: TreeNode<V>;
  private epoch = 1;
  private count = 0;

  constructor() {
    this.root = newLeaf<V>(this.epoch, [], []);
  }

  /** A map made from a builder's sorted run (snapshot restore): shares nothing with anything. */
  static fromBuilder<V>(builder: SortedMapBuilder<V>): CowSortedMap<V> {
    const map = new CowSortedMap<V>();
    const built = builder.finish();
    map.root = built.root;
    map.count = built.size;
    // The builder's nodes are epoch 0, older than any map's: the first write to each copies it once.
    return map;
  }

  get size(): number {
    return this.count;
  }

  get(key: string): V | undefined {
    return lookup(this.root, key);
  }

  /** A read-only view of the map as it is now, in O(1); later writes do not show in it. */
  freeze(): SortedMapView<V> {
    this.epoch++;
    return new SortedMapView(this.root, this.count);
  }

  /** Sets `key` to `value` (values must not be undefined). */
  set(key: string, value: V): void {
    const root = this.writable(this.root);
    this.root = root;
    const split = this.insert(root, key, value);
    if (split !== null) {
      this.root = { leaf: false, epoch: this.epoch, separators: [split.separator], children: [root, split.right] };
    }
  }

  /** Removes `key`; answers the value it had (undefined: it was absent, nothing was copied). */
  delete(key: string): V | undefined {
    const previous = lookup(this.root, key);
    if (previous === undefined) return undefined;
    const root = this.writable(this.root);
    this.root = root;
    this.remove(root, key);
    // A branch left with a single child hands the root to it.
    let top: TreeNode<V> = this.root;
    while (!top.leaf && top.children.length === 1) top = top.children[0]!;
    this.root = !top.leaf && top.children.length === 0 ? newLeaf<V>(this.epoch, [], []) : top;
    return previous;
  }

  /** Keys and values from the first key >= `from`, leaf by leaf, in order. Do not write while iterating. */
  *leaves(from = ''): Generator<LeafRun<V>> {
    yield* leafRuns(this.root, from);
  }

  /** Calls `visit` for every entry whose key starts with `prefix`, in order. */
  forEachWithPrefix(prefix: string, visit: (key: string, value: V) => void): void {
    for (const run of leafRuns(this.root, prefix)) {
      const { keys, values } = run;
      for (let i = run.offset; i < keys.length; i++) {
        const key = keys[i]!;
        if (!key.startsWith(prefix)) return;
        visit(key, values[i]!);
      }
    }
  }

  /** The keys that start with `prefix`, in order. */
  keysWithPrefix(prefix: string): string[] {
    const keys: string[] = [];
    this.forEachWithPrefix(prefix, (key) => keys.push(key));
    return keys;
  }

  // -------------------------------------------------------------------------------------------

  /** `node` if this epoch owns it, else a copy this epoch owns (the original stays as views see it). */
  private writable<N extends TreeNode<V>>(node: N): N {
    if (node.epoch === this.epoch) return node;
    if (node.leaf) return newLeaf(this.epoch, node.keys.slice(), node.values.slice()) as N;
    return { leaf: false, epoch: this.epoch, separators: node.separators.slice(), children: node.children.slice() } as N;
  }

  /** Inserts into a writable node; answers the new right sibling if the node split. */
  private insert(node: TreeNode<V>, key: string, value: V): { separator: string; right: TreeNode<V> } | null {
    if (node.leaf) {
      const at = lowerBound(node.keys, key);
      if (at < node.keys.length && node.keys[at] === key) {
        node.values[at] = value;
        return null;
      }
      node.keys.splice(at, 0, key);
      node.values.splice(at, 0, value);
      this.count++;
      if (node.keys.length <= MAX_ENTRIES) return null;
      const half = node.keys.length >>> 1;
      const right = newLeaf(this.epoch, node.keys.splice(half), node.values.splice(half));
      return { separator: right.keys[0]!, right };
    }
    const i = childIndex(node.separators, key);
    const child = this.writable(node.children[i]!);
    node.children[i] = child;
    const split = this.insert(child, key, value);
    if (split === null) return null;
    node.separators.splice(i, 0, split.separator);
    node.children.splice(i + 1, 0, split.right);
    if (node.children.length <= MAX_ENTRIES) return null;
    // Children [0, half) stay; separators[half - 1] moves up; children [half, n) go right.
    const half = node.children.length >>> 1;
    const rightChildren = node.children.splice(half);
    const rightSeparators = node.separators.splice(half);
    const separator = node.separators.pop()!;
    return { separator, right: { leaf: false, epoch: this.epoch, separators: rightSeparators, children: rightChildren } };
  }

  /** Removes a key known to be present from a writable node; merges small children on the way back. */
  private remove(node: TreeNode<V>, key: string): void {
    if (node.leaf) {
      const at = lowerBound(node.keys, key);
      node.keys.splice(at, 1);
      node.values.splice(at, 1);
      this.count--;
      return;
    }
    const i = childIndex(node.separators, key);
    const child = this.writable(node.children[i]!);
    node.children[i] = child;
    this.remove(child, key);
    if (entryCount(child) === 0) {
      node.children.splice(i, 1);
      node.separators.splice(i === 0 ? 0 : i - 1, 1);
      return;
    }
    if (entryCount(child) > MERGE_BELOW) return;
    // Merge with the right neighbour, or the left one for the last child, when both fit in one node.
    const left = i + 1 < node.children.length ? i : i - 1;
    if (left < 0) return;
    const a = node.children[left]!;
    const b = node.children[left + 1]!;
    if (entryCount(a) + entryCount(b) > MAX_ENTRIES) return;
    const merged = this.writable(a);
    if (merged.leaf) {
      const right = b as Leaf<V>;
      for (let k = 0; k < right.keys.length; k++) {
        merged.keys.push(right.keys[k]!);
        merged.values.push(right.values[k]!);
      }
    } else {
      const right = b as Branch<V>;
      merged.separators.push(node.separators[left]!);
      for (const s of right.separators) merged.separators.push(s);
      for (const c of right.children) merged.children.push(c);
    }
    node.children.splice(left, 2, merged);
    node.separators.splice(left, 1);
  }
}

/**
 * Builds a map from keys that arrive in strictly increasing order (a snapshot being restored),
 * leaf by leaf, so each `add` costs O(1) and a restore can be fed in pieces.
 */
export class SortedMapBuilder<V> {
  private leaves: Leaf<V>[] = [];
  private current: Leaf<V> = newLeaf<V>(0, [], []);
  private count = 0;

  /** Adds the next key; it must sort after the previous one (the caller checks, with its own error). */
  add(key: string, value: V): void {
    if (this.current.keys.length === MAX_ENTRIES) {
      this.leaves.push(this.current);
      this.current = newLeaf<V>(0, [], []);
    }
    this.current.keys.push(key);
    this.current.values.push(value);
    this.count++;
  }

  /** The root of the finished tree; the builder is spent. */
  finish(): { root: TreeNode<V>; size: number } {
    if (this.current.keys.length > 0 || this.leaves.length === 0) this.leaves.push(this.current);
    let level: TreeNode<V>[] = this.leaves;
    this.leaves = [];
    while (level.length > 1) {
      // Groups of equal size, so that no branch is left with a lone child.
      const groups = Math.ceil(level.length / MAX_ENTRIES);
      const perGroup = Math.ceil(level.length / groups);
      const parents: TreeNode<V>[] = [];
      for (let i = 0; i < level.length; i += perGroup) {
        const children = level.slice(i, i + perGroup);
        const separators = children.slice(1).map(firstKey);
        parents.push({ leaf: false, epoch: 0, separators, children });
      }
      level = parents;
    }
    return { root: level[0]!, size: this.count };
  }
}

// ---------------------------------------------------------------------------------------------

function newLeaf<V>(epoch: number, keys: string[], values: V[]): Leaf<V> {
  return { leaf: true, epoch, keys, values };
}

function entryCount<V>(node: TreeNode<V>): number {
  return node.leaf ? node.keys.length : node.children.length;
}

function firstKey<V>(node: TreeNode<V>): string {
  let n = node;
  while (!n.leaf) n = n.children[0]!;
  return n.keys[0]!;
}

function lookup<V>(root: TreeNode<V>, key: string): V | undefined {
  let node = root;
  while (!node.leaf) node = node.children[childIndex(node.separators, key)]!;
  const at = lowerBound(node.keys, key);
  return node.keys[at] === key ? node.values[at] : undefined;
}

/** The first position whose key is >= `key`. */
function lowerBound(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(keys[mid]!, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The child of a branch that holds `key`: the number of separators <= key. */
function childIndex(separators: readonly string[], key: string): number {
  let lo = 0;
  let hi = separators.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(separators[mid]!, key) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Walks the leaves in order from the first key >= `from`, with an explicit stack (no recursion per key). */
function* leafRuns<V>(root: TreeNode<V>, from: string): Generator<LeafRun<V>> {
  const stack: { node: Branch<V>; next: number }[] = [];
  let node = root;
  while (!node.leaf) {
    const i = from === '' ? 0 : childIndex(node.separators, from);
    stack.push({ node, next: i + 1 });
    node = node.children[i]!;
  }
  let offset = from === '' ? 0 : lowerBound(node.keys, from);
  for (;;) {
    if (offset < node.keys.length) yield { keys: node.keys, values: node.values, offset };
    offset = 0;
    // Up to the nearest branch with a child left, then down its leftmost path.
    let top = stack[stack.length - 1];
    while (top !== undefined && top.next >= top.node.children.length) {
      stack.pop();
      top = stack[stack.length - 1];
    }
    if (top === undefined) return;
    let child = top.node.children[top.next++]!;
    while (!child.leaf) {
      stack.push({ node: child, next: 1 });
      child = child.children[0]!;
    }
    node = child;
  }
}
