// The layering lint (eslint.config.js, docs/adr/0020-layers.md) refuses imports that run upward:
// ESLint's Node API lints snippets under made-up file names with the project's own config.
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import t from 'tap';

const root = fileURLToPath(new URL('..', import.meta.url));
const eslint = new ESLint({ cwd: root });

/** The layering complaints about one import written in a file at `file` (relative to the repository). */
async function layerErrors(file: string, specifier: string): Promise<string[]> {
  const [result] = await eslint.lintText(`import '${specifier}';\n`, { filePath: `${root}${file}` });
  return (result?.messages ?? []).filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

const refused: [file: string, specifier: string, why: RegExp][] = [
  ['agent/x.ts', '../server/http/app.ts', /agent\/ imports nothing from server\//],
  ['agent/checks/x.ts', '../../server/errors.ts', /agent\/ imports nothing from server\//],
  ['agent/core/x.ts', '../servers.ts', /agent process files/],
  ['agent/core/x.ts', '../../http/app.ts', /no HTTP/],
  ['http/x.ts', '../agent/main.ts', /http\/ is the platform/],
  ['http/routes/x.ts', '../../server/errors.ts', /http\/ is the platform/],
  ['raft/transport/x.ts', '../../rpc/client.ts', /imports nothing from server, agent, http, cli, dns, rpc or plugins/],
  ['fsm/state/x.ts', '../../server/main.ts', /fsm\/ is below every process layer/],
  ['rpc/x.ts', '../agent/core/local-agent.ts', /rpc\/ sits with the transport/],
  ['lib/x.ts', '../fsm/commands.ts', /lib\/ holds neutral primitives/],
  ['lib/x.ts', 'node:fs', /pure: no I\/O/],
  ['server/http/routes/x.ts', '../../../cli/args.ts', /nothing below it imports cli\//],
];

for (const [file, specifier, why] of refused) {
  t.test(`${file} may not import ${specifier}`, async (t) => {
    const errors = await layerErrors(file, specifier);
    t.ok(errors.some((m) => why.test(m)), errors.join('\n') || 'no error');
  });
}

const allowed: [file: string, specifier: string][] = [
  ['agent/core/x.ts', './backend.ts'],
  ['agent/core/x.ts', '../../fsm/commands.ts'],
  ['agent/core/x.ts', '../../rpc/agent-protocol.ts'],
  ['agent/core/x.ts', '../checks/runner.ts'],
  ['agent/x.ts', '../http/app.ts'],
  ['http/x.ts', '../agent/core/local-agent.ts'],
  ['server/x.ts', '../agent/core/local-agent.ts'],
  ['rpc/x.ts', '../raft/transport/codec.ts'],
  ['lib/x.ts', './errors.ts'],
  ['cli/x.ts', '../server/main.ts'],
];

for (const [file, specifier] of allowed) {
  t.test(`${file} may import ${specifier}`, async (t) => {
    t.same(await layerErrors(file, specifier), []);
  });
}
