// `konsul`: the server, the client agent and the snapshot agent processes. The server's and the
// agent's flags, config-file keys and --help text come from their settings tables
// (server/config.ts, agent/config.ts), plugins included (plugins/loader.ts).
import { Command } from 'commander';
import { addAgentCommand } from './agent-command.ts';
import { addOperatorCommand } from './operator-command.ts';
import { listenerLines, stopOnSignals } from './run-process.ts';
import { addSnapshotAgentCommand } from './snapshot-agent-command.ts';
import { periodicTask } from '../agent/core/periodic-task.ts';
import { Supervisor } from '../lib/service.ts';
import { BUILTIN_PLUGINS } from '../plugins/builtin.ts';
import { addConfigFileOptions, configFilesOf } from '../plugins/common-settings.ts';
import { addProcessFlags } from '../plugins/loader.ts';
import { flagLayer } from '../plugins/settings.ts';
import { ConfigError, mergeConfig, readConfigFiles, SERVER_SETTINGS, type ServerConfig } from '../server/config.ts';
import { startServer } from '../server/main.ts';
import { KONSUL_VERSION } from '../lib/version.ts';

export function konsulProgram(): Command {
  const program = new Command('konsul')
    .description('Konsul: a Consul-compatible key/value and service-discovery server')
    .version(KONSUL_VERSION)
    // A hint, not the whole help: the server's help is long, and the error would scroll away.
    .showHelpAfterError('(run with --help for the options)');

  const server = program.command('server').description('run a Konsul server');
  addConfigFileOptions(server, 'settings in snake_case (node_name, data_dir, http_addr, ...)');
  addProcessFlags(server, SERVER_SETTINGS, BUILTIN_PLUGINS).action(async (opts: Record<string, unknown>) => {
    let config: ServerConfig;
    try {
      config = mergeConfig(readConfigFiles(configFilesOf(opts)), flagLayer(SERVER_SETTINGS, opts));
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`konsul: ${err.message}\n`);
        process.exit(2);
      }
      throw err;
    }
    await runServer(config);
  });
  addAgentCommand(program);
  addSnapshotAgentCommand(program);
  addOperatorCommand(program);
  return program;
}

async function runServer(config: ServerConfig): Promise<void> {
  const supervisor = new Supervisor();
  let server;
  try {
    server = await supervisor.start(await startServer(config));
  } catch (err) {
    process.stderr.write(`konsul: cannot start: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const { host, port } = server.httpAddress;
  process.stdout.write(`konsul: rpc listening on ${server.rpcAddress.host}:${server.rpcAddress.port} (advertised as ${server.rpcAdvertise})\n`);
  // Before the "listening on http://" line, which is the one scripts and tests wait for.
  process.stdout.write(listenerLines(server.pluginListeners));
  process.stdout.write(`konsul server "${config.nodeName}" (datacenter ${config.datacenter}) listening on http://${host}:${port}, data in ${config.dataDir}\n`);
  // A storage failure breaks the durability contract: stop rather than serve from a stale state.
  const raft = server.raft;
  await supervisor.start(
    periodicTask('storage watchdog', 1000, () => {
      const fatal = raft.fatalError();
      if (fatal) {
        process.stderr.write(`konsul: fatal storage error, exiting: ${fatal.message}\n`);
        process.exit(1);
      }
    }),
  );
  stopOnSignals(supervisor, 'shutting down gracefully');
}
