// `konsulctl snapshot ...`: save the whole state to a file, restore it, inspect a saved file
// (/v1/snapshot; the archive format is docs/adr/0008-snapshot-archive.md). Output as `consul snapshot`.
import { open, readFile, rename, rm } from 'node:fs/promises';
import type { Command } from 'commander';
import { decodeSnapshot, SnapshotFormatError } from '../../fsm/snapshot.ts';
import { readSnapshotArchive, SnapshotArchiveError, type SnapshotArchiveMeta } from '../../server/snapshot-archive.ts';
import { clientFor, handleErrors, writeStdout } from '../command-support.ts';
import { CliError } from '../http-client.ts';
import { formatRows } from './status.ts';

/** Saving or restoring a large state takes a while; give up only after this long. */
const SNAPSHOT_TIMEOUT_MS = 10 * 60 * 1000;

interface SaveOptions {
  stale?: boolean;
}

export function registerSnapshotCommands(program: Command): void {
  const snapshot = program
    .command('snapshot')
    .description('save the whole state (every table) to a file, restore it, or inspect a saved file');

  snapshot.command('save')
    .description('save a snapshot of the whole state to <file> (GET /v1/snapshot)')
    .argument('<file>', 'where to write the archive (written whole or not at all)')
    .option('--stale', 'let any server answer from its own state, even without a leader')
    .addHelpText('after', `
Output: "Saved and verified snapshot to index <n>". The archive is checked (hashes, format) before
it replaces <file>.
`)
    .action(handleErrors(async (file: string, options: SaveOptions, command: Command) => {
      const response = await clientFor(command).get('/v1/snapshot', { query: { stale: options.stale }, timeoutMs: SNAPSHOT_TIMEOUT_MS });
      const { meta } = verify(response.body, 'the server sent a snapshot that does not verify');
      await writeFileAtomically(file, response.body);
      await writeStdout(`Saved and verified snapshot to index ${meta.Index}\n`);
    }));

  snapshot.command('restore')
    .description('replace the whole state of the cluster with the snapshot in <file> (PUT /v1/snapshot)')
    .argument('<file>', 'an archive written by `konsulctl snapshot save` or GET /v1/snapshot')
    .addHelpText('after', `
Output: "Restored snapshot". Every key, event and other table is replaced on every server; data
written after the snapshot was taken is gone.
`)
    .action(handleErrors(async (file: string, _options: unknown, command: Command) => {
      const archive = await readArchiveFile(file);
      await clientFor(command).put('/v1/snapshot', { body: archive, contentType: 'application/octet-stream', timeoutMs: SNAPSHOT_TIMEOUT_MS });
      await writeStdout('Restored snapshot\n');
    }));

  snapshot.command('inspect')
    .description('print what a saved snapshot holds (read locally; no server needed)')
    .argument('<file>', 'a snapshot archive')
    .addHelpText('after', `
Output: one "Label<spaces>value" line per field: ID, Size, Index, Term, Version, KonsulVersion,
CreatedAt, then the number of KVEntries, KVTombstones and Events.
`)
    .action(handleErrors(async (file: string) => {
      const { meta, state } = verify(await readArchiveFile(file), `${file} is not a valid snapshot`);
      const tables = decodeSnapshot(state);
      await writeStdout(formatRows([
        ['ID', meta.ID],
        ['Size', String(meta.Size)],
        ['Index', String(meta.Index)],
        ['Term', String(meta.Term)],
        ['Version', String(meta.FormatVersion)],
        ['KonsulVersion', meta.KonsulVersion],
        ['CreatedAt', meta.CreatedAt],
        ['KVEntries', String(tables.kv.entries.length)],
        ['KVTombstones', String(tables.kv.tombstones.length)],
        ['Events', String(tables.events?.events.length ?? 0)],
      ]));
    }));
}

/** Checks an archive completely, as a restore would (without the server's size limit). */
function verify(archive: Uint8Array, what: string): { meta: SnapshotArchiveMeta; state: Uint8Array } {
  try {
    const unpacked = readSnapshotArchive(archive, { maxStateBytes: Number.POSITIVE_INFINITY });
    decodeSnapshot(unpacked.state);
    return unpacked;
  } catch (err) {
    if (err instanceof SnapshotArchiveError || err instanceof SnapshotFormatError) throw new CliError(`${what}: ${err.message}`);
    throw err;
  }
}

async function readArchiveFile(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as Error).message}`);
  }
}

/** Writes a temporary file next to `file`, syncs it and renames it over `file`. */
async function writeFileAtomically(file: string, data: Uint8Array): Promise<void> {
  const temporary = `${file}.${process.pid}.tmp`;
  try {
    const handle = await open(temporary, 'w', 0o600);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, file);
  } catch (err) {
    await rm(temporary, { force: true });
    throw new CliError(`cannot write ${file}: ${(err as Error).message}`);
  }
}
