// Consul's query-string parameters, described once and registered on every app by createHttpApp
// (`app.addSchema`), so each route refers to them by `$ref` instead of repeating them.
//
// A query value is a string, or a list when the name is repeated (?tag=a&tag=b): fastify's parser
// gives either, and Consul takes the first value of a scalar parameter. The schemas therefore
// accept both and leave the values' syntax to the parsers (query-options.ts and the routes), which
// answer Consul's exact 400 texts ("Invalid index", "Invalid wait time") that a schema error could
// not. Names a schema does not list pass through (additionalProperties), as Consul ignores them.
//
// Request bodies have no schemas, on purpose: see docs/adr/0021-http-platform.md.
import type { FastifyInstance } from 'fastify';

/** One query parameter: a string, or the list of a repeated one. */
export const QUERY_VALUE_ID = 'konsul.queryValue';
/** The parameters of a read: blocking, consistency, datacenter, filter, namespace. */
export const READ_QUERY_ID = 'konsul.readQuery';
/** The parameters of a write: datacenter, namespace. */
export const WRITE_QUERY_ID = 'konsul.writeQuery';

const value = { $ref: `${QUERY_VALUE_ID}#` } as const;

export const SHARED_SCHEMAS = [
  { $id: QUERY_VALUE_ID, anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
  {
    $id: READ_QUERY_ID,
    type: 'object',
    properties: { index: value, wait: value, stale: value, consistent: value, cached: value, dc: value, filter: value, ns: value, partition: value },
    additionalProperties: true,
  },
  {
    $id: WRITE_QUERY_ID,
    type: 'object',
    properties: { dc: value, ns: value, partition: value },
    additionalProperties: true,
  },
] as const;

/**
 * Registers the shared schemas on an app (createHttpApp does it; a test that mounts a route plugin
 * on a bare fastify app calls it first, or `$ref`s do not resolve).
 */
export function addSharedSchemas(app: FastifyInstance): void {
  for (const schema of SHARED_SCHEMAS) app.addSchema(schema);
}

/** `schema.querystring` of a read route: the shared read parameters plus the route's own. */
export function readQuery(...own: readonly string[]): object {
  return withOwn(READ_QUERY_ID, own);
}

/** `schema.querystring` of a write route: the shared write parameters plus the route's own. */
export function writeQuery(...own: readonly string[]): object {
  return withOwn(WRITE_QUERY_ID, own);
}

function withOwn(shared: string, own: readonly string[]): object {
  if (own.length === 0) return { $ref: `${shared}#` };
  return { allOf: [{ $ref: `${shared}#` }, { type: 'object', properties: Object.fromEntries(own.map((name) => [name, value])) }] };
}
