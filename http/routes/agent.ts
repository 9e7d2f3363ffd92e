// /v1/agent routes served identically by a server and a client agent (developer.hashicorp.com/consul/
// api-docs/agent, agent/service, agent/check; agent/agent_endpoint.go):
// - the agent's own services and checks, over the process's LocalAgent (agent/core/local-agent.ts);
// - /v1/agent/self and /v1/agent/members, over a small description of the process (AgentSelf):
//   the server and the agent differ in what they know, not in how they answer.
//
// Texts and statuses follow Consul's agent_endpoint.go: decode errors and missing names are 400,
// unknown services and checks 404 ("Unknown service ID ..."), a TTL update of a check without TTL 500
// ("CheckID ... does not have associated TTL"), maintenance of an unknown service 404.
// Writes answer an empty 200, after the change is persisted and (when a leader is reachable) in the
// catalog; without a leader the change is kept and anti-entropy writes it later, as Consul's agent does.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { LocalAgent, LocalCheck } from '../../agent/core/local-agent.ts';
import type { CatalogServiceSpec, CheckStatus } from '../../fsm/state/catalog-commands.ts';
import { formatGoDurationMs } from '../../lib/duration.ts';
import { badRequest, KonsulError } from '../../lib/errors.ts';
import {
  agentServiceJson,
  BodyObject,
  checkDefinition,
  checkTypeOf,
  decodeFailed,
  healthCheckJson,
  isAnyAddress,
  metaProblem,
  parseJsonBody,
  serviceSpecFrom,
} from '../catalog-wire.ts';
import { compileFilter } from '../filter-expression.ts';
import { has, param, type Query } from '../query-options.ts';
import { rawBody } from '../raw-body.ts';
import { methodNotAllowed, sendJson, tailParam } from '../reply.ts';
import { readQuery, writeQuery } from '../schemas.ts';

/** Request bodies of agent writes; Consul's own decoder has no smaller limit that matters here. */
export const MAX_AGENT_BODY_BYTES = 1024 * 1024;

/** A member of the LAN, as /v1/agent/members lists it. */
export interface AgentMember {
  readonly name: string;
  readonly addr: string;
  readonly port: number;
  /** A server (Consul's role "consul") or a client agent (role "node"). */
  readonly server: boolean;
  /** Serf's "failed" (Status 4) rather than "alive" (1). */
  readonly failed: boolean;
}

/** What /v1/agent/self and /v1/agent/members say about this process. */
export interface AgentSelf {
  readonly datacenter: string;
  readonly nodeName: string;
  readonly version: string;
  /** A server (Config.Server, role "consul") or a client agent (role "node"). */
  readonly server: boolean;
  /** Member.Addr and Member.Port of /v1/agent/self. */
  memberAddress(): { readonly addr: string; readonly port: number };
  /** The Stats sections of /v1/agent/self, in order. */
  stats(): Record<string, unknown>;
  /** The LAN members this process knows of (a KonsulError when it cannot tell). */
  members(): Promise<readonly AgentMember[]>;
}

type WithQuery = { Querystring: Query };

const MEMBER_SCHEMA = {
  type: 'object',
  properties: {
    Name: { type: 'string' },
    Addr: { type: 'string' },
    Port: { type: 'number' },
    Tags: { type: 'object', additionalProperties: { type: 'string' } },
    Status: { type: 'number' },
    ProtocolMin: { type: 'number' },
    ProtocolMax: { type: 'number' },
    ProtocolCur: { type: 'number' },
    DelegateMin: { type: 'number' },
    DelegateMax: { type: 'number' },
    DelegateCur: { type: 'number' },
  },
} as const;

/** /v1/agent/self and /v1/agent/members. */
export const agentSelfRoutes: FastifyPluginAsync<{ self: AgentSelf }> = async (app, { self }) => {
  const build = `${self.version}:konsul`;
  const role = self.server ? 'consul' : 'node';

  app.get('/v1/agent/self', async (_request, reply) => {
    const { addr, port } = self.memberAddress();
    return sendJson(reply, {
      Config: { Datacenter: self.datacenter, NodeName: self.nodeName, NodeID: '', Server: self.server, Revision: 'konsul', Version: self.version },
      Member: { Name: self.nodeName, Addr: addr, Port: port, Tags: { role, dc: self.datacenter, build }, Status: 1 },
      Stats: self.stats(),
      Meta: {},
    });
  });

  // Consul lists every LAN member: the servers (role "consul") and the client agents (role "node"),
  // alive (1) or failed (4), with Serf's protocol versions.
  app.get('/v1/agent/members', { schema: { querystring: readQuery('wan', 'segment'), response: { 200: { type: 'array', items: MEMBER_SCHEMA } } } }, async (_request, reply) => {
    const members = (await self.members()).map((m) => ({
      Name: m.name,
      Addr: m.addr,
      Port: m.port,
      Tags: m.server
        ? { role: 'consul', dc: self.datacenter, port: String(m.port), build, vsn: '2', vsn_min: '2', vsn_max: '3', raft_vsn: '3' }
        : { role: 'node', dc: self.datacenter, build, vsn: '2', vsn_min: '2', vsn_max: '3' },
      Status: m.failed ? 4 : 1,
      ProtocolMin: 1,
      ProtocolMax: 5,
      ProtocolCur: 2,
      DelegateMin: 2,
      DelegateMax: 5,
      DelegateCur: 4,
    }));
    return sendJson(reply, members);
  });

  methodNotAllowed(app, '/v1/agent/members', ['GET']);
};

/** The agent's own services and checks (/v1/agent/services, checks, service|check register, deregister, TTL updates, maintenance). */
export const agentLocalRoutes: FastifyPluginAsync<{ agent: () => LocalAgent; datacenter: string }> = async (app, { agent, datacenter }) => {
  await app.register(rawBody, { limitBytes: MAX_AGENT_BODY_BYTES });
  const empty = (reply: FastifyReply) => reply.code(200).send();

  app.get<WithQuery>('/v1/agent/services', { schema: { querystring: readQuery() } }, async (request, reply) => {
    const filter = param(request.query, 'filter');
    const compiled = filter ? compileFilter(filter) : undefined;
    const out: Record<string, unknown> = {};
    for (const service of agent().listServices()) {
      const json = agentServiceJson(service, datacenter);
      if (compiled === undefined || compiled(json)) out[service.ID] = json;
    }
    return sendJson(reply, out);
  });

  app.get<WithQuery>('/v1/agent/service/*', { schema: { querystring: readQuery() } }, async (request, reply) => {
    const id = tailParam(request, 'Missing service ID');
    const service = agent().getService(id);
    if (service === undefined) throw new KonsulError('notFound', `unknown service ID: ${id}`);
    return sendJson(reply, agentServiceJson(service, datacenter));
  });

  app.get<WithQuery>('/v1/agent/checks', { schema: { querystring: readQuery() } }, async (request, reply) => {
    const filter = param(request.query, 'filter');
    const compiled = filter ? compileFilter(filter) : undefined;
    const out: Record<string, unknown> = {};
    for (const check of agent().listChecks()) {
      const json = healthCheckJson(check);
      if (compiled === undefined || compiled(json)) out[check.CheckID] = json;
    }
    return sendJson(reply, out);
  });

  app.put<WithQuery>('/v1/agent/service/register', { schema: { querystring: writeQuery('replace-existing-checks') } }, async (request, reply) => {
    const query = request.query;
    const dc = param(query, 'dc');
    // Konsul serves one datacenter; Consul answers any other with this 500.
    if (dc !== undefined && dc !== '' && dc !== datacenter) throw new KonsulError('internal', 'No path to datacenter');
    const { service, checks } = serviceRegistrationFrom(parseJsonBody(request.body));
    const replace = has(query, 'replace-existing-checks') && ['', 'true'].includes(param(query, 'replace-existing-checks') ?? '');
    await agent().registerService(service, checks, replace);
    return empty(reply);
  });

  app.put('/v1/agent/service/deregister/*', { schema: { querystring: writeQuery() } }, async (request, reply) => {
    await agent().deregisterService(tailParam(request, 'Missing service ID'));
    return empty(reply);
  });

  app.put<WithQuery>('/v1/agent/service/maintenance/*', { schema: { querystring: writeQuery('enable', 'reason') } }, async (request, reply) => {
    const id = tailParam(request, 'Missing service ID');
    const query = request.query;
    if (!has(query, 'enable')) throw badRequest('Missing value for enable');
    const raw = param(query, 'enable') ?? '';
    const enable = parseGoBool(raw);
    if (enable === null) throw badRequest(`Invalid value for enable: ${JSON.stringify(raw)}`);
    await agent().setServiceMaintenance(id, enable, param(query, 'reason') ?? '');
    return empty(reply);
  });

  app.put('/v1/agent/check/register', { schema: { querystring: writeQuery() } }, async (request, reply) => {
    await agent().registerCheck(checkRegistrationFrom(parseJsonBody(request.body)));
    return empty(reply);
  });

  app.put('/v1/agent/check/deregister/*', { schema: { querystring: writeQuery() } }, async (request, reply) => {
    await agent().deregisterCheck(tailParam(request, 'Missing check ID'));
    return empty(reply);
  });

  const ttlUpdate = (status: CheckStatus) => async (request: FastifyRequest<WithQuery>, reply: FastifyReply) => {
    const id = tailParam(request, 'Missing check ID');
    await agent().updateTtl(id, status, param(request.query, 'note') ?? '');
    return empty(reply);
  };
  const ttlOptions = { schema: { querystring: writeQuery('note') } };
  app.put<WithQuery>('/v1/agent/check/pass/*', ttlOptions, ttlUpdate('passing'));
  app.put<WithQuery>('/v1/agent/check/warn/*', ttlOptions, ttlUpdate('warning'));
  app.put<WithQuery>('/v1/agent/check/fail/*', ttlOptions, ttlUpdate('critical'));

  app.put('/v1/agent/check/update/*', { schema: { querystring: writeQuery() } }, async (request, reply) => {
    const body = new BodyObject(parseJsonBody(request.body), '');
    const status = body.str('Status');
    if (status !== 'passing' && status !== 'warning' && status !== 'critical') throw badRequest(`Invalid check status: '${status}'`);
    const id = tailParam(request, 'Missing check ID');
    await agent().updateTtl(id, status, body.str('Output'));
    return empty(reply);
  });

  methodNotAllowed(app, '/v1/agent/services', ['GET']);
  methodNotAllowed(app, '/v1/agent/checks', ['GET']);
  for (const url of [
    '/v1/agent/service/register',
    '/v1/agent/service/deregister/*',
    '/v1/agent/service/maintenance/*',
    '/v1/agent/check/register',
    '/v1/agent/check/deregister/*',
    '/v1/agent/check/pass/*',
    '/v1/agent/check/warn/*',
    '/v1/agent/check/fail/*',
    '/v1/agent/check/update/*',
  ]) {
    methodNotAllowed(app, url, ['PUT']);
  }
};

/**
 * A service definition (PUT /v1/agent/service/register's body, or a config file's "service"): the
 * service and its checks, with Consul's defaults and error texts. Field names match Consul's
 * decoder: any case, snake_case too.
 */
export function serviceRegistrationFrom(value: unknown, path = ''): { service: CatalogServiceSpec; checks: LocalCheck[] } {
  const body = new BodyObject(value, path);
  const name = body.str('Name');
  if (name === '') throw badRequest('Missing service name');
  const service = serviceSpecFrom(body, 'Name', true);
  if (isAnyAddress(service.Address)) throw badRequest('Invalid service address');
  const metaError = metaProblem({ ...service.Meta }, 'Service');
  if (metaError !== null) throw badRequest(`Invalid Service Meta: ${metaError}`);
  const definitions: BodyObject[] = [];
  const single = body.obj('Check');
  if (single !== undefined && !isEmptyCheck(single)) definitions.push(single);
  body.list('Checks').forEach((c, i) => definitions.push(new BodyObject(c, `Checks[${i}]`)));
  const checks = definitions.map((def, i) =>
    localCheckFrom(def, {
      defaultId: definitions.length > 1 ? `service:${service.ID}:${i + 1}` : `service:${service.ID}`,
      defaultName: `Service '${service.Service}' check`,
      serviceId: service.ID,
      badStatus: "Status for checks must 'passing', 'warning', 'critical'",
    }),
  );
  return { service, checks };
}

/** A check definition (PUT /v1/agent/check/register's body, or a config file's "check"). */
export function checkRegistrationFrom(value: unknown, path = ''): LocalCheck {
  const body = new BodyObject(value, path);
  const name = body.str('Name');
  if (name === '') throw badRequest('Missing check name');
  return localCheckFrom(body, { defaultId: name, defaultName: name, serviceId: body.str('ServiceID'), badStatus: 'Bad check status' });
}

/** A `Check: {}` in a service definition is no check (Consul's CheckType.Empty: all fields zero). */
function isEmptyCheck(def: BodyObject): boolean {
  return def.isEmpty();
}

interface CheckDefaults {
  readonly defaultId: string;
  readonly defaultName: string;
  readonly serviceId: string;
  readonly badStatus: string;
}

/** A check definition (Consul's CheckType / CheckDefinition) as the agent keeps it. */
function localCheckFrom(def: BodyObject, defaults: CheckDefaults): LocalCheck {
  const ttlMs = def.durationMs('TTL');
  const intervalMs = def.durationMs('Interval');
  const timeoutMs = def.durationMs('Timeout');
  const type = checkTypeOf(def, ttlMs);
  // Consul's CheckType.Validate.
  const intervalCheck = ['http', 'tcp', 'udp', 'grpc', 'h2ping', 'os_service', 'script', 'docker'].includes(type);
  if (intervalCheck && intervalMs <= 0) throw badRequest('Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks');
  if (type === 'alias' && ttlMs > 0) throw badRequest('Invalid check: TTL must be not be set for Alias checks');
  if (!intervalCheck && type !== 'alias' && ttlMs <= 0) throw badRequest('Invalid check: TTL must be > 0 for TTL checks');
  const status = def.str('Status');
  if (status !== '' && status !== 'passing' && status !== 'warning' && status !== 'critical') throw badRequest(defaults.badStatus);
  const id = def.str('CheckID') || def.str('ID') || defaults.defaultId;
  if (id === '') throw decodeFailed('a check needs an ID or a Name');
  return {
    spec: {
      CheckID: id,
      Name: def.str('Name') || defaults.defaultName,
      Status: status === '' ? 'critical' : status,
      Notes: def.str('Notes'),
      Output: '',
      ServiceID: defaults.serviceId,
      Type: type,
      Interval: intervalMs > 0 ? formatGoDurationMs(intervalMs) : '',
      Timeout: timeoutMs > 0 ? formatGoDurationMs(timeoutMs) : '',
      Definition: checkDefinition(def),
    },
    ttlMs,
    deregisterCriticalAfterMs: def.durationMs('DeregisterCriticalServiceAfter'),
    explicitStatus: status !== '',
    ...thresholdsOf(def),
  };
}

/** The check runner's thresholds, when the definition sets any (kept with the check, not sent to the catalog). */
function thresholdsOf(def: BodyObject): { thresholds?: Record<string, number> } {
  const out: Record<string, number> = {};
  for (const field of ['SuccessBeforePassing', 'FailuresBeforeWarning', 'FailuresBeforeCritical', 'OutputMaxSize']) {
    const v = def.raw(field);
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw decodeFailed(`${field} must be a non-negative integer`);
    if (v > 0) out[field] = v;
  }
  return Object.keys(out).length > 0 ? { thresholds: out } : {};
}

/** Go's strconv.ParseBool. */
function parseGoBool(text: string): boolean | null {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(text)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(text)) return false;
  return null;
}
