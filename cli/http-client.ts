// The HTTP client every konsulctl command uses: resolves the API address and ACL token (flag, then
// KONSUL_*, then CONSUL_* environment variables), sends requests with node:http(s), and turns every
// expected failure (unreachable server, non-2xx answer) into a CliError with a one-line message.
//
// node:http rather than fetch: fetch's first use costs about 250 ms of CPU in Node 20 (it loads
// undici and compiles its WebAssembly HTTP parser), several times what the rest of a konsulctl
// command costs (docs/adr/0023-build.md).
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { UsageError } from './args.ts';
import { parseJsonLossless } from '../lib/lossless-json.ts';

export const DEFAULT_HTTP_ADDR = '127.0.0.1:8500';
const DEFAULT_PORT = '8500';
const DEFAULT_TIMEOUT_MS = 60_000;

/** An expected failure: printed as one line on stderr, then the process exits with `exitCode`. */
export class CliError extends Error {
  readonly exitCode: number;
  /** Printed without the "konsulctl: " prefix (Consul's own "Error! ..." texts). */
  readonly bare: boolean;
  constructor(message: string, options: { exitCode?: number; bare?: boolean } = {}) {
    super(message);
    this.name = 'CliError';
    this.exitCode = options.exitCode ?? 1;
    this.bare = options.bare ?? false;
  }
}

/** The server could not be reached, or the connection failed before a full answer arrived. */
export class UnreachableError extends CliError {
  constructor(address: string, reason: string) {
    super(`cannot reach Konsul at ${address}: ${reason}`);
    this.name = 'UnreachableError';
  }
}

/** The server answered with a status the caller did not expect. */
export class HttpStatusError extends CliError {
  readonly status: number;
  readonly bodyText: string;
  constructor(status: number, statusText: string, bodyText: string) {
    const oneLine = bodyText.trim().replace(/\s*\n\s*/g, ' ');
    const shown = oneLine.length > 500 ? `${oneLine.slice(0, 500)}...` : oneLine;
    super(`Konsul answered ${status} ${statusText}${shown ? `: ${shown}` : ''}`);
    this.name = 'HttpStatusError';
    this.status = status;
    this.bodyText = bodyText;
  }
}

/**
 * Normalizes an API address to a base URL without a trailing slash. Accepts `host:port`,
 * `[ipv6]:port`, a bare `host` (port 8500), and `http://` or `https://` URLs (with a scheme and no
 * port, the scheme's default port applies, as in any URL).
 */
export function parseHttpAddress(text: string): string {
  const trimmed = text.trim();
  if (trimmed === '') throw new UsageError('the HTTP address is empty');
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(trimmed)?.[1]?.toLowerCase();
  if (scheme !== undefined && scheme !== 'http' && scheme !== 'https') {
    throw new UsageError(`unsupported scheme "${scheme}://" in HTTP address "${text}" (use http:// or https://)`);
  }
  const withScheme = scheme === undefined ? `http://${/:\d+$/.test(trimmed) ? trimmed : `${trimmed}:${DEFAULT_PORT}`}` : trimmed;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new UsageError(`invalid HTTP address "${text}" (expected host:port or http(s)://host:port; bracket IPv6 addresses)`);
  }
  if (url.hostname === '' || url.username !== '' || url.password !== '' || (url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
    throw new UsageError(`invalid HTTP address "${text}" (expected host:port or http(s)://host:port, without a path)`);
  }
  return `${url.protocol}//${url.host}`;
}

type Env = Readonly<Record<string, string | undefined>>;

/** --http-addr, else KONSUL_HTTP_ADDR, else CONSUL_HTTP_ADDR, else 127.0.0.1:8500; as a base URL. */
export function resolveHttpAddress(flag: string | undefined, env: Env): string {
  const candidates: [string | undefined, string][] = [
    [flag, '--http-addr'],
    [env.KONSUL_HTTP_ADDR, 'KONSUL_HTTP_ADDR'],
    [env.CONSUL_HTTP_ADDR, 'CONSUL_HTTP_ADDR'],
  ];
  for (const [value, source] of candidates) {
    if (value === undefined || value === '') continue;
    try {
      return parseHttpAddress(value);
    } catch (err) {
      if (err instanceof UsageError) throw new UsageError(`${source}: ${err.message}`);
      throw err;
    }
  }
  return parseHttpAddress(DEFAULT_HTTP_ADDR);
}

/** --token, else KONSUL_HTTP_TOKEN, else CONSUL_HTTP_TOKEN; undefined when none is set. */
export function resolveToken(flag: string | undefined, env: Env): string | undefined {
  for (const value of [flag, env.KONSUL_HTTP_TOKEN, env.CONSUL_HTTP_TOKEN]) {
    if (value !== undefined && value !== '') return value;
  }
  return undefined;
}

/** Encodes a KV key (or any slash-separated name) for a URL path, keeping its slashes. */
export function encodePathSegments(name: string): string {
  return name.split('/').map(encodeURIComponent).join('/');
}

/** Query parameters: `true` is sent as a bare flag (`?recurse`), `undefined`/`false` is left out. */
export type QueryParams = Readonly<Record<string, string | boolean | undefined>>;

export function queryString(params: QueryParams): string {
  const parts: string[] = [];
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === false) continue;
    parts.push(value === true ? encodeURIComponent(name) : `${encodeURIComponent(name)}=${encodeURIComponent(value)}`);
  }
  return parts.length === 0 ? '' : `?${parts.join('&')}`;
}

export interface RequestOptions {
  readonly query?: QueryParams;
  readonly body?: Uint8Array | string;
  readonly contentType?: string;
  /** Non-2xx statuses handed back to the caller instead of thrown (e.g. 404 for a missing key). */
  readonly acceptStatuses?: readonly number[];
  /** Aborting it rejects with the signal's reason (an AbortError), not a CliError. */
  readonly signal?: AbortSignal;
  /** Gives up with "timed out" after this long (default 60 s). Blocking queries pass their wait. */
  readonly timeoutMs?: number;
}

/** An answer's headers, looked up by name in any case (as fetch's Headers.get). */
export class ResponseHeaders {
  readonly #headers: IncomingHttpHeaders;
  constructor(headers: IncomingHttpHeaders) {
    this.#headers = headers;
  }

  get(name: string): string | null {
    const value = this.#headers[name.toLowerCase()];
    if (value === undefined) return null;
    return Array.isArray(value) ? value.join(', ') : value;
  }
}

export class KonsulResponse {
  readonly status: number;
  readonly headers: ResponseHeaders;
  readonly body: Buffer;
  constructor(status: number, headers: ResponseHeaders, body: Buffer) {
    this.status = status;
    this.headers = headers;
    this.body = body;
  }

  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  text(): string {
    return this.body.toString('utf8');
  }

  /** The body as JSON; integers beyond 2^53 stay exact as digit strings (see lib/lossless-json.ts). */
  json(): unknown {
    try {
      return parseJsonLossless(this.text());
    } catch (err) {
      throw new CliError(`Konsul answered ${this.status} with invalid JSON: ${(err as Error).message}`);
    }
  }

  /** X-Consul-Index, the Raft index of the data returned, as a digit string (uint64). */
  get index(): string | undefined {
    const value = this.headers.get('x-consul-index');
    return value !== null && /^\d+$/.test(value) ? value : undefined;
  }

  get knownLeader(): boolean {
    return this.headers.get('x-consul-knownleader') === 'true';
  }

  /** X-Consul-LastContact: milliseconds since the answering server last heard from the leader. */
  get lastContactMs(): number | undefined {
    const value = this.headers.get('x-consul-lastcontact');
    return value !== null && /^\d+$/.test(value) ? Number(value) : undefined;
  }
}

export class KonsulClient {
  /** The base URL, e.g. http://127.0.0.1:8500 (also used in error messages). */
  readonly address: string;
  readonly #token: string | undefined;

  constructor(address: string, token?: string) {
    this.address = address;
    this.#token = token;
  }

  /** A client from the global options (--http-addr, --token) and the environment; UsageError on a bad address. */
  static fromOptions(options: { httpAddr?: unknown; token?: unknown }, env: Env): KonsulClient {
    const flagAddr = typeof options.httpAddr === 'string' ? options.httpAddr : undefined;
    const flagToken = typeof options.token === 'string' ? options.token : undefined;
    return new KonsulClient(resolveHttpAddress(flagAddr, env), resolveToken(flagToken, env));
  }

  get(path: string, options: RequestOptions = {}): Promise<KonsulResponse> {
    return this.request('GET', path, options);
  }

  put(path: string, options: RequestOptions = {}): Promise<KonsulResponse> {
    return this.request('PUT', path, options);
  }

  delete(path: string, options: RequestOptions = {}): Promise<KonsulResponse> {
    return this.request('DELETE', path, options);
  }

  /** `path` starts with /v1 and is already encoded; see encodePathSegments. */
  async request(method: string, path: string, options: RequestOptions = {}): Promise<KonsulResponse> {
    return this.send(method, path, options, readAll, (answer, body) => new KonsulResponse(answer.statusCode ?? 0, new ResponseHeaders(answer.headers), body));
  }

  /**
   * A request whose body may be a stream and whose answer's body is handed over as a stream, not
   * read (snapshots of large stores). A non-2xx answer is read and thrown as for request().
   */
  async stream(method: string, path: string, options: StreamRequestOptions = {}): Promise<KonsulStreamResponse> {
    return this.send(method, path, options, async (answer) => answer, (answer, body) => ({ status: answer.statusCode ?? 0, headers: new ResponseHeaders(answer.headers), body }));
  }

  private async send<B, R>(method: string, path: string, options: StreamRequestOptions, readBody: (answer: IncomingMessage) => Promise<B>, result: (answer: IncomingMessage, body: B) => R): Promise<R> {
    const headers: Record<string, string> = {};
    if (this.#token !== undefined) headers['X-Consul-Token'] = this.#token;
    if (options.contentType !== undefined) headers['Content-Type'] = options.contentType;
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    const url = new URL(`${this.address}${path}${queryString(options.query ?? {})}`);

    let answer: IncomingMessage;
    let body: B;
    try {
      answer = await exchange(url, method, headers, options.body, signal);
      const status = answer.statusCode ?? 0;
      if ((status < 200 || status > 299) && !(options.acceptStatuses ?? []).includes(status)) {
        const text = (await readAll(answer)).toString('utf8');
        throw new HttpStatusError(status, answer.statusMessage || http.STATUS_CODES[status] || 'Unknown Status', text);
      }
      body = await readBody(answer);
    } catch (err) {
      if (err instanceof HttpStatusError) throw err;
      if (options.signal?.aborted) throw options.signal.reason;
      if (timeout.aborted) throw new UnreachableError(this.address, `timed out after ${formatSeconds(timeoutMs)}`);
      throw new UnreachableError(this.address, describeNetworkFailure(err));
    }
    return result(answer, body);
  }
}

/** Idle connections are kept for the next request of a command (watch, lock) and never keep the process alive. */
const HTTP_AGENT = new http.Agent({ keepAlive: true });
const HTTPS_AGENT = new https.Agent({ keepAlive: true });

/** Sends the request (a streamed body as it is read) and resolves with the answer once its headers arrived. */
function exchange(url: URL, method: string, headers: Record<string, string>, body: StreamRequestOptions['body'], signal: AbortSignal): Promise<IncomingMessage> {
  const secure = url.protocol === 'https:';
  const fixed = typeof body === 'string' ? Buffer.from(body, 'utf8') : body instanceof Uint8Array ? body : undefined;
  if (fixed !== undefined) headers['Content-Length'] = String(fixed.byteLength);
  return new Promise((resolve, reject) => {
    const request = (secure ? https : http).request(url, { method, headers, signal, agent: secure ? HTTPS_AGENT : HTTP_AGENT }, resolve);
    request.on('error', reject);
    if (body === undefined || fixed !== undefined) {
      request.end(fixed);
      return;
    }
    void (async () => {
      for await (const chunk of body) {
        if (!request.write(chunk)) await new Promise<void>((drained) => request.once('drain', drained));
      }
      request.end();
    })().catch((err: unknown) => request.destroy(err as Error));
  });
}

async function readAll(answer: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of answer) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export interface StreamRequestOptions extends Omit<RequestOptions, 'body'> {
  readonly body?: Uint8Array | string | AsyncIterable<Uint8Array>;
}

export interface KonsulStreamResponse {
  readonly status: number;
  readonly headers: ResponseHeaders;
  /** Read it to the end (or abort the request's signal). */
  readonly body: AsyncIterable<Uint8Array>;
}

function formatSeconds(ms: number): string {
  return `${Math.round(ms / 100) / 10}s`;
}

const NETWORK_ERROR_TEXTS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EADDRNOTAVAIL: 'address not available',
  EPIPE: 'connection closed',
  UND_ERR_SOCKET: 'connection closed by the server',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_HEADERS_TIMEOUT: 'timed out waiting for the answer',
  UND_ERR_BODY_TIMEOUT: 'timed out reading the answer',
  ERR_SSL_WRONG_VERSION_NUMBER: 'TLS handshake failed (is the server speaking plain HTTP?)',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the server\'s TLS certificate is self-signed',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the server\'s TLS certificate cannot be verified',
  CERT_HAS_EXPIRED: 'the server\'s TLS certificate has expired',
};

/** A network error's code (fetch's "fetch failed" keeps it in its cause, or in the first of several) as words. */
export function describeNetworkFailure(err: unknown): string {
  const cause = (err as { cause?: unknown } | null)?.cause ?? err;
  const code = errorCode(cause) ?? errorCode((cause as { errors?: unknown[] } | null)?.errors?.[0]);
  if (code !== undefined) return NETWORK_ERROR_TEXTS[code] ?? code;
  const message = cause instanceof Error ? cause.message : String(cause);
  if (message === 'bad port') return 'fetch refuses this port (it is on the WHATWG fetch "bad ports" list, e.g. 1, 25, 6000)';
  return message.split('\n')[0] ?? message;
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}
