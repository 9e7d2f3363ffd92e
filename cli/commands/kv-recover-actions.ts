// What `konsulctl kv recover` does; its arguments, options and help are in kv-recover.ts, which imports
// this module only when the command runs.
import type { Command } from 'commander';
import { UsageError } from '../args.ts';
import { clientFor, handleErrors, writeStdout } from '../command-support.ts';
import { CliError, encodePathSegments } from '../http-client.ts';

interface RecoverOptions {
  version?: string;
  modifyIndex?: string;
  list?: boolean;
}

/** A version as the server lists it (Flags may be a digit string beyond 2^53: lossless JSON). */
interface VersionLine {
  readonly Key: string;
  readonly Version: number;
  readonly Flags: number | string;
  readonly Size: number;
  readonly Reason: string;
  readonly RetiredAt: string | null;
  readonly ExpiresAt: string | null;
}

export const runKvRecover = handleErrors(async (rawKey: string | undefined, options: RecoverOptions, command: Command) => {
  const key = (rawKey ?? '').startsWith('/') ? (rawKey ?? '').slice(1) : (rawKey ?? '');
  const client = clientFor(command);
  if (options.version !== undefined && options.modifyIndex !== undefined && options.version !== options.modifyIndex) {
    throw new UsageError('--version and --modify-index name different versions');
  }
  const version = options.version ?? options.modifyIndex;
  if (options.list) {
    if (version !== undefined) throw new UsageError('--version cannot be combined with --list');
    const response = await client.get('/v1/konsul/kv-recovery/', { query: { prefix: key } });
    const versions = response.json();
    if (!Array.isArray(versions)) throw new CliError('Konsul answered the recovery listing with something other than a JSON array');
    await writeStdout(formatVersions(versions as VersionLine[]));
    return;
  }
  if (key === '') throw new UsageError('the key must not be empty');
  const response = await client.put(`/v1/konsul/kv-recovery/${encodePathSegments(key)}`, { query: { version }, acceptStatuses: [404] });
  if (response.status === 404) {
    throw new CliError(version !== undefined ? `no kept version ${version} of ${JSON.stringify(key)}` : `no kept versions of ${JSON.stringify(key)}`);
  }
  const answer = response.json() as { Version?: number; Written?: boolean };
  if (answer.Written !== true) throw new CliError(`Error! Did not recover ${key}: the server did not apply the write`, { bare: true });
  await writeStdout(`Success! Recovered ${key} version ${String(answer.Version)}\n`);
});

function formatVersions(versions: readonly VersionLine[]): string {
  const rows = [['KEY', 'MODIFY_INDEX', 'REASON', 'RETIRED_AT', 'EXPIRES_AT', 'SIZE', 'FLAGS']];
  for (const v of versions) rows.push([v.Key, String(v.Version), v.Reason, v.RetiredAt ?? '-', v.ExpiresAt ?? '-', String(v.Size), String(v.Flags)]);
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  ') + '\n').join('');
}
