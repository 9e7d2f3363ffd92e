// What `konsulctl catalog`, `services` and `health` do; their arguments, options and help are in
// catalog.ts, which imports this module only when a command runs.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { parseDuration, UsageError } from '../args.ts';
import { clientFor, handleErrors, writeStdout } from '../command-support.ts';
import { CliError, encodePathSegments } from '../http-client.ts';

type Format = 'table' | 'json';

interface NodeJson {
  ID: string;
  Node: string;
  Address: string;
  Datacenter: string;
  TaggedAddresses?: Record<string, string> | null;
  Meta?: Record<string, string> | null;
}

interface CheckJson {
  CheckID: string;
  Status: string;
}

interface HealthEntryJson {
  Node: NodeJson;
  Service: { ID: string; Service: string; Address: string; Port: number; Tags: string[] | null };
  Checks: CheckJson[];
}

export const runCatalogServices = handleErrors(async (options: { tags?: boolean; nodeMeta: string[]; format: Format }, command: Command) => {
  const body = await getJson(command, '/v1/catalog/services', [['node-meta', options.nodeMeta]]);
  if (options.format === 'json') return writeJson(body);
  const services = asRecord(body, '/v1/catalog/services') as Record<string, string[] | null>;
  const names = Object.keys(services).sort();
  if (!options.tags) return writeStdout(names.map((n) => `${n}\n`).join(''));
  await writeStdout(formatTable(null, names.map((n) => [n, (services[n] ?? []).join(',')])));
});

export const runCatalogNodes = handleErrors(async (options: { service?: string; detailed?: boolean; nodeMeta: string[]; format: Format }, command: Command) => {
  let nodes: NodeJson[];
  let body: unknown;
  if (options.service !== undefined) {
    body = await getJson(command, `/v1/catalog/service/${encodePathSegments(options.service)}`, [['node-meta', options.nodeMeta]]);
    const seen = new Set<string>();
    nodes = asArray(body, '/v1/catalog/service')
      .map((s) => {
        const o = s as Record<string, unknown>;
        return { ID: String(o['ID'] ?? ''), Node: String(o['Node'] ?? ''), Address: String(o['Address'] ?? ''), Datacenter: String(o['Datacenter'] ?? ''), TaggedAddresses: o['TaggedAddresses'] as Record<string, string>, Meta: o['NodeMeta'] as Record<string, string> };
      })
      .filter((n) => !seen.has(n.Node) && seen.add(n.Node));
  } else {
    body = await getJson(command, '/v1/catalog/nodes', [['node-meta', options.nodeMeta]]);
    nodes = asArray(body, '/v1/catalog/nodes') as NodeJson[];
  }
  if (options.format === 'json') return writeJson(body);
  const pairs = (m: Record<string, string> | null | undefined) =>
    Object.entries(m ?? {})
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
  const header = options.detailed ? ['Node', 'ID', 'Address', 'DC', 'TaggedAddresses', 'Meta'] : ['Node', 'ID', 'Address', 'DC'];
  const rows = nodes.map((n) =>
    options.detailed ? [n.Node, n.ID, n.Address, n.Datacenter, pairs(n.TaggedAddresses), pairs(n.Meta)] : [n.Node, n.ID.slice(0, 8), n.Address, n.Datacenter],
  );
  await writeStdout(formatTable(header, rows));
});

export const runServicesRegister = handleErrors(async (file: string | undefined, options: RegisterOptions, command: Command) => {
  const definitions = file !== undefined ? await definitionsFromFile(file, options) : [definitionFromFlags(options)];
  const client = clientFor(command);
  for (const definition of definitions) {
    await client.put('/v1/agent/service/register', { body: JSON.stringify(definition), contentType: 'application/json' });
    const name = String(definition['Name'] ?? definition['name'] ?? '');
    await writeStdout(`Registered service: ${name}\n`);
  }
});

export const runServicesDeregister = handleErrors(async (file: string | undefined, options: { id?: string }, command: Command) => {
  if ((file === undefined) === (options.id === undefined)) throw new UsageError('give either --id or a definition file');
  const ids =
    options.id !== undefined
      ? [options.id]
      : (await definitionsFromFile(file!, {})).map((d) => String(d['ID'] ?? d['id'] ?? d['Name'] ?? d['name'] ?? ''));
  const client = clientFor(command);
  for (const id of ids) {
    if (id === '') throw new UsageError('a definition has neither an ID nor a name');
    await client.put(`/v1/agent/service/deregister/${encodePathSegments(id)}`);
    await writeStdout(`Deregistered service: ${id}\n`);
  }
});

export const runServicesDependencies = handleErrors(async (service: string, options: { format: Format }, command: Command) => {
  const body = await getJson(command, `/v1/konsul/services/${encodeURIComponent(service)}/dependencies`, []);
  if (options.format === 'json') return writeJson(body);
  const r = body as {
    Service: string;
    Registered: boolean;
    Instances: number;
    Dependencies: string[];
    TransitiveDependencies: { Service: string; Distance: number }[];
    Missing: string[];
    Dependents: string[];
    TransitiveDependents: { Service: string; Distance: number }[];
    Depth: number;
    InCycle: boolean;
    Cycles: string[][];
  };
  const reached = (list: { Service: string; Distance: number }[]) => list.map((x) => `${x.Service}:${x.Distance}`).join(',');
  await writeStdout(
    formatTable(null, [
      ['Service', r.Service],
      ['Registered', String(r.Registered)],
      ['Instances', String(r.Instances)],
      ['Dependencies', r.Dependencies.join(',')],
      ['TransitiveDependencies', reached(r.TransitiveDependencies)],
      ['Missing', r.Missing.join(',')],
      ['Dependents', r.Dependents.join(',')],
      ['TransitiveDependents', reached(r.TransitiveDependents)],
      ['Depth', String(r.Depth)],
      ['InCycle', String(r.InCycle)],
      ['Cycles', r.Cycles.map((c) => c.join('->')).join(',')],
    ]),
  );
});

export const runHealth = handleErrors(async (service: string, options: { passing?: boolean; tag: string[]; format: Format }, command: Command) => {
  const body = await getJson(command, `/v1/health/service/${encodePathSegments(service)}`, [
    ['passing', options.passing ? [''] : []],
    ['tag', options.tag],
  ]);
  if (options.format === 'json') return writeJson(body);
  const entries = asArray(body, '/v1/health/service') as HealthEntryJson[];
  const rows = entries.map((e) => [
    e.Node.Node,
    e.Service.Address || e.Node.Address,
    e.Service.ID,
    String(e.Service.Port),
    aggregateStatus(e.Checks),
    e.Checks.map((c) => `${c.CheckID}=${c.Status}`).join(','),
  ]);
  await writeStdout(formatTable(['Node', 'Address', 'ServiceID', 'Port', 'Status', 'Checks'], rows));
});

interface RegisterOptions {
  name?: string;
  id?: string;
  address?: string;
  port?: number;
  tag?: string[];
  meta?: string[];
  dependsOn?: string[];
  ttl?: string;
}

/** A service definition from the flags, as /v1/agent/service/register takes it. */
export function definitionFromFlags(options: RegisterOptions): Record<string, unknown> {
  if (options.name === undefined || options.name === '') throw new UsageError('--name is required (or give a definition file)');
  const meta: Record<string, string> = {};
  for (const pair of options.meta ?? []) {
    const i = pair.indexOf('=');
    if (i <= 0) throw new UsageError(`--meta must be key=value, got "${pair}"`);
    meta[pair.slice(0, i)] = pair.slice(i + 1);
  }
  const definition: Record<string, unknown> = { Name: options.name };
  if (options.id !== undefined) definition['ID'] = options.id;
  if (options.address !== undefined) definition['Address'] = options.address;
  if (options.port !== undefined) definition['Port'] = options.port;
  if ((options.tag ?? []).length > 0) definition['Tags'] = options.tag;
  if (Object.keys(meta).length > 0) definition['Meta'] = meta;
  if ((options.dependsOn ?? []).length > 0) definition['Dependencies'] = options.dependsOn;
  if (options.ttl !== undefined) {
    parseDuration(options.ttl, '--ttl');
    definition['Check'] = { TTL: options.ttl };
  }
  return definition;
}

/** The definitions in a file: {"service": {...}}, {"services": [...]}, or a bare definition. */
async function definitionsFromFile(file: string, options: RegisterOptions): Promise<Record<string, unknown>[]> {
  const flagsGiven = options.name !== undefined || options.id !== undefined || options.port !== undefined || (options.tag ?? []).length > 0;
  if (flagsGiven) throw new UsageError('give either flags or a definition file, not both');
  let text: string;
  try {
    text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new CliError(`${file} is not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new CliError(`${file} must hold a JSON object`);
  const o = parsed as Record<string, unknown>;
  const key = (name: string) => Object.keys(o).find((k) => k.toLowerCase() === name);
  const one = key('service');
  const many = key('services');
  if (one !== undefined) return [asObject(o[one], file)];
  if (many !== undefined) {
    if (!Array.isArray(o[many])) throw new CliError(`${file}: "services" must be a list`);
    return (o[many] as unknown[]).map((d) => asObject(d, file));
  }
  return [o];
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8');
}

function asObject(value: unknown, file: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new CliError(`${file}: a service definition must be a JSON object`);
  return value as Record<string, unknown>;
}

/** Consul's HealthChecks.AggregatedStatus: maintenance > critical > warning > passing. */
export function aggregateStatus(checks: readonly CheckJson[]): string {
  if (checks.some((c) => c.CheckID === '_node_maintenance' || c.CheckID.startsWith('_service_maintenance:'))) return 'maintenance';
  if (checks.some((c) => c.Status === 'critical')) return 'critical';
  if (checks.some((c) => c.Status === 'warning')) return 'warning';
  return 'passing';
}

async function getJson(command: Command, path: string, repeated: [string, string[]][]): Promise<unknown> {
  // Repeated parameters (?tag=a&tag=b) are built here: the client's query helper takes one value each.
  const parts = repeated.flatMap(([name, values]) => values.map((v) => (v === '' ? encodeURIComponent(name) : `${encodeURIComponent(name)}=${encodeURIComponent(v)}`)));
  const response = await clientFor(command).get(parts.length > 0 ? `${path}?${parts.join('&')}` : path);
  return response.json();
}

function writeJson(body: unknown): Promise<void> {
  return writeStdout(`${JSON.stringify(body, null, 2)}\n`);
}

function asArray(body: unknown, path: string): unknown[] {
  if (!Array.isArray(body)) throw new CliError(`Konsul answered ${path} with something other than a JSON array`);
  return body;
}

function asRecord(body: unknown, path: string): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new CliError(`Konsul answered ${path} with something other than a JSON object`);
  return body as Record<string, unknown>;
}

/** Aligned columns; empty cells are "-", whitespace becomes "_". `header` null: label/value rows. */
export function formatTable(header: readonly string[] | null, rows: readonly (readonly string[])[]): string {
  const all = header === null ? rows : [header, ...rows];
  if (all.length === 0) return '';
  const cells = all.map((row) => row.map((v) => (v.trim() === '' ? '-' : v.trim().replace(/\s+/g, '_'))));
  const columns = Math.max(...cells.map((r) => r.length));
  const widths = Array.from({ length: columns }, (_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((row) => row.map((v, i) => (i === row.length - 1 ? v : v.padEnd(widths[i]! + 2))).join('').trimEnd() + '\n').join('');
}
