// `konsulctl event` and `konsulctl snapshot` end to end: the real CLI as child processes against a
// real Konsul server; output formats, files and exit statuses.
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { konsulctl as runKonsulctl, type CliResult } from '../test/kit/cli.ts';
import { startInProcessServer, type InProcessServer } from '../test/kit/in-process-server.ts';
import { removeDir, tempDataDir } from '../test/kit/server-process.ts';

// The server runs in this process (test/kit/in-process-server.ts); konsulctl is the real program.
let server: InProcessServer;
const workDir = tempDataDir('konsulctl-snapshot-');

t.before(async () => {
  server = await startInProcessServer({ config: { nodeName: 'cli-event-snapshot' } });
});
t.teardown(async () => {
  await server.stop();
  removeDir(workDir);
});

function konsulctl(args: string[], input = ''): Promise<CliResult> {
  return runKonsulctl(server.url, args, { input });
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

t.test('event fire and event list', async (t) => {
  const fired = await konsulctl(['event', 'fire', 'deploy', 'v1.2.3', '--node', 'web-.*']);
  t.equal(fired.code, 0, fired.stderr);
  t.match(fired.stdout, new RegExp(`^Event ID: ${UUID.source}\n$`));
  const id = fired.stdout.trim().slice('Event ID: '.length);
  t.equal((await konsulctl(['event', 'fire', 'from-stdin', '-'], 'piped payload')).code, 0);
  t.equal((await konsulctl(['event', 'fire', 'bare'])).code, 0);

  const list = await konsulctl(['event', 'list']);
  t.equal(list.code, 0, list.stderr);
  const lines = list.stdout.trimEnd().split('\n');
  t.same(lines[0]!.split(/\s+/), ['ID', 'Name', 'LTime', 'Payload', 'NodeFilter', 'ServiceFilter', 'TagFilter']);
  t.same(lines.slice(1).map((l) => l.split(/\s+/)), [
    [id, 'deploy', '1', Buffer.from('v1.2.3').toString('base64'), 'web-.*', '-', '-'],
    [lines[2]!.split(/\s+/)[0]!, 'from-stdin', '2', Buffer.from('piped payload').toString('base64'), '-', '-', '-'],
    [lines[3]!.split(/\s+/)[0]!, 'bare', '3', '-', '-', '-', '-'],
  ]);

  const json = await konsulctl(['event', 'list', '--name', 'deploy', '--format', 'json']);
  t.equal(json.code, 0);
  t.match(JSON.parse(json.stdout), [{ ID: id, Name: 'deploy', NodeFilter: 'web-.*', Version: 1, LTime: 1 }]);
  t.equal((await konsulctl(['event', 'list', '--name', 'nothing'])).stdout.trimEnd().split('\n').length, 1, 'only the header');

  const usage = await konsulctl(['event', 'fire', 'x', '--tag', 'v1']);
  t.equal(usage.code, 2);
  t.match(usage.stderr, /--tag needs --service/);
  const refused = await konsulctl(['event', 'fire', 'x', '--node', '(']);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /^konsulctl: Konsul answered 400 Bad Request: Invalid node filter/);
});

t.test('snapshot save, inspect and restore', async (t) => {
  await fetch(`${server.url}/v1/kv/cli/k`, { method: 'PUT', body: 'saved' });
  const file = join(workDir, 'backup.snap');
  const saved = await konsulctl(['snapshot', 'save', file]);
  t.equal(saved.code, 0, saved.stderr);
  t.match(saved.stdout, /^Saved and verified snapshot to index \d+\nStateSize +\d+\nKVEntries +1\n/);
  t.ok(existsSync(file));
  t.same(readdirSync(workDir), ['backup.snap'], 'no temporary file left behind');

  const inspect = await konsulctl(['snapshot', 'inspect', file]);
  t.equal(inspect.code, 0, inspect.stderr);
  const rows = Object.fromEntries(inspect.stdout.trimEnd().split('\n').map((l) => l.split(/\s+/) as [string, string]));
  t.equal(rows['Index'], saved.stdout.match(/index (\d+)/)![1]);
  t.equal(rows['KVEntries'], '1');
  t.equal(rows['Events'], '3');

  await fetch(`${server.url}/v1/kv/cli/k`, { method: 'PUT', body: 'changed' });
  await fetch(`${server.url}/v1/kv/cli/extra`, { method: 'PUT', body: 'x' });
  const restored = await konsulctl(['snapshot', 'restore', file]);
  t.equal(restored.code, 0, restored.stderr);
  t.match(restored.stdout, /^Restored snapshot\nStateSize +\d+\nKVEntries +1\nKVTombstones +0\nEvents +3\nNodes +\d+\nServices +\d+\nChecks +\d+\nSessions +0\n$/);
  t.equal(await (await fetch(`${server.url}/v1/kv/cli/k?raw`)).text(), 'saved');
  t.equal((await fetch(`${server.url}/v1/kv/cli/extra`)).status, 404);

  const bad = join(workDir, 'bad.snap');
  writeFileSync(bad, 'not a snapshot');
  const refused = await konsulctl(['snapshot', 'restore', bad]);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /^konsulctl: (Konsul answered 400 Bad Request|.*bad\.snap is not a valid snapshot): not a snapshot archive/);
  const badInspect = await konsulctl(['snapshot', 'inspect', bad]);
  t.equal(badInspect.code, 1);
  t.match(badInspect.stderr, /is not a valid snapshot: not a snapshot archive/);
  const missing = await konsulctl(['snapshot', 'restore', join(workDir, 'nope.snap')]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /^konsulctl: cannot read /);
});
