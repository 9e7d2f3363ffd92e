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
import { notFound } from '../../errors.ts';
import { ServiceDependencies } from '../../service-dependencies.ts';
import { catalogRead, methodNotAllowed, sendJson } from '../catalog-query.ts';
import type { ServerContext } from '../context.ts';

export const konsulServicesRoutes: FastifyPluginAsync<{ ctx: ServerContext }> = async (app, { ctx }) => {
  const { fsm } = ctx;
  const current = () => {
    const instances = [...fsm.catalog.services().keys()].flatMap((name) => fsm.catalog.instances(name));
    return new ServiceDependencies(instances);
  };

  app.get('/v1/konsul/services/dependency-graph', async (request, reply) => {
    const graph = await catalogRead(ctx, request, reply, [WATCH_SERVICES], () => ({ index: fsm.catalog.servicesIndex(), value: current().graph() }));
    return sendJson(reply, graph);
  });

  app.get('/v1/konsul/services/:name/dependencies', async (request, reply) => {
    const { name } = request.params as { name: string };
    const report = await catalogRead(ctx, request, reply, [WATCH_SERVICES], () => ({ index: fsm.catalog.servicesIndex(), value: current().report(name) }));
    if (report === undefined) throw notFound(`Service ${JSON.stringify(name)} is neither registered nor a dependency of a registered service`);
    return sendJson(reply, report);
  });

  app.get('/v1/konsul/services/:name/impact', async (request, reply) => {
    const { name } = request.params as { name: string };
    const report = await catalogRead(ctx, request, reply, [WATCH_SERVICES], () => ({ index: fsm.catalog.servicesIndex(), value: current().report(name) }));
    if (report === undefined) throw notFound(`Service ${JSON.stringify(name)} is neither registered nor a dependency of a registered service`);
    return sendJson(reply, { Service: report.Service, Dependents: report.Dependents, TransitiveDependents: report.TransitiveDependents });
  });

  for (const url of ['/v1/konsul/services/dependency-graph', '/v1/konsul/services/:name/dependencies', '/v1/konsul/services/:name/impact']) {
    methodNotAllowed(app, url, ['GET']);
  }
};
