// Snapshots through the real process: with a small snapshot interval, many writes produce snapshot
// files and a compacted log, and a restart recovers the state from snapshot + log.
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { removeDir, startServer, tempDataDir } from '../test/kit/server-process.ts';

t.test('state is recovered from snapshot plus log after many writes', async (t) => {
  const dataDir = tempDataDir('konsul-snap-');
  const configFile = join(dataDir, 'konsul.json');
  writeFileSync(configFile, JSON.stringify({ snapshot_every_entries: 100 }));
  let server = await startServer({ dataDir, node: 'snap', extraArgs: ['--config', configFile] });
  t.teardown(async () => {
    await server.kill9();
    removeDir(dataDir);
  });
  const put = (key: string, value: string) => fetch(`${server.url}/v1/kv/${key}`, { method: 'PUT', body: value }).then((r) => r.text());
  for (let batch = 0; batch < 10; batch++) {
    // 50 concurrent writes at a time: group commit makes them share fsyncs.
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => put(`snap/k${batch * 50 + i}`, `v${batch * 50 + i}`)));
    t.ok(results.every((r) => r === 'true'), `batch ${batch} acknowledged`);
  }
  await fetch(`${server.url}/v1/kv/snap/k7`, { method: 'DELETE' });
  const snapshots = readdirSync(join(dataDir, 'raft', 'snapshots')).filter((f) => f.endsWith('.snap'));
  t.ok(snapshots.length >= 1 && snapshots.length <= 2, `snapshot files kept: ${snapshots.join(', ')}`);

  t.equal(await server.stop(), 0);
  server = await startServer({ dataDir, node: 'snap', extraArgs: ['--config', configFile] });
  const keys = (await (await fetch(`${server.url}/v1/kv/snap/?keys`)).json()) as string[];
  t.equal(keys.length, 499, 'all keys but the deleted one');
  t.notOk(keys.includes('snap/k7'));
  t.equal(await (await fetch(`${server.url}/v1/kv/snap/k499?raw`)).text(), 'v499');
  t.equal(await put('snap/after', 'x'), 'true', 'writes continue after recovery');
});
