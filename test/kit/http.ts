// One HTTP helper for tests that talk to a real listening server (a child process, or an
// in-process server's socket): a bounded fetch that reads the whole body as text.

export interface HttpAnswer {
  readonly status: number;
  readonly text: string;
  readonly headers: Headers;
}

export interface HttpInit {
  readonly method?: string;
  readonly body?: string | Uint8Array;
  readonly headers?: Record<string, string>;
  readonly timeoutMs?: number;
}

/** One HTTP request with a timeout; throws on connection errors and timeouts. */
export async function httpRequest(url: string, init: HttpInit = {}): Promise<HttpAnswer> {
  const res = await fetch(url, {
    method: init.method ?? 'GET',
    ...(init.body !== undefined ? { body: init.body } : {}),
    ...(init.headers !== undefined ? { headers: init.headers } : {}),
    signal: AbortSignal.timeout(init.timeoutMs ?? 10_000),
  });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

/** GET `url` and parse the JSON answer; throws unless the status is 200. */
export async function getJson<T>(url: string, timeoutMs = 5000): Promise<T> {
  const r = await httpRequest(url, { timeoutMs });
  if (r.status !== 200) throw new Error(`GET ${url}: HTTP ${r.status} ${r.text}`);
  return JSON.parse(r.text) as T;
}
