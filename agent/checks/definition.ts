// Check definitions as Consul's agent accepts them (PUT /v1/agent/check/register, a service
// definition's `Check` / `Checks`, config files), parsed into the normalized form the runner uses.
//
// Semantics follow Consul's structs.CheckType (agent/structs/check_type.go: Validate, Type) and the
// agent's addCheck (agent/agent.go):
// - Field names are matched as Consul's decoder does: case-insensitively, snake_case accepted
//   (`success_before_passing`, `tls_skip_verify`, `script_args`, `deregister_critical_service_after`).
// - Durations are Go durations ("10s", "1m30s", "500ms") or numbers of nanoseconds.
// - Validation errors carry Consul's texts. `Validate()`'s texts are answered by the HTTP endpoint as
//   400 "Invalid check: <text>"; the agent's own refusals (scripts disabled) are 500s with the bare text.
// - The check's type is decided in Consul's order (CheckType.Type): grpc, http, ttl, tcp, udp, alias,
//   docker, script, h2ping, os_service.
// - Interval below the minimum (Consul's MinInterval, 1 s) is raised to it by the runner, not refused.
// - FailuresBeforeWarning defaults to FailuresBeforeCritical (agent.addCheck).
// - OutputMaxSize: the agent's limit (4096 by default) unless the definition asks for less.
import { parseGoDuration } from '../../lib/duration.ts';
import { CHECK_STATUSES, type CheckStatus } from '../../fsm/state/catalog-commands.ts';

export type { CheckStatus };
export { CHECK_STATUSES };

/** Consul's checks.DefaultBufSize: the most output kept per result. */
export const DEFAULT_OUTPUT_MAX_BYTES = 4096;
/** Consul's checks.MinInterval. */
export const MIN_INTERVAL_MS = 1000;
/** Timeout of HTTP, TCP and gRPC probes when the definition gives none (Consul's 10 s). */
export const DEFAULT_NETWORK_TIMEOUT_MS = 10_000;
/** Timeout of script checks when the definition gives none (Consul's CheckMonitor: 30 s). */
export const DEFAULT_SCRIPT_TIMEOUT_MS = 30_000;

/** A Go duration as JSON carries it: "10s" or nanoseconds. */
export type GoDurationValue = string | number;

/**
 * A check definition in Consul's wire shape. Every field is optional; field names may also come in
 * any case or snake_case (the parser normalizes them), this interface lists Consul's spelling.
 */
export interface CheckDefinition {
  readonly CheckID?: string;
  /** Alias of CheckID (service definitions and config files use `id`). */
  readonly ID?: string;
  readonly Name?: string;
  readonly ServiceID?: string;
  readonly Notes?: string;
  /** Initial status: "passing" | "warning" | "critical" (default critical). */
  readonly Status?: string;

  readonly HTTP?: string;
  readonly Method?: string;
  readonly Header?: Readonly<Record<string, readonly string[]>>;
  readonly Body?: string;
  readonly DisableRedirects?: boolean;
  readonly TLSSkipVerify?: boolean;
  readonly TLSServerName?: string;

  readonly TCP?: string;
  readonly TCPUseTLS?: boolean;

  readonly GRPC?: string;
  readonly GRPCUseTLS?: boolean;

  readonly TTL?: GoDurationValue;

  /** Script check: the command and its arguments (no shell). `ScriptArgs` is the same field. */
  readonly Args?: readonly string[];
  readonly ScriptArgs?: readonly string[];

  /** Types Consul knows that Konsul stores but does not run (they stay at their status). */
  readonly UDP?: string;
  readonly H2PING?: string;
  readonly AliasNode?: string;
  readonly AliasService?: string;
  readonly DockerContainerID?: string;
  readonly OSService?: string;

  readonly Interval?: GoDurationValue;
  readonly Timeout?: GoDurationValue;
  readonly SuccessBeforePassing?: number;
  readonly FailuresBeforeWarning?: number;
  readonly FailuresBeforeCritical?: number;
  readonly DeregisterCriticalServiceAfter?: GoDurationValue;
  readonly OutputMaxSize?: number;
}

export type CheckType = 'http' | 'tcp' | 'grpc' | 'ttl' | 'script' | 'udp' | 'alias' | 'docker' | 'h2ping' | 'os_service';
/** The types the runner executes; the others are kept at their status. */
export const RUNNABLE_CHECK_TYPES: readonly CheckType[] = ['http', 'tcp', 'grpc', 'ttl', 'script'];

export interface HttpCheckTarget {
  readonly url: string;
  /** The method as given (Go sends it as is), GET by default. */
  readonly method: string;
  /** Header names as given; each value list is sent in order. */
  readonly header: Readonly<Record<string, readonly string[]>>;
  readonly body: string;
  readonly disableRedirects: boolean;
  readonly tlsSkipVerify: boolean;
  readonly tlsServerName: string;
}

export interface TcpCheckTarget {
  /** "host:port" ("[::1]:80" for IPv6). */
  readonly address: string;
  readonly useTls: boolean;
  readonly tlsSkipVerify: boolean;
  readonly tlsServerName: string;
}

export interface GrpcCheckTarget {
  /** The definition's `GRPC` text ("host:port/service"), used in outputs. */
  readonly target: string;
  /** "host:port". */
  readonly address: string;
  /** The service name asked about ("" = the whole server). */
  readonly service: string;
  readonly useTls: boolean;
  readonly tlsSkipVerify: boolean;
  readonly tlsServerName: string;
}

/** A valid check, every default applied. Durations are milliseconds (0 = not set). */
export interface NormalizedCheck {
  readonly checkId: string;
  readonly name: string;
  readonly serviceId: string;
  readonly notes: string;
  /** The definition's Status, or undefined when it named none (the check then starts critical). */
  readonly status: CheckStatus | undefined;
  readonly type: CheckType;
  /** As given (the runner raises it to its minimum). 0 for TTL checks. */
  readonly intervalMs: number;
  /** As given; 0 = the type's default (10 s network, 30 s script). */
  readonly timeoutMs: number;
  readonly ttlMs: number;
  readonly successBeforePassing: number;
  readonly failuresBeforeWarning: number;
  readonly failuresBeforeCritical: number;
  readonly deregisterCriticalServiceAfterMs: number;
  /** The definition's OutputMaxSize (0 = the agent's limit). */
  readonly outputMaxSize: number;
  readonly http?: HttpCheckTarget;
  readonly tcp?: TcpCheckTarget;
  readonly grpc?: GrpcCheckTarget;
  readonly scriptArgs?: readonly string[];
  /** The definition as given, for the catalog's Definition field or persistence. */
  readonly definition: Readonly<Record<string, unknown>>;
}

/** A refused definition: the HTTP status and the text Consul answers. */
export class CheckDefinitionError extends Error {
  constructor(
    readonly httpStatus: 400 | 500,
    message: string,
  ) {
    super(message);
    this.name = 'CheckDefinitionError';
  }
}

export interface ParseCheckOptions {
  /** Scripts run only when enabled (Consul's enable_script_checks). Default false. */
  readonly enableScriptChecks?: boolean;
  /**
   * The check belongs to a service definition: its ID defaults to "service:<id>" (":<n>" appended,
   * 1-based, when the service has several checks) and its name to "Service '<name>' check".
   */
  readonly service?: { readonly id: string; readonly name: string; readonly index?: number; readonly count?: number };
}

export type ParseCheckResult = { readonly ok: true; readonly check: NormalizedCheck } | { readonly ok: false; readonly error: CheckDefinitionError };

/** Normalized lookup of a field: lower case, underscores removed (Consul's decoder rules). */
const fieldKey = (name: string): string => name.toLowerCase().replace(/_/g, '');

class Fields {
  private readonly map = new Map<string, unknown>();

  constructor(readonly raw: Readonly<Record<string, unknown>>) {
    for (const [k, v] of Object.entries(raw)) if (!this.map.has(fieldKey(k)) && v !== null) this.map.set(fieldKey(k), v);
  }

  get(...names: string[]): unknown {
    for (const name of names) {
      const v = this.map.get(fieldKey(name));
      if (v !== undefined) return v;
    }
    return undefined;
  }

  str(...names: string[]): string {
    const v = this.get(...names);
    if (v === undefined) return '';
    if (typeof v !== 'string') throw decodeError(`${names[0]} must be a string`);
    return v;
  }

  bool(...names: string[]): boolean {
    const v = this.get(...names);
    if (v === undefined) return false;
    if (typeof v !== 'boolean') throw decodeError(`${names[0]} must be a boolean`);
    return v;
  }

  int(...names: string[]): number {
    const v = this.get(...names);
    if (v === undefined) return 0;
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw decodeError(`${names[0]} must be an integer`);
    return v;
  }

  strList(...names: string[]): string[] {
    const v = this.get(...names);
    if (v === undefined) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw decodeError(`${names[0]} must be a list of strings`);
    return [...(v as string[])];
  }

  /** Milliseconds; a string is a Go duration, a number is nanoseconds (Go's time.Duration in JSON). */
  durationMs(...names: string[]): number {
    const v = this.get(...names);
    if (v === undefined || v === '') return 0;
    if (typeof v === 'number' && Number.isFinite(v)) return v / 1e6;
    if (typeof v === 'string') {
      const parsed = parseGoDuration(v);
      if (parsed.ok) return parsed.ns / 1e6;
      throw decodeError(parsed.error);
    }
    throw decodeError(`${names[0]}: time: invalid duration ${JSON.stringify(v)}`);
  }
}

function decodeError(detail: string): CheckDefinitionError {
  return new CheckDefinitionError(400, `Request decode failed: ${detail}`);
}

function invalid(text: string): CheckDefinitionError {
  return new CheckDefinitionError(400, `Invalid check: ${text}`);
}

/** Consul's CheckType.Type() over the fields Konsul reads. */
function typeOf(f: Fields, ttlMs: number, scriptArgs: readonly string[]): CheckType | '' {
  if (f.str('GRPC') !== '') return 'grpc';
  if (f.str('HTTP') !== '') return 'http';
  if (ttlMs > 0) return 'ttl';
  if (f.str('TCP') !== '') return 'tcp';
  if (f.str('UDP') !== '') return 'udp';
  if (f.str('AliasNode') !== '' || f.str('AliasService') !== '') return 'alias';
  if (f.str('DockerContainerID') !== '') return 'docker';
  if (scriptArgs.length > 0) return 'script';
  if (f.str('H2PING') !== '') return 'h2ping';
  if (f.str('OSService') !== '') return 'os_service';
  return '';
}

function headerOf(f: Fields): Record<string, string[]> {
  const v = f.get('Header');
  if (v === undefined) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw decodeError('Header must be an object of string lists');
  const out: Record<string, string[]> = {};
  for (const [name, values] of Object.entries(v as Record<string, unknown>)) {
    if (!Array.isArray(values) || values.some((x) => typeof x !== 'string')) throw decodeError(`Header.${name} must be a list of strings`);
    out[name] = [...(values as string[])];
  }
  return out;
}

/** "host:port/service" → address and service (Consul's NewGrpcHealthProbe: split at the first "/"). */
export function splitGrpcTarget(target: string): { address: string; service: string } {
  const slash = target.indexOf('/');
  return slash < 0 ? { address: target, service: '' } : { address: target.slice(0, slash), service: target.slice(slash + 1) };
}

/**
 * Parses and validates a definition. Never throws: a refusal is `{ ok: false, error }` with the
 * HTTP status and Consul's text.
 */
export function parseCheckDefinition(raw: unknown, options: ParseCheckOptions = {}): ParseCheckResult {
  try {
    return { ok: true, check: parseOrThrow(raw, options) };
  } catch (err) {
    if (err instanceof CheckDefinitionError) return { ok: false, error: err };
    throw err;
  }
}

/** The refusal of `parseCheckDefinition`, or null for a valid definition. */
export function validateCheckDefinition(raw: unknown, options: ParseCheckOptions = {}): CheckDefinitionError | null {
  const result = parseCheckDefinition(raw, options);
  return result.ok ? null : result.error;
}

function parseOrThrow(raw: unknown, options: ParseCheckOptions): NormalizedCheck {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw decodeError('check definition must be a JSON object');
  const f = new Fields(raw as Record<string, unknown>);
  const ttlMs = f.durationMs('TTL');
  const intervalMs = f.durationMs('Interval');
  const timeoutMs = f.durationMs('Timeout');
  const scriptArgs = f.get('ScriptArgs') !== undefined ? f.strList('ScriptArgs') : f.strList('Args');
  const successBeforePassing = f.int('SuccessBeforePassing');
  const failuresBeforeCritical = f.int('FailuresBeforeCritical');
  const failuresBeforeWarningGiven = f.int('FailuresBeforeWarning');
  const outputMaxSize = f.int('OutputMaxSize');
  const type = typeOf(f, ttlMs, scriptArgs);

  const service = options.service;
  // The endpoint's own checks come first (AgentRegisterCheck), then CheckType.Validate, then addCheck's.
  let checkId = f.str('CheckID', 'ID');
  let name = f.str('Name');
  if (service !== undefined) {
    if (checkId === '') checkId = `service:${service.id}` + ((service.count ?? 1) > 1 ? `:${(service.index ?? 0) + 1}` : '');
    if (name === '') name = `Service '${service.name}' check`;
  } else {
    if (name === '') throw new CheckDefinitionError(400, 'Missing check name');
    if (checkId === '') checkId = name;
  }

  const status = f.str('Status');
  if (status !== '' && !(CHECK_STATUSES as readonly string[]).includes(status)) throw new CheckDefinitionError(400, service === undefined ? 'Bad check status' : "Status for checks must 'passing', 'warning', 'critical'");

  // Consul's CheckType.Validate, in its order and with its texts.
  const intervalCheck = scriptArgs.length > 0 || ['HTTP', 'TCP', 'UDP', 'GRPC', 'H2PING', 'OSService'].some((k) => f.str(k) !== '');
  const alias = f.str('AliasNode') !== '' || f.str('AliasService') !== '';
  if (intervalMs > 0 && ttlMs > 0) throw invalid('Interval and TTL cannot both be specified');
  if (intervalCheck && intervalMs <= 0) throw invalid('Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks');
  if (intervalCheck && alias) throw invalid('Interval cannot be set for Alias checks');
  if (alias && ttlMs > 0) throw invalid('TTL must be not be set for Alias checks');
  if (!intervalCheck && !alias && ttlMs <= 0) throw invalid('TTL must be > 0 for TTL checks');
  if (outputMaxSize < 0) throw invalid('MaxOutputMaxSize must be positive');
  if (failuresBeforeWarningGiven > failuresBeforeCritical) throw invalid("FailuresBeforeWarning can't be higher than FailuresBeforeCritical");
  if (type === '') throw new CheckDefinitionError(500, 'Check type is not valid');

  if (type === 'script' && options.enableScriptChecks !== true) {
    throw new CheckDefinitionError(500, "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true");
  }

  const tlsSkipVerify = f.bool('TLSSkipVerify');
  const tlsServerName = f.str('TLSServerName');
  const check: {
    -readonly [K in keyof NormalizedCheck]: NormalizedCheck[K];
  } = {
    checkId,
    name,
    serviceId: service?.id ?? f.str('ServiceID'),
    notes: f.str('Notes'),
    status: status === '' ? undefined : (status as CheckStatus),
    type,
    intervalMs,
    timeoutMs,
    ttlMs,
    successBeforePassing,
    failuresBeforeWarning: failuresBeforeWarningGiven === 0 ? failuresBeforeCritical : failuresBeforeWarningGiven,
    failuresBeforeCritical,
    deregisterCriticalServiceAfterMs: f.durationMs('DeregisterCriticalServiceAfter'),
    outputMaxSize,
    definition: { ...(raw as Record<string, unknown>) },
  };
  if (type === 'http') {
    check.http = {
      url: f.str('HTTP'),
      method: f.str('Method') || 'GET',
      header: headerOf(f),
      body: f.str('Body'),
      disableRedirects: f.bool('DisableRedirects'),
      tlsSkipVerify,
      tlsServerName,
    };
  } else if (type === 'tcp') {
    check.tcp = { address: f.str('TCP'), useTls: f.bool('TCPUseTLS'), tlsSkipVerify, tlsServerName };
  } else if (type === 'grpc') {
    const target = f.str('GRPC');
    check.grpc = { target, ...splitGrpcTarget(target), useTls: f.bool('GRPCUseTLS'), tlsSkipVerify, tlsServerName };
  } else if (type === 'script') {
    check.scriptArgs = scriptArgs;
  }
  return check;
}
