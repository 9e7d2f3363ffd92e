// /v1/event: user events (developer.hashicorp.com/consul/api-docs/event, agent/event_endpoint.go).
// Consul gossips them and each agent lists the last 256 it received; Konsul replicates them through
// Raft into a ring of 256 that every server holds (fsm/state/events.ts, docs/adr/0009-events.md).
// - PUT /v1/event/fire/:name: the body is the payload; ?node, ?service, ?tag are regular expressions
//   stored with the event for the agents that filter on them. Answers the event.
// - GET /v1/event/list[?name=]: the events, oldest first, with blocking queries. X-Consul-Index is
//   Consul's uuidToUint64 of the newest listed event's ID (1 when none), which Konsul's IDs make
//   equal to the Raft index of its fire, so it only grows.
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import { encodeCommand, isWellFormed } from '../../../fsm/commands.ts';
import { MAX_EVENT_FILTER_LENGTH, MAX_EVENT_NAME_LENGTH, MAX_EVENT_PAYLOAD_BYTES, userEventJson } from '../../../fsm/state/events.ts';
import { param, type Query } from '../../../http/query-options.ts';
import { rawBody } from '../../../http/raw-body.ts';
import { readEndpoint } from '../../../http/read-endpoint.ts';
import { methodNotAllowed, sendJson, tailParam } from '../../../http/reply.ts';
import { readQuery, writeQuery } from '../../../http/schemas.ts';
import { badRequest, KonsulError } from '../../../lib/errors.ts';
import { serverReads } from '../consistency.ts';
import type { ServerContext } from '../context.ts';

type WithQuery = { Querystring: Query };

/** An event as Consul's UserEvent answers it (fsm/state/events.ts userEventJson), fields in its order. */
const USER_EVENT = {
  type: 'object',
  properties: {
    ID: { type: 'string' },
    Name: { type: 'string' },
    Payload: { type: ['string', 'null'] },
    NodeFilter: { type: 'string' },
    ServiceFilter: { type: 'string' },
    TagFilter: { type: 'string' },
    Version: { type: 'number' },
    LTime: { type: 'number' },
  },
} as const;

const tooLarge = (size: number, max: number): KonsulError => new KonsulError('tooLarge', `Event payload too large (${size} > ${max} bytes)`);

export const eventRoutes: FastifyPluginAsync<{ ctx: ServerContext }> = async (app, { ctx }) => {
  const { fsm } = ctx;
  const reads = serverReads(ctx);

  // The payload is raw bytes whatever the content type.
  await app.register(rawBody, { limitBytes: MAX_EVENT_PAYLOAD_BYTES, tooLarge });

  app.put<WithQuery>(
    '/v1/event/fire/*',
    { schema: { querystring: writeQuery('node', 'service', 'tag'), response: { 200: USER_EVENT } } },
    async (request, reply) => {
      // Consul takes everything after /v1/event/fire/ as the name, slashes included.
      const name = tailParam(request, 'Missing name');
      if (!isWellFormed(name) || name.length > MAX_EVENT_NAME_LENGTH) throw badRequest(`Invalid event name: at most ${MAX_EVENT_NAME_LENGTH} characters of well-formed Unicode`);
      const nodeFilter = param(request.query, 'node') ?? '';
      const serviceFilter = param(request.query, 'service') ?? '';
      const tagFilter = param(request.query, 'tag') ?? '';
      // Consul's validateUserEventParams texts; Consul answers them with a 500, Konsul with a 400.
      if (tagFilter !== '' && serviceFilter === '') throw badRequest('Cannot provide tag filter without service filter');
      checkFilter(nodeFilter, 'node');
      checkFilter(serviceFilter, 'service');
      checkFilter(tagFilter, 'tag');
      const payload = request.body instanceof Buffer ? request.body : Buffer.alloc(0);
      const result = await ctx.cluster.propose(
        encodeCommand({
          type: 'eventFire',
          id: randomUUID(),
          name,
          payload: payload.toString('base64'),
          nodeFilter,
          serviceFilter,
          tagFilter,
        }),
      );
      if ('ok' in result) throw new KonsulError(result.code === 'invalidCommand' ? 'badRequest' : 'internal', result.error);
      return sendJson(reply, result.event);
    },
  );

  app.get<WithQuery>(
    '/v1/event/list',
    { schema: { querystring: readQuery('name'), response: { 200: { type: 'array', items: USER_EVENT } } } },
    async (request, reply) => {
      const name = param(request.query, 'name') ?? '';
      const events = await readEndpoint(reads, request, reply, {
        watch: (wake) => fsm.watches.watchTable('events', wake),
        run: () => {
          const listed = fsm.events.list(name);
          const newest = listed[listed.length - 1];
          // Consul: uuidToUint64(newest ID), or 1 "to prevent a hot query loop"; here that is its index.
          return { index: newest ? newest.Index : 1, value: listed };
        },
      });
      return sendJson(reply, events.map((e) => userEventJson(e)));
    },
  );

  methodNotAllowed(app, '/v1/event/fire/*', ['PUT']);
  methodNotAllowed(app, '/v1/event/list', ['GET']);
};

/** The filters are regular expressions for the agents that receive the event (Consul compiles them first). */
function checkFilter(filter: string, what: 'node' | 'service' | 'tag'): void {
  if (filter === '') return;
  if (!isWellFormed(filter) || filter.length > MAX_EVENT_FILTER_LENGTH) throw badRequest(`Invalid ${what} filter: at most ${MAX_EVENT_FILTER_LENGTH} characters of well-formed Unicode`);
  try {
    new RegExp(filter);
  } catch (err) {
    throw badRequest(`Invalid ${what} filter: ${(err as Error).message}`);
  }
}
