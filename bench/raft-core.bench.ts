// Benchmark of the Raft core alone: three RawNodes over MemoryStorage in one process, messages
// handed from node to node in memory, no network, no disk, no state machine beyond a counter.
// It measures committed entries per second and the CPU (user + system) and wall time per entry,
// for proposal batches of several sizes, in a closed loop (one batch in flight) and pipelined
// (several batches in flight).
//
//   npm run bench:raft -- [--seconds 3] [--warmup 0.5] [--batches 1,16,256] [--depth 8] [--compact-every 1000]
//
// Every --compact-every commands applied on the leader, each node snapshots and compacts its log
// up to what all nodes hold and have applied, so memory stays bounded. MemoryStorage.append copies
// the retained log on every append, so the figures for small batches depend on this interval.
//
// Prints a table and one JSON line (the only output line starting with '{').
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { Prng } from '../raft/core/prng.ts';
import { RawNode } from '../raft/core/raw-node.ts';
import type { Message, NodeId } from '../raft/core/types.ts';
import { MemoryStorage } from '../raft/storage/memory-storage.ts';

const COMMAND_BYTES = 100;
const EMPTY = new Uint8Array(0);

// ---------------------------------------------------------------------------------------------
// The host: persist, send, apply, advance, for three nodes in one process.
// ---------------------------------------------------------------------------------------------

interface BenchNode {
  readonly id: NodeId;
  readonly node: RawNode;
  readonly storage: MemoryStorage;
  /** Index of the last entry applied (the "state machine" only counts commands). */
  appliedIndex: number;
  appliedCommands: number;
}

class Cluster {
  readonly nodes: BenchNode[];
  private readonly byId = new Map<NodeId, BenchNode>();
  /** Messages sent during the current round, delivered at its end. */
  private outbox: Message[] = [];

  constructor(ids: readonly NodeId[], seed: number) {
    this.nodes = ids.map((id, i) => {
      const storage = new MemoryStorage({ voters: ids, learners: [] });
      const node = new RawNode({ id, storage, random: new Prng(seed + i) });
      return { id, node, storage, appliedIndex: 0, appliedCommands: 0 };
    });
    for (const n of this.nodes) this.byId.set(n.id, n);
  }

  /** One round: every node carries out its pending Ready batches, then their messages are delivered. */
  pump(): boolean {
    for (const n of this.nodes) this.handleReady(n);
    if (this.outbox.length === 0) return false;
    const sent = this.outbox;
    this.outbox = [];
    for (const m of sent) this.byId.get(m.to)?.node.step(m);
    return true;
  }

  private handleReady(n: BenchNode): void {
    for (let rd = n.node.ready(); rd !== null; rd = n.node.ready()) {
      // Compaction never outruns a follower (see compact()), so no snapshot should ever be sent.
      if (rd.snapshot) throw new Error(`${n.id}: unexpected snapshot at ${rd.snapshot.meta.index}`);
      n.storage.append(rd.entries);
      if (rd.hardState) n.storage.setHardState(rd.hardState);
      for (const m of rd.messages) this.outbox.push(m);
      for (const e of rd.committedEntries) {
        if (e.type === 'normal' && e.data.length > 0) n.appliedCommands++;
        n.appliedIndex = e.index;
      }
      n.node.advance(rd);
    }
  }

  /** Pumps until no node has anything left to do. */
  settle(): void {
    for (let round = 0; this.pump(); round++) {
      if (round > 10_000) throw new Error('cluster did not settle');
    }
  }

  elect(leader: BenchNode): void {
    leader.node.campaign();
    this.settle();
    if (leader.node.raft.role !== 'leader') throw new Error(`${leader.id} did not become leader`);
  }

  /**
   * Snapshots and compacts every node's log up to the point every node has applied and the leader
   * knows every follower holds, so the leader never needs a discarded entry.
   */
  compact(leader: BenchNode): void {
    let upTo = Math.min(...this.nodes.map((n) => n.appliedIndex));
    for (const p of leader.node.status().progress) upTo = Math.min(upTo, p.match);
    for (const n of this.nodes) {
      if (upTo <= n.storage.snapshot().meta.index) continue;
      n.storage.createSnapshot(upTo, n.node.confState(), EMPTY);
      n.storage.compact(upTo);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// One measured configuration.
// ---------------------------------------------------------------------------------------------

interface Result {
  readonly mode: string;
  readonly depth: number;
  readonly batch: number;
  readonly entries: number;
  readonly seconds: number;
  readonly entriesPerSec: number;
  readonly cpuUsPerEntry: number;
  readonly wallUsPerEntry: number;
  readonly heapUsedMB: number;
}

function makeCommands(count: number, seed: number): Uint8Array[] {
  const prng = new Prng(seed);
  return Array.from({ length: count }, () => Uint8Array.from({ length: COMMAND_BYTES }, () => prng.int(256)));
}

/**
 * Keeps `depth` batches of `batch` commands in flight on the leader (depth 1 is the closed loop:
 * propose, pump until the leader has applied the batch, repeat) for `seconds` seconds.
 */
function run(batch: number, depth: number, seconds: number, compactEvery: number): Result {
  const cluster = new Cluster(['n1', 'n2', 'n3'], 42);
  const leader = cluster.nodes[0]!;
  cluster.elect(leader);
  const commands = makeCommands(batch, 7);
  /** Last log index of every batch proposed and not yet applied on the leader, oldest first. */
  const inflight: number[] = [];
  let compactedAt = 0;

  const startCommands = leader.appliedCommands;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  while (performance.now() < deadline) {
    while (inflight.length < depth) inflight.push(leader.node.propose(commands).lastIndex);
    cluster.pump();
    while (inflight.length > 0 && inflight[0]! <= leader.appliedIndex) inflight.shift();
    if (leader.appliedCommands - compactedAt >= compactEvery) {
      cluster.compact(leader);
      compactedAt = leader.appliedCommands;
    }
  }
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const entries = leader.appliedCommands - startCommands;

  // Outside the measurement: every node must end with the same applied log.
  cluster.settle();
  for (const n of cluster.nodes) {
    if (n.appliedIndex !== leader.appliedIndex) throw new Error(`${n.id} applied ${n.appliedIndex}, leader ${leader.appliedIndex}`);
  }
  return {
    mode: depth === 1 ? 'closed' : `pipelined x${depth}`,
    depth,
    batch,
    entries,
    seconds: round(wallMs / 1000, 3),
    entriesPerSec: Math.round(entries / (wallMs / 1000)),
    cpuUsPerEntry: round((cpu.user + cpu.system) / entries, 3),
    wallUsPerEntry: round((wallMs * 1000) / entries, 3),
    heapUsedMB: round(process.memoryUsage().heapUsed / 2 ** 20, 1),
  };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

// ---------------------------------------------------------------------------------------------
// Command line, warm-up, report.
// ---------------------------------------------------------------------------------------------

function positive(name: string, text: string): number {
  const x = Number(text);
  if (!(x > 0)) throw new Error(`--${name} needs a positive number, got '${text}'`);
  return x;
}

function main(): void {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '0.5' },
      batches: { type: 'string', default: '1,16,256' },
      depth: { type: 'string', default: '8' },
      'compact-every': { type: 'string', default: '1000' },
    },
  });
  const seconds = positive('seconds', values.seconds);
  const warmup = positive('warmup', values.warmup);
  const batches = values.batches.split(',').map((b) => Math.floor(positive('batches', b)));
  const depth = Math.floor(positive('depth', values.depth));
  const compactEvery = Math.floor(positive('compact-every', values['compact-every']));
  const depths = depth === 1 ? [1] : [1, depth];
  const configs = depths.flatMap((d) => batches.map((b) => ({ batch: b, depth: d })));

  console.log(`Raft core, 3 nodes in memory, ${COMMAND_BYTES}-byte commands, ${seconds} s per configuration`);
  console.log(`Node ${process.version}, ${cpus().length} CPUs; warming up ${warmup} s per configuration...`);
  for (const c of configs) run(c.batch, c.depth, warmup, compactEvery);

  const results: Result[] = [];
  for (const c of configs) results.push(run(c.batch, c.depth, seconds, compactEvery));

  const header = ['mode', 'batch', 'entries', 'entries/s', 'CPU µs/entry', 'wall µs/entry', 'heap MB'];
  const rows = results.map((r) => [
    r.mode,
    String(r.batch),
    String(r.entries),
    r.entriesPerSec.toLocaleString('en-US'),
    r.cpuUsPerEntry.toFixed(2),
    r.wallUsPerEntry.toFixed(2),
    r.heapUsedMB.toFixed(1),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log('');
  console.log(line(header));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const row of rows) console.log(line(row));
  console.log('');
  console.log(
    JSON.stringify({
      bench: 'raft-core',
      date: new Date().toISOString(),
      node: process.version,
      cpus: cpus().length,
      commandBytes: COMMAND_BYTES,
      seconds,
      results,
    }),
  );
}

main();
