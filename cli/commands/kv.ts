// `konsulctl kv ...`: get, put, delete, list and watch keys through /v1/kv. Output formats are
// documented in each command's help and follow `consul kv` where Consul has the same command.
import type { Command } from 'commander';
import { commanderParser, durationText, parsePositiveInt, parseUint64 } from '../args.ts';
import { registerKvRecoverCommand } from './kv-recover.ts';
import { lazyAction } from './lazy-action.ts';

export const DEFAULT_WATCH_WAIT = '5m';
/**
 * Node's fetch (undici) gives up waiting for response headers after 300 s, and the server holds a
 * blocking query for up to wait + wait/16 of jitter: longer waits are sent as 4m30s (at most ~287 s).
 */
export const MAX_FETCH_WAIT = '4m30s';

export function registerKvCommands(program: Command): void {
  const kv = program
    .command('kv')
    .description('read, write, delete, list and watch keys in the key/value store');

  kv.command('get')
    .description('print the value of a key, or of every key under a prefix with --recurse')
    .argument('<key>', 'the key; with --recurse, the prefix ("" for every key)')
    .option('--detailed', 'print every field of the entry, not only the value')
    .option('--recurse', 'print every key that starts with <key>')
    .option('--base64', 'print values base64-encoded (safe for binary values)')
    .addHelpText('after', `
Output:
  default            the value's raw bytes, then a newline
  --base64           the value base64-encoded, then a newline
  --recurse          one "key:value" line per key, sorted by key; nothing if no key matches
  --detailed         as \`consul kv get -detailed\`, one "Label<spaces>value" line per field:
                       CreateIndex, Flags, Key, LockIndex, ModifyIndex, Session ("-" if none), Value
                     labels padded to 17 columns; with --recurse, entries are separated by an empty line
  A missing key (without --recurse) prints 'konsulctl: no key "<key>"' on stderr and exits 1.
`)
    .action(lazyAction(() => import('./kv-actions.ts'), (m) => m.runKvGet));

  kv.command('put')
    .description('write a value to a key')
    .argument('<key>', 'the key')
    .argument('[value]', 'the value; "-" or no value reads it from stdin, byte for byte')
    .option('--flags <n>', 'opaque unsigned 64-bit integer stored with the key (0 to 18446744073709551615)', commanderParser(parseUint64))
    .option('--cas', 'check-and-set: write only if the key\'s ModifyIndex is --modify-index (0: only if the key does not exist)')
    .option('--modify-index <index>', 'the ModifyIndex --cas expects (default 0)', commanderParser(parseUint64))
    .option('--base64', 'the value is base64-encoded: decode it before writing (whitespace is ignored)')
    .addHelpText('after', `
Output:
  on success, on stdout:   Success! Data written to: <key>
  when --cas fails, on stderr, exit status 1:
                           Error! Did not write to <key>: CAS failed
`)
    .action(lazyAction(() => import('./kv-actions.ts'), (m) => m.runKvPut));

  kv.command('delete')
    .description('delete a key, or every key under a prefix with --recurse')
    .argument('<key>', 'the key; with --recurse, the prefix ("" deletes every key)')
    .option('--recurse', 'delete every key that starts with <key>')
    .option('--cas', 'check-and-set: delete only if the key\'s ModifyIndex is --modify-index')
    .option('--modify-index <index>', 'the ModifyIndex --cas expects', commanderParser(parseUint64))
    .addHelpText('after', `
Output (deleting a key that does not exist succeeds):
  on success, on stdout:   Success! Deleted key: <key>
                           Success! Deleted keys with prefix: <prefix>     (--recurse)
  when --cas fails, on stderr, exit status 1:
                           Error! Did not delete key <key>: CAS failed
`)
    .action(lazyAction(() => import('./kv-actions.ts'), (m) => m.runKvDelete));

  kv.command('list')
    .description('list the keys under a prefix (all keys by default)')
    .argument('[prefix]', 'only keys that start with this prefix', '')
    .option('--separator <sep>', 'stop each key after the first <sep> following the prefix, e.g. "/" lists one level (sub-folders end in "/")')
    .addHelpText('after', `
Output:
  one key per line, sorted; nothing if no key matches
`)
    .action(lazyAction(() => import('./kv-actions.ts'), (m) => m.runKvList));

  kv.command('watch')
    .description('print a key\'s value now and again each time it is written, until interrupted')
    .argument('<key>', 'the key; with --prefix, the prefix ("" for every key)')
    .option('--prefix', 'watch every key that starts with <key>')
    .option('--wait <duration>', `longest time one blocking query waits on the server, e.g. 30s, 2m (default: ${DEFAULT_WATCH_WAIT}; `
      + `above ${MAX_FETCH_WAIT}, ${MAX_FETCH_WAIT} is sent: Node's fetch stops waiting for an answer after 300s)`,
      commanderParser(durationText))
    .option('--count <n>', 'exit after printing <n> times (the current state counts as the first)', commanderParser(parsePositiveInt))
    .option('--base64', 'print values base64-encoded')
    .option('--detailed', 'print every field, as `kv get --detailed`, each block followed by an empty line (not with --prefix)')
    .addHelpText('after', `
Uses blocking queries (GET with ?index=<last X-Consul-Index>&wait=<--wait>). A change is a write to
the watched data (its ModifyIndex changes, or it is created or deleted), even if the value is the
same; the server waking up for unrelated writes prints nothing.

Output, for the current state and then for each change:
  <key>              the value, then a newline (as \`kv get\`; --detailed: the block, then an empty line).
                     If the key does not exist (or is deleted), nothing on stdout and a notice on stderr.
  --prefix           "key:value" lines for every key under the prefix (as \`kv get --recurse\`),
                     then an empty line that ends the listing.

Ends with exit status 0 on SIGINT/SIGTERM or after --count changes. If the server becomes
unreachable or answers 5xx after the first answer, it retries with backoff (notices on stderr).
`)
    .action(lazyAction(() => import('./kv-actions.ts'), (m) => m.runKvWatch));

  registerKvRecoverCommand(kv);
}
