// What `konsulctl event` does; its arguments, options and help are in event.ts, which imports
// this module only when the command runs.
import type { Command } from 'commander';
import { UsageError } from '../args.ts';
import { clientFor, handleErrors, reportError, writeStdout } from '../command-support.ts';
import { CliError, encodePathSegments } from '../http-client.ts';

interface FireOptions {
  node?: string;
  service?: string;
  tag?: string;
}

interface ListOptions {
  name?: string;
  format: 'table' | 'json';
}

/** An event as /v1/event/list and /v1/event/fire answer it. */
export interface EventJson {
  ID: string;
  Name: string;
  Payload: string | null;
  NodeFilter: string;
  ServiceFilter: string;
  TagFilter: string;
  Version: number;
  LTime: number;
}

export const runEventFire = handleErrors(async (name: string, payload: string | undefined, options: FireOptions, command: Command) => {
  if (name === '') throw new UsageError('the event name is empty');
  if (options.tag !== undefined && options.service === undefined) throw new UsageError('--tag needs --service');
  const body = payload === undefined ? undefined : payload === '-' ? await readStdin() : Buffer.from(payload, 'utf8');
  const response = await clientFor(command).put(`/v1/event/fire/${encodePathSegments(name)}`, {
    query: { node: options.node, service: options.service, tag: options.tag },
    ...(body !== undefined ? { body, contentType: 'application/octet-stream' } : {}),
  });
  const fired = readEvent(response.json(), '/v1/event/fire');
  await writeStdout(`Event ID: ${fired.ID}\n`);
});

export const runEventList = handleErrors(async (options: ListOptions, command: Command) => {
  const response = await clientFor(command).get('/v1/event/list', { query: { name: options.name } });
  const body = response.json();
  if (!Array.isArray(body)) throw new CliError('Konsul answered /v1/event/list with something other than a JSON array');
  const events = body.map((e) => readEvent(e, '/v1/event/list'));
  if (options.format === 'json') {
    await writeStdout(`${JSON.stringify(events, null, 2)}\n`);
    return;
  }
  await writeStdout(formatEventTable(events));
});

/** Aligned columns; empty cells are "-" and whitespace becomes "_", so each line splits into 7 fields. */
export function formatEventTable(events: readonly EventJson[]): string {
  const header = ['ID', 'Name', 'LTime', 'Payload', 'NodeFilter', 'ServiceFilter', 'TagFilter'];
  const rows = events.map((e) => [e.ID, e.Name, String(e.LTime), e.Payload ?? '', e.NodeFilter, e.ServiceFilter, e.TagFilter]);
  const cells = [header, ...rows].map((row) => row.map((v) => (v.trim() === '' ? '-' : v.trim().replace(/\s+/g, '_'))));
  const widths = header.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  return cells.map((row) => row.map((v, i) => (i === row.length - 1 ? v : v.padEnd(widths[i]! + 2))).join('').trimEnd() + '\n').join('');
}

function readEvent(value: unknown, path: string): EventJson {
  const e = value as Partial<EventJson> | null;
  if (typeof e !== 'object' || e === null || typeof e.ID !== 'string' || typeof e.Name !== 'string' || typeof e.LTime !== 'number') {
    throw new CliError(`Konsul answered ${path} with something other than events`);
  }
  return {
    ID: e.ID,
    Name: e.Name,
    Payload: typeof e.Payload === 'string' ? e.Payload : null,
    NodeFilter: e.NodeFilter ?? '',
    ServiceFilter: e.ServiceFilter ?? '',
    TagFilter: e.TagFilter ?? '',
    Version: e.Version ?? 1,
    LTime: e.LTime,
  };
}

async function readStdin(): Promise<Buffer> {
  if (process.stdin.isTTY) reportError('reading the payload from stdin; end it with Ctrl-D');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks);
}
