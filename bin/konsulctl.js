#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx (see docs/adr/0004-running-typescript.md).
import process from 'node:process';
import { register } from 'tsx/esm/api';

register();
const { konsulctlProgram } = await import('../cli/konsulctl.ts');
await konsulctlProgram().parseAsync(process.argv);
