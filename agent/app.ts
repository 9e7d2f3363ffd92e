// The agent's HTTP API: the same /v1 paths a server answers (docs/adr/0013-agent-mode.md).
//
// - /v1/agent/services|checks|service/*|check/* come from the agent's own state (the route plugin
//   servers use too, over the agent's LocalAgent); /v1/agent/self, members and metrics describe
//   the agent; other /v1/agent/* paths are the agent's own business and never forwarded.
// - Cacheable reads (catalog, health, KV GETs) go through the cache when the client asks for it
//   (`?cached`, Consul's opt-in) and, unless disabled, for `?stale` reads and blocking queries
//   (`?index=`) in default mode: those already accept an answer as old as the servers' own view,
//   and one background watch per entry then serves every application on the host.
// - Everything else (writes, default and consistent non-blocking reads, sessions, txn, events,
//   snapshots, status, operator) is forwarded to a server unchanged: status, body and headers
//   (X-Consul-Index, -KnownLeader, -LastContact) pass through, errors included.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createHttpApp, notFoundText } from '../http/app.ts';
import { parseWaitMs } from '../http/query-options.ts';
import { rawBody } from '../http/raw-body.ts';
import { sendJson } from '../http/reply.ts';
import { agentLocalRoutes, agentSelfRoutes, type AgentMember, type AgentSelf } from '../http/routes/agent.ts';
import { codeOfStatus } from '../http/status.ts';
import { badRequest, KonsulError } from '../lib/errors.ts';
import { hostPortOf } from '../lib/host-port.ts';
import type { LocalAgent } from './core/local-agent.ts';
import type { AgentCache, CachedResult } from './cache.ts';
import type { CheckResultRecord } from './checks/index.ts';
import type { AgentConfig } from './config.ts';
import { NoServersError, UpstreamLostError, type ServerPool } from './servers.ts';

export interface AgentMetrics {
  requests: number;
  upstreamHttp: number;
  upstreamRpc: number;
}

export interface AgentAppContext {
  readonly config: AgentConfig;
  readonly localAgent: LocalAgent;
  readonly pool: ServerPool;
  readonly cache: AgentCache;
  readonly metrics: AgentMetrics;
  readonly version: string;
  readonly nodeAddress: string;
  readonly shutdownSignal: AbortSignal;
  readonly startedAtMs: number;
  /** The last results of a check the agent runs (oldest first); null for a check it does not run. */
  readonly checkHistory: (checkId: string) => readonly CheckResultRecord[] | null;
}

/** GET paths whose answers the cache may hold (Consul caches catalog and health reads; Konsul adds KV). */
const CACHEABLE = [/^\/v1\/catalog\/(services|nodes)$/, /^\/v1\/catalog\/(service|node|node-services)\/.+/, /^\/v1\/health\/(service|checks|node|state)\/.+/, /^\/v1\/kv\/.*/];
/** Query parameters that select how to read, not what: not part of a cache key. */
const READ_MODE_PARAMS = new Set(['cached', 'index', 'wait', 'stale', 'consistent', 'default']);
const MAX_PROXY_BODY_BYTES = 64 * 1024 * 1024;
const AGENT_SHUTTING_DOWN = 'Agent is shutting down';
const FORWARDED_REQUEST_HEADERS = ['content-type', 'x-consul-token', 'authorization', 'accept'];

export function cacheKeyOf(path: string, query: URLSearchParams): string {
  const kept = [...query.entries()].filter(([k]) => !READ_MODE_PARAMS.has(k));
  // Order matters for repeated parameters (?tag=a&tag=b), not between different names.
  kept.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const qs = new URLSearchParams(kept).toString();
  return qs === '' ? path : `${path}?${qs}`;
}

/** Consul's ?wait, parsed as the servers parse it (http/query-options.ts). */
export { parseWaitMs };

/** Cache-Control request directives Consul's cache honours. */
export function parseCacheControl(header: string | undefined): { maxAgeMs?: number; staleIfErrorMs?: number; mustRevalidate: boolean } {
  const out: { maxAgeMs?: number; staleIfErrorMs?: number; mustRevalidate: boolean } = { mustRevalidate: false };
  for (const part of (header ?? '').split(',')) {
    const [rawName, rawValue] = part.trim().split('=', 2);
    const name = (rawName ?? '').toLowerCase();
    const seconds = rawValue !== undefined && /^\d+$/.test(rawValue.trim()) ? Number(rawValue.trim()) : undefined;
    if (name === 'max-age' && seconds !== undefined) out.maxAgeMs = seconds * 1000;
    else if (name === 'stale-if-error' && seconds !== undefined) out.staleIfErrorMs = seconds * 1000;
    else if (name === 'must-revalidate') out.mustRevalidate = true;
  }
  return out;
}

export async function buildAgentApp(ctx: AgentAppContext, options: { logger?: boolean | object } = {}): Promise<FastifyInstance> {
  const app = createHttpApp({ logger: options.logger ?? false, shutdownSignal: ctx.shutdownSignal, counters: ctx.metrics, translateError: upstreamError });
  await app.register(agentLocalRoutes, { agent: () => ctx.localAgent, datacenter: ctx.config.datacenter });
  await app.register(agentSelfRoutes, { self: agentSelf(ctx) });
  await app.register(async (scope) => agentInfoRoutes(scope, ctx));
  await app.register(async (scope) => proxyRoutes(scope, ctx));
  return app;
}

/** The agent's upstream failures as Consul's agent answers them (500s with these texts). */
function upstreamError(err: unknown): unknown {
  if (err instanceof NoServersError) return new KonsulError('internal', 'No known Consul servers');
  if (err instanceof UpstreamLostError) return new KonsulError('internal', err.message);
  return err;
}

/** What /v1/agent/self and /v1/agent/members say of a client agent. */
function agentSelf(ctx: AgentAppContext): AgentSelf {
  const { config } = ctx;
  return {
    datacenter: config.datacenter,
    nodeName: config.nodeName,
    version: ctx.version,
    server: false,
    memberAddress: () => ({ addr: ctx.nodeAddress, port: 0 }),
    stats: () => {
      const counts = ctx.localAgent.counts();
      const cache = ctx.cache.stats();
      return {
        agent: { checks: String(counts.checks), services: String(counts.services) },
        consul: { server: 'false', known_servers: String(ctx.pool.servers().length), leader_id: ctx.pool.leader(), current_server: ctx.pool.current()?.id ?? '' },
        cache: { entries: String(cache.entries), bytes: String(cache.bytes), hits: String(cache.hits), misses: String(cache.misses) },
      };
    },
    // Konsul has no gossip: members are the catalog's nodes that carry a serfHealth check, with
    // its status, as the servers see them.
    members: async (): Promise<AgentMember[]> => {
      const answer = await ctx.pool.http({ method: 'GET', path: '/v1/health/state/any?stale', timeoutMs: 10_000 });
      if (answer.status !== 200) throw new KonsulError(codeOfStatus(answer.status), answer.body.toString('utf8'));
      const checks = JSON.parse(answer.body.toString('utf8')) as { Node: string; CheckID: string; Status: string }[];
      const nodesAnswer = await ctx.pool.http({ method: 'GET', path: '/v1/catalog/nodes?stale', timeoutMs: 10_000 });
      const nodes = nodesAnswer.status === 200 ? (JSON.parse(nodesAnswer.body.toString('utf8')) as { Node: string; Address: string }[]) : [];
      const addressOf = new Map(nodes.map((n) => [n.Node, n.Address]));
      const servers = new Map(ctx.pool.servers().map((s) => [s.id, s]));
      return checks
        .filter((c) => c.CheckID === 'serfHealth')
        .map((c) => {
          const server = servers.get(c.Node);
          const port = server ? hostPortOf(server.rpcAddr).port : c.Node === config.nodeName ? config.httpAddr.port : 0;
          return { name: c.Node, addr: addressOf.get(c.Node) ?? '', port, server: server !== undefined, failed: c.Status === 'critical' };
        });
    },
  };
}

async function agentInfoRoutes(app: FastifyInstance, ctx: AgentAppContext): Promise<void> {
  // Konsul's own: what a check the agent runs said lately, to tell a flapping target from a dead one.
  app.get('/v1/konsul/agent/check/history/*', async (request, reply) => {
    const checkId = decodeURIComponent((request.params as { '*': string })['*']);
    const history = ctx.checkHistory(checkId);
    if (history === null) throw new KonsulError('notFound', `Unknown check ${JSON.stringify(checkId)}: not run by this agent`);
    return sendJson(
      reply,
      history.map((r) => ({ Time: new Date(r.timeMs).toISOString(), Status: r.status, Output: r.output, Source: r.source, ReportedStatus: r.reportedStatus })),
    );
  });

  app.get('/v1/agent/metrics', async (_request, reply) => {
    const cache = ctx.cache.stats();
    const counter = (name: string, count: number) => ({ Name: name, Count: count, Rate: 0, Sum: count, Min: 1, Max: 1, Mean: 1, Stddev: 0, Labels: {} });
    const gauge = (name: string, value: number) => ({ Name: name, Value: value, Labels: {} });
    return sendJson(reply, {
      Timestamp: new Date().toISOString(),
      Gauges: [gauge('konsul.agent.cache.entries', cache.entries), gauge('konsul.agent.cache.bytes', cache.bytes)],
      Points: [],
      Counters: [
        counter('konsul.http.requests', ctx.metrics.requests),
        counter('konsul.agent.upstream.http', ctx.metrics.upstreamHttp),
        counter('konsul.agent.upstream.rpc', ctx.metrics.upstreamRpc),
        counter('konsul.agent.cache.hits', cache.hits),
        counter('konsul.agent.cache.misses', cache.misses),
        counter('konsul.agent.cache.refreshes', cache.refreshes),
        counter('konsul.agent.cache.evictions', cache.evictions),
        counter('konsul.agent.cache.expirations', cache.expirations),
      ],
      Samples: [],
    });
  });
}

async function proxyRoutes(app: FastifyInstance, ctx: AgentAppContext): Promise<void> {
  // Bodies pass through to the server as they came.
  await app.register(rawBody, { limitBytes: MAX_PROXY_BODY_BYTES });

  // The agent's own endpoints are answered here or not at all (never by a server's agent).
  app.all('/v1/agent/*', async (request, reply) => {
    return reply.code(404).type('text/plain; charset=utf-8').send(notFoundText(request.method, request.url));
  });

  app.all('/v1/*', async (request, reply) => {
    const url = request.raw.url ?? request.url;
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
    if (request.method === 'GET' && CACHEABLE.some((re) => re.test(path))) {
      const cached = query.has('cached');
      const consistent = query.has('consistent');
      if (cached && consistent) throw badRequest('Cannot specify ?cached with ?consistent');
      const indexText = query.get('index');
      const index = indexText !== null && /^\d+$/.test(indexText) ? Number(indexText) : indexText === null ? 0 : -1;
      const blocking = index > 0;
      const waitMs = parseWaitMs(query.get('wait'));
      const viaCache = index >= 0 && waitMs !== null && (cached || (ctx.config.cacheBlockingQueries && !consistent && (query.has('stale') || blocking)));
      if (viaCache) return serveCached(ctx, request, reply, cacheKeyOf(path, query), index, waitMs);
    }
    return forward(ctx, request, reply, url, query);
  });
}

async function serveCached(ctx: AgentAppContext, request: FastifyRequest, reply: FastifyReply, key: string, index: number, waitMs: number): Promise<FastifyReply> {
  const control = parseCacheControl(request.headers['cache-control']);
  const maxAge = control.maxAgeMs !== undefined ? { maxAgeMs: control.maxAgeMs } : {};
  const hit = ctx.cache.peek(key, { minIndex: index, ...maxAge });
  if (hit !== undefined) return send(reply, hit.result, { 'X-Cache': 'HIT', Age: String(Math.floor(hit.ageMs / 1000)) });
  const abort = new AbortController();
  const onClose = () => abort.abort();
  reply.raw.once('close', onClose);
  try {
    const answer = await ctx.cache.get(key, {
      minIndex: index,
      waitMs,
      ...(control.maxAgeMs !== undefined ? { maxAgeMs: control.maxAgeMs } : {}),
      ...(control.staleIfErrorMs !== undefined ? { staleIfErrorMs: control.staleIfErrorMs } : {}),
      mustRevalidate: control.mustRevalidate,
      signal: abort.signal,
    });
    // As Consul's setCacheMeta: Age only on a HIT (a MISS was just fetched).
    return send(reply, answer.result, answer.hit ? { 'X-Cache': 'HIT', Age: String(Math.floor(answer.ageMs / 1000)) } : { 'X-Cache': 'MISS' });
  } finally {
    reply.raw.off('close', onClose);
  }
}

async function forward(ctx: AgentAppContext, request: FastifyRequest, reply: FastifyReply, url: string, query: URLSearchParams): Promise<FastifyReply> {
  const headers: Record<string, string> = {};
  for (const name of FORWARDED_REQUEST_HEADERS) {
    const v = request.headers[name];
    if (typeof v === 'string') headers[name] = v;
  }
  const body = Buffer.isBuffer(request.body) ? request.body : undefined;
  // A blocking query may legitimately take its whole wait (plus the servers' jitter of wait/16).
  const waitMs = query.has('index') ? (parseWaitMs(query.get('wait')) ?? 300_000) : 0;
  const timeoutMs = url.startsWith('/v1/snapshot') ? 600_000 : waitMs > 0 ? waitMs + waitMs / 16 + 15_000 : 60_000;
  const abort = new AbortController();
  const onClose = () => {
    if (!reply.raw.writableFinished) abort.abort();
  };
  reply.raw.once('close', onClose);
  // A blocking read could hold the agent's shutdown for its whole wait: it ends with the agent
  // (writes and non-blocking reads in flight are left to finish).
  const blockingRead = (request.method === 'GET' || request.method === 'HEAD') && waitMs > 0;
  const onShutdown = () => abort.abort();
  if (blockingRead) ctx.shutdownSignal.addEventListener('abort', onShutdown, { once: true });
  try {
    if (blockingRead && ctx.shutdownSignal.aborted) throw new KonsulError('unavailable', AGENT_SHUTTING_DOWN);
    const answer = await ctx.pool.http({ method: request.method, path: url, headers, ...(body && body.length > 0 ? { body } : {}), timeoutMs, signal: abort.signal });
    return send(reply, { status: answer.status, headers: answer.headers, body: answer.body, index: 0 });
  } catch (err) {
    if (blockingRead && ctx.shutdownSignal.aborted) throw new KonsulError('unavailable', AGENT_SHUTTING_DOWN);
    throw err;
  } finally {
    reply.raw.off('close', onClose);
    ctx.shutdownSignal.removeEventListener('abort', onShutdown);
  }
}

function send(reply: FastifyReply, result: CachedResult, extra: Record<string, string> = {}): FastifyReply {
  void reply.code(result.status);
  for (const [k, v] of Object.entries(result.headers)) void reply.header(k, v);
  for (const [k, v] of Object.entries(extra)) void reply.header(k, v);
  return reply.send(result.body);
}
