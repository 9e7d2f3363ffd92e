// `konsul`: the server (and, later, agent) process.
import { Command, InvalidArgumentError } from 'commander';
import { addAgentCommand } from './agent-command.ts';
import { addOperatorCommand } from './operator-command.ts';
import { addSnapshotAgentCommand } from './snapshot-agent-command.ts';
import { addDnsOptions, dnsOptionValues } from '../dns/cli-options.ts';
import { ConfigError, hostPortText, logLevel, mergeConfig, parseHostPort, positiveInt, readConfigFile, type ServerConfig } from '../server/config.ts';
import { startServer } from '../server/main.ts';
import { KONSUL_VERSION } from '../server/version.ts';

function option<T>(parse: (v: string) => T): (v: string) => T {
  return (v) => {
    try {
      return parse(v);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };
}

function collectHostPort(value: string, previous: string[]): string[] {
  return [...previous, option((v) => hostPortText(v, '--retry-join'))(value)];
}

export function konsulProgram(): Command {
  const program = new Command('konsul')
    .description('Konsul: a Consul-compatible key/value and service-discovery server')
    .version(KONSUL_VERSION)
    .showHelpAfterError();

  const server = program
    .command('server')
    .description('run a Konsul server')
    .option('--data-dir <dir>', 'directory for the Raft log, snapshots and state (default: ./data)')
    .option('--http-addr <host:port>', 'address of the HTTP API (default: 127.0.0.1:8500)', option((v) => parseHostPort(v, '--http-addr')))
    .option('--node <name>', 'this server\'s node name (default: the host name)')
    .option('--datacenter <dc>', 'datacenter name (default: dc1)')
    .option('--dev', 'a single server that bootstraps itself as a one-node cluster')
    .option('--rpc-addr <host:port>', 'server-to-server address to bind (default: 127.0.0.1:8300; dev: an ephemeral port)', option((v) => parseHostPort(v, '--rpc-addr')))
    .option('--rpc-advertise <host:port>', 'server-to-server address other servers dial (default: the bound --rpc-addr)', option((v) => hostPortText(v, '--rpc-advertise')))
    .option('--bootstrap-expect <n>', 'form a new cluster once this many servers have found each other', option((v) => positiveInt(v, '--bootstrap-expect')))
    .option('--retry-join <host:port>', 'another server\'s RPC address to join (repeatable)', collectHostPort, [] as string[])
    .option('--rpc-tls-cert <file>', 'PEM certificate for mutual TLS between servers')
    .option('--rpc-tls-key <file>', 'PEM private key for mutual TLS between servers')
    .option('--rpc-tls-ca <file>', 'PEM CA that signs every server\'s certificate')
    .option('--config <file>', 'JSON config file (snake_case keys: node_name, data_dir, http_addr, ...)')
    .option('--kv-max-value-size <bytes>', 'largest KV value accepted (default: 524288)', option((v) => positiveInt(v, '--kv-max-value-size')))
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (default: info)', option(logLevel));
  addDnsOptions(server).action(async (opts: Record<string, unknown>) => {
      let config: ServerConfig;
      try {
        const fromFile = typeof opts.config === 'string' ? readConfigFile(opts.config) : {};
        config = mergeConfig(fromFile, {
          dataDir: opts.dataDir as string | undefined,
          httpAddr: opts.httpAddr as ServerConfig['httpAddr'] | undefined,
          nodeName: opts.node as string | undefined,
          datacenter: opts.datacenter as string | undefined,
          dev: opts.dev === true ? true : undefined,
          kvMaxValueSize: opts.kvMaxValueSize as number | undefined,
          logLevel: opts.logLevel as ServerConfig['logLevel'] | undefined,
          rpcAddr: opts.rpcAddr as ServerConfig['rpcAddr'] | undefined,
          rpcAdvertise: opts.rpcAdvertise as string | undefined,
          bootstrapExpect: opts.bootstrapExpect as number | undefined,
          retryJoin: (opts.retryJoin as string[]).length > 0 ? (opts.retryJoin as string[]) : undefined,
          rpcTlsCertFile: opts.rpcTlsCert as string | undefined,
          rpcTlsKeyFile: opts.rpcTlsKey as string | undefined,
          rpcTlsCaFile: opts.rpcTlsCa as string | undefined,
          ...dnsOptionValues(opts),
        });
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
  let server;
  try {
    server = await startServer(config);
  } catch (err) {
    process.stderr.write(`konsul: cannot start: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const { host, port } = server.httpAddress;
  process.stdout.write(`konsul: rpc listening on ${server.rpcAddress.host}:${server.rpcAddress.port} (advertised as ${server.rpcAdvertise})\n`);
  // Before the "listening on http://" line, which is the one scripts and tests wait for.
  if (server.dnsAddress) process.stdout.write(`konsul: dns listening on ${server.dnsAddress.host}:${server.dnsAddress.port} (udp+tcp)\n`);
  process.stdout.write(`konsul server "${config.nodeName}" (datacenter ${config.datacenter}) listening on http://${host}:${port}, data in ${config.dataDir}\n`);
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      process.stderr.write(`konsul: second ${sig}, exiting at once\n`);
      process.exit(130);
    }
    process.stdout.write(`konsul: ${sig} received, shutting down gracefully\n`);
    server.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`konsul: error during shutdown: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // A storage failure breaks the durability contract: stop rather than serve from a stale state.
  const watchdog = setInterval(() => {
    const fatal = server.raft.fatalError();
    if (fatal) {
      process.stderr.write(`konsul: fatal storage error, exiting: ${fatal.message}\n`);
      process.exit(1);
    }
  }, 1000);
  watchdog.unref();
}
