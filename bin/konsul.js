#!/usr/bin/env node
// `konsul`: the server, the agent and the snapshot agent. Runs dist/ or the sources (bin/entry.js).
import process from 'node:process';
import { loadEntry } from './entry.js';

const { konsulProgram } = await loadEntry('konsul', 'cli/konsul.ts');
await konsulProgram().parseAsync(process.argv);
