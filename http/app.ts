// The fastify application both processes serve (the server's API and the agent's): one set of
// options, one error handler, one not-found handler, the shared query-string schemas, the request
// counter and the shutdown rule. The processes add their routes to it (server/http/app.ts,
// agent/app.ts); building it apart from the process lets tests drive it with inject().
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { addSharedSchemas } from './schemas.ts';
import { errorReply } from './status.ts';

export interface HttpAppOptions {
  readonly logger?: boolean | object;
  /** Aborted when the process shuts down: replies from then on close their connection. */
  readonly shutdownSignal: AbortSignal;
  /** Counts every request (for /v1/agent/metrics). */
  readonly counters?: { requests: number };
  /**
   * Turns an error of a lower layer that is not a KonsulError yet into one (the agent's upstream
   * errors while they move to lib/errors); applied before the status table.
   */
  readonly translateError?: (err: unknown) => unknown;
}

export function createHttpApp(options: HttpAppOptions): FastifyInstance {
  const app = Fastify({
    logger: options.logger ?? false,
    // Per-request log lines cost more than the requests themselves at Konsul's request rates.
    logController: new LogController({ disableRequestLogging: true }),
    // Keys may contain characters fastify would otherwise treat specially; Consul routes on the raw path.
    routerOptions: { ignoreDuplicateSlashes: false, maxParamLength: 4096 },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  });
  addSharedSchemas(app);

  const { shutdownSignal, counters, translateError } = options;
  // A request answered while the process shuts down must not leave its keep-alive socket open:
  // server.close() waits for every connection, and an idle client would hold the process up.
  // (Replies written straight to Node, like the server's shared KV answers, follow the same rule themselves.)
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (shutdownSignal.aborted) void reply.header('connection', 'close');
    done(null, payload);
  });
  if (counters !== undefined) {
    app.addHook('onRequest', (_request, _reply, done) => {
      counters.requests++;
      done();
    });
  }

  // The one place an error becomes Consul's plain-text status and message (http/status.ts).
  app.setErrorHandler((err, request, reply) => {
    const failure = translateError === undefined ? err : translateError(err);
    const { status, text, expected } = errorReply(failure);
    // Expected outcomes (no leader, a write lost with its leader) are one line; only bugs get a stack.
    if (status >= 500 && expected) request.log.warn(`request failed: ${text}`);
    else if (status >= 500) request.log.error({ err }, 'request failed');
    void reply.code(status).type('text/plain; charset=utf-8').send(text);
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).type('text/plain; charset=utf-8').send(notFoundText(request.method, request.url));
  });
  return app;
}

/** Consul's 404 text for a path nothing serves. */
export function notFoundText(method: string, url: string): string {
  return `Not found: ${method} ${url.split('?')[0]}`;
}
