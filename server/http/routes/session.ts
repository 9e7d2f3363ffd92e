// /v1/session: Consul's session endpoints (developer.hashicorp.com/consul/api-docs/session), with
// the HTTP handler's defaults and decoding (agent/session_endpoint.go, structs.Session.UnmarshalJSON)
// and the RPC endpoint's checks and texts (agent/consul/session_endpoint.go):
// - PUT /v1/session/create: an optional JSON body; answers {"ID": "<uuid>"}. Defaults: this
//   server's node, NodeChecks ["serfHealth"], LockDelay 15s, Behavior release, no TTL.
// - PUT /v1/session/destroy/:id: answers true (also for an unknown session).
// - PUT /v1/session/renew/:id: answers the session in a one-element array; 404 "Session id '<id>'
//   not found" for an unknown one.
// - GET /v1/session/info/:id (`[]` when unknown), /v1/session/list, /v1/session/node/:node: with
//   blocking queries on the sessions table's index (creates and destroys; renewals do not move it).
// Errors Consul's RPC layer returns are HTTP 500 with Consul's text: clients match on them
// (Patroni: "Invalid Session TTL").
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { encodeCommand, isWellFormed } from '../../../fsm/commands.ts';
import type { ApplyError } from '../../../fsm/konsul-fsm.ts';
import { formatGoDuration, parseGoDuration } from '../../../lib/duration.ts';
import { SESSION_LIMITS } from '../../../fsm/state/session-commands.ts';
import {
  DEFAULT_LOCK_DELAY_NS,
  SERF_CHECK_ID,
  SESSION_TTL_MAX_NS,
  sessionJson,
  sessionNodeWatchKey,
  type Session,
} from '../../../fsm/state/sessions.ts';
import { rawBody } from '../../../http/raw-body.ts';
import { readEndpoint } from '../../../http/read-endpoint.ts';
import { methodNotAllowedError, sendJson } from '../../../http/reply.ts';
import { readQuery, writeQuery } from '../../../http/schemas.ts';
import { badRequest, KonsulError } from '../../../lib/errors.ts';
import { serverReads } from '../consistency.ts';
import type { ServerContext } from '../context.ts';

/** Consul's lockDelayMinThreshold: a LockDelay below 1000 (ns) is taken as seconds. */
const LOCK_DELAY_MIN_THRESHOLD_NS = 1000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** PUT /v1/session/create's answer. */
const SESSION_CREATED = { type: 'object', properties: { ID: { type: 'string' } } } as const;

/** A session as sessionJson (fsm/state/sessions.ts) writes it, in its field order: lists of them answer reads and renewals. */
const SESSION_LIST = {
  type: 'array',
  items: {
    type: 'object',
    properties: {
      ID: { type: 'string' },
      Name: { type: 'string' },
      Node: { type: 'string' },
      LockDelay: { type: 'number' },
      Behavior: { type: 'string' },
      TTL: { type: 'string' },
      NodeChecks: { type: ['array', 'null'], items: { type: 'string' } },
      ServiceChecks: { type: ['array', 'null'], items: { type: 'object', properties: { ID: { type: 'string' }, Namespace: { type: 'string' } } } },
      Checks: { type: 'array', items: { type: 'string' } },
      CreateIndex: { type: 'number' },
      ModifyIndex: { type: 'number' },
    },
  },
} as const;

/** A create request after Consul's decoding and defaults (agent/session_endpoint.go). */
export interface SessionCreateRequest {
  name: string;
  node: string;
  lockDelayNs: number;
  behavior: string;
  ttl: string;
  nodeChecks: string[] | null;
  serviceChecks: { id: string; namespace: string }[] | null;
  checks: string[] | null;
}

export const sessionRoutes: FastifyPluginAsync<{ ctx: ServerContext }> = async (app, { ctx }) => {
  const { config, fsm } = ctx;
  const sessionTtlMinNs = config.sessionTtlMinMs * 1_000_000;

  const reads = serverReads(ctx);
  // Bodies are JSON whatever their content type (curl sends form encoding by default); Consul
  // answers a body it cannot decode with its own 400 text.
  await app.register(rawBody);

  app.put('/v1/session/create', { schema: { querystring: writeQuery(), response: { 200: SESSION_CREATED } } }, async (request, reply) => {
    const body = request.body instanceof Buffer ? request.body : Buffer.alloc(0);
    const req = decodeCreateBody(body, config.nodeName);
    checkCreateRequest(req, sessionTtlMinNs);
    const id = randomUUID();
    const result = await ctx.cluster.propose(
      encodeCommand({
        type: 'sessionCreate',
        id,
        name: req.name,
        node: req.node,
        lockDelayNs: req.lockDelayNs,
        behavior: req.behavior as 'release' | 'delete',
        ttl: req.ttl,
        nodeChecks: req.nodeChecks,
        serviceChecks: req.serviceChecks,
        checks: req.checks,
        nowMs: Date.now(),
      }),
    );
    if ('ok' in result) throw applyError(result);
    if (result.kind !== 'sessionCreated') throw new KonsulError('internal', `unexpected result ${result.kind}`);
    return sendJson(reply, { ID: result.id });
  });

  app.put('/v1/session/destroy/*', { schema: { querystring: writeQuery() } }, async (request, reply) => {
    const id = idOf(request);
    if (id === '') throw badRequest('Missing session');
    // Only UUIDs are ever created: anything else names no session, and destroying none is true.
    if (UUID.test(id)) {
      const result = await ctx.cluster.propose(encodeCommand({ type: 'sessionDestroy', id, nowMs: Date.now() }));
      if ('ok' in result) throw applyError(result);
    }
    return sendJson(reply, true);
  });

  app.put('/v1/session/renew/*', { schema: { querystring: writeQuery(), response: { 200: SESSION_LIST } } }, async (request, reply) => {
    const id = idOf(request);
    if (id === '') throw badRequest('Missing session');
    const notFound = () => new KonsulError('notFound', `Session id '${id}' not found`);
    if (!UUID.test(id)) throw notFound();
    const result = await ctx.cluster.propose(encodeCommand({ type: 'sessionRenew', id, nowMs: Date.now() }));
    if ('ok' in result) throw applyError(result);
    if (result.kind !== 'sessionRenewed') throw new KonsulError('internal', `unexpected result ${result.kind}`);
    if (result.session === null) throw notFound();
    return sendJson(reply, [result.session]);
  });

  app.get('/v1/session/info/*', { schema: { querystring: readQuery(), response: { 200: SESSION_LIST } } }, async (request, reply) => {
    const id = idOf(request);
    if (id === '') throw badRequest('Missing session');
    return blockingRead(request, reply, (wake) => fsm.watches.watchKey(id, wake, 'sessions'), () => {
      const session = fsm.sessions.get(id);
      return session ? [session] : [];
    });
  });

  app.get('/v1/session/list', { schema: { querystring: readQuery(), response: { 200: SESSION_LIST } } }, async (request, reply) =>
    blockingRead(request, reply, (wake) => fsm.watches.watchTable('sessions', wake), () => fsm.sessions.list()),
  );

  app.get('/v1/session/node/*', { schema: { querystring: readQuery(), response: { 200: SESSION_LIST } } }, async (request, reply) => {
    const node = idOf(request);
    if (node === '') throw badRequest('Missing node name');
    return blockingRead(request, reply, (wake) => fsm.watches.watchKey(sessionNodeWatchKey(node), wake, 'sessions'), () => fsm.sessions.listByNode(node));
  });

  const methodNotAllowed = async (request: FastifyRequest) => {
    throw methodNotAllowedError(request.method);
  };
  for (const path of ['/v1/session/create', '/v1/session/destroy/*', '/v1/session/renew/*']) {
    app.route({ method: ['GET', 'POST', 'DELETE', 'PATCH', 'OPTIONS'], url: path, handler: methodNotAllowed });
  }
  for (const path of ['/v1/session/info/*', '/v1/session/list', '/v1/session/node/*']) {
    app.route({ method: ['PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS'], url: path, handler: methodNotAllowed });
  }

  /** A read with Consul's query options (http/read-endpoint.ts), blocking on the sessions index. */
  async function blockingRead(request: FastifyRequest, reply: FastifyReply, watch: (wake: () => void) => () => void, read: () => Session[]): Promise<FastifyReply> {
    const sessions = await readEndpoint(reads, request, reply, { watch, run: () => ({ index: fsm.sessions.index(), value: read() }) });
    return sendJson(reply, sessions.map(sessionJson));
  }
};

/** Everything after the endpoint's path: Consul takes the rest of the URL path as the id or node. */
function idOf(request: FastifyRequest): string {
  return (request.params as { '*': string })['*'] ?? '';
}

function applyError(result: ApplyError): KonsulError {
  // A command the FSM refused as malformed is the request's fault; everything else is Consul's 500.
  return new KonsulError(result.code === 'invalidCommand' ? 'badRequest' : 'internal', result.error);
}

// ---------------------------------------------------------------------------------------------
// Decoding a create body the way Consul's Go code does.
// ---------------------------------------------------------------------------------------------

const decodeFailed = (message: string): KonsulError => badRequest(`Request decode failed: ${message}`);

/** The JSON type name Go's decoder reports ("number", "string", "bool", "array", "object"). */
function jsonKind(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'boolean') return 'bool';
  return typeof value === 'object' ? 'object' : typeof value;
}

function typeError(value: unknown, field: string, goType: string): KonsulError {
  return decodeFailed(`json: cannot unmarshal ${jsonKind(value)} into Go struct field .${field} of type ${goType}`);
}

function stringField(value: unknown, field: string, current: string): string {
  if (value === null) return current;
  if (typeof value !== 'string') throw typeError(value, field, 'string');
  return value;
}

function stringList(value: unknown, field: string, goType: string): string[] | null {
  if (value === null) return null;
  if (!Array.isArray(value)) throw typeError(value, field, goType);
  return value.map((item) => {
    if (item === null) return '';
    if (typeof item !== 'string') throw typeError(item, field, goType.replace('[]', ''));
    return item;
  });
}

/**
 * Decodes a create body onto Consul's defaults: field names match case-insensitively, unknown
 * fields are ignored (Session.UnmarshalJSON decodes without DisallowUnknownFields), null keeps a
 * scalar's default and empties a list, and LockDelay takes a Go duration or a number of
 * nanoseconds, where values below 1000 mean seconds. Then Consul's fixupEmptySessionChecks.
 */
export function decodeCreateBody(body: Buffer, defaultNode: string): SessionCreateRequest {
  const req: SessionCreateRequest = {
    name: '',
    node: defaultNode,
    lockDelayNs: DEFAULT_LOCK_DELAY_NS,
    behavior: 'release',
    ttl: '',
    nodeChecks: [SERF_CHECK_ID],
    serviceChecks: null,
    checks: [SERF_CHECK_ID],
  };
  if (body.length > 0) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch (err) {
      throw decodeFailed((err as Error).message);
    }
    if (parsed !== null) {
      if (typeof parsed !== 'object' || Array.isArray(parsed)) {
        throw decodeFailed(`json: cannot unmarshal ${jsonKind(parsed)} into Go value of type structs.Session`);
      }
      for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
        switch (key.toLowerCase()) {
          case 'name':
            req.name = stringField(value, 'Name', req.name);
            break;
          case 'node':
            req.node = stringField(value, 'Node', req.node);
            break;
          case 'behavior':
            req.behavior = stringField(value, 'Behavior', req.behavior);
            break;
          case 'ttl':
            req.ttl = stringField(value, 'TTL', req.ttl);
            break;
          case 'lockdelay':
            if (value !== null) req.lockDelayNs = decodeLockDelay(value);
            break;
          case 'nodechecks':
            req.nodeChecks = stringList(value, 'NodeChecks', '[]string');
            break;
          case 'checks':
            req.checks = stringList(value, 'Checks', '[]types.CheckID');
            break;
          case 'servicechecks':
            req.serviceChecks = decodeServiceChecks(value);
            break;
          case 'id':
            stringField(value, 'ID', '');
            break;
          case 'createindex':
          case 'modifyindex':
            if (value !== null && (typeof value !== 'number' || !Number.isInteger(value) || value < 0)) throw typeError(value, key === 'createindex' ? 'CreateIndex' : 'ModifyIndex', 'uint64');
            break;
          default:
            // Unknown fields are ignored, as Consul's decoder does for sessions.
            break;
        }
      }
    }
  }
  fixupEmptySessionChecks(req);
  return req;
}

/** structs.Session.UnmarshalJSON's LockDelay: a duration string or a number; < 1000 means seconds. */
function decodeLockDelay(value: unknown): number {
  let ns: number;
  if (typeof value === 'string') {
    const parsed = parseGoDuration(value);
    if (!parsed.ok) throw decodeFailed(parsed.error);
    ns = parsed.ns;
  } else if (typeof value === 'number') {
    // Go converts the float64 to a Duration, truncating toward zero.
    ns = Math.trunc(value);
  } else {
    // Any other JSON type leaves Go's duration at zero.
    ns = 0;
  }
  if (ns < LOCK_DELAY_MIN_THRESHOLD_NS) ns *= 1_000_000_000;
  if (!Number.isSafeInteger(ns)) throw decodeFailed(`LockDelay ${JSON.stringify(value)} is out of range`);
  return ns;
}

function decodeServiceChecks(value: unknown): { id: string; namespace: string }[] | null {
  if (value === null) return null;
  if (!Array.isArray(value)) throw typeError(value, 'ServiceChecks', '[]structs.ServiceCheck');
  return value.map((item) => {
    const check = { id: '', namespace: '' };
    if (item === null) return check;
    if (typeof item !== 'object' || Array.isArray(item)) throw typeError(item, 'ServiceChecks', 'structs.ServiceCheck');
    for (const [key, v] of Object.entries(item as Record<string, unknown>)) {
      if (key.toLowerCase() === 'id') check.id = stringField(v, 'ServiceChecks.ID', check.id);
      else if (key.toLowerCase() === 'namespace') check.namespace = stringField(v, 'ServiceChecks.Namespace', check.namespace);
    }
    return check;
  });
}

/**
 * Consul's fixupEmptySessionChecks (since 1.7): an empty Checks list empties NodeChecks too; the
 * default Checks ["serfHealth"] gives way to NodeChecks; an empty NodeChecks empties Checks.
 */
function fixupEmptySessionChecks(req: SessionCreateRequest): void {
  if (req.checks === null || req.checks.length === 0) {
    req.nodeChecks = [];
    return;
  }
  if (req.checks.length === 1 && req.checks[0] === SERF_CHECK_ID) {
    req.checks = null;
    return;
  }
  if (req.nodeChecks === null || req.nodeChecks.length === 0) req.checks = null;
}

/**
 * Session.Apply's checks, with its texts, answered with HTTP 500 as Consul does: node, then
 * Behavior, then the TTL range. Then the sizes Konsul keeps sessions within (400). Normalizes an
 * empty Behavior to release.
 */
export function checkCreateRequest(req: SessionCreateRequest, ttlMinNs: number): void {
  if (req.node === '') throw new KonsulError('internal', 'Must provide Node');
  if (req.behavior === '') req.behavior = 'release';
  if (req.behavior !== 'release' && req.behavior !== 'delete') throw new KonsulError('internal', `Invalid Behavior setting '${req.behavior}'`);
  if (req.ttl !== '') {
    const ttl = parseGoDuration(req.ttl);
    if (!ttl.ok) throw new KonsulError('internal', `Session TTL '${req.ttl}' invalid: ${ttl.error}`);
    if (ttl.ns !== 0 && (ttl.ns < ttlMinNs || ttl.ns > SESSION_TTL_MAX_NS)) {
      throw new KonsulError('internal', `Invalid Session TTL '${ttl.ns}', must be between [${formatGoDuration(ttlMinNs)}=${formatGoDuration(SESSION_TTL_MAX_NS)}]`);
    }
  }
  // The state store refuses an empty check ID as an unregistered check.
  for (const id of [...(req.checks ?? []), ...(req.nodeChecks ?? []), ...(req.serviceChecks ?? []).map((c) => c.id)]) {
    if (id === '') throw new KonsulError('internal', "Missing check '' registration");
  }
  const texts = [req.name, req.node, req.ttl, ...(req.checks ?? []), ...(req.nodeChecks ?? []), ...(req.serviceChecks ?? []).flatMap((c) => [c.id, c.namespace])];
  if (texts.some((t) => t.length > SESSION_LIMITS.textLength)) {
    throw badRequest(`Konsul limits session names, nodes, TTLs and check IDs to ${SESSION_LIMITS.textLength} characters`);
  }
  for (const list of [req.checks, req.nodeChecks, req.serviceChecks]) {
    if (list !== null && list.length > SESSION_LIMITS.checks) throw badRequest(`Konsul limits a session to ${SESSION_LIMITS.checks} checks per list`);
  }
  if (!texts.every(isWellFormed)) throw badRequest('Session fields must be well-formed Unicode');
}
