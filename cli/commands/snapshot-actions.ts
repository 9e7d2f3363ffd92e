// What `konsulctl snapshot` does; its arguments, options and help are in snapshot.ts, which imports
// this module only when the command runs.
import { createReadStream } from 'node:fs';
import { open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import type { Command } from 'commander';
import { SnapshotFormatError } from '../../fsm/snapshot.ts';
import { readSnapshotArchiveStream, SnapshotArchiveError, type ArchiveProgress, type VerifiedArchive } from '../../server/snapshot-archive.ts';
import { clientFor, handleErrors, writeStdout } from '../command-support.ts';
import { CliError, HttpStatusError, UnreachableError } from '../http-client.ts';
import { formatBytes, formatCount, ProgressLine } from '../progress.ts';
import { formatRows } from './status-actions.ts';

/** Saving or restoring a large state takes a while; give up only after this long. */
const SNAPSHOT_TIMEOUT_MS = 60 * 60 * 1000;

interface SaveOptions {
  stale?: boolean;
}

export const runSnapshotSave = handleErrors(async (file: string, options: SaveOptions, command: Command) => {
  const client = clientFor(command);
  const progress = new ProgressLine();
  const archive = await writeFileAtomically(file, async (handle) => {
    const response = await client.stream('GET', '/v1/snapshot', { query: { stale: options.stale }, timeoutMs: SNAPSHOT_TIMEOUT_MS });
    async function* toFile(): AsyncGenerator<Uint8Array> {
      try {
        for await (const chunk of response.body) {
          await handle.write(chunk);
          yield chunk;
        }
      } catch (err) {
        if (err instanceof CliError) throw err;
        throw new UnreachableError(client.address, `the snapshot stopped arriving: ${(err as Error).message}`);
      }
    }
    return verify(toFile(), 'the server sent a snapshot that does not verify', (p) => progress.update(`Saving: ${describe(p)}`, p.stateBytes, p.stateTotalBytes));
  }).finally(() => progress.finish());
  await writeStdout(`Saved and verified snapshot to index ${archive.meta.Index}\n${countRows(archive)}`);
});

export const runSnapshotRestore = handleErrors(async (file: string, _options: unknown, command: Command) => {
  const client = clientFor(command);
  const size = await fileSize(file);
  const progress = new ProgressLine();
  // The file goes to the server and, through `local`, to the local check that counts records.
  const local = new PassThrough();
  let sent = 0;
  let checked: ArchiveProgress | null = null;
  const show = (): void => progress.update(`Restoring: sent ${formatBytes(sent)} of ${formatBytes(size)}${checked ? `, ${formatCount(checked.kvEntries)} keys` : ''}`, sent, size);
  async function* upload(): AsyncGenerator<Uint8Array> {
    for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
      if (!local.write(chunk)) await new Promise((resolve) => local.once('drain', resolve));
      sent += (chunk as Buffer).length;
      show();
      yield chunk as Buffer;
    }
    local.end();
    progress.update('Restoring: sent; the servers are replacing their state');
  }
  const abort = new AbortController();
  const verified = verify(local, `${file} is not a valid snapshot`, (p) => {
    checked = p;
    show();
  });
  let answered = false;
  let checkFailedFirst = false;
  // A file that does not verify stops the upload: the server would refuse it anyway.
  verified.catch(() => {
    if (answered) return;
    checkFailedFirst = true;
    abort.abort();
  });
  try {
    const response = client.stream('PUT', '/v1/snapshot', { body: upload(), contentType: 'application/octet-stream', timeoutMs: SNAPSHOT_TIMEOUT_MS, signal: abort.signal });
    // An answer before the whole file went (a refusal, a lost connection): no more data will
    // come, so the local check is cut short, and the server's answer is what to report.
    response.catch(() => {
      answered = true;
      local.destroy();
    });
    const [checkedFile, answer] = await Promise.allSettled([verified, response]);
    if (answer.status === 'rejected' && !checkFailedFirst) throw answer.reason;
    if (checkedFile.status === 'rejected') throw checkedFile.reason;
    if (answer.status === 'rejected') throw answer.reason;
    for await (const _ of answer.value.body) {
      // Consul answers an empty body; read it to the end.
    }
    progress.finish();
    await writeStdout(`Restored snapshot\n${countRows(checkedFile.value)}`);
  } finally {
    progress.finish();
    local.destroy();
  }
});

export const runSnapshotInspect = handleErrors(async (file: string) => {
  await fileSize(file);
  const progress = new ProgressLine();
  const archive = await verify(createReadStream(file), `${file} is not a valid snapshot`, (p) => progress.update(`Reading: ${describe(p)}`, p.stateBytes, p.stateTotalBytes)).finally(() => progress.finish());
  const { meta } = archive;
  await writeStdout(formatRows([
    ['ID', meta.ID],
    ['Size', String(meta.Size)],
    ['Index', String(meta.Index)],
    ['Term', String(meta.Term)],
    ['Version', String(meta.FormatVersion)],
    ['KonsulVersion', meta.KonsulVersion],
    ['CreatedAt', meta.CreatedAt],
    ...tableRows(archive),
  ]));
});

function describe(p: ArchiveProgress): string {
  return `${formatBytes(p.archiveBytes)} of archive, ${formatCount(p.kvEntries)} keys`;
}

function tableRows(archive: VerifiedArchive): [string, string][] {
  const c = archive.counts;
  return [
    ['KVEntries', String(c.kvEntries)],
    ['KVTombstones', String(c.kvTombstones)],
    ['Events', String(c.events)],
    ['Nodes', String(c.nodes)],
    ['Services', String(c.services)],
    ['Checks', String(c.checks)],
    ['Sessions', String(c.sessions)],
  ];
}

function countRows(archive: VerifiedArchive): string {
  return formatRows([['StateSize', String(archive.stateBytes)], ...tableRows(archive)]);
}

/** Checks an archive completely as it streams (without the server's size limit). */
async function verify(source: AsyncIterable<Uint8Array>, what: string, onProgress: (p: ArchiveProgress) => void): Promise<VerifiedArchive> {
  try {
    return await readSnapshotArchiveStream(source, { onProgress });
  } catch (err) {
    if (err instanceof SnapshotArchiveError || err instanceof SnapshotFormatError) throw new CliError(`${what}: ${err.message}`);
    if (err instanceof HttpStatusError || err instanceof CliError) throw err;
    if ((err as NodeJS.ErrnoException).code !== undefined && (err as NodeJS.ErrnoException).syscall !== undefined) throw new CliError(`cannot read the snapshot: ${(err as Error).message}`);
    throw err;
  }
}

async function fileSize(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as Error).message}`);
  }
}

/** Writes a temporary file next to `file` through `write`, syncs it and renames it over `file`. */
async function writeFileAtomically<T>(file: string, write: (handle: FileHandle) => Promise<T>): Promise<T> {
  const temporary = `${file}.${process.pid}.tmp`;
  let handle: FileHandle | null = null;
  try {
    handle = await open(temporary, 'w', 0o600).catch((err: Error) => {
      throw new CliError(`cannot write ${file}: ${err.message}`);
    });
    const result = await write(handle);
    await handle.sync();
    await handle.close();
    handle = null;
    await rename(temporary, file);
    return result;
  } catch (err) {
    await handle?.close().catch(() => undefined);
    await rm(temporary, { force: true });
    if (err instanceof CliError || !(err instanceof Error) || (err as NodeJS.ErrnoException).syscall === undefined) throw err;
    throw new CliError(`cannot write ${file}: ${err.message}`);
  }
}
