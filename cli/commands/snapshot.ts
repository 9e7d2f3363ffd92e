// `konsulctl snapshot ...`: save the whole state to a file, restore it, inspect a saved file
// (/v1/snapshot; the archive format is docs/adr/0008-snapshot-archive.md). The first output line is
// `consul snapshot`'s; the counts per table follow. Archives stream both ways and are checked as
// they pass (hashes, format, every record), with progress on stderr.
import type { Command } from 'commander';
import { lazyAction } from './lazy-action.ts';

export function registerSnapshotCommands(program: Command): void {
  const snapshot = program
    .command('snapshot')
    .description('save the whole state (every table) to a file, restore it, or inspect a saved file');

  snapshot.command('save')
    .description('save a snapshot of the whole state to <file> (GET /v1/snapshot)')
    .argument('<file>', 'where to write the archive (written whole or not at all)')
    .option('--stale', 'let any server answer from its own state, even without a leader')
    .addHelpText('after', `
Output: "Saved and verified snapshot to index <n>", then the archive's size and the number of
records per table. The archive is checked (hashes, format, every record) as it arrives, before it
replaces <file>. Progress goes to stderr.
`)
    .action(lazyAction(() => import('./snapshot-actions.ts'), (m) => m.runSnapshotSave));

  snapshot.command('restore')
    .description('replace the whole state of the cluster with the snapshot in <file> (PUT /v1/snapshot)')
    .argument('<file>', 'an archive written by `konsulctl snapshot save` or GET /v1/snapshot')
    .addHelpText('after', `
Output: "Restored snapshot", then the number of records per table restored. Every key, event and
other table is replaced on every server; data written after the snapshot was taken is gone. The
file is checked as it is sent; a bad one is refused before anything changes. Progress goes to stderr.
`)
    .action(lazyAction(() => import('./snapshot-actions.ts'), (m) => m.runSnapshotRestore));

  snapshot.command('inspect')
    .description('print what a saved snapshot holds (read locally; no server needed)')
    .argument('<file>', 'a snapshot archive')
    .addHelpText('after', `
Output: one "Label<spaces>value" line per field: ID, Size, Index, Term, Version, KonsulVersion,
CreatedAt, then the number of KVEntries, KVTombstones, Events, Nodes, Services, Checks and Sessions.
`)
    .action(lazyAction(() => import('./snapshot-actions.ts'), (m) => m.runSnapshotInspect));
}
