#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx (see docs/adr/0004-running-typescript.md).
import process from 'node:process';
import { register } from 'tsx/esm/api';

register();
const { konsulctlProgram } = await import('../cli/konsulctl.ts');
// `konsulctl --version` alone prints the version (cli/konsulctl.ts explains why it is not an option).
const argv = process.argv.length === 3 && process.argv[2] === '--version' ? [...process.argv.slice(0, 2), '-V'] : process.argv;
await konsulctlProgram().parseAsync(argv);
