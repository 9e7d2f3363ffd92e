// /v1/agent: the agent endpoints a server answers for its own node (developer.hashicorp.com/consul/
// api-docs/agent, agent/service, agent/check; agent/agent_endpoint.go). The state behind them is the
// server's LocalAgent (server/local-agent.ts); /v1/agent/self and /v1/agent/members describe servers.
//
// Texts and statuses follow Consul's agent_endpoint.go: decode errors and missing names are 400,
// unknown services and checks 404 ("Unknown service ID ..."), a TTL update of a check without TTL 500
// ("CheckID ... does not have associated TTL"), maintenance of an unknown service 404.
// Writes answer an empty 200, after the change is persisted and (when a leader is reachable) in the
// catalog; without a leader the change is kept and anti-entropy writes it later, as Consul's agent does.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { CatalogServiceSpec, CheckStatus } from '../../../fsm/state/catalog-commands.ts';
import { badRequest, HttpError } from '../../errors.ts';
import type { LocalAgent, LocalCheck } from '../../local-agent.ts';
import { restoreSection, runtimeSection, snapshotSection } from '../../runtime-stats.ts';
import { acceptRawBodies, methodNotAllowed, sendJson, tailParam } from '../catalog-query.ts';
import {
  agentServiceJson,
  BodyObject,
  checkDefinition,
  checkTypeOf,
  decodeFailed,
  goDuration,
  healthCheckJson,
  isAnyAddress,
  metaProblem,
  parseJsonBody,
  serviceSpecFrom,
} from '../catalog-wire.ts';
import type { ServerContext } from '../context.ts';
import { compileFilter } from '../filter-expression.ts';
import { has, param, type Query } from '../query-options.ts';

export const agentRoutes: FastifyPluginAsync<{ ctx: ServerContext }> = async (app, { ctx }) => {
  acceptRawBodies(app);
  const agent = (): LocalAgent => {
    if (ctx.localAgent === undefined) throw new HttpError(500, 'the local agent is not running');
    return ctx.localAgent;
  };
  await app.register(agentLocalRoutes, { agent, datacenter: ctx.config.datacenter });

  app.get('/v1/agent/self', async () => {
    const { config } = ctx;
    const st = ctx.raft.status();
    const rpc = ctx.cluster.self().rpcAddr;
    const [rpcHost, rpcPort] = splitHostPort(rpc);
    const snapshot = snapshotSection(ctx.raft);
    return {
      Config: {
        Datacenter: config.datacenter,
        NodeName: config.nodeName,
        NodeID: '',
        Server: true,
        Revision: 'konsul',
        Version: ctx.version,
      },
      Member: {
        Name: config.nodeName,
        Addr: rpcHost,
        Port: rpcPort,
        Tags: { role: 'consul', dc: config.datacenter, build: `${ctx.version}:konsul` },
        Status: 1,
      },
      Stats: {
        raft: {
          state: st.role === 'leader' ? 'Leader' : st.role === 'follower' ? 'Follower' : 'Candidate',
          term: String(st.term),
          commit_index: String(st.commit),
          applied_index: String(st.applied),
          last_log_index: String(st.lastIndex),
          num_peers: String(Math.max(0, st.confState.voters.length - 1)),
        },
        // Konsul's own sections (server/runtime-stats.ts): process runtime with event-loop lag, the
        // Raft host's snapshot figures once it keeps them (RaftHost.snapshotStats()), and the
        // staged restore this server is building, if any.
        runtime: runtimeSection(ctx.eventLoopLag),
        ...(snapshot ? { snapshot } : {}),
        restore: restoreSection(ctx.fsm.restoreProgress()),
      },
      Meta: {},
    };
  });

  app.get('/v1/agent/members', async (_request, reply) => {
    const health = ctx.raft.isLeader() ? new Map(ctx.cluster.autopilotHealth().servers.map((s) => [s.id, s.healthy])) : new Map<string, boolean>();
    const members = ctx.cluster.servers().map((server) => {
      const [addr, port] = splitHostPort(server.rpcAddr);
      return {
        Name: server.id,
        Addr: addr,
        Port: port,
        Tags: {
          role: 'consul',
          dc: ctx.config.datacenter,
          port: String(port),
          build: `${ctx.version}:konsul`,
          vsn: '2',
          vsn_min: '2',
          vsn_max: '3',
          raft_vsn: '3',
        },
        // Serf's MemberStatus: 1 alive, 4 failed (the leader's view of Raft contact).
        Status: health.get(server.id) === false ? 4 : 1,
        ProtocolMin: 1,
        ProtocolMax: 5,
        ProtocolCur: 2,
        DelegateMin: 2,
        DelegateMax: 5,
        DelegateCur: 4,
      };
    });
    return sendJson(reply, members);
  });

  methodNotAllowed(app, '/v1/agent/members', ['GET']);
};

/**
 * The agent's own services and checks (/v1/agent/services, checks, service|check register,
 * deregister, TTL updates, maintenance): shared by servers and client agents (agent/app.ts).
 */
export const agentLocalRoutes: FastifyPluginAsync<{ agent: () => LocalAgent; datacenter: string }> = async (app, { agent, datacenter }) => {
  acceptRawBodies(app);
  const empty = (reply: FastifyReply) => reply.code(200).send();

  app.get('/v1/agent/services', async (request, reply) => {
    const filter = param(request.query as Query, 'filter');
    const compiled = filter ? compileFilter(filter) : undefined;
    const out: Record<string, unknown> = {};
    for (const service of agent().listServices()) {
      const json = agentServiceJson(service, datacenter);
      if (compiled === undefined || compiled(json)) out[service.ID] = json;
    }
    return sendJson(reply, out);
  });

  app.get('/v1/agent/service/*', async (request, reply) => {
    const id = tailParam(request, 'Missing service ID');
    const service = agent().getService(id);
    if (service === undefined) throw new HttpError(404, `unknown service ID: ${id}`);
    return sendJson(reply, agentServiceJson(service, datacenter));
  });

  app.get('/v1/agent/checks', async (request, reply) => {
    const filter = param(request.query as Query, 'filter');
    const compiled = filter ? compileFilter(filter) : undefined;
    const out: Record<string, unknown> = {};
    for (const check of agent().listChecks()) {
      const json = healthCheckJson(check);
      if (compiled === undefined || compiled(json)) out[check.CheckID] = json;
    }
    return sendJson(reply, out);
  });

  app.put('/v1/agent/service/register', async (request, reply) => {
    const dc = param(request.query as Query, 'dc');
    // Konsul serves one datacenter (catalog-query.ts checkDatacenter).
    if (dc !== undefined && dc !== '' && dc !== datacenter) throw new HttpError(500, 'No path to datacenter');
    const { service, checks } = serviceRegistrationFrom(parseJsonBody(request.body));
    const query = request.query as Query;
    const replace = has(query, 'replace-existing-checks') && ['', 'true'].includes(param(query, 'replace-existing-checks') ?? '');
    await agent().registerService(service, checks, replace);
    return empty(reply);
  });

  app.put('/v1/agent/service/deregister/*', async (request, reply) => {
    await agent().deregisterService(tailParam(request, 'Missing service ID'));
    return empty(reply);
  });

  app.put('/v1/agent/service/maintenance/*', async (request, reply) => {
    const id = tailParam(request, 'Missing service ID');
    const query = request.query as Query;
    if (!has(query, 'enable')) throw badRequest('Missing value for enable');
    const raw = param(query, 'enable') ?? '';
    const enable = parseGoBool(raw);
    if (enable === null) throw badRequest(`Invalid value for enable: ${JSON.stringify(raw)}`);
    await agent().setServiceMaintenance(id, enable, param(query, 'reason') ?? '');
    return empty(reply);
  });

  app.put('/v1/agent/check/register', async (request, reply) => {
    await agent().registerCheck(checkRegistrationFrom(parseJsonBody(request.body)));
    return empty(reply);
  });

  app.put('/v1/agent/check/deregister/*', async (request, reply) => {
    await agent().deregisterCheck(tailParam(request, 'Missing check ID'));
    return empty(reply);
  });

  const ttlUpdate = (status: CheckStatus) => async (request: FastifyRequest, reply: FastifyReply) => {
    const id = tailParam(request, 'Missing check ID');
    await agent().updateTtl(id, status, param(request.query as Query, 'note') ?? '');
    return empty(reply);
  };
  app.put('/v1/agent/check/pass/*', ttlUpdate('passing'));
  app.put('/v1/agent/check/warn/*', ttlUpdate('warning'));
  app.put('/v1/agent/check/fail/*', ttlUpdate('critical'));

  app.put('/v1/agent/check/update/*', async (request, reply) => {
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
      Interval: intervalMs > 0 ? goDuration(intervalMs) : '',
      Timeout: timeoutMs > 0 ? goDuration(timeoutMs) : '',
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

function splitHostPort(addr: string): [string, number] {
  const i = addr.lastIndexOf(':');
  return i < 0 ? [addr, 0] : [addr.slice(0, i), Number(addr.slice(i + 1))];
}

