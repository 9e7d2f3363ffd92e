// `konsulctl kv recover`: list and write back values that deletes and overwrites retired under the
// server's `kv_recovery` rules (/v1/konsul/kv-recovery, docs/adr/0017-kv-recovery.md).
import type { Command } from 'commander';
import { commanderParser, parseUint64 } from '../args.ts';
import { lazyAction } from './lazy-action.ts';

export function registerKvRecoverCommand(kv: Command): void {
  kv.command('recover')
    .description('write back a value that a delete or an overwrite retired (keys under the server\'s kv_recovery prefixes)')
    .argument('[key]', 'the key to recover; with --list, a prefix ("" or nothing: every key)')
    .option('--version <n>', 'the version to write back, by its ModifyIndex as --list shows (default: the newest)', commanderParser(parseUint64))
    .option('--modify-index <n>', 'the same as --version', commanderParser(parseUint64))
    .option('--list', 'list the kept versions under the prefix instead of recovering')
    .addHelpText('after', `
Recovering writes the version's value and flags as the key's current value (a normal KV write: the
value it replaces is kept in turn, so a recovery can itself be undone).

Output:
  recover            Success! Recovered <key> version <n>
  --list             a header, then one line per version, keys in order and each key's newest first:
                       KEY  MODIFY_INDEX  REASON  RETIRED_AT  EXPIRES_AT  SIZE  FLAGS
                     (REASON is deleted or overwritten; times in UTC; SIZE in bytes)
  A key without kept versions (or without the --version asked) exits 1 with a message on stderr.
`)
    .action(lazyAction(() => import('./kv-recover-actions.ts'), (m) => m.runKvRecover));
}
