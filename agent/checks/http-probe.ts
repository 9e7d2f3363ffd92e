// The HTTP check (Consul's CheckHTTP.check): one request per run on a fresh connection (keep-alives
// off), the definition's method, headers and body, User-Agent "Consul Health Check" and Accept
// "text/plain, text/*, */*" unless the headers set them, the Host header as the request's host.
// Redirects are followed as Go's http.Client does (at most 10; 301/302/303 turn into GET without a
// body, 307/308 repeat the request) unless DisableRedirects. 2xx is passing, 429 warning, anything
// else critical; the output is "HTTP <method> <url>: <status line> Output: <last bytes of the body>".
// The timeout covers the whole exchange, body included: a body cut short by it still reports the
// response's status with what was read (Go's client logs the read error and carries on).
import http from 'node:http';
import https from 'node:https';
import type { HttpCheckTarget } from './definition.ts';
import { goNetErrorText, goUrlErrorText } from './go-errors.ts';
import { TailBuffer } from './output.ts';
import { timedOut, type ProbeContext, type ProbeResult } from './probe.ts';

const USER_AGENT = 'Consul Health Check';
const MAX_REDIRECTS = 10;
const SENSITIVE_ON_REDIRECT = new Set(['authorization', 'www-authenticate', 'cookie', 'cookie2']);

interface Exchange {
  readonly statusCode: number;
  readonly statusLine: string;
  readonly location: string | undefined;
  readonly body: TailBuffer;
}

class HttpProbeError extends Error {
  constructor(
    readonly url: string,
    readonly inner: string,
  ) {
    super(inner);
  }
}

function headerValue(header: Readonly<Record<string, readonly string[]>>, name: string): string | undefined {
  for (const [k, v] of Object.entries(header)) if (k.toLowerCase() === name && v.length > 0) return v[0];
  return undefined;
}

export async function httpProbe(target: HttpCheckTarget, ctx: ProbeContext): Promise<ProbeResult> {
  const { method } = target;
  const result = (status: number, statusLine: string, body: TailBuffer): ProbeResult => ({
    status: status >= 200 && status <= 299 ? 'passing' : status === 429 ? 'warning' : 'critical',
    output: `HTTP ${method} ${target.url}: ${statusLine} Output: ${body.text()}`,
  });
  let url = target.url;
  let currentMethod = method;
  let body = target.body;
  let header: Record<string, readonly string[]> = { ...target.header };
  let hostOverride = headerValue(header, 'host');
  try {
    for (let redirects = 0; ; redirects++) {
      const exchange = await oneRequest(url, currentMethod, header, hostOverride, body, target, ctx);
      const code = exchange.statusCode;
      const follow = !target.disableRedirects && [301, 302, 303, 307, 308].includes(code) && exchange.location !== undefined;
      if (!follow || ctx.signal.aborted) return result(code, exchange.statusLine, exchange.body);
      if (redirects + 1 >= MAX_REDIRECTS) throw new HttpProbeError(url, `stopped after ${MAX_REDIRECTS} redirects`);
      let next: URL;
      try {
        next = new URL(exchange.location!, url);
      } catch {
        throw new HttpProbeError(url, `failed to parse Location header ${JSON.stringify(exchange.location)}`);
      }
      if (code === 301 || code === 302 || code === 303) {
        if (currentMethod !== 'GET' && currentMethod !== 'HEAD') currentMethod = 'GET';
        body = '';
      }
      // Go keeps headers across redirects but drops credentials when the host changes.
      if (next.host !== new URL(url).host) {
        header = Object.fromEntries(Object.entries(header).filter(([k]) => !SENSITIVE_ON_REDIRECT.has(k.toLowerCase())));
      }
      header = Object.fromEntries(Object.entries(header).filter(([k]) => k.toLowerCase() !== 'host'));
      hostOverride = undefined;
      url = next.toString();
    }
  } catch (err) {
    if (err instanceof HttpProbeError) return { status: 'critical', output: goUrlErrorText(currentMethod, err.url, err.inner) };
    throw err;
  }
}

function oneRequest(
  url: string,
  method: string,
  header: Readonly<Record<string, readonly string[]>>,
  hostOverride: string | undefined,
  body: string,
  target: HttpCheckTarget,
  ctx: ProbeContext,
): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      reject(new HttpProbeError(url, `parse ${JSON.stringify(url)}: invalid URI for request`));
      return;
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      reject(new HttpProbeError(url, `unsupported protocol scheme ${JSON.stringify(parsed.protocol.replace(/:$/, ''))}`));
      return;
    }
    const headers: Record<string, string | string[]> = {};
    for (const [name, values] of Object.entries(header)) {
      if (name.toLowerCase() === 'host' || values.length === 0) continue;
      headers[name] = [...values];
    }
    const has = (name: string) => Object.keys(headers).some((k) => k.toLowerCase() === name);
    if (!has('user-agent')) headers['User-Agent'] = USER_AGENT;
    if (!has('accept')) headers['Accept'] = 'text/plain, text/*, */*';
    if (hostOverride !== undefined) headers['Host'] = hostOverride;
    const payload = Buffer.from(body, 'utf8');
    if (payload.length > 0 && !has('content-length')) headers['Content-Length'] = String(payload.length);

    const secure = parsed.protocol === 'https:';
    const options: https.RequestOptions = {
      method,
      headers,
      agent: false, // a fresh connection per probe, closed after it (Consul disables keep-alives)
      ...(secure
        ? {
            rejectUnauthorized: !target.tlsSkipVerify,
            ...(target.tlsServerName !== '' ? { servername: target.tlsServerName } : {}),
            ...(ctx.tlsCa !== undefined ? { ca: ctx.tlsCa } : {}),
          }
        : {}),
    };
    let gotHeaders = false;
    let finished = false;
    const done = (fn: () => void) => {
      if (finished) return;
      finished = true;
      ctx.signal.removeEventListener('abort', onAbort);
      fn();
    };
    const req = (secure ? https : http).request(parsed, options, (res) => {
      gotHeaders = true;
      const buffer = new TailBuffer(ctx.outputMaxBytes);
      const statusLine = `${res.statusCode ?? 0} ${res.statusMessage ?? ''}`;
      const location = res.headers.location;
      const answer = () => done(() => resolve({ statusCode: res.statusCode ?? 0, statusLine, location, body: buffer }));
      res.on('data', (chunk: Buffer) => buffer.write(chunk));
      res.on('end', answer);
      // A body cut short (timeout, reset) still answers with what was read.
      res.on('error', answer);
      res.on('close', answer);
    });
    req.on('error', (err) => {
      if (gotHeaders) return; // the response handlers answer
      done(() => {
        if (timedOut(ctx.signal)) {
          reject(new HttpProbeError(url, 'context deadline exceeded (Client.Timeout exceeded while awaiting headers)'));
        } else {
          reject(new HttpProbeError(url, goNetErrorText(err, `${parsed.hostname}:${parsed.port || (secure ? 443 : 80)}`)));
        }
      });
    });
    const onAbort = () => req.destroy(new Error('aborted'));
    if (ctx.signal.aborted) {
      onAbort();
    } else {
      ctx.signal.addEventListener('abort', onAbort, { once: true });
    }
    req.end(payload.length > 0 ? payload : undefined);
  });
}
