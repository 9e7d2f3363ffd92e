#!/usr/bin/env node
// `konsulctl`: the operator's command line. Runs dist/ or the sources (bin/entry.js).
import process from 'node:process';
import { loadEntry } from './entry.js';

const { konsulctlProgram } = await loadEntry('konsulctl', 'cli/konsulctl.ts');
// `konsulctl --version` alone prints the version (cli/konsulctl.ts explains why it is not an option).
const argv = process.argv.length === 3 && process.argv[2] === '--version' ? [...process.argv.slice(0, 2), '-V'] : process.argv;
await konsulctlProgram().parseAsync(argv);
