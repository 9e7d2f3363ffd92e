// The catalog's Raft commands (register, deregister, check status) and their validation.
//
// The shapes follow Consul's RegisterRequest / DeregisterRequest (agent/structs/structs.go): the node,
// service and check specs keep Consul's PascalCase field names, so the HTTP layer maps a request body
// onto a command field by field. Everything the HTTP layer defaults (Service.ID from the name, a
// check's status, Weights) is filled in before proposing: a command carries complete values, and the
// FSM never guesses.
//
// Validation checks types, the exact set of fields and size limits (every server keeps the catalog in
// memory and in every snapshot). Rules that depend on the state (a check naming an unknown service, a
// node ID that aliases another node) are the table's (catalog.ts): they answer an error, identically on
// every replica. This file imports nothing from commands.ts, which imports it.
import { onlyFields } from '../command-shape.ts';

export const CHECK_STATUSES = ['passing', 'warning', 'critical'] as const;
export type CheckStatus = (typeof CHECK_STATUSES)[number];

/** Limits (Konsul's; Consul's metadata limits are enforced with its texts by the HTTP layer). */
export const CATALOG_LIMITS = {
  /** Node names, service names and IDs, check IDs and names, addresses, datacenter. */
  nameLength: 512,
  tags: 256,
  tagLength: 512,
  /** Consul's metaMaxKeyPairs / metaKeyMaxLength / metaValueMaxLength. */
  metaPairs: 64,
  metaKeyLength: 128,
  metaValueLength: 512,
  taggedAddresses: 64,
  dependencies: 256,
  /** Notes and Output (agents truncate Output at 4 KiB; catalog writers may send more). */
  textLength: 64 * 1024,
  /** A check's Definition, as JSON. */
  definitionBytes: 16 * 1024,
  checksPerRegister: 64,
  /** Consul's weights are ints; Konsul keeps them within 32 bits. */
  maxWeight: 2 ** 31 - 1,
} as const;

export interface ServiceAddressSpec {
  readonly Address: string;
  readonly Port: number;
}

export interface WeightsSpec {
  readonly Passing: number;
  readonly Warning: number;
}

/** A node as RegisterRequest carries it. */
export interface CatalogNodeSpec {
  readonly Node: string;
  /** '' or a UUID. */
  readonly ID: string;
  readonly Address: string;
  readonly Datacenter: string;
  readonly TaggedAddresses: Readonly<Record<string, string>>;
  readonly Meta: Readonly<Record<string, string>>;
}

/** A service instance (Consul's NodeService), complete: ID already defaulted to the name. */
export interface CatalogServiceSpec {
  readonly ID: string;
  readonly Service: string;
  readonly Tags: readonly string[];
  readonly Address: string;
  readonly Port: number;
  readonly Meta: Readonly<Record<string, string>>;
  readonly EnableTagOverride: boolean;
  readonly Weights: WeightsSpec;
  readonly TaggedAddresses: Readonly<Record<string, ServiceAddressSpec>>;
  /**
   * Konsul's extension (BACK-025): names of the services this one depends on. Not a Consul field;
   * answered only when non-empty, so Consul clients see Consul's shapes.
   */
  readonly Dependencies: readonly string[];
}

/** A health check on the request's node; ServiceID '' = a node-level check. */
export interface CatalogCheckSpec {
  readonly CheckID: string;
  readonly Name: string;
  readonly Status: CheckStatus;
  readonly Notes: string;
  readonly Output: string;
  readonly ServiceID: string;
  /** Consul's check type ("ttl", "http", "tcp", ... or ""). */
  readonly Type: string;
  /** Display durations ("10s", or ""). */
  readonly Interval: string;
  readonly Timeout: string;
  /** Consul's HealthCheckDefinition, kept as the JSON object it was given. */
  readonly Definition: Readonly<Record<string, JsonValue>>;
}

export type JsonValue = string | number | boolean | null | readonly JsonValue[] | { readonly [key: string]: JsonValue };

/** PUT /v1/catalog/register (and every agent-side registration): node, optional service, checks. */
export interface CatalogRegisterCommand {
  readonly type: 'catalogRegister';
  readonly node: CatalogNodeSpec;
  /** Keep an existing node's fields (Consul's SkipNodeUpdate); a missing node is still created. */
  readonly skipNodeUpdate: boolean;
  readonly service?: CatalogServiceSpec;
  readonly checks: readonly CatalogCheckSpec[];
}

/**
 * PUT /v1/catalog/deregister. Consul's precedence (fsm applyDeregister): with a serviceId the
 * service and its checks go; else with a checkId that check; else the node with everything on it.
 */
export interface CatalogDeregisterCommand {
  readonly type: 'catalogDeregister';
  readonly node: string;
  readonly serviceId?: string;
  readonly checkId?: string;
}

/** A check's new status and output (TTL pass/warn/fail, expiries), without re-sending the check. */
export interface CatalogCheckStatusCommand {
  readonly type: 'catalogCheckStatus';
  readonly node: string;
  readonly checkId: string;
  readonly status: CheckStatus;
  readonly output: string;
}

export type CatalogCommand = CatalogRegisterCommand | CatalogDeregisterCommand | CatalogCheckStatusCommand;

export function isCatalogCommandType(type: unknown): type is CatalogCommand['type'] {
  return type === 'catalogRegister' || type === 'catalogDeregister' || type === 'catalogCheckStatus';
}

export function isCheckStatus(value: unknown): value is CheckStatus {
  return value === 'passing' || value === 'warning' || value === 'critical';
}

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** Consul's node IDs: 36-character UUIDs. */
export function isNodeId(text: string): boolean {
  return UUID.test(text);
}

/** Returns why `c` is not a valid catalog command, or null. `c.type` is one of the catalog types. */
export function validateCatalogCommand(c: Record<string, unknown>): string | null {
  switch (c['type']) {
    case 'catalogRegister': {
      const fields = onlyFields(c, ['type', 'node', 'skipNodeUpdate', 'checks'], ['service']);
      if (fields) return fields;
      const node = checkNodeSpec(c['node']);
      if (node) return `catalogRegister: node: ${node}`;
      if (typeof c['skipNodeUpdate'] !== 'boolean') return 'catalogRegister: skipNodeUpdate must be a boolean';
      if (c['service'] !== undefined) {
        const service = checkServiceSpec(c['service']);
        if (service) return `catalogRegister: service: ${service}`;
      }
      const checks = c['checks'];
      if (!Array.isArray(checks) || checks.length > CATALOG_LIMITS.checksPerRegister) {
        return `catalogRegister: checks must be an array of at most ${CATALOG_LIMITS.checksPerRegister} checks`;
      }
      const seen = new Set<string>();
      for (let i = 0; i < checks.length; i++) {
        const problem = checkCheckSpec(checks[i]);
        if (problem) return `catalogRegister: check ${i}: ${problem}`;
        const id = (checks[i] as CatalogCheckSpec).CheckID.toLowerCase();
        if (seen.has(id)) return `catalogRegister: check ${i}: duplicate CheckID`;
        seen.add(id);
      }
      return null;
    }
    case 'catalogDeregister': {
      const fields = onlyFields(c, ['type', 'node'], ['serviceId', 'checkId']);
      if (fields) return fields;
      const node = checkName(c['node'], false);
      if (node) return `catalogDeregister: node ${node}`;
      for (const field of ['serviceId', 'checkId']) {
        if (c[field] === undefined) continue;
        const problem = checkName(c[field], false);
        if (problem) return `catalogDeregister: ${field} ${problem}`;
      }
      return null;
    }
    case 'catalogCheckStatus': {
      const fields = onlyFields(c, ['type', 'node', 'checkId', 'status', 'output'], []);
      if (fields) return fields;
      const node = checkName(c['node'], false);
      if (node) return `catalogCheckStatus: node ${node}`;
      const check = checkName(c['checkId'], false);
      if (check) return `catalogCheckStatus: checkId ${check}`;
      if (!isCheckStatus(c['status'])) return 'catalogCheckStatus: status must be passing, warning or critical';
      const output = checkText(c['output'], CATALOG_LIMITS.textLength);
      if (output) return `catalogCheckStatus: output ${output}`;
      return null;
    }
    default:
      return `unknown command type ${JSON.stringify(c['type'])}`;
  }
}

/** Why `value` is not a valid spec, or null (also used for snapshot sections). */
export function checkNodeSpec(value: unknown): string | null {
  const o = asObject(value);
  if (!o) return 'must be an object';
  const fields = exactFields(o, ['Node', 'ID', 'Address', 'Datacenter', 'TaggedAddresses', 'Meta']);
  if (fields) return fields;
  const name = checkName(o['Node'], false);
  if (name) return `Node ${name}`;
  if (typeof o['ID'] !== 'string' || (o['ID'] !== '' && !isNodeId(o['ID']))) return 'ID must be "" or a UUID';
  for (const field of ['Address', 'Datacenter']) {
    const problem = checkName(o[field], true);
    if (problem) return `${field} ${problem}`;
  }
  const tagged = checkStringMap(o['TaggedAddresses'], CATALOG_LIMITS.taggedAddresses, CATALOG_LIMITS.nameLength, CATALOG_LIMITS.nameLength);
  if (tagged) return `TaggedAddresses ${tagged}`;
  const meta = checkStringMap(o['Meta'], CATALOG_LIMITS.metaPairs, CATALOG_LIMITS.metaKeyLength, CATALOG_LIMITS.metaValueLength);
  if (meta) return `Meta ${meta}`;
  return null;
}

/** Why `value` is not a valid spec, or null (also used for snapshot sections). */
export function checkServiceSpec(value: unknown): string | null {
  const o = asObject(value);
  if (!o) return 'must be an object';
  const fields = exactFields(o, ['ID', 'Service', 'Tags', 'Address', 'Port', 'Meta', 'EnableTagOverride', 'Weights', 'TaggedAddresses', 'Dependencies']);
  if (fields) return fields;
  for (const field of ['ID', 'Service']) {
    const problem = checkName(o[field], false);
    if (problem) return `${field} ${problem}`;
  }
  const address = checkName(o['Address'], true);
  if (address) return `Address ${address}`;
  const tags = checkStringList(o['Tags'], CATALOG_LIMITS.tags, CATALOG_LIMITS.tagLength);
  if (tags) return `Tags ${tags}`;
  if (!isPort(o['Port'])) return 'Port must be an integer in 0..65535';
  const meta = checkStringMap(o['Meta'], CATALOG_LIMITS.metaPairs, CATALOG_LIMITS.metaKeyLength, CATALOG_LIMITS.metaValueLength);
  if (meta) return `Meta ${meta}`;
  if (typeof o['EnableTagOverride'] !== 'boolean') return 'EnableTagOverride must be a boolean';
  const weights = asObject(o['Weights']);
  if (!weights || exactFields(weights, ['Passing', 'Warning']) !== null) return 'Weights must be {Passing, Warning}';
  if (!isInt(weights['Passing'], 1, CATALOG_LIMITS.maxWeight)) return 'Weights.Passing must be an integer >= 1';
  if (!isInt(weights['Warning'], 0, CATALOG_LIMITS.maxWeight)) return 'Weights.Warning must be an integer >= 0';
  const tagged = asObject(o['TaggedAddresses']);
  if (!tagged) return 'TaggedAddresses must be an object';
  const entries = Object.entries(tagged);
  if (entries.length > CATALOG_LIMITS.taggedAddresses) return `TaggedAddresses has more than ${CATALOG_LIMITS.taggedAddresses} entries`;
  for (const [key, address] of entries) {
    if (checkName(key, false) !== null) return 'TaggedAddresses has a bad key';
    const a = asObject(address);
    if (!a || exactFields(a, ['Address', 'Port']) !== null) return `TaggedAddresses.${key} must be {Address, Port}`;
    if (checkName(a['Address'], true) !== null || !isPort(a['Port'])) return `TaggedAddresses.${key} must be {Address, Port}`;
  }
  const dependencies = checkStringList(o['Dependencies'], CATALOG_LIMITS.dependencies, CATALOG_LIMITS.nameLength);
  if (dependencies) return `Dependencies ${dependencies}`;
  if ((o['Dependencies'] as string[]).some((d) => d === '')) return 'Dependencies must not contain an empty name';
  return null;
}

/** Why `value` is not a valid spec, or null (also used for snapshot sections). */
export function checkCheckSpec(value: unknown): string | null {
  const o = asObject(value);
  if (!o) return 'must be an object';
  const fields = exactFields(o, ['CheckID', 'Name', 'Status', 'Notes', 'Output', 'ServiceID', 'Type', 'Interval', 'Timeout', 'Definition']);
  if (fields) return fields;
  const id = checkName(o['CheckID'], false);
  if (id) return `CheckID ${id}`;
  for (const field of ['Name', 'ServiceID', 'Type', 'Interval', 'Timeout']) {
    const problem = checkName(o[field], true);
    if (problem) return `${field} ${problem}`;
  }
  if (!isCheckStatus(o['Status'])) return 'Status must be passing, warning or critical';
  for (const field of ['Notes', 'Output']) {
    const problem = checkText(o[field], CATALOG_LIMITS.textLength);
    if (problem) return `${field} ${problem}`;
  }
  const definition = asObject(o['Definition']);
  if (!definition) return 'Definition must be an object';
  const problem = checkJson(definition, 0);
  if (problem) return `Definition ${problem}`;
  if (JSON.stringify(definition).length > CATALOG_LIMITS.definitionBytes) return `Definition larger than ${CATALOG_LIMITS.definitionBytes} bytes`;
  return null;
}

function checkJson(value: unknown, depth: number): string | null {
  if (depth > 8) return 'is nested too deeply';
  if (value === null || typeof value === 'boolean') return null;
  if (typeof value === 'number') return Number.isFinite(value) ? null : 'has a non-finite number';
  if (typeof value === 'string') return isWellFormed(value) ? null : 'has a string that is not well-formed Unicode';
  if (Array.isArray(value)) {
    for (const item of value) {
      const problem = checkJson(item, depth + 1);
      if (problem) return problem;
    }
    return null;
  }
  const o = asObject(value);
  if (!o) return 'is not JSON';
  for (const [key, item] of Object.entries(o)) {
    if (!isWellFormed(key)) return 'has a key that is not well-formed Unicode';
    const problem = checkJson(item, depth + 1);
    if (problem) return problem;
  }
  return null;
}

export function asObject(value: unknown): Record<string, unknown> | null {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array) ? (value as Record<string, unknown>) : null;
}

function exactFields(o: Record<string, unknown>, fields: readonly string[]): string | null {
  for (const field of fields) if (o[field] === undefined) return `missing field ${field}`;
  for (const field of Object.keys(o)) if (!fields.includes(field)) return `unknown field ${field}`;
  return null;
}

export function checkName(value: unknown, emptyAllowed: boolean): string | null {
  if (typeof value !== 'string') return 'must be a string';
  if (!emptyAllowed && value === '') return 'must not be empty';
  if (value.length > CATALOG_LIMITS.nameLength) return `longer than ${CATALOG_LIMITS.nameLength} characters`;
  if (!isWellFormed(value)) return 'is not well-formed Unicode';
  return null;
}

function checkText(value: unknown, maxLength: number): string | null {
  if (typeof value !== 'string') return 'must be a string';
  if (value.length > maxLength) return `longer than ${maxLength} characters`;
  if (!isWellFormed(value)) return 'is not well-formed Unicode';
  return null;
}

export function checkStringList(value: unknown, maxItems: number, maxLength: number): string | null {
  if (!Array.isArray(value)) return 'must be an array of strings';
  if (value.length > maxItems) return `has more than ${maxItems} items`;
  for (const item of value) {
    if (typeof item !== 'string' || item.length > maxLength || !isWellFormed(item)) return `must hold strings of at most ${maxLength} characters`;
  }
  return null;
}

function checkStringMap(value: unknown, maxPairs: number, maxKey: number, maxValue: number): string | null {
  const o = asObject(value);
  if (!o) return 'must be an object of strings';
  const entries = Object.entries(o);
  if (entries.length > maxPairs) return `has more than ${maxPairs} pairs`;
  for (const [key, item] of entries) {
    if (key === '' || key.length > maxKey || !isWellFormed(key)) return `has a key that is empty, longer than ${maxKey} characters or not well-formed`;
    if (typeof item !== 'string' || item.length > maxValue || !isWellFormed(item)) return `has a value that is not a string of at most ${maxValue} characters`;
  }
  return null;
}

function isInt(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max;
}

function isPort(value: unknown): value is number {
  return isInt(value, 0, 65535);
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** True if `s` round-trips through UTF-8 (the snapshot encoding) unchanged. */
function isWellFormed(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}
