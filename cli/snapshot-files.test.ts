// The snapshot agent's files: names that sort by time and say their index, rotation by count and
// age that never touches the newest file or anyone else's files, and a save that leaves nothing
// under a final name unless it verified.
import { existsSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { parseSnapshotFileName, rotateSnapshots, saveSnapshot, snapshotFileName, verifyArchiveFile } from './snapshot-files.ts';

const DAY = 86_400_000;
const NOW = Date.parse('2026-11-22T15:30:12.345Z');

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'konsul-snapfiles-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('names: UTC time to the millisecond and the index; parse back; others are not ours', async (t) => {
  const name = snapshotFileName(NOW, 1234);
  t.equal(name, 'konsul-20261122T153012.345Z-1234.snap');
  t.same(parseSnapshotFileName(name), { takenAtMs: NOW, index: 1234 });
  const later = snapshotFileName(NOW + 1, 7);
  t.ok(later > name, 'names sort by time as text');
  for (const other of ['backup.snap', 'konsul-20261122T153012.345Z-1234.snap.bak', '.konsul-20261122T153012.345Z-1234.snap.tmp', 'konsul-2026-1.snap', 'consul-20261122T153012.345Z-1.snap']) {
    t.equal(parseSnapshotFileName(other), null, other);
  }
});

t.test('rotation keeps the newest N, deletes by age, never the file just written nor foreign files', async (t) => {
  const dir = tempDir(t);
  const names = Array.from({ length: 6 }, (_, i) => snapshotFileName(NOW - (5 - i) * DAY, 10 + i));
  for (const n of names) writeFileSync(join(dir, n), 'x');
  writeFileSync(join(dir, 'mine.snap'), 'operator copy');
  writeFileSync(join(dir, 'consul-1479360073448728784.snap'), 'a Consul snapshot');

  const byCount = await rotateSnapshots(dir, { retain: 4, retainDays: 0, keep: names[5]!, nowMs: NOW, staleTempMs: DAY });
  t.same(byCount.kept, [names[5], names[4], names[3], names[2]], 'newest first');
  t.same([...byCount.deleted].sort(), [names[0], names[1]].sort());

  const byAge = await rotateSnapshots(dir, { retain: 0, retainDays: 2.5, keep: names[5]!, nowMs: NOW, staleTempMs: DAY });
  t.same(byAge.deleted, [names[2]], 'older than 2.5 days: only the 3-day-old one left to delete');

  // A clock far ahead makes every file too old: the one just written stays all the same.
  const future = await rotateSnapshots(dir, { retain: 1, retainDays: 1, keep: names[4]!, nowMs: NOW + 30 * DAY, staleTempMs: DAY });
  t.same(future.kept, [names[4]]);
  t.same(readdirSync(dir).sort(), ['consul-1479360073448728784.snap', 'mine.snap', names[4]].sort());
});

t.test('rotation removes abandoned temporary files, not fresh ones', async (t) => {
  const dir = tempDir(t);
  const stale = `.${snapshotFileName(NOW - DAY, 1)}.tmp`;
  const fresh = `.${snapshotFileName(NOW, 2)}.tmp`;
  writeFileSync(join(dir, stale), 'partial');
  writeFileSync(join(dir, fresh), 'being written');
  const old = (NOW - DAY) / 1000;
  utimesSync(join(dir, stale), old, old);
  const now = NOW / 1000;
  utimesSync(join(dir, fresh), now, now);
  const result = await rotateSnapshots(dir, { retain: 3, retainDays: 0, keep: '', nowMs: NOW, staleTempMs: 60_000 });
  t.same(result.deleted, [stale]);
  t.ok(existsSync(join(dir, fresh)));
});

async function* chunks(...parts: string[]): AsyncIterable<Uint8Array> {
  for (const p of parts) yield Buffer.from(p);
}

t.test('a save that does not verify leaves neither a snapshot nor a temporary file', async (t) => {
  const dir = tempDir(t);
  await t.rejects(
    saveSnapshot(chunks('not ', 'a snapshot'), { dir, takenAtMs: NOW, headerIndex: 5, signal: new AbortController().signal }),
    /the written snapshot does not verify: not a snapshot archive/,
  );
  t.same(readdirSync(dir), []);
  await t.rejects(verifyArchiveFile(join(dir, 'missing.snap')), { code: 'ENOENT' });
});

t.test('an aborted save removes its temporary file', async (t) => {
  const dir = tempDir(t);
  const abort = new AbortController();
  async function* body(): AsyncIterable<Uint8Array> {
    yield Buffer.from([0x1f, 0x8b]);
    abort.abort(new Error('lost the lock'));
    yield Buffer.from('more');
  }
  await t.rejects(saveSnapshot(body(), { dir, takenAtMs: NOW, headerIndex: 5, signal: abort.signal }), /lost the lock/);
  t.same(readdirSync(dir), []);
});

t.test('a directory that is not one fails the save', async (t) => {
  const dir = tempDir(t);
  const notDir = join(dir, 'file');
  writeFileSync(notDir, 'x');
  await t.rejects(saveSnapshot(chunks('x'), { dir: notDir, takenAtMs: NOW, headerIndex: 1, signal: new AbortController().signal }), { code: 'ENOTDIR' });
});
