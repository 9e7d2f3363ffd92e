// /v1/kv: Consul's KV endpoint, byte for byte: raw bodies in, base64 values out, true/false for
// writes, 404 with X-Consul-Index for missing keys, blocking queries and consistency modes.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { encodeCommand, type Command } from '../../../fsm/commands.ts';
import type { ApplyResult, KonsulFsm } from '../../../fsm/konsul-fsm.ts';
import type { KvEntry } from '../../../fsm/state/kv.ts';
import { has, param, parseQueryOptions, parseUint, type Query } from '../../../http/query-options.ts';
import { consulBodyTooLarge, rawBody } from '../../../http/raw-body.ts';
import { readGate } from '../../../http/read-endpoint.ts';
import { methodNotAllowedError } from '../../../http/reply.ts';
import { readQuery, writeQuery } from '../../../http/schemas.ts';
import { badRequest, KonsulError } from '../../../lib/errors.ts';
import { answerKey, createAnswerHub, type AnswerContent, type AnswerHub, type SharedQuery } from '../answer-hub.ts';
import { serverReads } from '../consistency.ts';
import type { ServerContext } from '../context.ts';

const MAX_UINT64 = 18446744073709551615n;

export interface KvRoutesOptions {
  readonly ctx: ServerContext;
  /** Shares answers between requests (the app's; a plugin registered alone makes its own). */
  readonly answers?: AnswerHub;
}

export const kvRoutes: FastifyPluginAsync<KvRoutesOptions> = async (app, { ctx, answers: given }) => {
  const { config, fsm } = ctx;
  const answers = given ?? createAnswerHub(ctx);

  const reads = serverReads(ctx);

  // KV bodies are raw bytes whatever their content type (curl sends form encoding by default); one
  // over kv_max_value_size is refused with Consul's 413 before it is read.
  await app.register(rawBody, { limitBytes: config.kvMaxValueSize, tooLarge: consulBodyTooLarge });

  const keyOf = (request: FastifyRequest): string => {
    const key = (request.params as { '*': string })['*'] ?? '';
    validateKey(key, config.kvMaxKeyLength);
    return key;
  };

  app.get<WithQuery>('/v1/kv/*', { schema: { querystring: readQuery('keys', 'recurse', 'raw', 'separator') } }, async (request, reply) => {
    const key = keyOf(request);
    const { query } = request;
    const opts = parseQueryOptions(query);
    await readGate(reads, opts.consistency);
    let read: KvRead;
    if (has(query, 'keys')) read = new KvRead(fsm, 'keys', key, param(query, 'separator') ?? param(query, 'seperator') ?? '');
    else if (has(query, 'recurse')) read = new KvRead(fsm, 'recurse', key, '');
    else if (key === '') throw badRequest('Missing key name');
    else read = new KvRead(fsm, has(query, 'raw') ? 'raw' : 'entry', key, '');
    answers.serve(reply, opts, read);
  });

  app.put<WithQuery>('/v1/kv/*', { schema: { querystring: writeQuery('flags', 'cas', 'acquire', 'release') } }, async (request, reply) => {
    const key = keyOf(request);
    if (key === '') throw badRequest('Missing key name');
    const { query } = request;
    rejectConflictingFlags(query, ['cas', 'acquire', 'release']);
    const body = request.body instanceof Buffer ? request.body : Buffer.alloc(0);
    const flags = parseFlags(param(query, 'flags'));
    const command: Command = {
      type: 'kvSet',
      key,
      value: body.toString('base64'),
      flags,
      ...(has(query, 'cas') ? { cas: requireIndex(param(query, 'cas'), 'Invalid CAS index') } : {}),
      // The proposer's clock travels with an acquire: the FSM refuses a key under lock-delay.
      ...(has(query, 'acquire') ? { acquire: requireSession(param(query, 'acquire')), nowMs: Date.now() } : {}),
      // And with a write to a key under recovery rules: it dates the value the write retires.
      ...(!has(query, 'acquire') && fsm.kvRecovery.covers(key) ? { nowMs: Date.now() } : {}),
      ...(has(query, 'release') ? { release: requireSession(param(query, 'release')) } : {}),
    };
    return sendApplyResult(reply, await ctx.cluster.propose(encodeCommand(command)));
  });

  app.delete<WithQuery>('/v1/kv/*', { schema: { querystring: writeQuery('recurse', 'cas') } }, async (request, reply) => {
    const key = keyOf(request);
    const { query } = request;
    rejectConflictingFlags(query, ['recurse', 'cas']);
    let command: Command;
    if (has(query, 'recurse')) command = { type: 'kvDeleteTree', prefix: key };
    else if (key === '') throw badRequest('Missing key name');
    else if (has(query, 'cas')) command = { type: 'kvDelete', key, cas: requireIndex(param(query, 'cas'), 'Invalid CAS index') };
    else command = { type: 'kvDelete', key };
    // A delete that may retire values kept by recovery rules carries the time it happened.
    if (command.type === 'kvDeleteTree' ? fsm.kvRecovery.overlaps(key) : fsm.kvRecovery.covers(key)) command = { ...command, nowMs: Date.now() };
    return sendApplyResult(reply, await ctx.cluster.propose(encodeCommand(command)));
  });

  app.route({
    method: ['POST', 'PATCH', 'OPTIONS'],
    url: '/v1/kv/*',
    handler: async (request) => {
      throw methodNotAllowedError(request.method);
    },
  });
};

type KvShape = 'entry' | 'raw' | 'recurse' | 'keys';
type WithQuery = { Querystring: Query };

const JSON_TYPE = ['content-type', 'application/json; charset=utf-8'] as const;
const RAW_HEADERS = ['content-type', 'text/plain', 'x-content-type-options', 'nosniff', 'content-security-policy', 'sandbox'] as const;
const EMPTY = Buffer.alloc(0);

/**
 * One GET /v1/kv read, as the answer hub shares it: requests with the same key, shape and separator
 * read the same bytes from the same state, whatever their index, wait or consistency mode (those
 * only change when and with which X-Consul-* headers the bytes are sent).
 */
class KvRead implements SharedQuery {
  readonly key: string;

  constructor(
    private readonly fsm: KonsulFsm,
    private readonly shape: KvShape,
    private readonly kvKey: string,
    private readonly separator: string,
  ) {
    // Everything the answer depends on besides the state. ACL tokens (issue 14) will filter what a
    // request may see: add the request's permission fingerprint (its resolved policy set) as one
    // more part here, and answers for different permissions can never be shared.
    this.key = answerKey(['kv', shape, kvKey, separator]);
  }

  watch(wake: () => void): () => void {
    const { watches } = this.fsm;
    return this.shape === 'entry' || this.shape === 'raw' ? watches.watchKey(this.kvKey, wake) : watches.watchPrefix(this.kvKey, wake);
  }

  read(): AnswerContent {
    const { kv } = this.fsm;
    const key = this.kvKey;
    switch (this.shape) {
      case 'keys': {
        const index = kv.prefixIndex(key);
        const keys = kv.keys(key, this.separator);
        // The root answers an empty list; any other prefix without keys is a 404.
        if (keys.length === 0 && key !== '') return notFound(index);
        return { index, status: 200, headers: JSON_TYPE, body: Buffer.from(JSON.stringify(keys)) };
      }
      case 'recurse': {
        const index = kv.prefixIndex(key);
        const entries = kv.list(key);
        if (entries.length === 0) return notFound(index);
        return { index, status: 200, headers: JSON_TYPE, body: Buffer.from(entriesJson(entries)) };
      }
      case 'entry':
      case 'raw': {
        const entry = kv.get(key);
        // An existing key answers its ModifyIndex; a missing one the table's index, so clients can block on it.
        if (!entry) return notFound(kv.index());
        if (this.shape === 'raw') return { index: entry.ModifyIndex, status: 200, headers: RAW_HEADERS, body: Buffer.from(entry.Value) };
        return { index: entry.ModifyIndex, status: 200, headers: JSON_TYPE, body: Buffer.from(entriesJson([entry])) };
      }
    }
  }
}

function notFound(index: number): AnswerContent {
  return { index, status: 404, headers: [], body: EMPTY };
}

/**
 * Consul answers true/false for KV writes. A command the FSM refused is a 400; a lock request with
 * a missing or unknown session is a 500 with Consul's exact text (Patroni and others match on it).
 */
function sendApplyResult(reply: FastifyReply, result: ApplyResult): FastifyReply {
  if (typeof result === 'boolean') return reply.type('application/json').send(result ? 'true' : 'false');
  if (result.code === 'invalidCommand') throw badRequest(result.error);
  throw new KonsulError('internal', result.error);
}

function validateKey(key: string, maxBytes: number): void {
  if (key.startsWith('/')) throw badRequest("Invalid key: a key must not begin with a '/'");
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(key)) throw badRequest('Invalid key: control characters are not allowed');
  if (Buffer.byteLength(key, 'utf8') > maxBytes) throw badRequest(`Invalid key: longer than ${maxBytes} bytes`);
}

function rejectConflictingFlags(query: Query, flags: string[]): void {
  if (flags.filter((f) => has(query, f)).length > 1) {
    const pairs = Object.entries(query).flatMap(([k, v]): [string, string][] => (Array.isArray(v) ? v.map((x): [string, string] => [k, x]) : [[k, v ?? '']]));
    const encoded = new URLSearchParams(pairs).toString();
    throw badRequest(`Conflicting flags: ${encoded}\n`);
  }
}

function parseFlags(text: string | undefined): string {
  if (text === undefined || text === '') return '0';
  if (!/^\d{1,20}$/.test(text) || BigInt(text) > MAX_UINT64) throw badRequest(`Invalid flags: ${text} is not an unsigned 64-bit integer`);
  return BigInt(text).toString();
}

function requireIndex(text: string | undefined, message: string): number {
  const n = parseUint(text ?? '');
  if (n === null) throw badRequest(message);
  return n;
}

function requireSession(id: string | undefined): string {
  if (!id) throw badRequest('Missing session');
  return id;
}

/** Serializes entries by hand so that Flags keeps all 64 bits (JSON numbers would round it). */
function entriesJson(entries: readonly KvEntry[]): string {
  const parts = entries.map((e) => {
    const value = e.Value.length > 0 ? JSON.stringify(Buffer.from(e.Value).toString('base64')) : 'null';
    const session = e.Session ? `,"Session":${JSON.stringify(e.Session)}` : '';
    return `{"LockIndex":${e.LockIndex},"Key":${JSON.stringify(e.Key)},"Flags":${String(e.Flags)},"Value":${value}${session},"CreateIndex":${e.CreateIndex},"ModifyIndex":${e.ModifyIndex}}`;
  });
  return `[${parts.join(',')}]`;
}

