// `konsulctl kv ...`: get, put, delete, list and watch keys through /v1/kv. Output formats are
// documented in each command's help and follow `consul kv` where Consul has the same command.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { commanderParser, parseDuration, parsePositiveInt, parseUint64, UsageError } from '../args.ts';
import { clientFor, handleErrors, reportError, writeStdout } from '../command-support.ts';
import { registerKvRecoverCommand } from './kv-recover.ts';
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

const DEFAULT_WATCH_WAIT = '5m';
/**
 * Node's fetch (undici) gives up waiting for response headers after 300 s, and the server holds a
 * blocking query for up to wait + wait/16 of jitter: longer waits are sent as 4m30s (at most ~287 s).
 */
const MAX_FETCH_WAIT = '4m30s';
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
    .action(handleErrors(async (rawKey: string, options: GetOptions, command: Command) => {
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
    }));

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
    .action(handleErrors(async (rawKey: string, rawValue: string | undefined, options: PutOptions, command: Command) => {
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
    }));

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
    .action(handleErrors(async (rawKey: string, options: DeleteOptions, command: Command) => {
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
    }));

  kv.command('list')
    .description('list the keys under a prefix (all keys by default)')
    .argument('[prefix]', 'only keys that start with this prefix', '')
    .option('--separator <sep>', 'stop each key after the first <sep> following the prefix, e.g. "/" lists one level (sub-folders end in "/")')
    .addHelpText('after', `
Output:
  one key per line, sorted; nothing if no key matches
`)
    .action(handleErrors(async (rawPrefix: string, options: ListOptions, command: Command) => {
      const prefix = normalizeKey(rawPrefix, { allowEmpty: true });
      const separator = options.separator === '' ? undefined : options.separator;
      const response = await clientFor(command).get(kvPath(prefix), { query: { keys: true, separator }, acceptStatuses: [404] });
      if (response.status === 404) return;
      const keys = response.json();
      if (!Array.isArray(keys) || !keys.every((k): k is string => typeof k === 'string')) {
        throw new CliError('Konsul answered ?keys with something other than a JSON array of strings');
      }
      await writeStdout(keys.map((k) => `${k}\n`).join(''));
    }));

  kv.command('watch')
    .description('print a key\'s value now and again each time it is written, until interrupted')
    .argument('<key>', 'the key; with --prefix, the prefix ("" for every key)')
    .option('--prefix', 'watch every key that starts with <key>')
    .option('--wait <duration>', `longest time one blocking query waits on the server, e.g. 30s, 2m (default: ${DEFAULT_WATCH_WAIT}; `
      + `above ${MAX_FETCH_WAIT}, ${MAX_FETCH_WAIT} is sent: Node's fetch stops waiting for an answer after 300s)`,
      commanderParser(validDuration))
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
    .action(handleErrors(async (rawKey: string, options: WatchOptions, command: Command) => {
      const prefix = options.prefix === true;
      if (prefix && options.detailed) throw new UsageError('--detailed cannot be combined with --prefix');
      const key = normalizeKey(rawKey, { allowEmpty: prefix });
      await watchKv(clientFor(command), key, options);
    }));

  registerKvRecoverCommand(kv);
}

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

/** Checks a duration but keeps its text: the server parses ?wait itself. */
function validDuration(text: string, what: string): string {
  parseDuration(text, what);
  return text;
}

function isTransient(err: unknown): boolean {
  return err instanceof UnreachableError || (err instanceof HttpStatusError && err.status >= 500);
}
