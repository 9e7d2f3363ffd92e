// /v1/operator/raft and /v1/operator/autopilot: Consul's operator API with Consul's field names,
// statuses and error texts (agent/operator_endpoint.go, api/operator_raft.go,
// api/operator_autopilot.go), so that `consul operator ...`, the Go/Python/Ruby clients and Terraform
// work unchanged against Konsul. In Konsul a server's Raft ID is its node name, so ID = Node.
import type { FastifyPluginAsync } from 'fastify';
import { has, param, parseQueryOptions, parseUint, type Query } from '../../../http/query-options.ts';
import { sendJson } from '../../../http/reply.ts';
import { readQuery, writeQuery } from '../../../http/schemas.ts';
import { formatGoDurationMs, parseGoDurationMs } from '../../../lib/duration.ts';
import { badRequest, KonsulError, NO_LEADER_TEXT } from '../../../lib/errors.ts';
import { ClusterError, type AutopilotConfig } from '../../cluster/cluster-service.ts';
import { checkDatacenter } from '../catalog-query.ts';
import { acceptJsonBodies, queryWithOwn, type ClusterRouteOptions } from './cluster.ts';

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

const TEXT = { type: 'string' } as const;
const NUMBER = { type: 'number' } as const;
const BOOLEAN = { type: 'boolean' } as const;
/** api.RaftConfiguration, fields in Consul's order. */
const RAFT_CONFIGURATION = {
  type: 'object',
  properties: {
    Servers: {
      type: 'array',
      items: {
        type: 'object',
        properties: { ID: TEXT, Node: TEXT, Address: TEXT, Leader: BOOLEAN, ProtocolVersion: TEXT, Voter: BOOLEAN, LastIndex: NUMBER },
      },
    },
    Index: NUMBER,
  },
} as const;
/** api.OperatorHealthReply, fields in Consul's order. */
const AUTOPILOT_HEALTH = {
  type: 'object',
  properties: {
    Healthy: BOOLEAN,
    FailureTolerance: NUMBER,
    Servers: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          ID: TEXT,
          Name: TEXT,
          Address: TEXT,
          SerfStatus: TEXT,
          Version: TEXT,
          Leader: BOOLEAN,
          LastContact: TEXT,
          LastTerm: NUMBER,
          LastIndex: NUMBER,
          Healthy: BOOLEAN,
          Voter: BOOLEAN,
          StableSince: TEXT,
        },
      },
    },
  },
} as const;
/** api.AutopilotConfiguration, fields in Consul's order. */
const AUTOPILOT_CONFIGURATION = {
  type: 'object',
  properties: {
    CleanupDeadServers: BOOLEAN,
    LastContactThreshold: TEXT,
    MaxTrailingLogs: NUMBER,
    MinQuorum: NUMBER,
    ServerStabilizationTime: TEXT,
    RedundancyZoneTag: TEXT,
    DisableUpgradeMigration: BOOLEAN,
    UpgradeVersionTag: TEXT,
    CreateIndex: NUMBER,
    ModifyIndex: NUMBER,
  },
} as const;

type WithQuery = { Querystring: Query };

export const operatorRoutes: FastifyPluginAsync<ClusterRouteOptions> = async (app, { ctx, cluster }) => {
  acceptJsonBodies(app, AUTOPILOT_DECODE_PREFIX);

  /**
   * Consul's query handling for reads: ?dc, ?index/?wait syntax, ?stale vs ?consistent; returns
   * whether ?stale was given. These reads are forwarded to the leader in Consul, not gated or
   * blocking: no readEndpoint, and no X-Consul-* headers.
   */
  const readOptions = (query: Query): { stale: boolean } => {
    checkDatacenter(ctx, query);
    const { consistency } = parseQueryOptions(query);
    return { stale: consistency === 'stale' };
  };
  /** Consul forwards these reads to the leader: without one (and without ?stale) they fail with its text. */
  const requireLeader = () => {
    if (cluster.leaderId() === '') throw new KonsulError('noLeader', NO_LEADER_TEXT);
  };

  app.get<WithQuery>('/v1/operator/raft/configuration', { schema: { querystring: readQuery(), response: { 200: RAFT_CONFIGURATION } } }, async (request, reply) => {
    if (!readOptions(request.query).stale) requireLeader();
    const lastIndexById = new Map(cluster.autopilotHealth().servers.map((s) => [s.id, s.lastIndex]));
    return sendJson(reply, {
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
    });
  });

  app.delete<WithQuery>('/v1/operator/raft/peer', {
    schema: { querystring: queryWithOwn(writeQuery(), { id: { type: 'string', maxLength: 256 }, address: { type: 'string', maxLength: 300 } }) },
  }, async (request, reply) => {
    const query = request.query;
    checkDatacenter(ctx, query);
    const id = param(query, 'id');
    const address = param(query, 'address');
    const hasId = id !== undefined;
    const hasAddress = address !== undefined;
    if (!hasId && !hasAddress) throw badRequest("Must specify either ?id with the server's ID or ?address with IP:port of peer to remove");
    if (hasId && hasAddress) throw badRequest('Must specify only one of ?id or ?address');
    // Consul answers an unknown peer with a 500 and this text (its RPC error, passed through).
    const notInConfiguration = hasId
      ? `id ${JSON.stringify(id)} was not found in the Raft configuration`
      : `address ${JSON.stringify(address)} was not found in the Raft configuration`;
    if ((hasId ? id : address) === '') throw new KonsulError('internal', notInConfiguration);
    await asConsulOperator(() => cluster.remove(hasId ? { id } : { address }), notInConfiguration);
    // Consul answers 200 with an empty body.
    return reply.code(200).send();
  });

  app.post<WithQuery>('/v1/operator/raft/transfer-leader', {
    schema: { querystring: queryWithOwn(writeQuery(), { id: { type: 'string', maxLength: 256 } }), response: { 200: { type: 'object', properties: { Success: BOOLEAN } } } },
  }, async (request, reply) => {
    const query = request.query;
    checkDatacenter(ctx, query);
    // Consul: an empty or missing ?id lets Raft pick the most up-to-date voter.
    const id = param(query, 'id');
    await asConsulOperator(() => cluster.transferLeader(id ? id : undefined));
    return sendJson(reply, { Success: true });
  });

  app.get<WithQuery>('/v1/operator/autopilot/health', {
    schema: { querystring: readQuery(), response: { 200: AUTOPILOT_HEALTH, 429: AUTOPILOT_HEALTH } },
  }, async (request, reply) => {
    // Consul always asks the leader here (it forces a consistent read), ?stale or not.
    readOptions(request.query);
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
        LastContact: readableDuration(s.lastContactMs),
        LastTerm: s.lastTerm,
        LastIndex: s.lastIndex,
        Healthy: s.healthy,
        Voter: s.voter,
        StableSince: goTimeToSecond(s.stableSince),
      })),
    };
    // Consul: "Reply with status 429 if something is unhealthy", with the same body.
    return sendJson(reply.code(health.healthy ? 200 : 429), body);
  });

  app.get<WithQuery>('/v1/operator/autopilot/configuration', {
    schema: { querystring: readQuery(), response: { 200: AUTOPILOT_CONFIGURATION } },
  }, async (request, reply) => {
    if (!readOptions(request.query).stale) requireLeader();
    const config = cluster.autopilotConfig();
    return sendJson(reply, {
      CleanupDeadServers: config.cleanupDeadServers,
      LastContactThreshold: readableDuration(config.lastContactThresholdMs),
      MaxTrailingLogs: UNSUPPORTED_AUTOPILOT_DEFAULTS.MaxTrailingLogs,
      MinQuorum: config.minQuorum,
      ServerStabilizationTime: UNSUPPORTED_AUTOPILOT_DEFAULTS.ServerStabilizationTime,
      RedundancyZoneTag: UNSUPPORTED_AUTOPILOT_DEFAULTS.RedundancyZoneTag,
      DisableUpgradeMigration: UNSUPPORTED_AUTOPILOT_DEFAULTS.DisableUpgradeMigration,
      UpgradeVersionTag: UNSUPPORTED_AUTOPILOT_DEFAULTS.UpgradeVersionTag,
      CreateIndex: AUTOPILOT_CONFIG_INDEX,
      ModifyIndex: AUTOPILOT_CONFIG_INDEX,
    });
  });

  app.put<{ Querystring: Query; Body: AutopilotConfigBody }>('/v1/operator/autopilot/configuration', {
    schema: { querystring: queryWithOwn(writeQuery(), { cas: { type: 'string' } }), body: autopilotConfigBodySchema },
  }, async (request, reply) => {
    const query = request.query;
    checkDatacenter(ctx, query);
    const update = autopilotUpdateFrom(request.body);
    let casOk = true;
    if (has(query, 'cas')) {
      const text = param(query, 'cas') ?? '';
      const cas = parseUint(text);
      if (cas === null) throw badRequest(`Error parsing cas value: strconv.ParseUint: parsing ${JSON.stringify(text)}: invalid syntax`);
      casOk = cas === AUTOPILOT_CONFIG_INDEX;
    }
    if (casOk) await asConsulOperator(() => cluster.setAutopilotConfig(update));
    // Consul answers true for a plain PUT, and the CAS outcome for ?cas.
    return sendJson(reply, casOk ? 'true' : 'false');
  });
};

/**
 * Runs a cluster operation with Consul's operator statuses, which differ from /v1/cluster's: Consul
 * passes the errors of its operator RPCs through as 500s with their text; only request validation
 * is a 400. "No cluster leader" keeps Consul's exact text. `notInConfiguration` is the text of an
 * unknown peer (a 500 too).
 */
async function asConsulOperator<T>(operation: () => T | Promise<T>, notInConfiguration?: string): Promise<T> {
  try {
    return await operation();
  } catch (err) {
    if (!(err instanceof ClusterError)) throw err;
    if (err.code === 'notFound' && notInConfiguration !== undefined) throw new KonsulError('internal', notInConfiguration);
    if (err.code === 'badRequest') throw badRequest(err.message);
    if (err.code === 'noLeader') throw new KonsulError('noLeader', NO_LEADER_TEXT);
    throw new KonsulError('internal', err.message);
  }
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
  const ms = parseGoDurationMs(value);
  if (ms === null || ms < 0) throw badRequest(`${AUTOPILOT_DECODE_PREFIX}time: invalid duration ${JSON.stringify(value)}`);
  return ms;
}

/**
 * A duration in milliseconds as Consul's ReadableDuration sends it (Go's Duration.String()); -1
 * (never) is Go's -1ns, which Consul sends for a server the leader has never heard from.
 */
export function readableDuration(ms: number): string {
  return ms === -1 ? '-1ns' : formatGoDurationMs(ms);
}

/** Consul sends StableSince rounded to the second, in UTC, as Go's time.Time JSON (RFC 3339). */
export function goTimeToSecond(iso: string): string {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return '0001-01-01T00:00:00Z'; // Go's zero time
  return new Date(Math.round(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}
