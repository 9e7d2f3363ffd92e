// /v1/konsul/services: service dependencies (seed backlog BACK-025), a Konsul extension.
// A service definition names the services it depends on in `Dependencies` (agent and catalog
// registration); these endpoints analyse the graph over the catalog's services
// (server/service-dependencies.ts):
// - GET /v1/konsul/services/dependency-graph: every service with its direct dependencies and
//   dependents, depth and cycle membership; the edges; the cycles; the maximum depth.
// - GET /v1/konsul/services/:name/dependencies: one service: direct and transitive dependencies,
//   the ones no instance provides (Missing), direct and transitive dependents (impact analysis:
//   what depends on it), depth, and the cycles it is part of. 404 for a name nobody registered
//   or depends on.
// - GET /v1/konsul/services/:name/impact: the transitive dependents alone, with their distance.
// All three block on ?index/?wait like catalog reads, on the services index.
import type { FastifyPluginAsync } from 'fastify';
import { WATCH_SERVICES } from '../../../fsm/state/catalog.ts';
import type { Query } from '../../../http/query-options.ts';
import { methodNotAllowed, sendJson } from '../../../http/reply.ts';
import { readQuery } from '../../../http/schemas.ts';
import { notFound } from '../../../lib/errors.ts';
import { ServiceDependencies } from '../../service-dependencies.ts';
import { catalogRead } from '../catalog-query.ts';
import type { ServerContext } from '../context.ts';

type WithName = { Querystring: Query; Params: { name: string } };

// The answers' shapes (server/service-dependencies.ts), fields in their order.
const NAMES = { type: 'array', items: { type: 'string' } } as const;
const REACHED = { type: 'array', items: { type: 'object', properties: { Service: { type: 'string' }, Distance: { type: 'number' } } } } as const;
const CYCLES = { type: 'array', items: NAMES } as const;
const GRAPH = {
  type: 'object',
  properties: {
    Services: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          Name: { type: 'string' },
          Registered: { type: 'boolean' },
          Instances: { type: 'number' },
          Dependencies: NAMES,
          Dependents: NAMES,
          Depth: { type: 'number' },
          InCycle: { type: 'boolean' },
        },
      },
    },
    Edges: { type: 'array', items: { type: 'object', properties: { From: { type: 'string' }, To: { type: 'string' } } } },
    Cycles: CYCLES,
    MaxDepth: { type: 'number' },
  },
} as const;
const REPORT = {
  type: 'object',
  properties: {
    Service: { type: 'string' },
    Registered: { type: 'boolean' },
    Instances: { type: 'number' },
    Dependencies: NAMES,
    TransitiveDependencies: REACHED,
    Missing: NAMES,
    Dependents: NAMES,
    TransitiveDependents: REACHED,
    Depth: { type: 'number' },
    InCycle: { type: 'boolean' },
    Cycles: CYCLES,
  },
} as const;
const IMPACT = { type: 'object', properties: { Service: { type: 'string' }, Dependents: NAMES, TransitiveDependents: REACHED } } as const;

export const konsulServicesRoutes: FastifyPluginAsync<{ ctx: ServerContext }> = async (app, { ctx }) => {
  const { fsm } = ctx;
  const current = () => {
    const instances = [...fsm.catalog.services().keys()].flatMap((name) => fsm.catalog.instances(name));
    return new ServiceDependencies(instances);
  };
  const unknown = (name: string) => notFound(`Service ${JSON.stringify(name)} is neither registered nor a dependency of a registered service`);

  app.get<{ Querystring: Query }>('/v1/konsul/services/dependency-graph', { schema: { querystring: readQuery(), response: { 200: GRAPH } } }, async (request, reply) => {
    const graph = await catalogRead(ctx, request, reply, [WATCH_SERVICES], () => ({ index: fsm.catalog.servicesIndex(), value: current().graph() }));
    return sendJson(reply, graph);
  });

  app.get<WithName>('/v1/konsul/services/:name/dependencies', { schema: { querystring: readQuery(), response: { 200: REPORT } } }, async (request, reply) => {
    const { name } = request.params;
    const report = await catalogRead(ctx, request, reply, [WATCH_SERVICES], () => ({ index: fsm.catalog.servicesIndex(), value: current().report(name) }));
    if (report === undefined) throw unknown(name);
    return sendJson(reply, report);
  });

  app.get<WithName>('/v1/konsul/services/:name/impact', { schema: { querystring: readQuery(), response: { 200: IMPACT } } }, async (request, reply) => {
    const { name } = request.params;
    const report = await catalogRead(ctx, request, reply, [WATCH_SERVICES], () => ({ index: fsm.catalog.servicesIndex(), value: current().report(name) }));
    if (report === undefined) throw unknown(name);
    return sendJson(reply, { Service: report.Service, Dependents: report.Dependents, TransitiveDependents: report.TransitiveDependents });
  });

  for (const url of ['/v1/konsul/services/dependency-graph', '/v1/konsul/services/:name/dependencies', '/v1/konsul/services/:name/impact']) {
    methodNotAllowed(app, url, ['GET']);
  }
};
