// /v1/health: Consul's health endpoints (developer.hashicorp.com/consul/api-docs/health;
// agent/health_endpoint.go).
// - service/:name answers [{Node, Service, Checks}] with node-level checks first, in the same
//   instance order as /v1/catalog/service (Traefik pairs them by position). ?passing keeps instances
//   whose every check is passing (warning is not passing); Konsul keeps the list's order where
//   Consul's filterNonPassing swaps the survivors around.
// - checks/:service, node/:node, state/:state answer HealthCheck lists; an unknown state lists nothing.
// Every endpoint blocks on `index`/`wait` with the narrowest index: the service's, the node's, or the
// checks table's. Rendered health/service answers are kept per (query, index), so a thousand watchers
// woken by one change share one JSON rendering.
import type { FastifyPluginAsync } from 'fastify';
import { nodeWatchKey, serviceWatchKey, WATCH_CHECKS } from '../../../fsm/state/catalog.ts';
import { healthCheckJson, nodeJson, nodeServiceJson } from '../../../http/catalog-wire.ts';
import { applyFilter, compileFilter, type Filter } from '../../../http/filter-expression.ts';
import { param, paramList, type Query } from '../../../http/query-options.ts';
import { methodNotAllowed, sendJson, tailParam } from '../../../http/reply.ts';
import { readQuery } from '../../../http/schemas.ts';
import { boolParam, catalogRead, hasAllTags, matchesNodeMeta, nodeMetaFilters } from '../catalog-query.ts';
import type { ServerContext } from '../context.ts';

type WithQuery = { Querystring: Query };

/** How many rendered health/service answers are kept (each for one query at one index). */
const RENDER_CACHE_ENTRIES = 512;

export const healthRoutes: FastifyPluginAsync<{ ctx: ServerContext }> = async (app, { ctx }) => {
  const { fsm } = ctx;
  const rendered = new Map<string, { index: number; body: string }>();

  app.get<WithQuery>('/v1/health/service/*', { schema: { querystring: readQuery('tag', 'node-meta', 'passing', 'near') } }, async (request, reply) => {
    const name = tailParam(request, 'Missing service name');
    const { query } = request;
    const tags = paramList(query, 'tag');
    const meta = nodeMetaFilters(query);
    const passing = boolParam(query, 'passing', 'Invalid value for ?passing');
    const filter = param(query, 'filter');
    const compiled: Filter | undefined = filter ? compileFilter(filter) : undefined;
    const cacheKey = JSON.stringify([name.toLowerCase(), tags, meta, passing, filter ?? '']);
    const body = await catalogRead(ctx, request, reply, [serviceWatchKey(name)], () => {
      const index = fsm.catalog.serviceIndex(name);
      const cached = rendered.get(cacheKey);
      if (cached !== undefined && cached.index === index) return { index, value: cached.body };
      const entries = [];
      for (const entry of fsm.catalog.checkServiceNodes(name)) {
        if (!hasAllTags(entry.service.Tags, tags) || !matchesNodeMeta(entry.node, meta)) continue;
        if (passing && entry.checks.some((c) => c.Status !== 'passing')) continue;
        const json = { Node: nodeJson(entry.node), Service: nodeServiceJson(entry.service), Checks: entry.checks.map(healthCheckJson) };
        if (compiled === undefined || compiled(json)) entries.push(json);
      }
      const text = JSON.stringify(entries);
      rendered.delete(cacheKey);
      rendered.set(cacheKey, { index, body: text });
      if (rendered.size > RENDER_CACHE_ENTRIES) rendered.delete(rendered.keys().next().value!);
      return { index, value: text };
    });
    return sendJson(reply, body);
  });

  app.get<WithQuery>('/v1/health/checks/*', { schema: { querystring: readQuery('node-meta', 'near') } }, async (request, reply) => {
    const name = tailParam(request, 'Missing service name');
    const { query } = request;
    const meta = nodeMetaFilters(query);
    const filter = param(query, 'filter');
    if (filter) compileFilter(filter);
    const checks = await catalogRead(ctx, request, reply, [serviceWatchKey(name)], () => ({
      index: fsm.catalog.serviceIndex(name),
      value: fsm.catalog
        .serviceChecks(name)
        .filter((c) => {
          const node = fsm.catalog.getNode(c.Node);
          return node !== undefined && matchesNodeMeta(node, meta);
        })
        .map(healthCheckJson),
    }));
    return sendJson(reply, applyFilter(checks, filter));
  });

  app.get<WithQuery>('/v1/health/node/*', { schema: { querystring: readQuery() } }, async (request, reply) => {
    const node = tailParam(request, 'Missing node name');
    const filter = param(request.query, 'filter');
    if (filter) compileFilter(filter);
    const checks = await catalogRead(ctx, request, reply, [nodeWatchKey(node)], () => ({
      index: fsm.catalog.nodeIndex(node),
      value: fsm.catalog.nodeChecks(node).map(healthCheckJson),
    }));
    return sendJson(reply, applyFilter(checks, filter));
  });

  app.get<WithQuery>('/v1/health/state/*', { schema: { querystring: readQuery('node-meta', 'near') } }, async (request, reply) => {
    const state = tailParam(request, 'Missing check state');
    const { query } = request;
    const meta = nodeMetaFilters(query);
    const filter = param(query, 'filter');
    if (filter) compileFilter(filter);
    const checks = await catalogRead(ctx, request, reply, [WATCH_CHECKS], () => ({
      index: fsm.catalog.checksIndex(),
      value: fsm.catalog
        .checksInState(state)
        .filter((c) => {
          if (Object.keys(meta).length === 0) return true;
          const node = fsm.catalog.getNode(c.Node);
          return node !== undefined && matchesNodeMeta(node, meta);
        })
        .map(healthCheckJson),
    }));
    return sendJson(reply, applyFilter(checks, filter));
  });

  for (const url of ['/v1/health/service/*', '/v1/health/checks/*', '/v1/health/node/*', '/v1/health/state/*']) methodNotAllowed(app, url, ['GET']);
};
