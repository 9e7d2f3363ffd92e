// Latency of LevelStorage.save(): one synced LevelDB batch per call, for batches of 1 and 64 entries
// of 100 bytes (what one Ready carries with and without group commit). Saves run back to back, one
// at a time, as the host's Ready loop issues them. Every --snapshot-every entries a snapshot is
// taken (outside the measurement), as the host does, so the in-memory log stays bounded.
//
//   npx tsx bench/level-storage.bench.ts [--saves 500] [--batches 1,64] [--sync true] [--dir /path/on/the/disk/to/test]
//
// Prints a table and one JSON line (the only output line starting with '{').
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Entry } from '../raft/core/types.ts';
import { LevelStorage } from '../raft/storage/level-storage.ts';

const ENTRY_BYTES = 100;
const WARMUP_SAVES = 20;

interface Result {
  readonly batch: number;
  readonly sync: boolean;
  readonly saves: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
  readonly maxMs: number;
  readonly entriesPerSec: number;
}

function entriesAt(first: number, count: number, term: number, data: Uint8Array): Entry[] {
  return Array.from({ length: count }, (_, i): Entry => ({ type: 'normal', index: first + i, term, data }));
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function round(x: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

async function run(parent: string, batch: number, saves: number, sync: boolean, snapshotEvery: number): Promise<Result> {
  const dir = await mkdtemp(join(parent, 'konsul-bench-'));
  const storage = await LevelStorage.open(dir, { sync, founders: { voters: ['n1'], learners: [] } });
  try {
    const data = new Uint8Array(ENTRY_BYTES).fill(0x61);
    const latencies: number[] = [];
    let next = storage.lastIndex() + 1;
    let lastSnapshot = 0;
    for (let i = 0; i < WARMUP_SAVES + saves; i++) {
      const entries = entriesAt(next, batch, 2, data);
      const hardState = { term: 2, vote: 'n1', commit: next - 1 };
      const t0 = performance.now();
      await storage.save({ snapshot: null, entries, hardState });
      const elapsed = performance.now() - t0;
      if (i >= WARMUP_SAVES) latencies.push(elapsed);
      next += batch;
      if (next - 1 - lastSnapshot >= snapshotEvery) {
        lastSnapshot = next - 2; // the last committed index
        await storage.createSnapshot(lastSnapshot, { voters: ['n1'], learners: [] }, new Uint8Array(1024));
      }
    }
    const sorted = [...latencies].sort((a, b) => a - b);
    const totalMs = latencies.reduce((a, b) => a + b, 0);
    return {
      batch,
      sync,
      saves,
      p50Ms: round(percentile(sorted, 50)),
      p99Ms: round(percentile(sorted, 99)),
      meanMs: round(totalMs / saves),
      maxMs: round(sorted[sorted.length - 1]!),
      entriesPerSec: Math.round((saves * batch) / (totalMs / 1000)),
    };
  } finally {
    await storage.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      saves: { type: 'string', default: '500' },
      batches: { type: 'string', default: '1,64' },
      sync: { type: 'string', default: 'true' },
      dir: { type: 'string', default: tmpdir() },
      'snapshot-every': { type: 'string', default: '10000' },
    },
  });
  const saves = Number(values.saves);
  const batches = values.batches.split(',').map(Number);
  const snapshotEvery = Number(values['snapshot-every']);
  if (!(saves > 0) || batches.some((b) => !(b > 0)) || !(snapshotEvery > 0)) throw new Error('--saves, --batches and --snapshot-every need positive numbers');
  const sync = values.sync !== 'false';

  console.log(`LevelStorage.save() latency, ${ENTRY_BYTES}-byte entries, sync=${sync}, ${saves} saves per batch size, in ${values.dir}`);
  const results: Result[] = [];
  for (const batch of batches) results.push(await run(values.dir, batch, saves, sync, snapshotEvery));
  console.log('batch   p50 ms   p99 ms  mean ms   max ms   entries/s');
  for (const r of results) {
    console.log(
      `${String(r.batch).padStart(5)} ${r.p50Ms.toFixed(3).padStart(8)} ${r.p99Ms.toFixed(3).padStart(8)} ${r.meanMs.toFixed(3).padStart(8)} ${r.maxMs.toFixed(3).padStart(8)} ${String(r.entriesPerSec).padStart(11)}`,
    );
  }
  console.log(JSON.stringify({ bench: 'level-storage-save', entryBytes: ENTRY_BYTES, results }));
}

await main();
