// The one request-body reader of the HTTP API. Consul reads bodies as bytes whatever their
// Content-Type says (curl sends form encoding by default; Consul decodes JSON regardless), so each
// route scope that takes bodies registers this plugin and decodes `request.body` (a Buffer) itself.
//
// It owns the 413: a body over the scope's limit is refused by its Content-Length before anything
// is read, and a chunked one is cut off once it passes the limit; both fail with the scope's
// `tooLarge` error (fastify's text unless the scope gives its own, e.g. consulBodyTooLarge for KV).
import type { FastifyInstance, FastifyPluginCallback, FastifyRequest } from 'fastify';
import { KonsulError } from '../lib/errors.ts';

/** fastify's own default body limit, which the scopes without a limit of their own keep. */
export const DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024;

export interface RawBodyOptions {
  /** Largest body accepted, in bytes (default 1 MiB). */
  readonly limitBytes?: number;
  /**
   * The error for a body over the limit; `sizeBytes` is its Content-Length, or `limitBytes + 1` for
   * a chunked body cut off. Default: fastify's 413 text ("Request body is too large").
   */
  readonly tooLarge?: (sizeBytes: number, limitBytes: number) => Error;
  /**
   * Turns the bytes into `request.body` (default: the Buffer itself). What it throws answers as a
   * body that could not be parsed (fastify closes the connection then).
   */
  readonly decode?: (body: Buffer) => unknown;
}

/** Consul's 413 for a body over kv_max_value_size (agent/kvs_endpoint.go): the KV scope's `tooLarge`. */
export function consulBodyTooLarge(sizeBytes: number, limitBytes: number): KonsulError {
  return new KonsulError(
    'tooLarge',
    `Request body(${sizeBytes} bytes) too large, max size: ${limitBytes} bytes. See https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size.`,
  );
}

const fastifyTooLarge = (): KonsulError => new KonsulError('tooLarge', 'Request body is too large');

/**
 * Registers the raw-body reader in the calling scope (it is not encapsulated: `await
 * app.register(rawBody, {...})` applies to the routes of the plugin that registers it).
 */
export const rawBody: FastifyPluginCallback<RawBodyOptions> = (app, options, done) => {
  acceptRawBodies(app, options);
  done();
};
(rawBody as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;

/** The same, as a call on the scope (for plugins that set up their scope synchronously). */
export function acceptRawBodies(app: FastifyInstance, options: RawBodyOptions = {}): void {
  const limit = options.limitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
  const tooLarge = options.tooLarge ?? fastifyTooLarge;
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (request, payload, done) => readBody(request, payload, limit, tooLarge, options.decode, done));
}

type ParserDone = (err: Error | null, body?: unknown) => void;

/** fastify's raw-body reader (content-type-parser.js rawBody) with this module's 413. */
function readBody(
  request: FastifyRequest,
  payload: NodeJS.ReadableStream,
  limit: number,
  tooLarge: (size: number, limit: number) => Error,
  decode: ((body: Buffer) => unknown) | undefined,
  done: ParserDone,
): void {
  const contentLength = Number(request.headers['content-length']);
  if (contentLength > limit) return done(tooLarge(contentLength, limit));
  const chunks: Buffer[] = [];
  let received = 0;
  const stop = () => {
    payload.removeListener('data', onData);
    payload.removeListener('end', onEnd);
    payload.removeListener('error', onEnd);
  };
  function onData(chunk: Buffer | string): void {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    received += bytes.length;
    if (received > limit) {
      stop();
      done(tooLarge(limit + 1, limit));
      return;
    }
    chunks.push(bytes);
  }
  function onEnd(err?: Error & { statusCode?: number }): void {
    stop();
    if (err != null) {
      if (!(typeof err.statusCode === 'number' && err.statusCode >= 400)) err.statusCode = 400;
      return done(err);
    }
    if (!Number.isNaN(contentLength) && received !== contentLength) return done(new KonsulError('badRequest', 'Request body size did not match Content-Length'));
    const body = Buffer.concat(chunks, received);
    if (decode === undefined) return done(null, body);
    let decoded: unknown;
    try {
      decoded = decode(body);
    } catch (decodeErr) {
      return done(decodeErr instanceof Error ? decodeErr : new Error(String(decodeErr)));
    }
    done(null, decoded);
  }
  payload.on('data', onData);
  payload.on('end', onEnd);
  payload.on('error', onEnd);
  payload.resume();
}
