// What `npm pack` would publish (package.json "files", "bin", "engines"): the two commands, their
// loader and the bundle in dist/; no TypeScript sources, tests or benchmark data.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import t from 'tap';

const ROOT = new URL('../', import.meta.url);
const manifest = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8')) as {
  bin: Record<string, string>;
  engines: { node: string };
  dependencies: Record<string, string>;
};

t.test('npm pack --dry-run lists the commands and the bundle, nothing else', async (t) => {
  // --ignore-scripts: no `prepare` build; this checks the file selection, not the build.
  const { stdout } = await promisify(execFile)('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, maxBuffer: 16 << 20 });
  const [pack] = JSON.parse(stdout) as [{ files: { path: string }[] }];
  const paths = pack.files.map((f) => f.path);
  for (const [name, file] of Object.entries(manifest.bin)) t.ok(paths.includes(file.replace(/^\.\//, '')), `bin ${name}: ${file} is packed`);
  t.ok(paths.includes('bin/entry.js'), 'the bins\' loader is packed');
  t.same(paths.filter((p) => p.endsWith('.test.ts') || p.endsWith('.test.js')), [], 'no tests');
  t.same(paths.filter((p) => p.endsWith('.ts')), [], 'no TypeScript sources: the package runs dist/');
  t.same(paths.filter((p) => !/^(bin|dist)\//.test(p) && !['package.json', 'README.md'].includes(p)), [], 'only bin/, dist/, package.json and the README');
  if (existsSync(new URL('dist/build-info.json', ROOT))) {
    for (const file of ['dist/konsul.js', 'dist/konsulctl.js', 'dist/build-info.json']) t.ok(paths.includes(file), `${file} is packed`);
  }
});

t.test('engines and dependencies', async (t) => {
  t.equal(manifest.engines.node, '>=20');
  t.notOk('tsx' in manifest.dependencies, 'tsx is for running the sources in a checkout: a dev dependency');
});
