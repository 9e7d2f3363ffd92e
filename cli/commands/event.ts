// `konsulctl event ...`: fire a user event and list the recent ones (/v1/event). `fire` prints what
// `consul event` prints; `list` is a table by default, the server's JSON with --format json.
import { Option, type Command } from 'commander';
import { lazyAction } from './lazy-action.ts';

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
    .action(lazyAction(() => import('./event-actions.ts'), (m) => m.runEventFire));

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
    .action(lazyAction(() => import('./event-actions.ts'), (m) => m.runEventList));
}
