// Which code bin/konsul.js and bin/konsulctl.js run (docs/adr/0023-build.md): the bundle in dist/
// when it is there and no source it was built from changed since (`npm run build` makes it; npm
// install and npm test run that), else the TypeScript sources through tsx. A developer who edits a
// .ts file and runs bin/ without rebuilding so gets the edited code, only slower to start.
//
// The check stats the sources listed in dist/build-info.json (a few dozen for konsulctl, about 250
// for konsul: a millisecond or two). An installed package has dist/ and no sources: it runs dist/.
// KONSUL_FROM_SOURCE=1 always runs the sources (a debugger, stack traces with .ts lines).
import { readFileSync, statSync } from 'node:fs';
import process from 'node:process';

const ROOT = new URL('../', import.meta.url);

/** The module to import for `name` ('konsul' or 'konsulctl'), whose source is `source` (relative to the root). */
export async function loadEntry(name, source) {
  const compiled = process.env.KONSUL_FROM_SOURCE === '1' ? null : freshBundle(name, source);
  if (compiled !== null) return import(compiled.href);
  const { register } = await import('tsx/esm/api');
  register();
  return import(new URL(source, ROOT).href);
}

/** dist/'s bundle of `name` if it is up to date with the sources, else null. */
function freshBundle(name, source) {
  let info;
  try {
    info = JSON.parse(readFileSync(new URL('dist/build-info.json', ROOT), 'utf8'));
  } catch {
    return null;
  }
  const entry = info.entries?.[name];
  if (entry === undefined) return null;
  const bundle = new URL(`dist/${entry.file}`, ROOT);
  if (statSync(new URL(source, ROOT), { throwIfNoEntry: false }) === undefined) return bundle; // an installed package: no sources
  for (const file of entry.sources) {
    const stat = statSync(new URL(file, ROOT), { throwIfNoEntry: false });
    if (stat === undefined || stat.mtimeMs >= info.startedAt) return null;
  }
  return bundle;
}
