// The snapshot archive: Consul's container (gzipped tar of meta.json, state.bin, SHA256SUMS) with
// Konsul's state inside; anything damaged, foreign or oversized is refused with a reason.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import t from 'tap';
import { TestStore } from '../fsm/test-store.ts';
import { readSnapshotArchive, readSnapshotArchiveStream, SnapshotArchiveError, snapshotArchiveStream, writeSnapshotArchive } from './snapshot-archive.ts';

const META = { Version: 1, ID: '2-42-1700000000000', Index: 42, Term: 2, FormatVersion: 1, KonsulVersion: '1.18.0', CreatedAt: '2026-01-01T00:00:00.000Z' };
const STATE = Uint8Array.from({ length: 5000 }, (_, i) => (i * 7) & 255);
const NOW = 1_700_000_000_000;
const LIMITS = { maxStateBytes: 1024 * 1024 };

const archive = (): Buffer => writeSnapshotArchive(META, STATE, NOW);
const sha = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** A hand-made ustar entry, to build archives the writer would never produce. */
function tarEntry(name: string, data: Uint8Array): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0);
  header.write('0000600\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124);
  header.write('00000000000\0', 136);
  header.write('        ', 148);
  header.write('0', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return Buffer.concat([header, Buffer.from(data), Buffer.alloc((512 - (data.length % 512)) % 512)]);
}

function makeArchive(files: [string, Uint8Array][]): Buffer {
  return gzipSync(Buffer.concat([...files.map(([n, d]) => tarEntry(n, d)), Buffer.alloc(1024)]));
}

const metaJson = (fields: Record<string, unknown> = {}): Buffer => Buffer.from(JSON.stringify({ ...META, Size: STATE.length, Format: 'konsul-fsm', ...fields }));
const sums = (meta: Uint8Array, state: Uint8Array): Buffer => Buffer.from(`${sha(meta)}  meta.json\n${sha(state)}  state.bin\n`);

t.test('round trip: the meta and the exact state bytes', async (t) => {
  const { meta, state } = readSnapshotArchive(archive(), LIMITS);
  t.same(Buffer.from(state), Buffer.from(STATE));
  t.same(meta, { ...META, Size: STATE.length, Format: 'konsul-fsm' });
});

t.test('it is a real gzipped tar: tar lists it and sha256sum checks it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'konsul-archive-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'snap.tgz');
  writeFileSync(file, archive());
  const listing = execFileSync('tar', ['tzf', file], { encoding: 'utf8' });
  t.same(listing.trim().split('\n'), ['meta.json', 'state.bin', 'SHA256SUMS'], 'the order Consul writes');
  execFileSync('tar', ['xzf', file, '-C', dir]);
  t.same(readFileSync(join(dir, 'state.bin')), Buffer.from(STATE));
  t.match(execFileSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: dir, encoding: 'utf8' }), /meta.json: OK\nstate.bin: OK/);
  // And what GNU tar packs is read back too.
  execFileSync('tar', ['czf', join(dir, 'repacked.tgz'), '-C', dir, 'meta.json', 'state.bin', 'SHA256SUMS']);
  t.same(Buffer.from(readSnapshotArchive(readFileSync(join(dir, 'repacked.tgz')), LIMITS).state), Buffer.from(STATE));
});

t.test('damaged archives are refused with a reason', async (t) => {
  const good = archive();
  const tar = gunzipSync(good);
  const flippedInState = Buffer.from(tar);
  flippedInState[1536 + 100]! ^= 1; // inside state.bin's data: after meta.json's header and data block, and state.bin's header
  const goodMeta = metaJson();
  const cases: [string, Uint8Array, RegExp][] = [
    ['not gzip', Buffer.from('hello'), /not gzip data/],
    ['empty', Buffer.alloc(0), /not gzip data/],
    ['a truncated gzip stream', good.subarray(0, good.length - 20), /failed reading snapshot/],
    ['a flipped bit in the compressed data', (() => { const b = Buffer.from(good); b[b.length >> 1]! ^= 0x10; return b; })(), /failed reading snapshot/],
    ['a flipped bit in state.bin (recompressed)', gzipSync(flippedInState), /hash check failed for "state.bin"/],
    ['a truncated tar', gzipSync(tar.subarray(0, 1500)), /truncated/],
    ['a missing SHA256SUMS', makeArchive([['meta.json', goodMeta], ['state.bin', STATE]]), /file missing for "SHA256SUMS"/],
    ['a missing state.bin', makeArchive([['meta.json', goodMeta], ['SHA256SUMS', Buffer.from(`${sha(goodMeta)}  meta.json\n`)]]), /file missing for "state.bin"/],
    ['a hash list without state.bin', makeArchive([['meta.json', goodMeta], ['state.bin', STATE], ['SHA256SUMS', Buffer.from(`${sha(goodMeta)}  meta.json\n`)]]), /file missing for "state.bin"/],
    ['an extra file', makeArchive([['meta.json', goodMeta], ['state.bin', STATE], ['SHA256SUMS', sums(goodMeta, STATE)], ['evil.sh', Buffer.from('x')]]), /unexpected file "evil.sh"/],
    ['a Consul snapshot (no Konsul format marker)', (() => { const m = Buffer.from(JSON.stringify({ Version: 1, ID: 'x', Index: 1, Term: 1, Size: STATE.length })); return makeArchive([['meta.json', m], ['state.bin', STATE], ['SHA256SUMS', sums(m, STATE)]]); })(), /not a Konsul snapshot/],
    ['a size that does not match', (() => { const m = metaJson({ Size: 1 }); return makeArchive([['meta.json', m], ['state.bin', STATE], ['SHA256SUMS', sums(m, STATE)]]); })(), /its metadata says 1/],
    ['meta.json that is not JSON', (() => { const m = Buffer.from('{'); return makeArchive([['meta.json', m], ['state.bin', STATE], ['SHA256SUMS', sums(m, STATE)]]); })(), /failed to decode snapshot metadata/],
  ];
  for (const [name, bytes, message] of cases) {
    t.test(name, async (t) => {
      t.throws(() => readSnapshotArchive(bytes, LIMITS), SnapshotArchiveError);
      t.throws(() => readSnapshotArchive(bytes, LIMITS), message);
    });
  }
});

t.test('a state over the limit is refused as too large, even when it is a small gzip', async (t) => {
  const big = new Uint8Array(4 * 1024 * 1024); // zeros: compresses to a few KiB
  const bytes = writeSnapshotArchive(META, big, NOW);
  t.ok(bytes.length < 64 * 1024);
  try {
    readSnapshotArchive(bytes, LIMITS);
    t.fail('should have thrown');
  } catch (err) {
    t.type(err, SnapshotArchiveError);
    t.equal((err as SnapshotArchiveError).tooLarge, true);
  }
  t.equal(readSnapshotArchive(bytes, { maxStateBytes: Number.POSITIVE_INFINITY }).state.length, big.length, 'no limit: read whole');
});

// ---------------------------------------------------------------------------------------------
// Streaming: the archive written around a state file and read back in pieces cut anywhere, with
// the FSM snapshot inside checked and counted as it passes.
// ---------------------------------------------------------------------------------------------

function realState(): Uint8Array {
  const s = new TestStore();
  for (let i = 0; i < 2000; i++) s.put(`stream/k${i}`, `value ${i}`.repeat(1 + (i % 7)));
  s.put('gone', 'x');
  s.del('gone');
  s.put('max-flags', 'f', { flags: 0xffff_ffff_ffff_ffffn });
  return s.fsm.snapshot();
}

async function* cut(bytes: Uint8Array, sizes: readonly number[]): AsyncGenerator<Uint8Array> {
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const size = sizes[i % sizes.length]!;
    yield bytes.subarray(at, at + size);
    at += size;
  }
}

async function streamed(state: Uint8Array): Promise<Buffer> {
  const dir = mkdtempSync(join(tmpdir(), 'konsul-archive-stream-'));
  try {
    const path = join(dir, 'state');
    writeFileSync(path, state);
    const chunks: Buffer[] = [];
    for await (const chunk of snapshotArchiveStream(META, { path, bytes: state.length, sha256: sha(state) }, NOW)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

t.test('streamed: the archive around a state file reads back piece by piece, counted and checked', async (t) => {
  const state = realState();
  const archive = await streamed(state);
  t.equal(Buffer.compare(readSnapshotArchive(archive, LIMITS).state as Buffer, Buffer.from(state)), 0, 'the in-memory reader agrees');
  for (const sizes of [[1], [7, 512, 3], [65536]]) {
    const pieces: Buffer[] = [];
    const progress: number[] = [];
    const verified = await readSnapshotArchiveStream(cut(archive, sizes), {
      onState: (piece) => void pieces.push(piece),
      onProgress: (p) => progress.push(p.kvEntries),
    });
    t.equal(Buffer.compare(Buffer.concat(pieces), Buffer.from(state)), 0, `pieces of ${sizes.join(',')}: state.bin handed on exactly`);
    t.match(verified, { stateBytes: state.length, stateSha256: sha(state), meta: { ...META, Size: state.length, Format: 'konsul-fsm' } });
    t.match(verified.counts, { kvEntries: 2001, kvTombstones: 1, events: 0, nodes: 0, sessions: 0 });
    t.equal(progress[progress.length - 1], 2001, 'progress counts every key');
  }
});

t.test('streamed: damage is refused, by the container or by the state inside', async (t) => {
  const state = realState();
  const archive = await streamed(state);
  const tar = gunzipSync(archive);
  const inState = Buffer.from(tar);
  inState[1536 + 3000]! ^= 1;
  const junkState = Buffer.from('definitely not a Konsul snapshot');
  const junkMeta = metaJson({ Size: junkState.length });
  const cases: [string, Uint8Array, RegExp][] = [
    ['not gzip', Buffer.from('hello'), /not gzip data/],
    ['empty', Buffer.alloc(0), /not gzip data/],
    ['truncated', archive.subarray(0, archive.length - 100), /failed reading snapshot|truncated/],
    ['a flipped bit in state.bin', gzipSync(inState), /hash check failed|checksum mismatch|out of order|snapshot/],
    ['a state that is not an FSM snapshot', makeArchive([['meta.json', junkMeta], ['state.bin', junkState], ['SHA256SUMS', sums(junkMeta, junkState)]]), /not a Konsul FSM snapshot/],
    ['an extra file', makeArchive([['meta.json', junkMeta], ['evil.sh', Buffer.from('x')]]), /unexpected file "evil.sh"/],
  ];
  for (const [name, bytes, message] of cases) {
    await t.rejects(readSnapshotArchiveStream(cut(bytes, [4096])), message, name);
  }
  await t.rejects(readSnapshotArchiveStream(cut(archive, [4096]), { maxStateBytes: 100 }), { name: 'SnapshotArchiveError', tooLarge: true } as never, 'over the limit: too large');
});
