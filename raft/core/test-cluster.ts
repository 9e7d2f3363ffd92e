// A small synchronous cluster for the core's unit tests: perfect delivery unless a test drops or
// intercepts messages. Each node's host persists every Ready to MemoryStorage before sending.
// (The fault-injecting, randomized harness lives in raft/sim/.)
import { MemoryStorage } from '../storage/memory-storage.ts';
import { Prng } from './prng.ts';
import type { RaftConfig } from './raft.ts';
import { RawNode } from './raw-node.ts';
import type { Entry, FailedRead, Message, MessageType, NodeId, ReadState } from './types.ts';

export interface TestNode {
  readonly id: NodeId;
  readonly node: RawNode;
  readonly storage: MemoryStorage;
  /** Non-empty normal entries applied, as strings. */
  readonly applied: string[];
  readonly readStates: ReadState[];
  readonly failedReads: FailedRead[];
  readonly abandoned: { term: number; fromIndex: number; toIndex: number }[];
}

export type MessageFilter = (m: Message) => boolean;
/** Rewrites a message in flight, or returns null to drop it. */
export type Interceptor = (m: Message) => Message | null;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function cmd(text: string): Uint8Array {
  return encoder.encode(text);
}

export class TestCluster {
  readonly nodes = new Map<NodeId, TestNode>();
  /** Every message delivered or dropped, in order, for assertions about traffic. */
  readonly sent: Message[] = [];
  private interceptors: Interceptor[] = [];
  private readonly seed: number;
  private readonly overrides: Partial<RaftConfig>;

  constructor(
    voters: NodeId[],
    options: { overrides?: Partial<RaftConfig>; learners?: NodeId[]; seed?: number; storages?: Record<NodeId, MemoryStorage> } = {},
  ) {
    this.seed = options.seed ?? 1;
    this.overrides = options.overrides ?? {};
    const learners = options.learners ?? [];
    for (const id of [...voters, ...learners]) this.add(id, options.storages?.[id] ?? new MemoryStorage({ voters, learners }));
  }

  /** Adds a node over `storage` (a fresh one for a node joining with no state). */
  add(id: NodeId, storage: MemoryStorage = new MemoryStorage()): TestNode {
    const node = new RawNode({ id, storage, random: new Prng(this.seed * 1000 + this.nodes.size), ...this.overrides });
    const tn: TestNode = { id, node, storage, applied: [], readStates: [], failedReads: [], abandoned: [] };
    this.nodes.set(id, tn);
    return tn;
  }

  get(id: NodeId): TestNode {
    const tn = this.nodes.get(id);
    if (!tn) throw new Error(`no node ${id}`);
    return tn;
  }

  raft(id: NodeId) {
    return this.get(id).node.raft;
  }

  /** Drops every message for which `filter` is true until the returned function is called. */
  drop(filter: MessageFilter): () => void {
    return this.intercept((m) => (filter(m) ? null : m));
  }

  /** Passes every message through `interceptor` until the returned function is called. */
  intercept(interceptor: Interceptor): () => void {
    this.interceptors.push(interceptor);
    return () => {
      this.interceptors = this.interceptors.filter((f) => f !== interceptor);
    };
  }

  /** Cuts `id` off from everyone, both directions. */
  isolate(id: NodeId): () => void {
    return this.drop((m) => m.from === id || m.to === id);
  }

  healAll(): void {
    this.interceptors = [];
  }

  /** Runs every node's Ready loop and delivers messages until the cluster is quiet. */
  stabilize(maxRounds = 1000): void {
    for (let round = 0; round < maxRounds; round++) {
      const outbox: Message[] = [];
      for (const tn of this.nodes.values()) outbox.push(...this.processReady(tn));
      if (outbox.length === 0) return;
      for (const m of outbox) this.deliver(m);
    }
    throw new Error('cluster did not stabilize');
  }

  /** Collects one node's Ready, persists and applies it, and returns the messages to send. */
  processReady(tn: TestNode): Message[] {
    const out: Message[] = [];
    for (let rd = tn.node.ready(); rd; rd = tn.node.ready()) {
      if (rd.snapshot) {
        tn.storage.applySnapshot(rd.snapshot);
        tn.applied.splice(0, tn.applied.length, ...(JSON.parse(decoder.decode(rd.snapshot.data)) as string[]));
      }
      tn.storage.append(rd.entries);
      if (rd.hardState) tn.storage.setHardState(rd.hardState);
      out.push(...rd.messages);
      for (const e of rd.committedEntries) if (e.type === 'normal' && e.data.length > 0) tn.applied.push(decoder.decode(e.data));
      tn.readStates.push(...rd.readStates);
      tn.failedReads.push(...rd.failedReads);
      tn.abandoned.push(...rd.abandonedProposals);
      tn.node.advance(rd);
    }
    return out;
  }

  deliver(m: Message): void {
    this.sent.push(m);
    let delivered: Message | null = m;
    for (const f of this.interceptors) if (delivered) delivered = f(delivered);
    const target = delivered && this.nodes.get(delivered.to);
    if (delivered && target) target.node.step(delivered);
  }

  /** Ticks every node `n` times, stabilizing after each tick. */
  tick(n = 1, only?: NodeId[]): void {
    for (let i = 0; i < n; i++) {
      for (const tn of this.nodes.values()) if (!only || only.includes(tn.id)) tn.node.tick();
      this.stabilize();
    }
  }

  /** Makes `id` campaign and settles the cluster. */
  elect(id: NodeId): void {
    this.get(id).node.campaign();
    this.stabilize();
  }

  leaders(): NodeId[] {
    return [...this.nodes.values()].filter((tn) => tn.node.raft.role === 'leader').map((tn) => tn.id);
  }

  propose(id: NodeId, ...texts: string[]) {
    const r = this.get(id).node.propose(texts.map(cmd));
    this.stabilize();
    return r;
  }

  /** Snapshots `id`'s applied state at its applied index and compacts its log up to there. */
  snapshotAndCompact(id: NodeId): void {
    const tn = this.get(id);
    const applied = tn.node.raft.log.applied;
    tn.storage.createSnapshot(applied, tn.node.confState(), encoder.encode(JSON.stringify(tn.applied)));
    tn.storage.compact(applied);
  }

  countSent(type: MessageType, filter: MessageFilter = () => true): number {
    return this.sent.filter((m) => m.type === type && filter(m)).length;
  }
}

/**
 * A founding member's storage followed by a log of the given terms (the entry after the bootstrap
 * entries has terms[0], and so on), for log-shape scenarios. Returns the storage and the index of
 * the first scenario entry.
 */
export function storageWithLog(voters: NodeId[], terms: number[], hardTerm: number): MemoryStorage {
  const s = new MemoryStorage({ voters, learners: [] });
  const base = s.lastIndex();
  const entries: Entry[] = terms.map((term, i) => ({ type: 'normal', index: base + i + 1, term, data: cmd(`t${term}i${base + i + 1}`) }));
  s.append(entries);
  s.setHardState({ term: hardTerm, vote: '', commit: base });
  return s;
}
