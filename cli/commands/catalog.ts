// `konsulctl catalog services|nodes`, `konsulctl services register|deregister|dependencies` and
// `konsulctl health <service>`: the service catalog through /v1/catalog, /v1/agent and /v1/health.
// Outputs follow `consul catalog` and `consul services` where Consul has the command; tables put one
// value per column, never empty ("-") and never with spaces, so awk can read them. --format json
// prints the server's answer.
import { Option, type Command } from 'commander';
import { collect, commanderParser, UsageError } from '../args.ts';
import { lazyAction } from './lazy-action.ts';

export function registerCatalogCommands(program: Command): void {
  const catalog = program
    .command('catalog')
    .description('list the services and nodes of the catalog (GET /v1/catalog/services, /v1/catalog/nodes)');

  catalog.command('services')
    .description('list the services, one per line, sorted (as `consul catalog services`)')
    .option('--tags', 'also print each service\'s tags, comma-separated')
    .option('--node-meta <key:value>', 'only services on nodes with this metadata (repeatable)', collect, [])
    .addOption(formatOption())
    .addHelpText('after', `
Output (table): one service name per line; with --tags, the name padded to a column and the tags
comma-separated ("-" for none).
`)
    .action(lazyAction(() => import('./catalog-actions.ts'), (m) => m.runCatalogServices));

  catalog.command('nodes')
    .description('list the nodes (as `consul catalog nodes`): Node, ID (first 8 characters), Address, DC')
    .option('--service <name>', 'only the nodes that provide this service')
    .option('--detailed', 'full IDs, plus TaggedAddresses and Meta as key=value lists')
    .option('--node-meta <key:value>', 'only nodes with this metadata (repeatable)', collect, [])
    .addOption(formatOption())
    .action(lazyAction(() => import('./catalog-actions.ts'), (m) => m.runCatalogNodes));

  const services = program
    .command('services')
    .description('register and deregister services with the server\'s agent (/v1/agent/service/*), show their dependencies');

  services.command('register')
    .description('register a service with the agent, from flags or from a JSON file (as `consul services register`)')
    .argument('[file]', 'a JSON file: a service definition, {"service": {...}} or {"services": [...]} (Consul\'s formats); "-" reads stdin')
    .option('--name <name>', 'the service name')
    .option('--id <id>', 'the service ID (default: the name)')
    .option('--address <address>', 'the service address (default: the node\'s)')
    .option('--port <port>', 'the service port', commanderParser(parsePort))
    .option('--tag <tag>', 'a tag (repeatable)', collect, [])
    .option('--meta <key=value>', 'a metadata pair (repeatable)', collect, [])
    .option('--depends-on <service>', 'a service this one depends on (repeatable; Konsul\'s Dependencies)', collect, [])
    .option('--ttl <duration>', 'add a TTL health check with this TTL (e.g. 30s); pass it with the agent check endpoints')
    .addHelpText('after', `
Output: "Registered service: <name>" for each service registered.
`)
    .action(lazyAction(() => import('./catalog-actions.ts'), (m) => m.runServicesRegister));

  services.command('deregister')
    .description('deregister a service from the agent, by ID or by the IDs in a JSON definition file')
    .argument('[file]', 'a JSON file with the definitions to deregister (their ID, else their name)')
    .option('--id <id>', 'the ID of the service to deregister')
    .addHelpText('after', `
Output: "Deregistered service: <id>" for each service deregistered.
`)
    .action(lazyAction(() => import('./catalog-actions.ts'), (m) => m.runServicesDeregister));

  services.command('dependencies')
    .description('a service\'s dependencies and dependents (GET /v1/konsul/services/:name/dependencies)')
    .argument('<service>', 'the service name')
    .addOption(formatOption())
    .addHelpText('after', `
Output (table): "Label<spaces>value" lines: Service, Registered, Instances, Dependencies,
TransitiveDependencies, Missing, Dependents, TransitiveDependents (name:distance lists), Depth,
InCycle, Cycles (each as a->b->a).
`)
    .action(lazyAction(() => import('./catalog-actions.ts'), (m) => m.runServicesDependencies));

  program
    .command('health')
    .description('the instances of a service with their health (GET /v1/health/service/:service)')
    .argument('<service>', 'the service name')
    .option('--passing', 'only instances whose every check is passing')
    .option('--tag <tag>', 'only instances with this tag (repeatable)', collect, [])
    .addOption(formatOption())
    .addHelpText('after', `
Output (table): a header, then one line per instance in the catalog's order:
  Node  Address  ServiceID  Port  Status  Checks
Status aggregates the instance's checks (node-level ones included): maintenance > critical > warning
> passing. Checks lists them as CheckID=status, comma-separated. Exit status 0 even when no instance
matches (the header alone is printed).
`)
    .action(lazyAction(() => import('./catalog-actions.ts'), (m) => m.runHealth));
}

function formatOption(): Option {
  return new Option('--format <format>', 'output format').choices(['table', 'json']).default('table');
}

function parsePort(text: string, what: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535) throw new UsageError(`${what} must be a port number (0 to 65535), got "${text}"`);
  return n;
}
