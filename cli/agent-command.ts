// `konsul agent`: a client agent (no Raft) next to applications; see agent/main.ts.
import { InvalidArgumentError, type Command } from 'commander';
import { configDirFiles, mergeAgentConfig, readAgentConfigFiles, type AgentConfig } from '../agent/config.ts';
import { startAgent } from '../agent/main.ts';
import { addDnsOptions, dnsOptionValues } from '../dns/cli-options.ts';
import { DnsConfigError } from '../dns/config.ts';
import { ConfigError, hostPortText, logLevel, parseHostPort } from '../server/config.ts';

function option<T>(parse: (v: string) => T): (v: string) => T {
  return (v) => {
    try {
      return parse(v);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];
const collectHostPort = (value: string, previous: string[]): string[] => [...previous, option((v) => hostPortText(v, '--retry-join'))(value)];

export function addAgentCommand(program: Command): void {
  const command = program
    .command('agent')
    .description('run a Konsul client agent: local services and checks, a read cache, and the /v1 API for applications on this host')
    .option('--node <name>', 'this agent\'s node name (default: the host name)')
    .option('--data-dir <dir>', 'directory for the agent\'s services, checks and state (default: ./agent-data)')
    .option('--http-addr <host:port>', 'address of the HTTP API (default: 127.0.0.1:8500; 0.0.0.0:8500 in a DaemonSet)', option((v) => parseHostPort(v, '--http-addr')))
    .option('--advertise-addr <ip>', 'the address the node is registered with (default: the HTTP host)')
    .option('--retry-join <host:port>', 'a server\'s RPC address (repeatable; one is enough to learn them all)', collectHostPort, [] as string[])
    .option('--datacenter <dc>', 'datacenter name (default: dc1)')
    .option('--config-file <file>', 'JSON config file: agent settings (snake_case) and service/check definitions (repeatable)', collect, [] as string[])
    .option('--config-dir <dir>', 'directory of *.json config files, read in name order (repeatable)', collect, [] as string[])
    .option('--enable-script-checks', 'allow script checks (Args/ScriptArgs): they run commands on this host')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (default: info)', option(logLevel));
  addDnsOptions(command, '127.0.0.1:8600').action(async (opts: Record<string, unknown>) => {
      let config: AgentConfig;
      let definitions;
      try {
        const files = [...(opts.configFile as string[]), ...(opts.configDir as string[]).flatMap((dir) => configDirFiles(dir))];
        const fromFiles = readAgentConfigFiles(files);
        definitions = { services: fromFiles.services, checks: fromFiles.checks };
        config = mergeAgentConfig(fromFiles.config, {
          nodeName: opts.node as string | undefined,
          dataDir: opts.dataDir as string | undefined,
          httpAddr: opts.httpAddr as AgentConfig['httpAddr'] | undefined,
          advertiseAddr: opts.advertiseAddr as string | undefined,
          retryJoin: (opts.retryJoin as string[]).length > 0 ? (opts.retryJoin as string[]) : undefined,
          datacenter: opts.datacenter as string | undefined,
          enableScriptChecks: opts.enableScriptChecks === true ? true : undefined,
          logLevel: opts.logLevel as AgentConfig['logLevel'] | undefined,
          ...dnsOptionValues(opts),
        });
      } catch (err) {
        if (err instanceof ConfigError || err instanceof DnsConfigError) {
          process.stderr.write(`konsul: ${err.message}\n`);
          process.exit(2);
        }
        throw err;
      }
      let agent;
      try {
        agent = await startAgent(config, definitions);
      } catch (err) {
        process.stderr.write(`konsul: cannot start the agent: ${(err as Error).message}\n`);
        process.exit(1);
      }
      const { host, port } = agent.httpAddress;
      const servers = agent.pool.servers().map((s) => s.id).join(', ') || '(none reachable yet, retrying)';
      if (agent.dnsAddress) process.stdout.write(`konsul: dns listening on ${agent.dnsAddress.host}:${agent.dnsAddress.port} (udp+tcp)\n`);
      process.stdout.write(`konsul agent "${config.nodeName}" (datacenter ${config.datacenter}) listening on http://${host}:${port}, servers: ${servers}, data in ${config.dataDir}\n`);
      let signals = 0;
      const onSignal = (sig: NodeJS.Signals) => {
        signals++;
        if (signals > 1) process.exit(130);
        process.stdout.write(`konsul: ${sig} received, shutting down the agent\n`);
        agent.stop().then(
          () => process.exit(0),
          (err: unknown) => {
            process.stderr.write(`konsul: error during shutdown: ${(err as Error).message}\n`);
            process.exit(1);
          },
        );
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
  });
}
