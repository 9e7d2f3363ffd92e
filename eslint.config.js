// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The Raft core, the FSM and lib/ must stay pure and deterministic: no clock, no ambient
// randomness, no timers, no Node built-ins. Time is ticks and randomness is an injected seeded PRNG.
const purityRules = {
  'no-restricted-globals': ['error',
    { name: 'setTimeout', message: 'Pure code (raft/core, fsm, lib) is deterministic: time advances only through tick().' },
    { name: 'setInterval', message: 'Pure code (raft/core, fsm, lib) is deterministic: time advances only through tick().' },
    { name: 'setImmediate', message: 'Pure code (raft/core, fsm, lib) is deterministic.' },
    { name: 'process', message: 'Pure code (raft/core, fsm, lib) is deterministic: no process access.' },
    { name: 'performance', message: 'Pure code (raft/core, fsm, lib) is deterministic: no clock.' },
  ],
  'no-restricted-properties': ['error',
    { object: 'Date', property: 'now', message: 'Pure code (raft/core, fsm, lib) is deterministic: time advances only through tick().' },
    { object: 'Math', property: 'random', message: 'Use the injected seeded PRNG.' },
  ],
  'no-restricted-syntax': ['error',
    { selector: "NewExpression[callee.name='Date']", message: 'Pure code (raft/core, fsm, lib) is deterministic: no wall clock.' },
  ],
};
const PURE_IMPORTS = { group: ['node:*', 'fs', 'net', 'http', 'crypto', 'classic-level', 'fastify'], message: 'The Raft core, the FSM and lib/ are pure: no I/O.' };
const PURE_DIRS = ['raft/core', 'fsm', 'lib'];

// Layers point one way (docs/adr/0020-layers.md): lib <- raft/core, fsm <- raft/storage|transport|host,
// rpc <- agent/core <- http <- server, agent, dns, plugins <- cli. Each rule: files under `from` may
// not import `forbid` (a folder, optionally with a glob inside it). Type-only imports count too.
const OUTSIDE = null; // lib/: anything outside lib itself
const layerRules = [
  { from: 'lib', forbid: [OUTSIDE], why: 'lib/ holds neutral primitives: it imports nothing from the project.' },
  ...['raft', 'fsm'].map((from) => ({
    from,
    forbid: ['server', 'agent', 'http', 'cli', 'dns', 'rpc', 'plugins'],
    why: `${from}/ is below every process layer: it imports nothing from server, agent, http, cli, dns, rpc or plugins.`,
  })),
  { from: 'rpc', forbid: ['server', 'agent', 'http', 'cli', 'dns', 'plugins'], why: 'rpc/ sits with the transport: it imports nothing from the agent, HTTP or process layers.' },
  { from: 'agent', forbid: ['server'], why: 'agent/ imports nothing from server/: shared code lives in agent/core, http/, rpc/ or lib/.' },
  {
    from: 'agent/core',
    forbid: ['http', 'server', 'agent/*.ts'],
    why: 'agent/core is the agent core both processes host: no HTTP, no server, no agent process files (agent/*.ts).',
  },
  { from: 'http', forbid: ['server', 'agent/*.ts'], why: 'http/ is the platform both processes use: it imports nothing from server/ or the agent process files (agent/*.ts).' },
  ...['lib', 'raft', 'fsm', 'rpc', 'agent', 'http', 'server', 'dns', 'plugins'].map((from) => ({ from, forbid: ['cli'], why: 'Only cli/ is above everything: nothing below it imports cli/.' })),
];
/** Folders nested this deep below a rule's `from` are covered (one glob per depth, see below). */
const MAX_DEPTH = 6;

/**
 * no-restricted-imports matches the import string as written, so each forbidden folder becomes the
 * relative path a file at that depth would write (`../../server/**` from agent/core/x.ts). ESLint
 * keeps only the last config's options for a rule, so each (folder, depth) object carries every rule
 * of its folder and of the folders above it, more specific folders later.
 */
function layerConfigs() {
  const froms = [...new Set(layerRules.map((r) => r.from))].sort((a, b) => a.split('/').length - b.split('/').length);
  const configs = [];
  for (const pure of [false, true]) {
    for (const from of froms) {
      if (pure && !PURE_DIRS.some((d) => from === d || from.startsWith(`${d}/`) || d.startsWith(`${from}/`))) continue;
      for (let depth = 0; depth <= MAX_DEPTH; depth++) {
        const dir = [from, ...Array(depth).fill('_')].join('/');
        const patterns = layerRules.filter((r) => from === r.from || from.startsWith(`${r.from}/`)).map((r) => ({ group: r.forbid.map((target) => importPattern(dir, r.from, target)), message: r.why }));
        const glob = `${from}/${'*/'.repeat(depth)}*.ts`;
        if (!pure) {
          configs.push({ files: [glob], rules: { 'no-restricted-imports': ['error', { patterns }] } });
          continue;
        }
        // A pure folder below or at `from`: the same rules plus no I/O (tests excepted, as for the other purity rules).
        const pureDirs = PURE_DIRS.filter((d) => d === from || d.startsWith(`${from}/`));
        for (const pureDir of pureDirs) {
          const extra = pureDir.split('/').length - from.split('/').length;
          if (extra > depth) continue;
          const pureGlob = `${pureDir}/${'*/'.repeat(depth - extra)}*.ts`;
          configs.push({ files: [pureGlob], ignores: ['**/*.test.ts'], rules: { 'no-restricted-imports': ['error', { patterns: [...patterns, PURE_IMPORTS] }] } });
        }
      }
    }
  }
  return configs;
}

/** The import string that reaches `target` ("server", "agent/*.ts", or OUTSIDE) from folder `dir`. */
function importPattern(dir, from, target) {
  if (target === OUTSIDE) return `${'../'.repeat(dir.split('/').length - from.split('/').length + 1)}**`;
  const slash = target.indexOf('/');
  const [folder, inside] = target.endsWith('.ts') && slash >= 0 ? [target.slice(0, slash), target.slice(slash + 1)] : [target, '**'];
  const up = dir.split('/').length - commonPrefix(dir.split('/'), folder.split('/'));
  const down = folder.split('/').slice(commonPrefix(dir.split('/'), folder.split('/')));
  return [...Array(up).fill('..'), ...down, inside].join('/').replace(/^(?!\.)/, './');
}

function commonPrefix(a, b) {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', '.tap/**', 'data/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2022, sourceType: 'module' },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  // Plain-JS launchers and build scripts run on Node (TypeScript files get these from their types).
  { files: ['**/*.js', '**/*.mjs'], languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly', Buffer: 'readonly' } } },
  { files: PURE_DIRS.map((d) => `${d}/**/*.ts`), ignores: ['**/*.test.ts'], rules: purityRules },
  ...layerConfigs(),
);
