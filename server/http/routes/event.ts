// /v1/event: user events (developer.hashicorp.com/consul/api-docs/event, agent/event_endpoint.go).
// Consul gossips them and each agent lists the last 256 it received; Konsul replicates them through
// Raft into a ring of 256 that every server holds (fsm/state/events.ts, docs/adr/0009-events.md).
// - PUT /v1/event/fire/:name: the body is the payload; ?node, ?service, ?tag are regular expressions
//   stored with the event for the agents that filter on them. Answers the event.
// - GET /v1/event/list[?name=]: the events, oldest first, with blocking queries. X-Consul-Index is
//   Consul's uuidToUint64 of the newest listed event's ID (1 when none), which Konsul's IDs make
//   equal to the Raft index of its fire, so it only grows.
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { encodeCommand, isWellFormed } from '../../../fsm/commands.ts';
import type { ApplyError } from '../../../fsm/konsul-fsm.ts';
import { MAX_EVENT_FILTER_LENGTH, MAX_EVENT_NAME_LENGTH, MAX_EVENT_PAYLOAD_BYTES, userEventJson, type EventFireResult, type UserEventJson } from '../../../fsm/state/events.ts';
import { badRequest, HttpError } from '../../errors.ts';
import { abortOnClose, blockingQuery } from '../blocking.ts';
import { readGate, setQueryMeta } from '../consistency.ts';
import type { ServerContext } from '../context.ts';
import { param, parseQueryOptions, type Query } from '../query-options.ts';

export const eventRoutes: FastifyPluginAsync<{ ctx: ServerContext }> = async (app, { ctx }) => {
  const { fsm } = ctx;
  const tooLarge = (size: number) => new HttpError(413, `Event payload too large (${size} > ${MAX_EVENT_PAYLOAD_BYTES} bytes)`);

  // The payload is raw bytes whatever the content type.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_EVENT_PAYLOAD_BYTES }, (_req, body, done) => done(null, body));
  app.addHook('onRequest', async (request) => {
    const length = Number(request.headers['content-length'] ?? 0);
    if (request.method === 'PUT' && length > MAX_EVENT_PAYLOAD_BYTES) throw tooLarge(length);
  });
  app.addHook('onError', async (_request, _reply, err) => {
    if ((err as { code?: string }).code === 'FST_ERR_CTP_BODY_TOO_LARGE') throw tooLarge(MAX_EVENT_PAYLOAD_BYTES + 1);
  });

  app.put('/v1/event/fire/*', async (request, reply) => {
    // Consul takes everything after /v1/event/fire/ as the name, slashes included.
    const name = (request.params as { '*': string })['*'] ?? '';
    if (name === '') throw badRequest('Missing name');
    if (!isWellFormed(name) || name.length > MAX_EVENT_NAME_LENGTH) throw badRequest(`Invalid event name: at most ${MAX_EVENT_NAME_LENGTH} characters of well-formed Unicode`);
    const query = request.query as Query;
    const nodeFilter = param(query, 'node') ?? '';
    const serviceFilter = param(query, 'service') ?? '';
    const tagFilter = param(query, 'tag') ?? '';
    // Consul's validateUserEventParams texts; Consul answers them with a 500, Konsul with a 400.
    if (tagFilter !== '' && serviceFilter === '') throw badRequest('Cannot provide tag filter without service filter');
    checkFilter(nodeFilter, 'node');
    checkFilter(serviceFilter, 'service');
    checkFilter(tagFilter, 'tag');
    const payload = request.body instanceof Buffer ? request.body : Buffer.alloc(0);
    if (payload.length > MAX_EVENT_PAYLOAD_BYTES) throw tooLarge(payload.length);
    const command = encodeCommand({
      type: 'eventFire',
      id: randomUUID(),
      name,
      payload: payload.toString('base64'),
      nodeFilter,
      serviceFilter,
      tagFilter,
    });
    const result = (await ctx.cluster.propose(command)) as EventFireResult | ApplyError;
    if ('ok' in result) throw new HttpError(result.code === 'invalidCommand' ? 400 : 500, result.error);
    return sendJson(reply, result.event);
  });

  app.get('/v1/event/list', async (request, reply) => {
    const query = request.query as Query;
    const name = param(query, 'name') ?? '';
    const opts = parseQueryOptions(query);
    await readGate(ctx, opts.consistency);
    const signal = opts.minIndex > 0 ? abortOnClose(reply, ctx.shutdownSignal) : undefined;
    const { index, value } = await blockingQuery({
      minIndex: opts.minIndex,
      waitMs: opts.waitMs,
      signal,
      watch: (wake) => fsm.watches.watchTable('events', wake),
      run: () => {
        const events = fsm.events.list(name);
        const newest = events[events.length - 1];
        // Consul: uuidToUint64(newest ID), or 1 "to prevent a hot query loop"; here that is its index.
        return { index: newest ? newest.Index : 1, value: events };
      },
    });
    setQueryMeta(reply, ctx, index, opts.consistency);
    return sendJson(reply, value.map((e) => userEventJson(e)));
  });

  app.route({
    method: ['GET', 'POST', 'DELETE', 'PATCH'],
    url: '/v1/event/fire/*',
    handler: async (request) => {
      throw new HttpError(405, `method ${request.method} not allowed`);
    },
  });
  app.route({
    method: ['PUT', 'POST', 'DELETE', 'PATCH'],
    url: '/v1/event/list',
    handler: async (request) => {
      throw new HttpError(405, `method ${request.method} not allowed`);
    },
  });
};

function sendJson(reply: FastifyReply, body: UserEventJson | UserEventJson[]): FastifyReply {
  return reply.type('application/json').send(JSON.stringify(body));
}

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
