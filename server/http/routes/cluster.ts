// /v1/cluster: Konsul's own view of its Raft cluster (members, leader, Raft progress, replication) and
// the operations an operator asks for (join, remove, snapshot, leadership transfer). PascalCase JSON
// like Consul's API; durations are milliseconds in fields named ...Ms (-1 = never / unknown).
// Consul's own /v1/operator endpoints, byte for byte, are in operator.ts.
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { param, type Query } from '../../../http/query-options.ts';
import { acceptRawBodies } from '../../../http/raw-body.ts';
import { sendJson } from '../../../http/reply.ts';
import { readQuery, writeQuery } from '../../../http/schemas.ts';
import { badRequest } from '../../../lib/errors.ts';
import { hostPortOf } from '../../../lib/host-port.ts';
import type { ClusterService, ClusterStats, ServerInfo } from '../../cluster/cluster-service.ts';
import type { ServerContext } from '../context.ts';

export interface ClusterRouteOptions {
  readonly ctx: ServerContext;
  readonly cluster: ClusterService;
}

const MAX_BODY_BYTES = 64 * 1024;

/**
 * Within the calling (encapsulated) plugin: bodies are JSON whatever their Content-Type (Consul's
 * clients and `curl -d` send none or form encoding), read by the platform's raw-body reader (64 KiB,
 * its 413), and a route with a body schema gets Go-style decoding errors prefixed with `errorPrefix`
 * (Consul's "Request decode failed: " style): "EOF" for a missing body, `json: unknown field "X"` for
 * a field the schema does not declare. The field check runs before validation because fastify's Ajv
 * is configured with removeAdditional, which would silently drop such fields instead of rejecting
 * them. Plain JSON.parse is safe here: "__proto__" becomes an own property, and as an undeclared
 * field it is rejected (these bodies are flat).
 *
 * These few bodies (flat, PascalCase, Konsul's own or Consul's operator API) keep JSON schemas: their
 * 400 texts are Ajv's ("body/Address must match pattern ..."), which clients and tests know.
 */
export function acceptJsonBodies(app: FastifyInstance, errorPrefix: string): void {
  acceptRawBodies(app, { limitBytes: MAX_BODY_BYTES, decode: (bytes) => decodeJsonBody(bytes, errorPrefix) });
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

/** A JSON body, or undefined for an empty (or blank) one. */
function decodeJsonBody(bytes: Buffer, errorPrefix: string): unknown {
  const text = bytes.toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw badRequest(`${errorPrefix}${(err as Error).message}`);
  }
}

/**
 * `schema.querystring` of a route whose own parameters keep limits of their own (the ids and
 * addresses these routes pass to the cluster): the platform's shared parameters plus these.
 */
export function queryWithOwn(shared: object, own: Record<string, object>): object {
  return { allOf: [shared, { type: 'object', properties: own }] };
}

const SERVER_ID = { type: 'string', minLength: 1, maxLength: 256 } as const;
/** host:port, [ipv6]:port; the host part is checked again by the cluster service when it dials. */
const HOST_PORT_PATTERN = '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9_.-]+):([0-9]{1,5})$';

export const ROLE_NAMES: Readonly<Record<ClusterStats['role'], string>> = {
  leader: 'Leader',
  follower: 'Follower',
  candidate: 'Candidate',
  preCandidate: 'PreCandidate',
};

const TEXT = { type: 'string' } as const;
const NUMBER = { type: 'number' } as const;
const BOOLEAN = { type: 'boolean' } as const;
/** A server's id and addresses (empty strings: no leader). */
const ADDRESSES = { type: 'object', properties: { ID: TEXT, Address: TEXT, HTTPAddress: TEXT } } as const;
const SERVER = { type: 'object', properties: { ID: TEXT, Address: TEXT, HTTPAddress: TEXT, Voter: BOOLEAN, Leader: BOOLEAN } } as const;
const STATUS = {
  type: 'object',
  properties: {
    ID: TEXT,
    Address: TEXT,
    HTTPAddress: TEXT,
    Role: TEXT,
    Leader: ADDRESSES,
    Term: NUMBER,
    CommitIndex: NUMBER,
    AppliedIndex: NUMBER,
    LastLogIndex: NUMBER,
    LastSnapshotIndex: NUMBER,
    LastContactMs: NUMBER,
    ConfigurationIndex: NUMBER,
    Members: { type: 'object', properties: { Servers: NUMBER, Voters: NUMBER, NonVoters: NUMBER, Healthy: NUMBER } },
    FailureTolerance: NUMBER,
    Healthy: BOOLEAN,
  },
} as const;
const STATS = {
  type: 'object',
  properties: {
    ID: TEXT,
    Role: TEXT,
    LeaderID: TEXT,
    Term: NUMBER,
    CommitIndex: NUMBER,
    AppliedIndex: NUMBER,
    LastLogIndex: NUMBER,
    LastSnapshotIndex: NUMBER,
    LastContactMs: NUMBER,
    ConfigurationIndex: NUMBER,
    Peers: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          ID: TEXT,
          Address: TEXT,
          Voter: BOOLEAN,
          Leader: BOOLEAN,
          MatchIndex: NUMBER,
          ReplicationLag: NUMBER,
          LastContactMs: NUMBER,
          State: TEXT,
          Healthy: BOOLEAN,
        },
      },
    },
  },
} as const;

type WithQuery = { Querystring: Query };

// A ClusterError is a KonsulError: it answers its own status (http/status.ts) and text.
export const clusterRoutes: FastifyPluginAsync<ClusterRouteOptions> = async (app, { cluster }) => {
  acceptJsonBodies(app, 'Request decode failed: ');

  app.get('/v1/cluster/status', { schema: { querystring: readQuery(), response: { 200: STATUS } } }, async (_request, reply) => {
    const self = cluster.self();
    const stats = cluster.stats();
    const health = cluster.autopilotHealth();
    const servers = cluster.servers();
    const voters = servers.filter((s) => s.voter).length;
    return sendJson(reply, {
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
    });
  });

  app.get('/v1/cluster/leader', { schema: { querystring: readQuery(), response: { 200: ADDRESSES } } }, async (_request, reply) => sendJson(reply, leaderJson(cluster)));

  app.get('/v1/cluster/peers', { schema: { querystring: readQuery(), response: { 200: { type: 'array', items: SERVER } } } }, async (_request, reply) =>
    sendJson(reply, cluster.servers().map(serverJson)),
  );

  app.get('/v1/cluster/stats', { schema: { querystring: readQuery(), response: { 200: STATS } } }, async (_request, reply) => {
    const stats = cluster.stats();
    return sendJson(reply, {
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
    });
  });

  app.post<{ Body: { Address: string } }>('/v1/cluster/join', {
    schema: {
      querystring: writeQuery(),
      body: {
        type: 'object',
        required: ['Address'],
        additionalProperties: false,
        properties: { Address: { type: 'string', maxLength: 300, pattern: HOST_PORT_PATTERN } },
      },
      response: { 200: SERVER },
    },
  }, async (request, reply) => {
    const address = request.body.Address;
    const { port } = hostPortOf(address);
    if (port < 1) throw badRequest(`Invalid Address ${JSON.stringify(address)}: the port must be between 1 and 65535`);
    return sendJson(reply, serverJson(await cluster.join(address)));
  });

  app.delete<{ Params: { id: string } }>('/v1/cluster/leave/:id', {
    schema: {
      querystring: writeQuery(),
      params: { type: 'object', required: ['id'], additionalProperties: false, properties: { id: SERVER_ID } },
      response: { 200: { type: 'object', properties: { Removed: TEXT } } },
    },
  }, async (request, reply) => {
    const { id } = request.params;
    await cluster.remove({ id });
    return sendJson(reply, { Removed: id });
  });

  app.post('/v1/cluster/snapshot', { schema: { querystring: writeQuery(), response: { 200: { type: 'object', properties: { Index: NUMBER, Term: NUMBER } } } } }, async (_request, reply) => {
    const { index, term } = await cluster.snapshotNow();
    return sendJson(reply, { Index: index, Term: term });
  });

  // Consul's /v1/operator/raft/transfer-leader answers only {"Success":true}; this one names the new leader.
  app.post<WithQuery>('/v1/cluster/transfer-leader', {
    schema: { querystring: queryWithOwn(writeQuery(), { id: { type: 'string', maxLength: 256 } }), response: { 200: { type: 'object', properties: { Leader: ADDRESSES } } } },
  }, async (request, reply) => {
    const target = param(request.query, 'id');
    const leaderId = await cluster.transferLeader(target === undefined || target === '' ? undefined : target);
    return sendJson(reply, { Leader: addressesOf(cluster, leaderId) });
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
