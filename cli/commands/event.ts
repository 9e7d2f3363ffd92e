// `konsulctl event ...`: fire a user event and list the recent ones (/v1/event). `fire` prints what
// `consul event` prints; `list` is a table by default, the server's JSON with --format json.
import { Option, type Command } from 'commander';
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

export function registerEventCommands(program: Command): void {
  const event = program
    .command('event')
    .description('fire a user event, or list the recent events (the last 256, kept by every server)');

  event.command('fire')
    .description('fire a user event (PUT /v1/event/fire/:name)')
    .argument('<name>', 'the event name')
    .argument('[payload]', 'the payload; "-" reads it from stdin; none for an event without payload')
    .option('--node <regexp>', 'only agents whose node name matches should act on it')
    .option('--service <regexp>', 'only agents with a matching service should act on it')
    .option('--tag <regexp>', 'only agents with a matching service tag (needs --service)')
    .addHelpText('after', `
Output: "Event ID: <id>", as \`consul event\` prints it.
`)
    .action(handleErrors(async (name: string, payload: string | undefined, options: FireOptions, command: Command) => {
      if (name === '') throw new UsageError('the event name is empty');
      if (options.tag !== undefined && options.service === undefined) throw new UsageError('--tag needs --service');
      const body = payload === undefined ? undefined : payload === '-' ? await readStdin() : Buffer.from(payload, 'utf8');
      const response = await clientFor(command).put(`/v1/event/fire/${encodePathSegments(name)}`, {
        query: { node: options.node, service: options.service, tag: options.tag },
        ...(body !== undefined ? { body, contentType: 'application/octet-stream' } : {}),
      });
      const fired = readEvent(response.json(), '/v1/event/fire');
      await writeStdout(`Event ID: ${fired.ID}\n`);
    }));

  event.command('list')
    .description('list the recent events, oldest first (GET /v1/event/list)')
    .option('--name <name>', 'only events with this name')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json']).default('table'))
    .addHelpText('after', `
Output (table): a header line, then one line per event, oldest first:
  ID  Name  LTime  Payload  NodeFilter  ServiceFilter  TagFilter
with the payload base64-encoded; an empty field is "-", and no field contains spaces (awk-friendly).
Nothing but the header when there are no events. --format json prints the server's answer.
`)
    .action(handleErrors(async (options: ListOptions, command: Command) => {
      const response = await clientFor(command).get('/v1/event/list', { query: { name: options.name } });
      const body = response.json();
      if (!Array.isArray(body)) throw new CliError('Konsul answered /v1/event/list with something other than a JSON array');
      const events = body.map((e) => readEvent(e, '/v1/event/list'));
      if (options.format === 'json') {
        await writeStdout(`${JSON.stringify(events, null, 2)}\n`);
        return;
      }
      await writeStdout(formatEventTable(events));
    }));
}

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
