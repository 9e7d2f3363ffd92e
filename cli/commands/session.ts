// `konsulctl session ...`: create, list, info, renew and destroy sessions (/v1/session). Consul has
// no `consul session` command; the output formats are Konsul's, documented in each command's help.
import { Option, type Command } from 'commander';
import { collect } from '../args.ts';
import { lazyAction } from './lazy-action.ts';

export function registerSessionCommands(program: Command): void {
  const session = program
    .command('session')
    .description('create, list, inspect, renew and destroy sessions (the holders of KV locks)');

  session.command('create')
    .description('create a session and print its ID (PUT /v1/session/create)')
    .option('--name <name>', 'a human-readable name')
    .option('--node <node>', 'the node the session belongs to (default: the server\'s own node)')
    .option('--ttl <duration>', 'invalidate the session unless renewed within this long (10s to 24h; e.g. 30s)')
    .option('--lock-delay <duration>', 'after an invalidation, the locks it held stay unavailable this long (default 15s, at most 60s)')
    .addOption(new Option('--behavior <behavior>', 'what happens to the keys it locks when it is invalidated').choices(['release', 'delete']))
    .option('--node-check <id>', 'bind the session to this node check (repeatable; replaces the default serfHealth)', collect)
    .option('--service-check <id>', 'bind the session to this service check (repeatable)', collect)
    .option('--no-checks', 'bind the session to no node check at all (not even serfHealth)')
    .addHelpText('after', `
Output: the new session's ID, then a newline.
`)
    .action(lazyAction(() => import('./session-actions.ts'), (m) => m.runSessionCreate));

  session.command('list')
    .description('list the sessions, of every node or of one (GET /v1/session/list, /v1/session/node/:node)')
    .option('--node <node>', 'only the sessions of this node')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json']).default('table'))
    .addHelpText('after', `
Output (table): a header line, then one line per session, in ID order:
  ID  Name  Node  TTL  Behavior  LockDelay  Checks
with LockDelay as a duration, Checks comma-separated (node checks, then service checks); an empty
field is "-" and no field contains spaces. --format json prints the server's answer.
`)
    .action(lazyAction(() => import('./session-actions.ts'), (m) => m.runSessionList));

  session.command('info')
    .description('print one session (GET /v1/session/info/:id)')
    .argument('<id>', 'the session ID')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json']).default('table'))
    .addHelpText('after', `
Output: as \`session list\` for this one session. An unknown session prints 'konsulctl: no session
"<id>"' on stderr and exits 1.
`)
    .action(lazyAction(() => import('./session-actions.ts'), (m) => m.runSessionInfo));

  session.command('renew')
    .description('renew a session\'s TTL (PUT /v1/session/renew/:id)')
    .argument('<id>', 'the session ID')
    .addHelpText('after', `
Output: "Renewed session <id> (TTL <ttl>)". An unknown (or expired) session prints 'konsulctl: no
session "<id>"' on stderr and exits 1.
`)
    .action(lazyAction(() => import('./session-actions.ts'), (m) => m.runSessionRenew));

  session.command('destroy')
    .description('destroy a session, releasing (or deleting) the keys it locks (PUT /v1/session/destroy/:id)')
    .argument('<id>', 'the session ID')
    .addHelpText('after', `
Output: "Destroyed session <id>". Destroying an unknown session succeeds too, as in Consul.
`)
    .action(lazyAction(() => import('./session-actions.ts'), (m) => m.runSessionDestroy));
}
