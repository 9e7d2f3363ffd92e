// The state machine alone at scale (issue 11, ADR 0015): N keys of B bytes applied through txn
// commands of 64 sets, as /v1/txn loads them; then what each key costs in memory, how long taking a
// snapshot view holds the caller, how long the longest single piece of its encoding takes while
// writes go on between pieces, and how long a restore fed in pieces takes (and its longest piece).
// The host yields to the event loop between pieces, so "longest piece" bounds a stall.
//
//   node --expose-gc --import tsx bench/fsm-scale.bench.ts [--keys 1000000] [--value-bytes 100]
//                                                          [--piece-bytes 1048576] [--impl FILE]
//
// --impl points at another checkout's fsm/konsul-fsm.ts to measure older code the same way (it
// then measures the whole-state snapshot() and restore(), the only ones that code has).
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { gitDescribe, machineLine } from './lib/servers.ts';

const { values: args } = parseArgs({
  options: {
    keys: { type: 'string', default: '1000000' },
    'value-bytes': { type: 'string', default: '100' },
    'piece-bytes': { type: 'string', default: String(1 << 20) },
    impl: { type: 'string', default: '../fsm/konsul-fsm.ts' },
  },
  strict: true,
});
const keys = Number(args.keys);
const valueBytes = Number(args['value-bytes']);
const pieceBytes = Number(args['piece-bytes']);

interface Fsm {
  apply(index: number, command: Uint8Array): unknown;
  snapshot(): Uint8Array;
  restore(data: Uint8Array): void;
  snapshotView?(): { index: number; chunks(pieceBytes?: number): Iterator<Uint8Array>; release(): void };
  beginRestore?(): { write(piece: Uint8Array): void; finish(): number; abort(): void };
}
const { KonsulFsm } = (await import(new URL(args.impl, import.meta.url).href)) as { KonsulFsm: new () => Fsm };

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
function memory(): { heap: number; external: number; rss: number } {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, external: m.external + m.arrayBuffers, rss: m.rss };
}
function quantile(values: number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}
const mb = (n: number): string => (n / 1e6).toFixed(0);

const base = memory();
const fsm = new KonsulFsm();
let index = 0;
const value = Buffer.alloc(valueBytes, 'v').toString('base64');
const loadStart = performance.now();
for (let k = 0; k < keys; k += 64) {
  const ops = [];
  for (let j = k; j < Math.min(keys, k + 64); j++) ops.push({ verb: 'set', key: `bench/k${j}`, value, flags: '0' });
  fsm.apply(++index, Buffer.from(JSON.stringify({ type: 'txn', ops })));
}
const loadMs = performance.now() - loadStart;
const loaded = memory();
const perKey = (loaded.heap + loaded.external - base.heap - base.external) / keys;
console.log(machineLine());
console.log(`code: ${await gitDescribe()} (${args.impl})`);
console.log(`loaded ${keys} keys of ${valueBytes} B in ${(loadMs / 1000).toFixed(1)} s (${Math.round(keys / (loadMs / 1000))} keys/s applied)`);
console.log(`memory: heap+external ${mb(loaded.heap + loaded.external - base.heap - base.external)} MB = ${perKey.toFixed(0)} B/key; process RSS ${mb(loaded.rss)} MB`);

// One write between pieces, as the host keeps applying while it streams a snapshot out.
const writeOne = (): void => {
  const key = `bench/k${(index * 7919) % keys}`;
  fsm.apply(++index, Buffer.from(JSON.stringify({ type: 'kvSet', key, value, flags: '0' })));
};

let bytes = 0;
let pieces = 0;
let longestPieceMs = 0;
const pieceMs: number[] = [];
const snapStart = performance.now();
let viewMs = 0;
let encoded: Uint8Array[] = [];
if (fsm.snapshotView) {
  const t0 = performance.now();
  const view = fsm.snapshotView();
  viewMs = performance.now() - t0;
  const it = view.chunks(pieceBytes);
  for (;;) {
    const t1 = performance.now();
    const next = it.next();
    longestPieceMs = Math.max(longestPieceMs, performance.now() - t1);
    pieceMs.push(performance.now() - t1);
    if (next.done) break;
    encoded.push(next.value);
    bytes += next.value.length;
    pieces++;
    writeOne();
  }
  view.release();
} else {
  const t0 = performance.now();
  const whole = fsm.snapshot();
  viewMs = performance.now() - t0;
  longestPieceMs = viewMs;
  encoded = [whole];
  bytes = whole.length;
  pieces = 1;
}
const snapMs = performance.now() - snapStart;
const during = memory();
console.log(`snapshot: view ${viewMs.toFixed(2)} ms; encoded ${mb(bytes)} MB in ${pieces} pieces over ${(snapMs / 1000).toFixed(2)} s with a write between pieces; piece p50 ${quantile(pieceMs, 0.5).toFixed(1)} ms, p99 ${quantile(pieceMs, 0.99).toFixed(1)} ms, longest ${longestPieceMs.toFixed(1)} ms; RSS ${mb(during.rss)} MB`);

const target = new KonsulFsm();
let longestRestoreMs = 0;
const restoreMsEach: number[] = [];
const restoreStart = performance.now();
if (target.beginRestore) {
  const restore = target.beginRestore();
  for (const piece of encoded) {
    const t1 = performance.now();
    restore.write(piece);
    restoreMsEach.push(performance.now() - t1);
    longestRestoreMs = Math.max(longestRestoreMs, performance.now() - t1);
  }
  const t1 = performance.now();
  restore.finish();
  longestRestoreMs = Math.max(longestRestoreMs, performance.now() - t1);
} else {
  target.restore(encoded[0]!);
  longestRestoreMs = performance.now() - restoreStart;
}
const restoreMs = performance.now() - restoreStart;
encoded = [];
const both = memory();
console.log(`restore: ${(restoreMs / 1000).toFixed(2)} s in ${pieces} pieces; step p50 ${quantile(restoreMsEach, 0.5).toFixed(1)} ms, p99 ${quantile(restoreMsEach, 0.99).toFixed(1)} ms, longest ${longestRestoreMs.toFixed(1)} ms; RSS with both copies ${mb(both.rss)} MB`);
