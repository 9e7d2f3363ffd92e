// /v1/catalog: Consul's catalog endpoints (developer.hashicorp.com/consul/api-docs/catalog;
// agent/catalog_endpoint.go, agent/consul/catalog_endpoint.go).
// - PUT register / deregister answer `true`; request problems are 400s with Consul's texts (Consul's
//   RPC layer answers some of them with 500).
// - GET nodes, services, service/:name, node/:node block on `index`/`wait` with per-service and
//   per-node indexes (fsm/state/catalog.ts), so a watcher of one service sleeps through writes to others.
// - service/:name and health/service/:name list instances in the same order (node, service ID):
//   Traefik pairs the two lists by position.
import type { FastifyPluginAsync } from 'fastify';
import type { CatalogCheckSpec, CatalogRegisterCommand } from '../../../fsm/state/catalog-commands.ts';
import { nodeWatchKey, serviceWatchKey, WATCH_NODES, WATCH_SERVICES, type CatalogNode } from '../../../fsm/state/catalog.ts';
import {
  BodyObject,
  catalogCheckSpecFrom,
  checkNodeId,
  isAnyAddress,
  metaProblem,
  nodeJson,
  nodeServiceJson,
  parseJsonBody,
  serviceNodeJson,
  serviceSpecFrom,
} from '../../../http/catalog-wire.ts';
import { applyFilter, compileFilter } from '../../../http/filter-expression.ts';
import { param, paramList, type Query } from '../../../http/query-options.ts';
import { rawBody } from '../../../http/raw-body.ts';
import { methodNotAllowed, sendJson, tailParam } from '../../../http/reply.ts';
import { readQuery, writeQuery } from '../../../http/schemas.ts';
import { badRequest, KonsulError } from '../../../lib/errors.ts';
import { catalogRead, hasAllTags, matchesNodeMeta, nodeMetaFilters, proposeCatalog } from '../catalog-query.ts';
import type { ServerContext } from '../context.ts';

/** Request bodies of catalog writes; Consul's own decoder has no smaller limit that matters here. */
const MAX_CATALOG_BODY_BYTES = 1024 * 1024;

type WithQuery = { Querystring: Query };

export const catalogRoutes: FastifyPluginAsync<{ ctx: ServerContext }> = async (app, { ctx }) => {
  const { fsm, config } = ctx;
  await app.register(rawBody, { limitBytes: MAX_CATALOG_BODY_BYTES });

  app.put('/v1/catalog/register', { schema: { querystring: writeQuery() } }, async (request, reply) => {
    const command = registerCommandFrom(parseJsonBody(request.body), ctx);
    await proposeCatalog(ctx, command);
    return sendJson(reply, true);
  });

  app.put('/v1/catalog/deregister', { schema: { querystring: writeQuery() } }, async (request, reply) => {
    const body = new BodyObject(parseJsonBody(request.body), '');
    checkBodyDatacenter(ctx, body);
    const node = body.str('Node');
    if (node === '') throw badRequest('Must provide node');
    const serviceId = body.str('ServiceID');
    const checkId = body.str('CheckID');
    await proposeCatalog(ctx, {
      type: 'catalogDeregister',
      node,
      ...(serviceId !== '' ? { serviceId } : {}),
      ...(checkId !== '' ? { checkId } : {}),
    });
    return sendJson(reply, true);
  });

  app.get('/v1/catalog/datacenters', { schema: { response: { 200: { type: 'array', items: { type: 'string' } } } } }, async (_request, reply) => sendJson(reply, [config.datacenter]));

  app.get<WithQuery>('/v1/catalog/nodes', { schema: { querystring: readQuery('node-meta', 'near') } }, async (request, reply) => {
    const { query } = request;
    const meta = nodeMetaFilters(query);
    const filter = param(query, 'filter');
    if (filter) compileFilter(filter);
    const nodes = await catalogRead(ctx, request, reply, [WATCH_NODES], () => ({
      index: fsm.catalog.nodesIndex(),
      value: fsm.catalog.nodes().filter((n) => matchesNodeMeta(n, meta)).map(nodeJson),
    }));
    return sendJson(reply, applyFilter(nodes, filter));
  });

  app.get<WithQuery>('/v1/catalog/services', { schema: { querystring: readQuery('node-meta') } }, async (request, reply) => {
    const { query } = request;
    const meta = nodeMetaFilters(query);
    const filter = param(query, 'filter');
    const compiled = filter ? compileFilter(filter) : undefined;
    const services = await catalogRead(ctx, request, reply, [WATCH_SERVICES, WATCH_NODES], () => {
      const index = Math.max(fsm.catalog.servicesIndex(), fsm.catalog.nodesIndex());
      if (compiled === undefined) {
        const byNode = Object.keys(meta).length > 0 ? (n: CatalogNode) => matchesNodeMeta(n, meta) : undefined;
        return { index, value: Object.fromEntries(fsm.catalog.services(byNode)) };
      }
      // The filter runs against each ServiceNode, as Consul's does; the map is built from the survivors.
      const out: Record<string, string[]> = {};
      for (const name of fsm.catalog.services().keys()) {
        for (const instance of fsm.catalog.instances(name)) {
          const node = fsm.catalog.nodeOf(instance);
          if (!matchesNodeMeta(node, meta) || !compiled(serviceNodeJson(instance, node))) continue;
          const tags = (out[name] ??= []);
          for (const tag of instance.Tags) if (!tags.includes(tag)) tags.push(tag);
        }
      }
      return { index, value: out };
    });
    return sendJson(reply, services);
  });

  app.get<WithQuery>('/v1/catalog/service/*', { schema: { querystring: readQuery('tag', 'node-meta', 'near') } }, async (request, reply) => {
    const name = tailParam(request, 'Missing service name');
    const { query } = request;
    const tags = paramList(query, 'tag');
    const meta = nodeMetaFilters(query);
    const filter = param(query, 'filter');
    if (filter) compileFilter(filter);
    const entries = await catalogRead(ctx, request, reply, [serviceWatchKey(name)], () => ({
      index: fsm.catalog.serviceIndex(name),
      value: fsm.catalog
        .instances(name)
        .filter((s) => hasAllTags(s.Tags, tags))
        .map((s) => ({ s, n: fsm.catalog.nodeOf(s) }))
        .filter(({ n }) => matchesNodeMeta(n, meta))
        .map(({ s, n }) => serviceNodeJson(s, n)),
    }));
    return sendJson(reply, applyFilter(entries, filter));
  });

  app.get<WithQuery>('/v1/catalog/node/*', { schema: { querystring: readQuery() } }, async (request, reply) => {
    const nodeName = tailParam(request, 'Missing node name');
    const { query } = request;
    const filter = param(query, 'filter');
    const compiled = filter ? compileFilter(filter) : undefined;
    const result = await catalogRead(ctx, request, reply, [nodeWatchKey(nodeName)], () => {
      const node = fsm.catalog.getNode(nodeName);
      if (node === undefined) return { index: fsm.catalog.nodeIndex(nodeName), value: null };
      const services: Record<string, unknown> = {};
      for (const s of fsm.catalog.nodeServices(nodeName)) {
        const json = nodeServiceJson(s);
        if (compiled === undefined || compiled(json)) services[s.ID] = json;
      }
      return { index: fsm.catalog.nodeIndex(nodeName), value: { Node: nodeJson(node), Services: services } };
    });
    // Consul answers a missing node with 200 and null.
    return sendJson(reply, result);
  });

  methodNotAllowed(app, '/v1/catalog/register', ['PUT']);
  methodNotAllowed(app, '/v1/catalog/deregister', ['PUT']);
  for (const url of ['/v1/catalog/datacenters', '/v1/catalog/nodes', '/v1/catalog/services', '/v1/catalog/service/*', '/v1/catalog/node/*']) {
    methodNotAllowed(app, url, ['GET']);
  }
};

/** A body's Datacenter, when given, must be this one. */
function checkBodyDatacenter(ctx: ServerContext, body: BodyObject): void {
  const dc = body.str('Datacenter');
  if (dc !== '' && dc !== ctx.config.datacenter) throw new KonsulError('internal', 'No path to datacenter');
}

/** PUT /v1/catalog/register's body as a command (Consul's RegisterRequest and its pre-apply checks). */
export function registerCommandFrom(value: unknown, ctx: ServerContext): CatalogRegisterCommand {
  const body = new BodyObject(value, '');
  checkBodyDatacenter(ctx, body);
  const node = body.str('Node');
  if (node === '') throw badRequest('Must provide node');
  const id = body.str('ID');
  checkNodeId(id);
  const address = body.str('Address');
  const skipNodeUpdate = body.bool('SkipNodeUpdate');
  if (address === '' && !skipNodeUpdate) throw badRequest('Must provide address if SkipNodeUpdate is not set');
  const nodeMeta = body.strMap('NodeMeta');
  // Consul's own nodes carry consul-* metadata (consul-network-segment), so the prefix is allowed here.
  const nodeMetaProblem = metaProblem(nodeMeta, 'Node', true);
  if (nodeMetaProblem !== null) throw badRequest(`Invalid node metadata: ${nodeMetaProblem}`);
  const serviceBody = body.obj('Service');
  const service = serviceBody !== undefined ? serviceSpecFrom(serviceBody, 'Service', false) : undefined;
  if (service !== undefined) {
    if (service.Service === '') throw badRequest('Must provide service name (Service.Service) when service ID is provided');
    if (isAnyAddress(service.Address)) throw badRequest('Invalid service address');
    const serviceMetaProblem = metaProblem({ ...service.Meta }, 'Service');
    if (serviceMetaProblem !== null) throw badRequest(`Invalid Service Meta: ${serviceMetaProblem}`);
  }
  const checks: CatalogCheckSpec[] = [];
  const single = body.raw('Check');
  if (single !== undefined) checks.push(catalogCheckSpecFrom(single, node, 'Check'));
  body.list('Checks').forEach((c, i) => checks.push(catalogCheckSpecFrom(c, node, `Checks[${i}]`)));
  // A check given twice: the later one wins, as it would when Consul applies them in order.
  const byId = new Map<string, CatalogCheckSpec>();
  for (const c of checks) byId.set(c.CheckID.toLowerCase(), c);
  return {
    type: 'catalogRegister',
    node: {
      Node: node,
      ID: id,
      Address: address,
      Datacenter: ctx.config.datacenter,
      TaggedAddresses: body.strMap('TaggedAddresses'),
      Meta: nodeMeta,
    },
    skipNodeUpdate,
    ...(service !== undefined ? { service } : {}),
    checks: [...byId.values()],
  };
}
