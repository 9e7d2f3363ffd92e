// /v1/cluster: Konsul's own view of its Raft cluster (members, leader, Raft progress, replication) and
// the operations an operator asks for (join, remove, snapshot, leadership transfer). PascalCase JSON
// like Consul's API; durations are milliseconds in fields named ...Ms (-1 = never / unknown).
// Consul's own /v1/operator endpoints, byte for byte, are in operator.ts.
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { ClusterError, type ClusterService, type ClusterStats, type ServerInfo } from '../../cluster/cluster-service.ts';
import { badRequest, clusterErrorToHttp, type HttpError } from '../../errors.ts';
import type { ServerContext } from '../context.ts';

export interface ClusterRouteOptions {
  readonly ctx: ServerContext;
  readonly cluster: ClusterService;
}


/** Runs a ClusterService call, translating its ClusterErrors with `translate`. */
export async function callCluster<T>(fn: () => T | Promise<T>, translate: (err: ClusterError) => HttpError = clusterErrorToHttp): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ClusterError) throw translate(err);
    throw err;
  }
}

const MAX_BODY_BYTES = 64 * 1024;

/**
 * Within the calling (encapsulated) plugin: bodies are JSON whatever their Content-Type (Consul's
 * clients and `curl -d` send none or form encoding), and a route with a body schema gets Go-style
 * decoding errors prefixed with `errorPrefix` (Consul's "Request decode failed: " style): "EOF" for
 * a missing body, `json: unknown field "X"` for a field the schema does not declare. The field check
 * runs before validation because fastify's Ajv is configured with removeAdditional, which would
 * silently drop such fields instead of rejecting them. Plain JSON.parse is safe here: "__proto__"
 * becomes an own property, and as an undeclared field it is rejected (these bodies are flat).
 */
export function acceptJsonBodies(app: FastifyInstance, errorPrefix: string): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: MAX_BODY_BYTES }, (_request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      done(badRequest(`${errorPrefix}${(err as Error).message}`), undefined);
    }
  });
  app.addHook('preValidation', async (request) => {
    const bodySchema = request.routeOptions.schema?.body as { properties?: Record<string, unknown> } | undefined;
    if (bodySchema === undefined) return;
    const body: unknown = request.body;
    if (body === undefined) throw badRequest(`${errorPrefix}EOF`);
    const declared = bodySchema.properties;
    if (declared === undefined || typeof body !== 'object' || body === null || Array.isArray(body)) return;
    for (const field of Object.keys(body)) {
      if (!Object.prototype.hasOwnProperty.call(declared, field)) throw badRequest(`${errorPrefix}json: unknown field ${JSON.stringify(field)}`);
    }
  });
}

/** Query parameters Consul's clients send on every request; accepted, and ignored by these routes. */
export const commonQuerySchema = {
  type: 'object',
  properties: {
    dc: { type: 'string' },
    stale: { type: 'string' },
    consistent: { type: 'string' },
    pretty: { type: 'string' },
    token: { type: 'string' },
  },
} as const;

const SERVER_ID = { type: 'string', minLength: 1, maxLength: 256 } as const;
/** host:port, [ipv6]:port; the host part is checked again by the cluster service when it dials. */
const HOST_PORT_PATTERN = '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9_.-]+):([0-9]{1,5})$';

export const ROLE_NAMES: Readonly<Record<ClusterStats['role'], string>> = {
  leader: 'Leader',
  follower: 'Follower',
  candidate: 'Candidate',
  preCandidate: 'PreCandidate',
};

export const clusterRoutes: FastifyPluginAsync<ClusterRouteOptions> = async (app, { cluster }) => {
  acceptJsonBodies(app, 'Request decode failed: ');

  app.get('/v1/cluster/status', { schema: { querystring: commonQuerySchema } }, async () => {
    const self = cluster.self();
    const stats = cluster.stats();
    const health = cluster.autopilotHealth();
    const servers = cluster.servers();
    const voters = servers.filter((s) => s.voter).length;
    return {
      ID: self.id,
      Address: self.rpcAddr,
      HTTPAddress: self.httpAddr,
      Role: ROLE_NAMES[stats.role],
      Leader: leaderJson(cluster),
      Term: stats.term,
      CommitIndex: stats.commitIndex,
      AppliedIndex: stats.appliedIndex,
      LastLogIndex: stats.lastLogIndex,
      LastSnapshotIndex: stats.lastSnapshotIndex,
      LastContactMs: stats.lastContactMs,
      ConfigurationIndex: stats.configurationIndex,
      Members: {
        Servers: servers.length,
        Voters: voters,
        NonVoters: servers.length - voters,
        Healthy: health.servers.filter((s) => s.healthy).length,
      },
      FailureTolerance: health.failureTolerance,
      Healthy: health.healthy,
    };
  });

  app.get('/v1/cluster/leader', { schema: { querystring: commonQuerySchema } }, async () => leaderJson(cluster));

  app.get('/v1/cluster/peers', { schema: { querystring: commonQuerySchema } }, async () => cluster.servers().map(serverJson));

  app.get('/v1/cluster/stats', { schema: { querystring: commonQuerySchema } }, async () => {
    const stats = cluster.stats();
    return {
      ID: stats.id,
      Role: ROLE_NAMES[stats.role],
      LeaderID: stats.leaderId,
      Term: stats.term,
      CommitIndex: stats.commitIndex,
      AppliedIndex: stats.appliedIndex,
      LastLogIndex: stats.lastLogIndex,
      LastSnapshotIndex: stats.lastSnapshotIndex,
      LastContactMs: stats.lastContactMs,
      ConfigurationIndex: stats.configurationIndex,
      Peers: stats.peers.map((p) => ({
        ID: p.id,
        Address: p.rpcAddr,
        Voter: p.voter,
        Leader: p.leader,
        MatchIndex: p.matchIndex,
        ReplicationLag: p.replicationLag,
        LastContactMs: p.lastContactMs,
        State: p.replicationState,
        Healthy: p.healthy,
      })),
    };
  });

  app.post<{ Body: { Address: string } }>('/v1/cluster/join', {
    schema: {
      querystring: commonQuerySchema,
      body: {
        type: 'object',
        required: ['Address'],
        additionalProperties: false,
        properties: { Address: { type: 'string', maxLength: 300, pattern: HOST_PORT_PATTERN } },
      },
    },
  }, async (request) => {
    const address = request.body.Address;
    const port = Number(address.slice(address.lastIndexOf(':') + 1));
    if (port < 1 || port > 65535) throw badRequest(`Invalid Address ${JSON.stringify(address)}: the port must be between 1 and 65535`);
    const joined = await callCluster(() => cluster.join(address));
    return serverJson(joined);
  });

  app.delete<{ Params: { id: string } }>('/v1/cluster/leave/:id', {
    schema: {
      querystring: commonQuerySchema,
      params: { type: 'object', required: ['id'], additionalProperties: false, properties: { id: SERVER_ID } },
    },
  }, async (request) => {
    const { id } = request.params;
    await callCluster(() => cluster.remove({ id }));
    return { Removed: id };
  });

  app.post('/v1/cluster/snapshot', { schema: { querystring: commonQuerySchema } }, async () => {
    const { index, term } = await callCluster(() => cluster.snapshotNow());
    return { Index: index, Term: term };
  });

  // Consul's /v1/operator/raft/transfer-leader answers only {"Success":true}; this one names the new leader.
  app.post<{ Querystring: { id?: string } }>('/v1/cluster/transfer-leader', {
    schema: { querystring: { ...commonQuerySchema, properties: { ...commonQuerySchema.properties, id: { type: 'string', maxLength: 256 } } } },
  }, async (request) => {
    const target = request.query.id;
    const leaderId = await callCluster(() => cluster.transferLeader(target === undefined || target === '' ? undefined : target));
    return { Leader: addressesOf(cluster, leaderId) };
  });
};

function serverJson(s: ServerInfo) {
  return { ID: s.id, Address: s.rpcAddr, HTTPAddress: s.httpAddr, Voter: s.voter, Leader: s.leader };
}

function leaderJson(cluster: ClusterService) {
  return addressesOf(cluster, cluster.leaderId());
}

/** ID and addresses of a server; empty strings when `id` is '' (no leader). */
function addressesOf(cluster: ClusterService, id: string) {
  if (id === '') return { ID: '', Address: '', HTTPAddress: '' };
  const known = cluster.servers().find((s) => s.id === id);
  return { ID: id, Address: known?.rpcAddr || cluster.rpcAddressOf(id), HTTPAddress: known?.httpAddr ?? '' };
}
