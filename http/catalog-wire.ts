// Consul's JSON shapes for the catalog, health and agent endpoints, and the request bodies they take.
//
// Shapes (field order as Consul's Go structs marshal them; agent/structs/structs.go, api/*.go):
// - Node (catalog/nodes, health Node): ID, Node, Address, Datacenter, TaggedAddresses, Meta, indexes.
// - ServiceNode (catalog/service, flattened): node fields then Service* fields, ServiceProxy and
//   ServiceConnect as Consul writes them for a typical service.
// - NodeService (health/service Service, catalog/node Services): ID, Service, Tags, Address, ...
// - HealthCheck: Node, CheckID, Name, Status, Notes, Output, ServiceID, ServiceName, ServiceTags,
//   Type, Interval, Timeout, ExposedPort, Definition, indexes.
// - AgentService (/v1/agent/services): no indexes, Datacenter last, Tags [] and Meta {} never null.
// Deliberate differences: empty maps are {} (Consul writes null for a map nobody set); Tags are always
// [] (Consul already does that on the list endpoints). Konsul's extension field, Dependencies /
// ServiceDependencies (BACK-025), appears only when non-empty.
//
// Request bodies are read as Consul's decoder reads them: field names case-insensitively and with
// snake_case accepted (mapstructure + TranslateKeys), unknown fields ignored, map keys kept as sent.
import { isNodeId } from '../fsm/state/catalog-commands.ts';
import type { CatalogCheckSpec, CatalogServiceSpec, JsonValue, ServiceAddressSpec, WeightsSpec } from '../fsm/state/catalog-commands.ts';
import type { CatalogCheck, CatalogNode, CatalogService } from '../fsm/state/catalog.ts';
import { badRequest } from '../lib/errors.ts';
import { formatGoDurationMs, parseGoDurationMs } from '../lib/duration.ts';

// -------------------------------------------------------------------------------------------
// Rendering
// -------------------------------------------------------------------------------------------

export interface NodeJson {
  ID: string;
  Node: string;
  Address: string;
  Datacenter: string;
  TaggedAddresses: Record<string, string>;
  Meta: Record<string, string>;
  CreateIndex: number;
  ModifyIndex: number;
}

export function nodeJson(n: CatalogNode): NodeJson {
  return {
    ID: n.ID,
    Node: n.Node,
    Address: n.Address,
    Datacenter: n.Datacenter,
    TaggedAddresses: { ...n.TaggedAddresses },
    Meta: { ...n.Meta },
    CreateIndex: n.CreateIndex,
    ModifyIndex: n.ModifyIndex,
  };
}

function taggedAddressesJson(t: Readonly<Record<string, ServiceAddressSpec>>): Record<string, { Address: string; Port: number }> {
  const out: Record<string, { Address: string; Port: number }> = {};
  for (const [k, v] of Object.entries(t)) out[k] = { Address: v.Address, Port: v.Port };
  return out;
}

const hasKeys = (o: object): boolean => Object.keys(o).length > 0;

/** /v1/catalog/service/:name: one flattened ServiceNode. */
export function serviceNodeJson(s: CatalogService, n: CatalogNode): Record<string, unknown> {
  return {
    ID: n.ID,
    Node: n.Node,
    Address: n.Address,
    Datacenter: n.Datacenter,
    TaggedAddresses: { ...n.TaggedAddresses },
    NodeMeta: { ...n.Meta },
    ServiceKind: '',
    ServiceID: s.ID,
    ServiceName: s.Service,
    ServiceTags: [...s.Tags],
    ServiceAddress: s.Address,
    ...(hasKeys(s.TaggedAddresses) ? { ServiceTaggedAddresses: taggedAddressesJson(s.TaggedAddresses) } : {}),
    ServiceWeights: { Passing: s.Weights.Passing, Warning: s.Weights.Warning },
    ServiceMeta: { ...s.Meta },
    ServicePort: s.Port,
    ServiceEnableTagOverride: s.EnableTagOverride,
    ServiceProxy: { Mode: '', MeshGateway: {}, Expose: {} },
    ServiceConnect: {},
    ...(s.Dependencies.length > 0 ? { ServiceDependencies: [...s.Dependencies] } : {}),
    CreateIndex: s.CreateIndex,
    ModifyIndex: s.ModifyIndex,
  };
}

/** A NodeService (health/service's Service, catalog/node's Services values). */
export function nodeServiceJson(s: CatalogService): Record<string, unknown> {
  return {
    ID: s.ID,
    Service: s.Service,
    Tags: [...s.Tags],
    Address: s.Address,
    ...(hasKeys(s.TaggedAddresses) ? { TaggedAddresses: taggedAddressesJson(s.TaggedAddresses) } : {}),
    Meta: { ...s.Meta },
    Port: s.Port,
    Weights: { Passing: s.Weights.Passing, Warning: s.Weights.Warning },
    EnableTagOverride: s.EnableTagOverride,
    Proxy: { Mode: '', MeshGateway: {}, Expose: {} },
    Connect: {},
    ...(s.Dependencies.length > 0 ? { Dependencies: [...s.Dependencies] } : {}),
    CreateIndex: s.CreateIndex,
    ModifyIndex: s.ModifyIndex,
  };
}

export interface HealthCheckJson {
  Node: string;
  CheckID: string;
  Name: string;
  Status: string;
  Notes: string;
  Output: string;
  ServiceID: string;
  ServiceName: string;
  ServiceTags: string[];
  Type: string;
  Interval: string;
  Timeout: string;
  ExposedPort: number;
  Definition: Record<string, JsonValue>;
  CreateIndex: number;
  ModifyIndex: number;
}

export function healthCheckJson(c: CatalogCheck): HealthCheckJson {
  return {
    Node: c.Node,
    CheckID: c.CheckID,
    Name: c.Name,
    Status: c.Status,
    Notes: c.Notes,
    Output: c.Output,
    ServiceID: c.ServiceID,
    ServiceName: c.ServiceName,
    ServiceTags: [...c.ServiceTags],
    Type: c.Type,
    Interval: c.Interval,
    Timeout: c.Timeout,
    ExposedPort: 0,
    Definition: { ...c.Definition } as Record<string, JsonValue>,
    CreateIndex: c.CreateIndex,
    ModifyIndex: c.ModifyIndex,
  };
}

/** /v1/agent/services values (Consul's buildAgentService). */
export function agentServiceJson(s: CatalogServiceSpec, datacenter: string): Record<string, unknown> {
  return {
    ID: s.ID,
    Service: s.Service,
    Tags: [...s.Tags],
    Meta: { ...s.Meta },
    Port: s.Port,
    Address: s.Address,
    ...(hasKeys(s.TaggedAddresses) ? { TaggedAddresses: taggedAddressesJson(s.TaggedAddresses) } : {}),
    Weights: { Passing: s.Weights.Passing, Warning: s.Weights.Warning },
    EnableTagOverride: s.EnableTagOverride,
    ...(s.Dependencies.length > 0 ? { Dependencies: [...s.Dependencies] } : {}),
    Datacenter: datacenter,
  };
}

// -------------------------------------------------------------------------------------------
// Request bodies
// -------------------------------------------------------------------------------------------

/** Consul's answer to a body it cannot decode (400). */
export const decodeFailed = (message: string) => badRequest(`Request decode failed: ${message}`);

/** Parses a JSON request body as Consul does (an empty body is Go's "EOF"). */
export function parseJsonBody(body: unknown): unknown {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.alloc(0);
  const text = bytes.toString('utf8');
  if (text.trim() === '') throw decodeFailed('EOF');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw decodeFailed((err as Error).message);
  }
}

/** Field names compared as Consul's decoder does: case-insensitively, snake_case accepted. */
const normalizeField = (name: string): string => name.toLowerCase().replace(/_/g, '');

/** A decoded JSON object whose fields are looked up by normalized name. */
export class BodyObject {
  private readonly fields = new Map<string, unknown>();

  constructor(
    value: unknown,
    private readonly path: string,
  ) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw decodeFailed(`${path || 'body'} must be a JSON object`);
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      // The first spelling wins, as with Go's decoder meeting the same field twice is undefined anyway.
      if (!this.fields.has(normalizeField(k))) this.fields.set(normalizeField(k), v);
    }
  }

  static optional(value: unknown, path: string): BodyObject | undefined {
    return value === undefined || value === null ? undefined : new BodyObject(value, path);
  }

  private where(name: string): string {
    return this.path ? `${this.path}.${name}` : name;
  }

  raw(name: string): unknown {
    const v = this.fields.get(normalizeField(name));
    return v === null ? undefined : v;
  }

  has(name: string): boolean {
    return this.raw(name) !== undefined;
  }

  /** No field holds a value other than Go's zero values (null, "", 0, false, [], {}). */
  isEmpty(): boolean {
    return [...this.fields.values()].every(
      (v) => v === null || v === '' || v === 0 || v === false || (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && v !== null && Object.keys(v).length === 0),
    );
  }

  str(name: string, fallback = ''): string {
    const v = this.raw(name);
    if (v === undefined) return fallback;
    if (typeof v !== 'string') throw decodeFailed(`${this.where(name)} must be a string`);
    return v;
  }

  bool(name: string, fallback = false): boolean {
    const v = this.raw(name);
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') throw decodeFailed(`${this.where(name)} must be a boolean`);
    return v;
  }

  int(name: string, fallback = 0): number {
    const v = this.raw(name);
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw decodeFailed(`${this.where(name)} must be an integer`);
    return v;
  }

  strList(name: string): string[] {
    const v = this.raw(name);
    if (v === undefined) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw decodeFailed(`${this.where(name)} must be a list of strings`);
    return v as string[];
  }

  strMap(name: string): Record<string, string> {
    const v = this.raw(name);
    if (v === undefined) return {};
    if (typeof v !== 'object' || Array.isArray(v) || Object.values(v as object).some((x) => typeof x !== 'string')) {
      throw decodeFailed(`${this.where(name)} must be an object of strings`);
    }
    return { ...(v as Record<string, string>) };
  }

  obj(name: string): BodyObject | undefined {
    return BodyObject.optional(this.raw(name), this.where(name));
  }

  list(name: string): unknown[] {
    const v = this.raw(name);
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw decodeFailed(`${this.where(name)} must be a list`);
    return v;
  }

  /** A Go duration: "10s", or a number of nanoseconds. Answers milliseconds (0 when absent). */
  durationMs(name: string): number {
    const v = this.raw(name);
    if (v === undefined || v === '') return 0;
    if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v / 1e6;
    if (typeof v === 'string') {
      const ms = parseGoDurationMs(v);
      if (ms !== null && ms >= 0) return ms;
    }
    throw decodeFailed(`${this.where(name)}: time: invalid duration ${JSON.stringify(v)}`);
  }
}

/** Consul's ValidateWeights. */
export function weightsProblem(w: WeightsSpec): string | null {
  if (w.Passing < 1) return 'Passing must be greater than 0';
  if (w.Warning < 0) return 'Warning must be greater or equal than 0';
  return null;
}

const META_KEY = /^[a-zA-Z0-9_-]+$/;

/** Consul's validateMetaPair over a whole map (structs.ValidateNodeMetadata / ValidateServiceMetadata). */
export function metaProblem(meta: Record<string, string>, what: 'Node' | 'Service', allowConsulPrefix = false): string | null {
  if (Object.keys(meta).length > 64) return `${what} metadata cannot contain more than 64 key/value pairs`;
  for (const [key, value] of Object.entries(meta)) {
    if (key === '') return 'Key cannot be blank';
    if (!META_KEY.test(key)) return 'Key contains invalid characters';
    if (key.length > 128) return 'Key is too long (limit: 128 characters)';
    if (!allowConsulPrefix && key.startsWith('consul-')) return "Key prefix 'consul-' is reserved for internal use";
    if (value.length > 512) return 'Value is too long (limit: 512 characters)';
  }
  return null;
}

/** Consul's ipaddr.IsAny: an address that means "every interface" cannot be dialled. */
export function isAnyAddress(address: string): boolean {
  return address === '0.0.0.0' || address === '::' || address === '[::]';
}

function taggedServiceAddresses(body: BodyObject, name: string): Record<string, ServiceAddressSpec> {
  const raw = body.raw(name);
  if (raw === undefined) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw decodeFailed(`${name} must be an object`);
  const out: Record<string, ServiceAddressSpec> = {};
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    const a = new BodyObject(value, `${name}.${key}`);
    out[key] = { Address: a.str('Address'), Port: a.int('Port') };
  }
  return out;
}

/**
 * The service fields shared by /v1/catalog/register's Service and /v1/agent/service/register.
 * `nameField` is "Service" in the catalog, "Name" for the agent. Weights: Consul's defaults
 * {Passing: 1, Warning: 1} when absent; `strictWeights` (the agent) refuses invalid ones, the catalog
 * replaces them with the defaults (NodeService.ToServiceNode).
 */
export function serviceSpecFrom(body: BodyObject, nameField: 'Service' | 'Name', strictWeights: boolean): CatalogServiceSpec {
  const kind = body.str('Kind');
  if (kind !== '') throw badRequest(`Service kind ${JSON.stringify(kind)} is not supported by Konsul (service mesh is not implemented)`);
  const name = body.str(nameField);
  let weights: WeightsSpec = { Passing: 1, Warning: 1 };
  const w = body.obj('Weights');
  if (w !== undefined) {
    const given = { Passing: w.int('Passing'), Warning: w.int('Warning') };
    const problem = weightsProblem(given);
    if (problem !== null && strictWeights) throw badRequest(`Invalid Weights: ${problem}`);
    if (problem === null) weights = given;
  }
  const dependencies = body.strList('Dependencies');
  if (dependencies.some((d) => d === '')) throw decodeFailed('Dependencies must not contain an empty name');
  const port = body.int('Port');
  if (port < 0 || port > 65535) throw decodeFailed('Port must be in 0..65535');
  return {
    ID: body.str('ID') || name,
    Service: name,
    Tags: body.strList('Tags'),
    Address: body.str('Address'),
    Port: port,
    Meta: body.strMap('Meta'),
    EnableTagOverride: body.bool('EnableTagOverride'),
    Weights: weights,
    TaggedAddresses: taggedServiceAddresses(body, 'TaggedAddresses'),
    Dependencies: [...new Set(dependencies)],
  };
}

/** Consul's CheckType.Type() over the fields Konsul keeps. */
export function checkTypeOf(def: BodyObject, ttlMs: number): string {
  if (def.str('GRPC') !== '') return 'grpc';
  if (def.str('HTTP') !== '') return 'http';
  if (ttlMs > 0) return 'ttl';
  if (def.str('TCP') !== '') return 'tcp';
  if (def.str('UDP') !== '') return 'udp';
  if (def.str('AliasNode') !== '' || def.str('AliasService') !== '') return 'alias';
  if (def.str('DockerContainerID') !== '') return 'docker';
  if (def.strList('ScriptArgs').length > 0 || def.strList('Args').length > 0) return 'script';
  if (def.str('H2PING') !== '') return 'h2ping';
  if (def.str('OSService') !== '') return 'os_service';
  return '';
}

/** The Definition fields Consul keeps for a check (HealthCheckDefinition), from its definition body. */
export function checkDefinition(def: BodyObject): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const field of ['HTTP', 'TLSServerName', 'Method', 'Body', 'TCP', 'UDP', 'GRPC', 'OSService', 'H2PING', 'AliasNode', 'AliasService', 'DockerContainerID', 'Shell']) {
    const v = def.str(field);
    if (v !== '') out[field] = v;
  }
  for (const field of ['TLSSkipVerify', 'GRPCUseTLS', 'DisableRedirects']) if (def.bool(field)) out[field] = true;
  const header = def.raw('Header');
  if (header !== undefined) {
    if (typeof header !== 'object' || header === null || Array.isArray(header)) throw decodeFailed('Header must be an object of string lists');
    out['Header'] = header as Record<string, JsonValue>;
  }
  const args = def.strList('ScriptArgs').length > 0 ? def.strList('ScriptArgs') : def.strList('Args');
  if (args.length > 0) out['ScriptArgs'] = args;
  // Consul's HealthCheckDefinition also takes IntervalDuration etc. (node-consul sends those).
  for (const field of ['Interval', 'Timeout', 'DeregisterCriticalServiceAfter']) {
    const ms = def.durationMs(field) || def.durationMs(`${field}Duration`);
    if (ms > 0) out[field] = formatGoDurationMs(ms);
  }
  return out;
}

/** One check of /v1/catalog/register (Consul's HealthCheck, with checkPreApply's defaults). */
export function catalogCheckSpecFrom(value: unknown, node: string, path: string): CatalogCheckSpec {
  const c = new BodyObject(value, path);
  const checkNode = c.str('Node') || node;
  const id = c.str('CheckID') || c.str('Name');
  if (id === '') throw badRequest('Missing check ID (CheckID or Name)');
  if (checkNode.toLowerCase() !== node.toLowerCase()) {
    throw badRequest(`Node '${checkNode}' for check '${id}' doesn't match register request node '${node}'`);
  }
  const status = c.str('Status') || 'critical';
  if (status !== 'passing' && status !== 'warning' && status !== 'critical') throw badRequest('Bad check status');
  const def = c.obj('Definition') ?? new BodyObject({}, `${path}.Definition`);
  const definition = checkDefinition(def);
  return {
    CheckID: id,
    Name: c.str('Name'),
    Status: status,
    Notes: c.str('Notes'),
    Output: c.str('Output'),
    ServiceID: c.str('ServiceID'),
    Type: c.str('Type') || checkTypeOf(def, 0),
    Interval: typeof definition['Interval'] === 'string' ? definition['Interval'] : c.str('Interval'),
    Timeout: typeof definition['Timeout'] === 'string' ? definition['Timeout'] : c.str('Timeout'),
    Definition: definition,
  };
}

/** A node ID in a request: "" or a UUID (Consul's text; a 400 here, where Consul's RPC answers 500). */
export function checkNodeId(id: string): void {
  if (id !== '' && !isNodeId(id)) throw badRequest(`Bad node ID: uuid string is wrong length`);
}
