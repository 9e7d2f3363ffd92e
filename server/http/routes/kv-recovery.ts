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
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { encodeCommand, type Command } from '../../../fsm/commands.ts';
import type { ApplyResult } from '../../../fsm/konsul-fsm.ts';
import { formatGoDuration } from '../../../fsm/state/go-duration.ts';
import { createIndexOf, flagsOf, lockIndexOf, modifyIndexOf, sessionOf, valueLengthOf, valueOf } from '../../../fsm/state/kv-record.ts';
import type { KvRecoveryApplyResult, KvRecoveryTable, RetiredVersion } from '../../../fsm/state/kv-recovery.ts';
import { badRequest, HttpError, notFound } from '../../errors.ts';
import { methodNotAllowed, sendJson } from '../catalog-query.ts';
import { readGate, setQueryMeta } from '../consistency.ts';
import type { ServerContext } from '../context.ts';
import { has, param, parseQueryOptions, parseUint, type Query } from '../query-options.ts';

const PREFIX = '/v1/konsul/kv-recovery/';

export const kvRecoveryRoutes: FastifyPluginAsync<{ ctx: ServerContext }> = async (app, { ctx }) => {
  const table = ctx.fsm.kvRecovery;

  /** Reads after the consistency gate, with the query headers. */
  const read = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const opts = parseQueryOptions(request.query as Query);
    await readGate(ctx, opts.consistency);
    setQueryMeta(reply, ctx, table.index(), opts.consistency);
  };

  app.get(`${PREFIX}*`, async (request, reply) => {
    const key = keyOf(request);
    await read(request, reply);
    if (key === '') {
      const prefix = param(request.query as Query, 'prefix') ?? '';
      return sendJson(reply, `[${table.list(prefix).map((v) => versionJson(table, v, false)).join(',')}]`);
    }
    const versions = table.versionsOf(key);
    if (versions.length === 0) throw notFound(`no retired versions of ${JSON.stringify(key)}`);
    return sendJson(reply, `[${versions.map((v) => versionJson(table, v, true)).join(',')}]`);
  });

  app.put(`${PREFIX}*`, async (request, reply) => {
    const key = keyOf(request);
    if (key === '') throw badRequest('Missing key name');
    const query = request.query as Query;
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
    const command: Command = {
      type: 'kvSet',
      key,
      value: Buffer.from(valueOf(version.record)).toString('base64'),
      flags: flagsOf(version.record).toString(),
      // Dates what this write retires in turn (the key is under a rule).
      nowMs: Date.now(),
      ...(has(query, 'cas') ? { cas: requireUint(param(query, 'cas'), 'Invalid CAS index') } : {}),
    };
    const result = (await ctx.cluster.propose(encodeCommand(command))) as ApplyResult;
    if (typeof result !== 'boolean') throw new HttpError(result.code === 'invalidCommand' ? 400 : 500, result.error);
    return sendJson(reply, { Key: key, Version: modifyIndexOf(version.record), Written: result });
  });

  app.delete(`${PREFIX}*`, async (request, reply) => {
    const key = keyOf(request);
    const recurse = has(request.query as Query, 'recurse');
    if (key === '' && !recurse) throw badRequest('Missing key name (use ?recurse to forget every version)');
    const command: Command = { type: 'kvRecoveryPurge', key, ...(recurse ? { recurse: true as const } : {}) };
    const result = (await ctx.cluster.propose(encodeCommand(command))) as KvRecoveryApplyResult;
    return sendJson(reply, { Removed: result.removed });
  });

  app.get('/v1/konsul/kv-recovery-rules', async (request, reply) => {
    await read(request, reply);
    return sendJson(reply, {
      Rules: table.currentRules().map((r) => ({ Prefix: r.prefix, Retention: formatGoDuration(r.retentionMs * 1_000_000), MaxVersions: r.maxVersions })),
      MaxBytes: table.currentMaxBytes(),
      Versions: table.versionCount,
      Bytes: table.totalBytes,
    });
  });

  app.route({
    method: ['POST', 'PATCH'],
    url: `${PREFIX}*`,
    handler: async (request) => {
      throw new HttpError(405, `method ${request.method} not allowed`);
    },
  });
  methodNotAllowed(app, '/v1/konsul/kv-recovery-rules', ['GET']);
};

function keyOf(request: FastifyRequest): string {
  const key = (request.params as { '*': string })['*'] ?? '';
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
