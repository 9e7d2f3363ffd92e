// What the catalog, health and Konsul-services routes share: Consul's catalog query parameters
// (dc, tag, node-meta, passing), blocking reads keyed on catalog watch keys, and proposing catalog
// commands.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { encodeCommand, validateCommand } from '../../fsm/commands.ts';
import type { CatalogCommand } from '../../fsm/state/catalog-commands.ts';
import type { CatalogApplyResult, CatalogNode } from '../../fsm/state/catalog.ts';
import { has, param, paramList, queryOf, type Query } from '../../http/query-options.ts';
import { readEndpoint } from '../../http/read-endpoint.ts';
import { badRequest, KonsulError } from '../../lib/errors.ts';
import { serverReads } from './consistency.ts';
import type { ServerContext } from './context.ts';

/** Konsul serves one datacenter; Consul answers any other with this 500. */
export function checkDatacenter(ctx: ServerContext, query: Query): void {
  const dc = param(query, 'dc');
  if (dc !== undefined && dc !== '' && dc !== ctx.config.datacenter) throw new KonsulError('internal', 'No path to datacenter');
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

/**
 * A read of catalog data (http/read-endpoint.ts) after the datacenter check: it blocks until one
 * of `watchKeys` (table 'catalog') changes. `run` is called again after every wake and answers
 * the data and its index.
 */
export async function catalogRead<T>(
  ctx: ServerContext,
  request: FastifyRequest,
  reply: FastifyReply,
  watchKeys: readonly string[],
  run: () => { index: number; value: T },
): Promise<T> {
  checkDatacenter(ctx, queryOf(request));
  const { watches } = ctx.fsm;
  return readEndpoint(serverReads(ctx), request, reply, {
    watch: (wake) => {
      const cancels = watchKeys.map((key) => watches.watchKey(key, wake, 'catalog'));
      return () => {
        for (const cancel of cancels) cancel();
      };
    },
    run,
  });
}

/**
 * Replicates a catalog command. A command beyond the FSM's limits (names longer than 512 characters,
 * more than 256 tags, ...) or one the FSM refused (a check naming an unknown service, a node ID that
 * aliases another node) is a 400 with the reason (Consul's text where Consul has one).
 */
export async function proposeCatalog(ctx: ServerContext, command: CatalogCommand): Promise<Extract<CatalogApplyResult, { ok: true }>> {
  const problem = validateCommand(command);
  if (problem !== null) throw badRequest(`Invalid request: ${problem}`);
  const result = await ctx.cluster.propose(encodeCommand(command));
  if (result.ok) return result;
  throw badRequest(result.error);
}
