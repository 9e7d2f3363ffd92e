// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The Raft core and the FSM must stay pure and deterministic: no clock, no ambient randomness,
// no timers, no Node built-ins. Time is ticks and randomness is an injected seeded PRNG.
const purityRules = {
  'no-restricted-globals': ['error',
    { name: 'setTimeout', message: 'The Raft core is pure: time advances only through tick().' },
    { name: 'setInterval', message: 'The Raft core is pure: time advances only through tick().' },
    { name: 'setImmediate', message: 'The Raft core is pure.' },
    { name: 'process', message: 'The Raft core is pure: no process access.' },
    { name: 'performance', message: 'The Raft core is pure: no clock.' },
  ],
  'no-restricted-properties': ['error',
    { object: 'Date', property: 'now', message: 'The Raft core is pure: time advances only through tick().' },
    { object: 'Math', property: 'random', message: 'Use the injected seeded PRNG.' },
  ],
  'no-restricted-syntax': ['error',
    { selector: "NewExpression[callee.name='Date']", message: 'The Raft core is pure: no wall clock.' },
  ],
  'no-restricted-imports': ['error', { patterns: [{ group: ['node:*', 'fs', 'net', 'http', 'crypto', 'classic-level', 'fastify'], message: 'The Raft core is pure: no I/O.' }] }],
};

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
  { files: ['raft/core/**/*.ts', 'fsm/**/*.ts'], ignores: ['**/*.test.ts'], rules: purityRules },
);
