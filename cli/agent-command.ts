// `konsul agent`: a client agent (no Raft) next to applications; see agent/main.ts. Its flags,
// config-file keys and --help text come from its settings table (agent/config.ts), and it shares
// option names with `konsul server` (`--config`, `--config-dir`, `--node`, `--retry-join`, the
// plugins' flags...). `--config-file` is the old spelling of `--config`, still accepted.
import type { Command } from 'commander';
import { AGENT_SETTINGS, mergeAgentConfig, readAgentConfigFiles, type AgentConfig } from '../agent/config.ts';
import { startAgent } from '../agent/main.ts';
import { ConfigError } from '../lib/config-values.ts';
import { Supervisor } from '../lib/service.ts';
import { BUILTIN_PLUGINS } from '../plugins/builtin.ts';
import { addConfigFileOptions, configFilesOf } from '../plugins/common-settings.ts';
import { addProcessFlags } from '../plugins/loader.ts';
import { flagLayer } from '../plugins/settings.ts';
import { listenerLines, stopOnSignals } from './run-process.ts';

export function addAgentCommand(program: Command): void {
  const command = program
    .command('agent')
    .description('run a Konsul client agent: local services and checks, a read cache, and the /v1 API for applications on this host');
  addConfigFileOptions(command, 'agent settings (snake_case) and service/check definitions');
  addProcessFlags(command, AGENT_SETTINGS, BUILTIN_PLUGINS).action(async (opts: Record<string, unknown>) => {
    let config: AgentConfig;
    let definitions;
    try {
      const fromFiles = readAgentConfigFiles(configFilesOf(opts));
      definitions = { services: fromFiles.services, checks: fromFiles.checks };
      config = mergeAgentConfig(fromFiles.config, flagLayer(AGENT_SETTINGS, opts));
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`konsul: ${err.message}\n`);
        process.exit(2);
      }
      throw err;
    }
    const supervisor = new Supervisor();
    let agent;
    try {
      agent = await supervisor.start(await startAgent(config, definitions));
    } catch (err) {
      process.stderr.write(`konsul: cannot start the agent: ${(err as Error).message}\n`);
      process.exit(1);
    }
    const { host, port } = agent.httpAddress;
    const servers = agent.pool.servers().map((s) => s.id).join(', ') || '(none reachable yet, retrying)';
    process.stdout.write(listenerLines(agent.pluginListeners));
    process.stdout.write(`konsul agent "${config.nodeName}" (datacenter ${config.datacenter}) listening on http://${host}:${port}, servers: ${servers}, data in ${config.dataDir}\n`);
    stopOnSignals(supervisor, 'shutting down the agent');
  });
}
