// Blocking queries: answer at once unless the client already has the current index, else hold the
// request until a watcher for exactly this data fires or the wait ends. Nothing here polls: a
// request costs one watcher registration while it waits.
import type { FastifyReply } from 'fastify';

export interface Indexed<T> {
  readonly index: number;
  readonly value: T;
}

export interface BlockingQuery<T> {
  /** The client's index (0 = do not block). */
  readonly minIndex: number;
  readonly waitMs: number;
  /** Registers `wake` on the data this query reads; returns the cancel function. */
  readonly watch: (wake: () => void) => () => void;
  /** Reads the data and its index. */
  readonly run: () => Indexed<T>;
  /** Aborted when the client goes away. */
  readonly signal?: AbortSignal;
}

export async function blockingQuery<T>(q: BlockingQuery<T>): Promise<Indexed<T>> {
  let result = withFloor(q.run());
  // An index below the client's means the data was reset (snapshot restore): answer so it resyncs.
  if (q.minIndex === 0 || result.index !== q.minIndex) return result;
  const deadline = Date.now() + q.waitMs;
  while (result.index === q.minIndex) {
    const remaining = deadline - Date.now();
    if (remaining <= 0 || q.signal?.aborted) return result;
    const woke = await new Promise<boolean>((resolve) => {
      let cancel: () => void = () => {};
      const done = (fired: boolean) => {
        clearTimeout(timer);
        cancel();
        q.signal?.removeEventListener('abort', onAbort);
        resolve(fired);
      };
      const onAbort = () => done(false);
      const timer = setTimeout(() => done(false), remaining);
      // Wake on the next turn of the event loop: the write that fired the watch answers its own
      // client first instead of queueing behind thousands of watcher responses.
      cancel = q.watch(() => setImmediate(() => done(true)));
      q.signal?.addEventListener('abort', onAbort);
    });
    result = withFloor(q.run());
    if (!woke) return result;
  }
  return result;
}

/** X-Consul-Index is never 0: clients treat 0 as "do not block" and would spin. */
function withFloor<T>(r: Indexed<T>): Indexed<T> {
  return r.index >= 1 ? r : { index: 1, value: r.value };
}

/**
 * An AbortSignal that fires when the client disconnects before the answer or the server shuts down,
 * for a blocking query's `signal`. Every listener is removed when the response closes: keep-alive
 * sockets and the server-wide shutdown signal outlive thousands of requests.
 */
export function abortOnClose(reply: FastifyReply, shutdown: AbortSignal): AbortSignal {
  const controller = new AbortController();
  const abort = () => controller.abort();
  if (shutdown.aborted) abort();
  else shutdown.addEventListener('abort', abort, { once: true });
  reply.raw.once('close', () => {
    shutdown.removeEventListener('abort', abort);
    if (!reply.raw.writableFinished) abort();
  });
  return controller.signal;
}
