// `konsulctl`: the operator's command line, a client of Konsul's HTTP API (/v1, Consul's wire format).
import { Command } from 'commander';
import { KONSUL_VERSION } from '../lib/version.ts';
import { EXIT_USAGE } from './command-support.ts';
import { DEFAULT_HTTP_ADDR } from './http-client.ts';
import { registerKvCommands } from './commands/kv.ts';
import { registerLockCommand } from './commands/lock.ts';
import { registerSessionCommands } from './commands/session.ts';
import { registerCatalogCommands } from './commands/catalog.ts';
import { registerClusterCommands } from './commands/cluster.ts';
import { registerEventCommands } from './commands/event.ts';
import { registerSnapshotCommands } from './commands/snapshot.ts';
import { registerStatusCommand } from './commands/status.ts';

export function konsulctlProgram(): Command {
  const program = new Command('konsulctl')
    .description('Konsul\'s command line: a client of the Consul-compatible HTTP API')
    // -V anywhere; --version only on its own (`konsulctl --version`): commander would otherwise
    // take it anywhere on the line, and `kv recover KEY --version N` means a version of the key.
    .version(KONSUL_VERSION, '-V, --konsulctl-version', 'output the version number (also: konsulctl --version)')
    .option('--http-addr <address>',
      `Konsul's HTTP API: host:port or http(s)://host:port (env KONSUL_HTTP_ADDR, then CONSUL_HTTP_ADDR; default ${DEFAULT_HTTP_ADDR})`)
    .option('--token <token>', 'ACL token, sent as X-Consul-Token (env KONSUL_HTTP_TOKEN, then CONSUL_HTTP_TOKEN)')
    // Set before the subcommands are created, which inherit them.
    .configureOutput({
      // One error style for commander's usage errors and ours: "konsulctl: <message> (see --help)".
      outputError: (text, write) => write(text.replace(/^error: /, 'konsulctl: ').replace(/\n$/, ' (see --help)\n')),
    })
    .exitOverride((err) => {
      // Commander exits 1 for usage errors; konsulctl keeps 1 for failed operations and uses 2 here.
      process.exit(err.exitCode === 1 ? EXIT_USAGE : err.exitCode);
    })
    .addHelpText('after', `
Global options (--http-addr, --token) may appear anywhere on the command line.
Errors are one line on stderr starting with "konsulctl: " (or Consul's "Error! ..." for a failed
check-and-set). Exit status: 0 success, 1 the operation failed (unreachable server, error answer,
missing key, CAS failure), 2 invalid command line.`);

  program.hook('preAction', () => {
    // A closed pipe (`konsulctl kv watch k | head -1`) is a normal way for the reader to stop us.
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(0);
      throw err;
    });
  });
  registerKvCommands(program);
  registerSessionCommands(program);
  registerLockCommand(program);
  registerStatusCommand(program);
  registerClusterCommands(program);
  registerEventCommands(program);
  registerSnapshotCommands(program);
  registerCatalogCommands(program);
  return program;
}
