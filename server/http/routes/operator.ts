// /v1/operator/raft and /v1/operator/autopilot: Consul's operator API with Consul's field names,
// statuses and error texts (agent/operator_endpoint.go, api/operator_raft.go,
// api/operator_autopilot.go), so that `consul operator ...`, the Go/Python/Ruby clients and Terraform
// work unchanged against Konsul. In Konsul a server's Raft ID is its node name, so ID = Node.
import type { FastifyPluginAsync } from 'fastify';
import type { AutopilotConfig, ClusterError } from '../../cluster/cluster-service.ts';
import { badRequest, HttpError, NO_LEADER_TEXT } from '../../errors.ts';
import type { ServerContext } from '../context.ts';
import { parseDurationMs, parseQueryOptions, parseUint, type Query } from '../query-options.ts';
import { acceptJsonBodies, callCluster, commonQuerySchema, type ClusterRouteOptions } from './cluster.ts';

/** Consul sends the Raft protocol version as a string; Konsul speaks the equivalent of version 3. */
const RAFT_PROTOCOL_VERSION = '3';

/** Consul's defaults (api.NewAutopilotConfiguration) for the settings Konsul accepts but does not use. */
const UNSUPPORTED_AUTOPILOT_DEFAULTS = {
  MaxTrailingLogs: 250,
  ServerStabilizationTime: '10s',
  RedundancyZoneTag: '',
  DisableUpgradeMigration: false,
  UpgradeVersionTag: '',
} as const;

/** Consul's defaults for the settings Konsul uses: a PUT replaces the whole configuration. */
const AUTOPILOT_DEFAULTS = { cleanupDeadServers: true, lastContactThresholdMs: 200, minQuorum: 0 } as const;

/**
 * Konsul does not keep a Raft index for the autopilot configuration, so it reports 0 for CreateIndex
 * and ModifyIndex, and a ?cas PUT succeeds exactly when it names that index. (`consul operator
 * autopilot set-config` reads the configuration and writes it back with ?cas=<ModifyIndex>.)
 */
const AUTOPILOT_CONFIG_INDEX = 0;

// Type-checked by durationMsField: a union `type` makes Ajv log strict-mode warnings, and `anyOf`
// under fastify's coerceTypes would turn null into 0 and numbers into strings.
const DURATION = { description: 'Go duration string ("200ms") or nanoseconds; null = default' } as const;
const UINT = { type: 'integer', minimum: 0 } as const;

const autopilotConfigBodySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    CleanupDeadServers: { type: 'boolean' },
    LastContactThreshold: DURATION,
    MaxTrailingLogs: UINT,
    MinQuorum: UINT,
    ServerStabilizationTime: DURATION,
    RedundancyZoneTag: { type: 'string' },
    DisableUpgradeMigration: { type: 'boolean' },
    UpgradeVersionTag: { type: 'string' },
    // Read-only: `set-config` sends back what it read.
    CreateIndex: UINT,
    ModifyIndex: UINT,
  },
} as const;

export interface AutopilotConfigBody {
  CleanupDeadServers?: boolean;
  LastContactThreshold?: unknown;
  MaxTrailingLogs?: number;
  MinQuorum?: number;
  ServerStabilizationTime?: unknown;
  RedundancyZoneTag?: string;
  DisableUpgradeMigration?: boolean;
  UpgradeVersionTag?: string;
  CreateIndex?: number;
  ModifyIndex?: number;
}

const AUTOPILOT_DECODE_PREFIX = 'Error parsing autopilot config: ';

export const operatorRoutes: FastifyPluginAsync<ClusterRouteOptions> = async (app, { ctx, cluster }) => {
  acceptJsonBodies(app, AUTOPILOT_DECODE_PREFIX);

  /** Consul's query handling for reads: ?dc, ?index/?wait syntax, ?stale vs ?consistent; returns whether ?stale was given. */
  const readOptions = (query: Query): { stale: boolean } => {
    checkDatacenter(ctx, query);
    const { consistency } = parseQueryOptions(query);
    return { stale: consistency === 'stale' };
  };
  /** Consul forwards these reads to the leader: without one (and without ?stale) they fail with its text. */
  const requireLeader = () => {
    if (cluster.leaderId() === '') throw new HttpError(500, NO_LEADER_TEXT);
  };

  app.get('/v1/operator/raft/configuration', { schema: { querystring: readQuerySchema } }, async (request) => {
    if (!readOptions(request.query as Query).stale) requireLeader();
    const lastIndexById = new Map(cluster.autopilotHealth().servers.map((s) => [s.id, s.lastIndex]));
    return {
      Servers: cluster.servers().map((s) => ({
        ID: s.id,
        Node: s.id,
        Address: s.rpcAddr,
        Leader: s.leader,
        ProtocolVersion: RAFT_PROTOCOL_VERSION,
        Voter: s.voter,
        LastIndex: lastIndexById.get(s.id) ?? 0,
      })),
      Index: cluster.configurationIndex(),
    };
  });

  app.delete('/v1/operator/raft/peer', {
    schema: {
      querystring: {
        ...commonQuerySchema,
        properties: { ...commonQuerySchema.properties, id: { type: 'string', maxLength: 256 }, address: { type: 'string', maxLength: 300 } },
      },
    },
  }, async (request, reply) => {
    const query = request.query as { id?: string; address?: string } & Query;
    checkDatacenter(ctx, query);
    const hasId = query.id !== undefined;
    const hasAddress = query.address !== undefined;
    if (!hasId && !hasAddress) throw badRequest("Must specify either ?id with the server's ID or ?address with IP:port of peer to remove");
    if (hasId && hasAddress) throw badRequest('Must specify only one of ?id or ?address');
    // Consul answers an unknown peer with a 500 and this text (its RPC error, passed through).
    const notInConfiguration = hasId
      ? `id ${JSON.stringify(query.id)} was not found in the Raft configuration`
      : `address ${JSON.stringify(query.address)} was not found in the Raft configuration`;
    if ((hasId ? query.id : query.address) === '') throw new HttpError(500, notInConfiguration);
    await callCluster(
      () => cluster.remove(hasId ? { id: query.id } : { address: query.address }),
      (err) => (err.code === 'notFound' ? new HttpError(500, notInConfiguration) : consulStatusFor(err)),
    );
    // Consul answers 200 with an empty body.
    return reply.code(200).send();
  });

  app.post('/v1/operator/raft/transfer-leader', {
    schema: { querystring: { ...commonQuerySchema, properties: { ...commonQuerySchema.properties, id: { type: 'string', maxLength: 256 } } } },
  }, async (request) => {
    const query = request.query as { id?: string } & Query;
    checkDatacenter(ctx, query);
    // Consul: an empty or missing ?id lets Raft pick the most up-to-date voter.
    await callCluster(() => cluster.transferLeader(query.id ? query.id : undefined), consulStatusFor);
    return { Success: true };
  });

  app.get('/v1/operator/autopilot/health', { schema: { querystring: readQuerySchema } }, async (request, reply) => {
    // Consul always asks the leader here (it forces a consistent read), ?stale or not.
    readOptions(request.query as Query);
    requireLeader();
    const health = cluster.autopilotHealth();
    const { lastContactThresholdMs } = cluster.autopilotConfig();
    const selfId = cluster.self().id;
    const body = {
      Healthy: health.healthy,
      FailureTolerance: health.failureTolerance,
      Servers: health.servers.map((s) => ({
        ID: s.id,
        Name: s.name,
        Address: s.rpcAddr,
        // Konsul has no gossip layer: a server the leader hears from within the threshold is "alive".
        SerfStatus: s.lastContactMs >= 0 && s.lastContactMs <= lastContactThresholdMs ? 'alive' : 'failed',
        Version: s.id === selfId ? ctx.version : '',
        Leader: s.leader,
        LastContact: goDuration(s.lastContactMs),
        LastTerm: s.lastTerm,
        LastIndex: s.lastIndex,
        Healthy: s.healthy,
        Voter: s.voter,
        StableSince: goTimeToSecond(s.stableSince),
      })),
    };
    // Consul: "Reply with status 429 if something is unhealthy", with the same body.
    return reply.code(health.healthy ? 200 : 429).send(body);
  });

  app.get('/v1/operator/autopilot/configuration', { schema: { querystring: readQuerySchema } }, async (request) => {
    if (!readOptions(request.query as Query).stale) requireLeader();
    const config = cluster.autopilotConfig();
    return {
      CleanupDeadServers: config.cleanupDeadServers,
      LastContactThreshold: goDuration(config.lastContactThresholdMs),
      MaxTrailingLogs: UNSUPPORTED_AUTOPILOT_DEFAULTS.MaxTrailingLogs,
      MinQuorum: config.minQuorum,
      ServerStabilizationTime: UNSUPPORTED_AUTOPILOT_DEFAULTS.ServerStabilizationTime,
      RedundancyZoneTag: UNSUPPORTED_AUTOPILOT_DEFAULTS.RedundancyZoneTag,
      DisableUpgradeMigration: UNSUPPORTED_AUTOPILOT_DEFAULTS.DisableUpgradeMigration,
      UpgradeVersionTag: UNSUPPORTED_AUTOPILOT_DEFAULTS.UpgradeVersionTag,
      CreateIndex: AUTOPILOT_CONFIG_INDEX,
      ModifyIndex: AUTOPILOT_CONFIG_INDEX,
    };
  });

  app.put<{ Body: AutopilotConfigBody }>('/v1/operator/autopilot/configuration', {
    schema: {
      querystring: { ...commonQuerySchema, properties: { ...commonQuerySchema.properties, cas: { type: 'string' } } },
      body: autopilotConfigBodySchema,
    },
  }, async (request, reply) => {
    const query = request.query as { cas?: string } & Query;
    checkDatacenter(ctx, query);
    const update = autopilotUpdateFrom(request.body);
    let casOk = true;
    if (query.cas !== undefined) {
      const cas = parseUint(query.cas);
      if (cas === null) throw badRequest(`Error parsing cas value: strconv.ParseUint: parsing ${JSON.stringify(query.cas)}: invalid syntax`);
      casOk = cas === AUTOPILOT_CONFIG_INDEX;
    }
    if (casOk) await callCluster(() => cluster.setAutopilotConfig(update), consulStatusFor);
    // Consul answers true for a plain PUT, and the CAS outcome for ?cas.
    return reply.type('application/json').send(casOk ? 'true' : 'false');
  });
};

const readQuerySchema = {
  ...commonQuerySchema,
  properties: { ...commonQuerySchema.properties, index: { type: 'string' }, wait: { type: 'string' } },
} as const;

/** Konsul serves one datacenter; Consul answers any other with this 500. */
function checkDatacenter(ctx: ServerContext, query: Query): void {
  const dc = query.dc;
  if (typeof dc === 'string' && dc !== '' && dc !== ctx.config.datacenter) throw new HttpError(500, 'No path to datacenter');
}

/**
 * Consul passes the errors of its operator RPCs through as 500s with their text; only request
 * validation is a 400. "No cluster leader" keeps Consul's exact text.
 */
function consulStatusFor(err: ClusterError): HttpError {
  if (err.code === 'badRequest') return new HttpError(400, err.message);
  if (err.code === 'noLeader') return new HttpError(500, NO_LEADER_TEXT);
  return new HttpError(500, err.message);
}

/**
 * The new configuration from a PUT body, Consul-style: a field left out takes Consul's default (the
 * body replaces the whole configuration). Settings Konsul does not implement are validated and ignored.
 */
export function autopilotUpdateFrom(body: AutopilotConfigBody): Partial<AutopilotConfig> {
  const threshold = durationMsField(body.LastContactThreshold, 'LastContactThreshold');
  durationMsField(body.ServerStabilizationTime, 'ServerStabilizationTime');
  return {
    cleanupDeadServers: body.CleanupDeadServers ?? AUTOPILOT_DEFAULTS.cleanupDeadServers,
    lastContactThresholdMs: threshold ?? AUTOPILOT_DEFAULTS.lastContactThresholdMs,
    minQuorum: body.MinQuorum ?? AUTOPILOT_DEFAULTS.minQuorum,
  };
}

/** Consul's ReadableDuration: a Go duration string ("200ms") or a number of nanoseconds; null means unset. */
function durationMsField(value: unknown, field: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' && typeof value !== 'number') {
    throw badRequest(`${AUTOPILOT_DECODE_PREFIX}${field} must be a duration such as "200ms" or a number of nanoseconds`);
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw badRequest(`${AUTOPILOT_DECODE_PREFIX}${field} must not be negative`);
    return value / 1e6;
  }
  const ms = parseDurationMs(value);
  if (ms === null) throw badRequest(`${AUTOPILOT_DECODE_PREFIX}time: invalid duration ${JSON.stringify(value)}`);
  return ms;
}

/**
 * Go's time.Duration.String() of a duration in milliseconds, as Consul's ReadableDuration sends it:
 * "0s", "850µs", "4.123ms", "1.5s", "1m30s", "1h0m0s"; -1 (never) is Go's -1ns, which Consul sends
 * for a server the leader has never heard from.
 */
export function goDuration(ms: number): string {
  if (ms === -1) return '-1ns';
  let ns = Math.round(ms * 1e6);
  if (ns === 0) return '0s';
  const sign = ns < 0 ? '-' : '';
  ns = Math.abs(ns);
  if (ns < 1e3) return `${sign}${ns}ns`;
  if (ns < 1e6) return `${sign}${withFraction(ns, 3)}µs`;
  if (ns < 1e9) return `${sign}${withFraction(ns, 6)}ms`;
  const [fraction, wholeSeconds] = fractionDigits(ns, 9);
  let text = `${wholeSeconds % 60}${fraction}s`;
  const minutes = Math.floor(wholeSeconds / 60);
  if (minutes > 0) {
    text = `${minutes % 60}m${text}`;
    const hours = Math.floor(minutes / 60);
    if (hours > 0) text = `${hours}h${text}`;
  }
  return `${sign}${text}`;
}

function withFraction(value: number, precision: number): string {
  const [fraction, whole] = fractionDigits(value, precision);
  return `${whole}${fraction}`;
}

/** The `precision` lowest decimal digits of `value` as ".ddd" without trailing zeros ('' if all zero), and the rest. */
function fractionDigits(value: number, precision: number): [string, number] {
  let digits = '';
  let printing = false;
  let rest = value;
  for (let i = 0; i < precision; i++) {
    const digit = rest % 10;
    printing ||= digit !== 0;
    if (printing) digits = `${digit}${digits}`;
    rest = Math.floor(rest / 10);
  }
  return [printing ? `.${digits}` : '', rest];
}

/** Consul sends StableSince rounded to the second, in UTC, as Go's time.Time JSON (RFC 3339). */
export function goTimeToSecond(iso: string): string {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return '0001-01-01T00:00:00Z'; // Go's zero time
  return new Date(Math.round(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}
