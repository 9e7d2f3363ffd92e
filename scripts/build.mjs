#!/usr/bin/env node
// @ts-check
// `npm run build`: bundles the two command-line entry points (cli/konsul.ts, cli/konsulctl.ts) into
// dist/ with esbuild (docs/adr/0023-build.md). Code that an entry imports with `import()` becomes a
// chunk of its own, loaded only when that code runs (a konsulctl command's implementation, say).
// npm packages stay imports (packages: 'external'), resolved from node_modules at run time.
//
// dist/build-info.json lists, for each entry, the sources its bundle and chunks were made from and
// when the build started: bin/*.js run the TypeScript sources through tsx instead when one of them
// changed since (bin/entry.js).
//
//   node scripts/build.mjs            build
//   node scripts/build.mjs --prepare  as npm's `prepare` runs it (npm install, npm ci, npm pack):
//                                     skip quietly when the build tool or the sources are not there
//                                     (a production install); a failed build only warns, so that
//                                     npm install still works and bin/ runs the sources
//
// The bundle is made in dist.new/ and replaces dist/ only when the build succeeded.
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import process from 'node:process';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(ROOT, 'dist');
const NEXT = join(ROOT, 'dist.new');
/** bin name -> its entry module; the entry exports the commander program factory bin/<name>.js runs. */
const ENTRIES = { konsul: 'cli/konsul.ts', konsulctl: 'cli/konsulctl.ts' };

const prepare = process.argv.includes('--prepare');
if (prepare && !Object.values(ENTRIES).every((entry) => existsSync(join(ROOT, entry)))) process.exit(0);

/** @type {typeof import('esbuild')} */
let esbuild;
try {
  esbuild = await import('esbuild');
} catch (err) {
  if (prepare) process.exit(0);
  throw err;
}

const startedAt = Date.now();
rmSync(NEXT, { recursive: true, force: true });
/** @type {import('esbuild').BuildResult<{ metafile: true }>} */
let result;
try {
  result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: ENTRIES,
    outdir: NEXT,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    chunkNames: 'chunks/[name]-[hash]',
    metafile: true,
    legalComments: 'none',
    logLevel: 'silent',
  });
} catch (err) {
  rmSync(NEXT, { recursive: true, force: true });
  const errors = /** @type {{ errors?: import('esbuild').Message[] }} */ (err).errors ?? [];
  const text = errors.length > 0 ? (await esbuild.formatMessages(errors, { kind: 'error' })).join('') : String(err);
  process.stderr.write(text);
  if (prepare) {
    process.stderr.write('konsul: the build failed (see above); bin/ runs the TypeScript sources until `npm run build` succeeds\n');
    process.exit(0);
  }
  process.exit(1);
}

// Every output an entry loads, statically or through import(), and the sources they were made from.
const outputs = result.metafile.outputs;
/** @param {string} entryOutput */
function sourcesOf(entryOutput) {
  const seen = new Set([entryOutput]);
  const pending = [entryOutput];
  const sources = new Set();
  while (pending.length > 0) {
    const output = outputs[/** @type {string} */ (pending.pop())];
    if (output === undefined) continue;
    for (const input of Object.keys(output.inputs)) sources.add(input);
    for (const imported of output.imports) {
      if (imported.external || seen.has(imported.path)) continue;
      seen.add(imported.path);
      pending.push(imported.path);
    }
  }
  return [...sources].sort();
}

/** @type {Record<string, { file: string; sources: string[] }>} */
const entries = {};
for (const [outputPath, output] of Object.entries(outputs)) {
  if (output.entryPoint === undefined) continue;
  const name = Object.keys(ENTRIES).find((n) => ENTRIES[/** @type {keyof typeof ENTRIES} */ (n)] === output.entryPoint);
  if (name === undefined) continue;
  entries[name] = { file: relative(NEXT, join(ROOT, outputPath)), sources: sourcesOf(outputPath) };
}
mkdirSync(NEXT, { recursive: true });
writeFileSync(join(NEXT, 'build-info.json'), `${JSON.stringify({ startedAt, entries }, null, 1)}\n`);
rmSync(DIST, { recursive: true, force: true });
renameSync(NEXT, DIST);
if (!prepare) {
  const files = Object.keys(outputs).length;
  process.stdout.write(`dist/: ${files} files from ${new Set(Object.values(entries).flatMap((e) => e.sources)).size} sources in ${Date.now() - startedAt} ms\n`);
}
