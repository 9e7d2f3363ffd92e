// /v1/txn: Consul's transaction endpoint for KV operations (developer.hashicorp.com/consul/api-docs/txn,
// agent/txn_endpoint.go). A JSON array of {"KV": {...}} operations, all applied or none:
// - with at least one write it is one Raft command (fsm/state/kv-txn.ts runs it);
// - read-only transactions are served from this server's state after the consistency gate
//   (default and ?consistent: a ReadIndex round; ?stale: at once), without Raft, as Consul's
//   Txn.Read does; they carry X-Consul-KnownLeader and X-Consul-LastContact, not X-Consul-Index.
// 200 with {"Results": [...], "Errors": null} when applied; 409 with {"Results": null, "Errors":
// [{"OpIndex": n, "What": "..."}]} when rolled back.
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { encodeCommand, isWellFormed, type TxnKvOpCommand } from '../../../fsm/commands.ts';
import {
  isTxnKvVerb,
  isTxnKvWrite,
  MAX_TXN_OPS,
  precheckKvTxn,
  readKvTxn,
  txnResultJson,
  type TxnApplyResult,
  type TxnKvOp,
  type TxnKvResultJson,
  type TxnOpError,
} from '../../../fsm/state/kv-txn.ts';
import { parseQueryOptions, type Query } from '../../../http/query-options.ts';
import { rawBody } from '../../../http/raw-body.ts';
import { readGate } from '../../../http/read-endpoint.ts';
import { methodNotAllowed, sendJson } from '../../../http/reply.ts';
import { readQuery } from '../../../http/schemas.ts';
import { badRequest, KonsulError } from '../../../lib/errors.ts';
import { parseJsonLossless } from '../../../lib/lossless-json.ts';
import { serverReads } from '../consistency.ts';
import type { ServerContext } from '../context.ts';

/**
 * Consul's default txn_max_req_len is raft's suggested maximum entry size, 512 KiB; kv_max_value_size
 * raises it when larger (agent/txn_endpoint.go convertOps).
 */
const TXN_DEFAULT_MAX_REQUEST_BYTES = 512 * 1024;
const MAX_UINT64 = 18446744073709551615n;

/** A decoded operation: what the FSM runs, and how it travels in the log. */
interface ParsedOp {
  readonly op: TxnKvOp;
  readonly command: TxnKvOpCommand;
}

type WithQuery = { Querystring: Query };

export const txnRoutes: FastifyPluginAsync<{ ctx: ServerContext }> = async (app, { ctx }) => {
  const { config, fsm } = ctx;
  const reads = serverReads(ctx);
  const maxRequestBytes = Math.max(TXN_DEFAULT_MAX_REQUEST_BYTES, config.kvMaxValueSize);
  /** Whether a write may retire a value kept by recovery rules: then the proposer's clock dates it. */
  const retiresKept = (op: TxnKvOp): boolean => (op.verb === 'delete-tree' ? fsm.kvRecovery.overlaps(op.key) : isTxnKvWrite(op.verb) && fsm.kvRecovery.covers(op.key));

  // Consul reads the body as JSON whatever its content type (curl sends form encoding by default).
  await app.register(rawBody, {
    limitBytes: maxRequestBytes,
    tooLarge: (_size, max) => new KonsulError('tooLarge', `Request body too large, max size: ${max} bytes`),
  });

  // Read-only transactions take a read's query options (?stale, ?consistent; ?index and ?wait are checked).
  app.put<WithQuery>('/v1/txn', { schema: { querystring: readQuery() } }, async (request, reply) => {
    const body = request.body instanceof Buffer ? request.body : Buffer.alloc(0);
    const raw = parseOps(body, config.kvMaxValueSize, config.kvMaxKeyLength);
    // Consul's preCheck (and unknown verbs): answered before anything runs, with the same 409 shape.
    const precheck = precheckKvTxn(raw);
    if (precheck.length > 0) return sendTxn(reply, { kind: 'txn', results: null, errors: precheck });
    const parsed = raw.map((r) => r.parsed!);
    const ops = parsed.map((p) => p.op);

    if (!ops.some((op) => isTxnKvWrite(op.verb))) {
      // Consul's Txn.Read: the consistency gate, then KnownLeader and LastContact (no X-Consul-Index).
      const opts = parseQueryOptions(request.query);
      await readGate(reads, opts.consistency);
      const result = txnResultJson(readKvTxn(fsm.kv, ops));
      void reply.header('X-Consul-KnownLeader', reads.knownLeader() ? 'true' : 'false');
      void reply.header('X-Consul-LastContact', String(Math.max(0, reads.lastContactMs())));
      return sendTxn(reply, result);
    }

    const result = await ctx.cluster.propose(
      encodeCommand({
        type: 'txn',
        ops: parsed.map((p) => p.command),
        // The proposer's clock travels with a lock: the FSM refuses a key under lock-delay, as for ?acquire.
        ...(ops.some((op) => op.verb === 'lock' || retiresKept(op)) ? { nowMs: Date.now() } : {}),
      }),
    );
    if ('ok' in result) {
      // The FSM refused the command (only a bug or a version mismatch gets here: the input was checked above).
      throw new KonsulError(result.code === 'invalidCommand' ? 'badRequest' : 'internal', result.error);
    }
    return sendTxn(reply, result);
  });

  methodNotAllowed(app, '/v1/txn', ['PUT']);
};

function sendTxn(reply: FastifyReply, result: TxnApplyResult): FastifyReply {
  const failed = result.errors !== null && result.errors.length > 0;
  return sendJson(reply.code(failed ? 409 : 200), txnResponseJson(result));
}

/** Serialized by hand so that Flags keeps all 64 bits; field order as Consul's DirEntry. */
export function txnResponseJson(result: TxnApplyResult): string {
  const results = result.results === null ? 'null' : `[${result.results.map((r) => `{"KV":${entryJson(r)}}`).join(',')}]`;
  const errors = result.errors === null || result.errors.length === 0 ? 'null' : JSON.stringify(result.errors.map((e: TxnOpError) => ({ OpIndex: e.OpIndex, What: e.What })));
  return `{"Results":${results},"Errors":${errors}}`;
}

function entryJson(e: TxnKvResultJson): string {
  const session = e.Session ? `,"Session":${JSON.stringify(e.Session)}` : '';
  return `{"LockIndex":${e.LockIndex},"Key":${JSON.stringify(e.Key)},"Flags":${e.Flags},"Value":${e.Value === null ? 'null' : JSON.stringify(e.Value)}${session},"CreateIndex":${e.CreateIndex},"ModifyIndex":${e.ModifyIndex}}`;
}

// ---------------------------------------------------------------------------------------------
// Request decoding. Consul decodes the body into api.TxnOps with Go's encoding/json: field names
// match case-insensitively, absent fields are zero values, Value is base64 or null.
// ---------------------------------------------------------------------------------------------

const parseFailure = (detail: string) => badRequest(`Failed to parse body: ${detail}`);

/** An operation as sent: its verb and key for the precheck, and the decoded op if the verb is known. */
interface RawOp {
  readonly verb: string;
  readonly key: string;
  readonly parsed: ParsedOp | null;
}

function parseOps(body: Buffer, maxValueBytes: number, maxKeyBytes: number): RawOp[] {
  let doc: unknown;
  try {
    doc = parseJsonLossless(body.toString('utf8'));
  } catch (err) {
    throw parseFailure((err as Error).message);
  }
  if (!Array.isArray(doc)) throw parseFailure('the body must be a JSON array of operations');
  if (doc.length > MAX_TXN_OPS) throw new KonsulError('tooLarge', `Transaction contains too many operations (${doc.length} > ${MAX_TXN_OPS})`);
  return doc.map((raw, i) => parseOp(raw, i, maxValueBytes, maxKeyBytes));
}

/** The object's fields by lowercased name (Go matches JSON field names case-insensitively). */
function fields(value: unknown, what: string): Map<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw parseFailure(`${what} must be a JSON object`);
  const out = new Map<string, unknown>();
  for (const [k, v] of Object.entries(value)) out.set(k.toLowerCase(), v);
  return out;
}

function parseOp(raw: unknown, i: number, maxValueBytes: number, maxKeyBytes: number): RawOp {
  const op = fields(raw, `operation ${i}`);
  const kv = op.get('kv');
  if (kv === undefined || kv === null) {
    const other = ['node', 'service', 'check', 'session', 'intention'].find((name) => op.get(name) !== undefined && op.get(name) !== null);
    if (other !== undefined) throw badRequest(`op ${i}: ${other[0]!.toUpperCase()}${other.slice(1)} operations are not supported; Konsul's /v1/txn runs KV operations`);
    throw badRequest(`op ${i}: no operation specified`);
  }
  const f = fields(kv, `operation ${i} KV`);
  const verb = f.get('verb');
  if (typeof verb !== 'string') throw parseFailure(`operation ${i}: Verb must be a string`);
  const key = optionalString(f.get('key'), i, 'Key');
  const session = optionalString(f.get('session'), i, 'Session');
  const value = decodeValue(f.get('value'), i);
  if (value !== undefined && value.length > maxValueBytes) {
    throw new KonsulError('tooLarge', `Value for key ${JSON.stringify(key)} is too large (${value.length} > ${maxValueBytes} bytes)`);
  }
  const flags = uint64(f.get('flags'), i, 'Flags');
  const indexValue = uint64(f.get('index'), i, 'Index');
  if (indexValue !== undefined && indexValue > BigInt(Number.MAX_SAFE_INTEGER)) throw parseFailure(`operation ${i}: Index ${indexValue} is beyond 2^53-1`);
  if (!isTxnKvVerb(verb)) return { verb, key, parsed: null };
  checkKey(key, i, maxKeyBytes);
  if (!isWellFormed(session)) throw badRequest(`op ${i}: Session is not well-formed Unicode`);
  const index = indexValue === undefined ? undefined : Number(indexValue);
  const parsed: ParsedOp = {
    op: {
      verb,
      key,
      ...(value !== undefined ? { value } : {}),
      ...(flags !== undefined ? { flags } : {}),
      ...(index !== undefined ? { index } : {}),
      ...(session !== '' ? { session } : {}),
    },
    command: {
      verb,
      key,
      ...(value !== undefined && value.length > 0 ? { value: value.toString('base64') } : {}),
      ...(flags !== undefined && flags !== 0n ? { flags: flags.toString() } : {}),
      ...(index !== undefined && index !== 0 ? { index } : {}),
      ...(session !== '' ? { session } : {}),
    },
  };
  return { verb, key, parsed };
}

function optionalString(value: unknown, i: number, name: string): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw parseFailure(`operation ${i}: ${name} must be a string`);
  return value;
}

function decodeValue(value: unknown, i: number): Buffer | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw parseFailure(`operation ${i}: Value must be a base64 string`);
  // Go's base64.StdEncoding: the standard alphabet with padding (newlines are ignored).
  const compact = value.replace(/[\r\n]/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 !== 0) throw parseFailure(`failed to decode value: illegal base64 data in operation ${i}`);
  return Buffer.from(compact, 'base64');
}

function uint64(value: unknown, i: number, name: string): bigint | undefined {
  if (value === undefined || value === null) return undefined;
  // Large integers arrive as digit strings from the lossless parser.
  const text = typeof value === 'number' ? (Number.isInteger(value) ? String(value) : '') : typeof value === 'string' ? value : '';
  if (!/^\d{1,20}$/.test(text) || BigInt(text) > MAX_UINT64) throw parseFailure(`operation ${i}: ${name} must be an unsigned 64-bit integer`);
  return BigInt(text);
}

/** docs/adr/0005-kv-key-validation.md, as for /v1/kv (the empty key is the precheck's). */
function checkKey(key: string, i: number, maxBytes: number): void {
  if (key.startsWith('/')) throw badRequest(`op ${i}: Invalid key: a key must not begin with a '/'`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(key)) throw badRequest(`op ${i}: Invalid key: control characters are not allowed`);
  if (Buffer.byteLength(key, 'utf8') > maxBytes) throw badRequest(`op ${i}: Invalid key: longer than ${maxBytes} bytes`);
  if (!isWellFormed(key)) throw badRequest(`op ${i}: Invalid key: not well-formed Unicode`);
}
