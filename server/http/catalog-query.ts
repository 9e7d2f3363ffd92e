// What the catalog, health, agent and dependency routes share: Consul's query parameters (dc, tag,
// node-meta, passing, filter), blocking reads keyed on catalog watch keys, raw JSON bodies, and
// proposing catalog commands.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { encodeCommand, validateCommand } from '../../fsm/commands.ts';
import type { ApplyError } from '../../fsm/konsul-fsm.ts';
import type { CatalogCommand } from '../../fsm/state/catalog-commands.ts';
import type { CatalogApplyResult, CatalogNode } from '../../fsm/state/catalog.ts';
import { badRequest, HttpError } from '../errors.ts';
import { abortOnClose, blockingQuery } from './blocking.ts';
import { readGate, setQueryMeta } from './consistency.ts';
import type { ServerContext } from './context.ts';
import { has, param, parseQueryOptions, type Query } from './query-options.ts';

/** Request bodies of catalog and agent writes; Consul's own decoder has no smaller limit that matters here. */
export const MAX_CATALOG_BODY_BYTES = 1024 * 1024;

/**
 * Bodies are JSON whatever the content type says (curl sends form encoding by default, Consul reads
 * the body as JSON regardless); the routes parse them with parseJsonBody for Consul's error texts.
 */
export function acceptRawBodies(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_CATALOG_BODY_BYTES }, (_req, body, done) => done(null, body));
}

/** Konsul serves one datacenter; Consul answers any other with this 500. */
export function checkDatacenter(ctx: ServerContext, query: Query): void {
  const dc = param(query, 'dc');
  if (dc !== undefined && dc !== '' && dc !== ctx.config.datacenter) throw new HttpError(500, 'No path to datacenter');
}

/** Every value of a repeated query parameter (Prometheus repeats ?tag). */
export function paramList(query: Query, name: string): string[] {
  const v = query[name];
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

/** ?tag=a&tag=b: an instance must have every tag, compared case-insensitively (Consul's serviceTagFilter). */
export function hasAllTags(tags: readonly string[], wanted: readonly string[]): boolean {
  if (wanted.length === 0) return true;
  const have = new Set(tags.map((t) => t.toLowerCase()));
  return wanted.every((w) => have.has(w.toLowerCase()));
}

/** ?node-meta=key:value, repeatable (Consul's parseMetaFilter: split at the first colon). */
export function nodeMetaFilters(query: Query): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of paramList(query, 'node-meta')) {
    const i = pair.indexOf(':');
    if (i < 0) out[pair] = '';
    else out[pair.slice(0, i)] = pair.slice(i + 1);
  }
  return out;
}

export function matchesNodeMeta(node: CatalogNode, filters: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(filters)) {
    if (!Object.prototype.hasOwnProperty.call(node.Meta, k) || node.Meta[k] !== v) return false;
  }
  return true;
}

/** Consul's getBoolQueryParam: present without a value means true; else Go's strconv.ParseBool. */
export function boolParam(query: Query, name: string, invalidMessage: string): boolean {
  if (!has(query, name)) return false;
  const v = param(query, name) ?? '';
  if (v === '') return true;
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  throw badRequest(invalidMessage);
}

/** The path parameter after a route's prefix (Consul takes everything, slashes included). */
export function tailParam(request: FastifyRequest, missing: string): string {
  const value = (request.params as { '*'?: string })['*'] ?? '';
  if (value === '') throw badRequest(missing);
  return value;
}

/**
 * A read of catalog data with Consul's query options: consistency gate, blocking on `index`/`wait`
 * until one of `watchKeys` (table 'catalog') changes, and the X-Consul-* headers. `run` is called
 * again after every wake and answers the data and its index.
 */
export async function catalogRead<T>(
  ctx: ServerContext,
  request: FastifyRequest,
  reply: FastifyReply,
  watchKeys: readonly string[],
  run: () => { index: number; value: T },
): Promise<T> {
  const query = request.query as Query;
  checkDatacenter(ctx, query);
  const opts = parseQueryOptions(query);
  await readGate(ctx, opts.consistency);
  const signal = opts.minIndex > 0 ? abortOnClose(reply, ctx.shutdownSignal) : undefined;
  const { index, value } = await blockingQuery({
    minIndex: opts.minIndex,
    waitMs: opts.waitMs,
    signal,
    watch: (wake) => {
      const cancels = watchKeys.map((key) => ctx.fsm.watches.watchKey(key, wake, 'catalog'));
      return () => {
        for (const cancel of cancels) cancel();
      };
    },
    run,
  });
  setQueryMeta(reply, ctx, index, opts.consistency);
  return value;
}

export function sendJson(reply: FastifyReply, body: unknown): FastifyReply {
  return reply.type('application/json').send(typeof body === 'string' ? body : JSON.stringify(body));
}

/**
 * Replicates a catalog command. A command beyond the FSM's limits (names longer than 512 characters,
 * more than 256 tags, ...) or one the FSM refused (a check naming an unknown service, a node ID that
 * aliases another node) is a 400 with the reason (Consul's text where Consul has one).
 */
export async function proposeCatalog(ctx: ServerContext, command: CatalogCommand): Promise<Extract<CatalogApplyResult, { ok: true }>> {
  const problem = validateCommand(command);
  if (problem !== null) throw badRequest(`Invalid request: ${problem}`);
  const result = (await ctx.cluster.propose(encodeCommand(command))) as CatalogApplyResult | ApplyError;
  if (result.ok) return result;
  throw badRequest(result.error);
}


/** 405 for the methods a path does not take (Consul's MethodNotAllowedError). */
export function methodNotAllowed(app: FastifyInstance, url: string, allowed: readonly string[]): void {
  const methods = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH'].filter((m) => !allowed.includes(m));
  app.route({
    method: methods,
    url,
    handler: async (request) => {
      throw new HttpError(405, `method ${request.method} not allowed`);
    },
  });
}
