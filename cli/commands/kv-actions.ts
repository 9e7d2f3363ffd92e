// What `konsulctl kv` does; its arguments, options and help are in kv.ts, which imports
// this module only when the command runs.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { parseDuration, UsageError } from '../args.ts';
import { clientFor, handleErrors, reportError, writeStdout } from '../command-support.ts';
import { DEFAULT_WATCH_WAIT, MAX_FETCH_WAIT } from './kv.ts';
import { CliError, encodePathSegments, HttpStatusError, UnreachableError } from '../http-client.ts';
import type { KonsulClient, KonsulResponse } from '../http-client.ts';
import {
  decodeBase64Strict,
  formatDetailed,
  formatDetailedBlocks,
  formatKeyValueLines,
  formatValue,
  parseKvEntries,
  type KvEntry,
} from '../kv-entries.ts';

const MAX_FETCH_WAIT_MS = 270_000;
const WATCH_RETRY_MAX_MS = 30_000;

interface GetOptions {
  detailed?: boolean;
  recurse?: boolean;
  base64?: boolean;
}

interface PutOptions {
  flags?: string;
  cas?: boolean;
  modifyIndex?: string;
  base64?: boolean;
}

interface DeleteOptions {
  recurse?: boolean;
  cas?: boolean;
  modifyIndex?: string;
}

interface ListOptions {
  separator?: string;
}

interface WatchOptions {
  prefix?: boolean;
  wait?: string;
  count?: number;
  base64?: boolean;
  detailed?: boolean;
}

export const runKvGet = handleErrors(async (rawKey: string, options: GetOptions, command: Command) => {
  const recurse = options.recurse === true;
  const base64 = options.base64 === true;
  const key = normalizeKey(rawKey, { allowEmpty: recurse });
  const response = await clientFor(command).get(kvPath(key), { query: { recurse }, acceptStatuses: [404] });
  if (response.status === 404) {
    if (recurse) return;
    throw new CliError(`no key ${JSON.stringify(key)}`);
  }
  const entries = entriesOf(response);
  if (recurse) {
    await writeStdout(options.detailed ? formatDetailedBlocks(entries, base64) : formatKeyValueLines(entries, base64));
    return;
  }
  const entry = entries.find((e) => e.key === key) ?? entries[0];
  if (entry === undefined) throw new CliError(`no key ${JSON.stringify(key)}`);
  await writeStdout(options.detailed ? formatDetailed(entry, base64) : formatValue(entry, base64));
});

export const runKvPut = handleErrors(async (rawKey: string, rawValue: string | undefined, options: PutOptions, command: Command) => {
  const key = normalizeKey(rawKey, { allowEmpty: false });
  if (options.modifyIndex !== undefined && options.cas !== true) throw new UsageError('--modify-index needs --cas');
  const client = clientFor(command);
  let value = rawValue === undefined || rawValue === '-' ? await readStdin() : Buffer.from(rawValue, 'utf8');
  if (options.base64) {
    const decoded = decodeBase64Strict(value.toString('latin1'));
    if (decoded === null) throw new UsageError('the value is not valid base64 (--base64)');
    value = decoded;
  }
  const response = await client.put(kvPath(key), {
    query: { flags: options.flags, cas: options.cas ? (options.modifyIndex ?? '0') : undefined },
    body: value,
    contentType: 'application/octet-stream',
  });
  if (booleanAnswer(response)) {
    await writeStdout(`Success! Data written to: ${key}\n`);
    return;
  }
  const reason = options.cas ? 'CAS failed' : 'the server did not apply the write';
  throw new CliError(`Error! Did not write to ${key}: ${reason}`, { bare: true });
});

export const runKvDelete = handleErrors(async (rawKey: string, options: DeleteOptions, command: Command) => {
  const recurse = options.recurse === true;
  const key = normalizeKey(rawKey, { allowEmpty: recurse });
  if (recurse && options.cas) throw new UsageError('--cas cannot be combined with --recurse');
  if (options.cas && options.modifyIndex === undefined) throw new UsageError('--cas needs --modify-index');
  if (options.modifyIndex !== undefined && !options.cas) throw new UsageError('--modify-index needs --cas');
  const response = await clientFor(command).delete(kvPath(key), {
    query: { recurse, cas: options.cas ? options.modifyIndex : undefined },
  });
  if (booleanAnswer(response)) {
    await writeStdout(recurse ? `Success! Deleted keys with prefix: ${key}\n` : `Success! Deleted key: ${key}\n`);
    return;
  }
  const reason = options.cas ? 'CAS failed' : 'the server did not apply the delete';
  throw new CliError(`Error! Did not delete key ${key}: ${reason}`, { bare: true });
});

export const runKvList = handleErrors(async (rawPrefix: string, options: ListOptions, command: Command) => {
  const prefix = normalizeKey(rawPrefix, { allowEmpty: true });
  const separator = options.separator === '' ? undefined : options.separator;
  const response = await clientFor(command).get(kvPath(prefix), { query: { keys: true, separator }, acceptStatuses: [404] });
  if (response.status === 404) return;
  const keys = response.json();
  if (!Array.isArray(keys) || !keys.every((k): k is string => typeof k === 'string')) {
    throw new CliError('Konsul answered ?keys with something other than a JSON array of strings');
  }
  await writeStdout(keys.map((k) => `${k}\n`).join(''));
});

export const runKvWatch = handleErrors(async (rawKey: string, options: WatchOptions, command: Command) => {
  const prefix = options.prefix === true;
  if (prefix && options.detailed) throw new UsageError('--detailed cannot be combined with --prefix');
  const key = normalizeKey(rawKey, { allowEmpty: prefix });
  await watchKv(clientFor(command), key, options);
});

/** Consul's CLI strips one leading "/" (keys never start with one), and rejects an empty key. */
function normalizeKey(rawKey: string, { allowEmpty }: { allowEmpty: boolean }): string {
  const key = rawKey.startsWith('/') ? rawKey.slice(1) : rawKey;
  if (key === '' && !allowEmpty) throw new UsageError('the key must not be empty');
  return key;
}

function kvPath(key: string): string {
  return `/v1/kv/${encodePathSegments(key)}`;
}

function entriesOf(response: KonsulResponse): KvEntry[] {
  try {
    return parseKvEntries(response.json());
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`Konsul answered an unexpected KV body: ${(err as Error).message}`);
  }
}

/** PUT and DELETE on /v1/kv answer the JSON literal true or false. */
function booleanAnswer(response: KonsulResponse): boolean {
  const answer = response.json();
  if (typeof answer !== 'boolean') throw new CliError(`Konsul answered ${response.text().trim().slice(0, 100)} instead of true or false`);
  return answer;
}

async function readStdin(): Promise<Buffer> {
  if (process.stdin.isTTY) reportError('reading the value from stdin; end it with Ctrl-D');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks);
}

async function watchKv(client: KonsulClient, key: string, options: WatchOptions): Promise<void> {
  const stopper = new AbortController();
  const stop = (): void => stopper.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await watchLoop(client, key, options, stopper.signal);
  } catch (err) {
    if (!stopper.signal.aborted) throw err;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

async function watchLoop(client: KonsulClient, key: string, options: WatchOptions, signal: AbortSignal): Promise<void> {
  const prefix = options.prefix === true;
  const base64 = options.base64 === true;
  const requestedWait = options.wait ?? DEFAULT_WATCH_WAIT;
  const waitMs = Math.min(parseDuration(requestedWait, '--wait'), MAX_FETCH_WAIT_MS);
  const wait = waitMs === MAX_FETCH_WAIT_MS ? MAX_FETCH_WAIT : requestedWait;
  // The server holds the request up to wait + wait/16 of jitter; allow for that and a slow network.
  const timeoutMs = Math.ceil(waitMs * 17 / 16) + 15_000;
  let index: string | undefined;
  let lastSignature: string | undefined;
  let printed = 0;
  let failures = 0;

  while (!signal.aborted) {
    let response: KonsulResponse;
    try {
      response = await client.get(kvPath(key), {
        query: { recurse: prefix, index, wait: index === undefined ? undefined : wait },
        acceptStatuses: [404],
        signal,
        timeoutMs,
      });
    } catch (err) {
      // The first answer must succeed (a wrong address should fail fast); later outages are waited out.
      if (signal.aborted || lastSignature === undefined || !isTransient(err)) throw err;
      failures++;
      const delayMs = Math.min(WATCH_RETRY_MAX_MS, 1000 * 2 ** (failures - 1));
      reportError(`${(err as Error).message}; retrying in ${delayMs / 1000}s`);
      await sleep(delayMs, undefined, { signal });
      continue;
    }
    failures = 0;
    const newIndex = response.index;
    if (newIndex === undefined) throw new CliError('Konsul answered without a valid X-Consul-Index header; cannot watch');
    // Index 0 would mean "do not block" and spin; Consul's guidance is to use 1 instead.
    index = newIndex === '0' ? '1' : newIndex;

    const entries = response.status === 404 ? [] : entriesOf(response);
    const signature = prefix
      ? entries.map((e) => `${e.key}\u0000${e.modifyIndex}`).join('\u0001')
      : (entries[0]?.modifyIndex ?? 'absent');
    if (signature === lastSignature) continue;
    const isFirst = lastSignature === undefined;
    lastSignature = signature;

    if (prefix) {
      await writeStdout(Buffer.concat([formatKeyValueLines(entries, base64), Buffer.from('\n')]));
    } else {
      const entry = entries[0];
      if (entry === undefined) reportError(isFirst ? `no key ${JSON.stringify(key)} (watching for it)` : `key ${JSON.stringify(key)} was deleted`);
      else if (options.detailed) await writeStdout(Buffer.concat([formatDetailed(entry, base64), Buffer.from('\n')]));
      else await writeStdout(formatValue(entry, base64));
    }
    printed++;
    if (options.count !== undefined && printed >= options.count) return;
  }
}

function isTransient(err: unknown): boolean {
  return err instanceof UnreachableError || (err instanceof HttpStatusError && err.status >= 500);
}
