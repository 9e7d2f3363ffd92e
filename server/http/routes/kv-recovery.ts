// /v1/konsul/kv-recovery: recoverable deletes, a Konsul extension (docs/adr/0017-kv-recovery.md).
// For keys under the configured `kv_recovery` prefixes the FSM keeps the values that deletes and
// overwrites retired (fsm/state/kv-recovery.ts); these endpoints list them and write them back.
// - GET  /v1/konsul/kv-recovery/?prefix=P   every kept version under P (no values), keys in order,
//                                           each key's newest first
// - GET  /v1/konsul/kv-recovery/<key>       that key's versions with their values (404: none)
// - PUT  /v1/konsul/kv-recovery/<key>[?version=N][&cas=M]
//                                           writes version N (its ModifyIndex; default the newest)
//                                           back with its flags: a plain KV write through Raft, so
//                                           the value it replaces is kept in turn
// - DELETE /v1/konsul/kv-recovery/<key>[?recurse]   forgets the versions for good
// - GET  /v1/konsul/kv-recovery-rules       the rules in force (those the FSM holds), counts, bytes
// Reads take the consistency modes of other reads and answer X-Consul-Index = the table's index.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { encodeCommand, type KvSetCommand } from '../../../fsm/commands.ts';
import { createIndexOf, flagsOf, lockIndexOf, modifyIndexOf, sessionOf, valueLengthOf, valueOf } from '../../../fsm/state/kv-record.ts';
import type { KvRecoveryTable, RetiredVersion } from '../../../fsm/state/kv-recovery.ts';
import type { ApplyError } from '../../../fsm/konsul-fsm.ts';
import { has, param, parseUint, type Query } from '../../../http/query-options.ts';
import { readEndpoint } from '../../../http/read-endpoint.ts';
import { methodNotAllowed, sendJson } from '../../../http/reply.ts';
import { readQuery, writeQuery } from '../../../http/schemas.ts';
import { formatGoDuration } from '../../../lib/duration.ts';
import { badRequest, KonsulError, notFound } from '../../../lib/errors.ts';
import { serverReads } from '../consistency.ts';
import type { ServerContext } from '../context.ts';

const PREFIX = '/v1/konsul/kv-recovery/';

type WithQuery = { Querystring: Query; Params: { '*'?: string } };

/** PUT's answer: the version written back, and whether the write happened (false: ?cas did not match). */
const RESTORED = { type: 'object', properties: { Key: { type: 'string' }, Version: { type: 'number' }, Written: { type: 'boolean' } } } as const;
/** DELETE's answer: how many versions were forgotten. */
const PURGED = { type: 'object', properties: { Removed: { type: 'number' } } } as const;
const RULES = {
  type: 'object',
  properties: {
    Rules: {
      type: 'array',
      items: { type: 'object', properties: { Prefix: { type: 'string' }, Retention: { type: 'string' }, MaxVersions: { type: 'number' } } },
    },
    MaxBytes: { type: 'number' },
    Versions: { type: 'number' },
    Bytes: { type: 'number' },
  },
} as const;

export const kvRecoveryRoutes: FastifyPluginAsync<{ ctx: ServerContext }> = async (app, { ctx }) => {
  const table = ctx.fsm.kvRecovery;
  const reads = serverReads(ctx);

  // Reads take the consistency modes of other reads; they never block (X-Consul-Index is the table's index).
  app.get<WithQuery>(`${PREFIX}*`, { schema: { querystring: readQuery('prefix') } }, async (request, reply) => {
    const key = keyOf(request);
    if (key === '') {
      const prefix = param(request.query, 'prefix') ?? '';
      const listed = await readEndpoint(reads, request, reply, { run: () => ({ index: table.index(), value: table.list(prefix) }) });
      return sendJson(reply, `[${listed.map((v) => versionJson(table, v, false)).join(',')}]`);
    }
    const versions = await readEndpoint(reads, request, reply, { run: () => ({ index: table.index(), value: table.versionsOf(key) }) });
    if (versions.length === 0) throw notFound(`no retired versions of ${JSON.stringify(key)}`);
    return sendJson(reply, `[${versions.map((v) => versionJson(table, v, true)).join(',')}]`);
  });

  app.put<WithQuery>(`${PREFIX}*`, { schema: { querystring: writeQuery('version', 'cas'), response: { 200: RESTORED } } }, async (request, reply) => {
    const key = keyOf(request);
    if (key === '') throw badRequest('Missing key name');
    const query = request.query;
    const versions = table.versionsOf(key);
    let version: RetiredVersion | undefined = versions[0];
    if (has(query, 'version')) {
      const wanted = parseUint(param(query, 'version') ?? '');
      if (wanted === null) throw badRequest('Invalid version: expected a ModifyIndex');
      version = versions.find((v) => modifyIndexOf(v.record) === wanted);
    }
    if (version === undefined) {
      throw notFound(has(query, 'version') ? `no retired version ${param(query, 'version')} of ${JSON.stringify(key)}` : `no retired versions of ${JSON.stringify(key)}`);
    }
    const command: KvSetCommand = {
      type: 'kvSet',
      key,
      value: Buffer.from(valueOf(version.record)).toString('base64'),
      flags: flagsOf(version.record).toString(),
      // Dates what this write retires in turn (the key is under a rule).
      nowMs: Date.now(),
      ...(has(query, 'cas') ? { cas: requireUint(param(query, 'cas'), 'Invalid CAS index') } : {}),
    };
    const result = await ctx.cluster.propose(encodeCommand(command));
    if (typeof result !== 'boolean') throw applyError(result);
    return sendJson(reply, { Key: key, Version: modifyIndexOf(version.record), Written: result });
  });

  app.delete<WithQuery>(`${PREFIX}*`, { schema: { querystring: writeQuery('recurse'), response: { 200: PURGED } } }, async (request, reply) => {
    const key = keyOf(request);
    const recurse = has(request.query, 'recurse');
    if (key === '' && !recurse) throw badRequest('Missing key name (use ?recurse to forget every version)');
    const result = await ctx.cluster.propose(encodeCommand({ type: 'kvRecoveryPurge', key, ...(recurse ? { recurse: true as const } : {}) }));
    if ('ok' in result) throw applyError(result);
    return sendJson(reply, { Removed: result.removed });
  });

  app.get('/v1/konsul/kv-recovery-rules', { schema: { querystring: readQuery(), response: { 200: RULES } } }, async (request, reply) => {
    const rules = await readEndpoint(reads, request, reply, {
      run: () => ({
        index: table.index(),
        value: {
          Rules: table.currentRules().map((r) => ({ Prefix: r.prefix, Retention: formatGoDuration(r.retentionMs * 1_000_000), MaxVersions: r.maxVersions })),
          MaxBytes: table.currentMaxBytes(),
          Versions: table.versionCount,
          Bytes: table.totalBytes,
        },
      }),
    });
    return sendJson(reply, rules);
  });

  methodNotAllowed(app, `${PREFIX}*`, ['GET', 'PUT', 'DELETE']);
  methodNotAllowed(app, '/v1/konsul/kv-recovery-rules', ['GET']);
};

/** A command the FSM refused as malformed is the request's fault; anything else is a 500. */
function applyError(result: ApplyError): KonsulError {
  return new KonsulError(result.code === 'invalidCommand' ? 'badRequest' : 'internal', result.error);
}

function keyOf(request: FastifyRequest<WithQuery>): string {
  const key = request.params['*'] ?? '';
  if (key.startsWith('/')) throw badRequest("Invalid key: a key must not begin with a '/'");
  return key;
}

function requireUint(text: string | undefined, message: string): number {
  const n = parseUint(text ?? '');
  if (n === null) throw badRequest(message);
  return n;
}

/** One version as JSON, by hand so that Flags keeps all 64 bits. `Version` is its ModifyIndex. */
function versionJson(table: KvRecoveryTable, v: RetiredVersion, withValue: boolean): string {
  const r = v.record;
  const session = sessionOf(r);
  const size = valueLengthOf(r);
  const value = withValue && size > 0 ? JSON.stringify(Buffer.from(valueOf(r)).toString('base64')) : 'null';
  return (
    `{"Key":${JSON.stringify(v.key)},"Version":${modifyIndexOf(r)},"CreateIndex":${createIndexOf(r)},"ModifyIndex":${modifyIndexOf(r)},` +
    `"LockIndex":${lockIndexOf(r)},"Flags":${flagsOf(r).toString()},"Value":${value},"Size":${size}` +
    (session !== undefined ? `,"Session":${JSON.stringify(session)}` : '') +
    `,"Reason":"${v.why}","RetiredIndex":${v.retiredIndex},"RetiredAt":${isoTime(v.retiredAtMs)},"ExpiresAt":${isoTime(table.expiresAtMs(v))}}`
  );
}

function isoTime(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? 'null' : JSON.stringify(date.toISOString());
}
