// Builds the fastify application (separately from the process, so tests can drive it with inject()).
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { ProposalError, ReadIndexError } from '../../raft/host/raft-host.ts';
import { ClusterError } from '../cluster/cluster-service.ts';
import { HttpError, toHttpError } from '../errors.ts';
import { createAnswerHub, type AnswerHub } from './answer-hub.ts';
import type { ServerContext } from './context.ts';
import { agentRoutes } from './routes/agent.ts';
import { catalogRoutes } from './routes/catalog.ts';
import { clusterRoutes } from './routes/cluster.ts';
import { eventRoutes } from './routes/event.ts';
import { healthRoutes } from './routes/health.ts';
import { konsulServicesRoutes } from './routes/konsul-services.ts';
import { kvRecoveryRoutes } from './routes/kv-recovery.ts';
import { kvRoutes } from './routes/kv.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { operatorRoutes } from './routes/operator.ts';
import { sessionRoutes } from './routes/session.ts';
import { snapshotRoutes } from './routes/snapshot.ts';
import { statusRoutes } from './routes/status.ts';
import { txnRoutes } from './routes/txn.ts';

export interface BuildAppOptions {
  readonly logger?: boolean | object;
  /** The hub that shares blocking KV answers (tests pass their own to read its counters). */
  readonly answers?: AnswerHub;
}

export async function buildApp(ctx: ServerContext, options: BuildAppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? false,
    // Per-request log lines cost more than the requests themselves at Konsul's request rates.
    logController: new LogController({ disableRequestLogging: true }),
    // Keys may contain characters fastify would otherwise treat specially; Consul routes on the raw path.
    routerOptions: { ignoreDuplicateSlashes: false, maxParamLength: 4096 },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  });

  // A request answered while the server shuts down must not leave its keep-alive socket open:
  // server.close() waits for every connection, and an idle client would hold the process up.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (ctx.shutdownSignal.aborted) void reply.header('connection', 'close');
    done(null, payload);
  });

  // Requests answered, for /v1/agent/metrics (routes/metrics.ts).
  const counters = { requests: 0 };
  app.addHook('onRequest', (_request, _reply, done) => {
    counters.requests++;
    done();
  });

  // One place maps every error to Consul's plain-text status and message.
  app.setErrorHandler((err, request, reply) => {
    const httpErr = toHttpError(err);
    // Expected outcomes (no leader, a write lost with its leader) are one line; only bugs get a stack.
    if (httpErr.statusCode >= 500 && isExpectedFailure(err)) request.log.warn(`request failed: ${httpErr.message}`);
    else if (httpErr.statusCode >= 500) request.log.error({ err }, 'request failed');
    void reply.code(httpErr.statusCode).type('text/plain; charset=utf-8').send(httpErr.message);
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).type('text/plain; charset=utf-8').send(`Not found: ${request.method} ${request.url.split('?')[0]}`);
  });

  await app.register(statusRoutes, { ctx });
  await app.register(agentRoutes, { ctx });
  // KV reads share one serialised answer per (query, state), written straight to Node's response
  // (answer-hub.ts); those answers follow the shutdown rule of the onSend hook above themselves.
  const answers = options.answers ?? createAnswerHub(ctx, { onError: (err) => app.log.error({ err }, 'reading a blocking answer failed') });
  await app.register(kvRoutes, { ctx, answers });
  await app.register(operatorRoutes, { ctx, cluster: ctx.cluster });
  await app.register(clusterRoutes, { ctx, cluster: ctx.cluster });
  await app.register(txnRoutes, { ctx });
  await app.register(eventRoutes, { ctx });
  await app.register(snapshotRoutes, { ctx });
  await app.register(sessionRoutes, { ctx });
  await app.register(catalogRoutes, { ctx });
  await app.register(healthRoutes, { ctx });
  await app.register(konsulServicesRoutes, { ctx });
  await app.register(kvRecoveryRoutes, { ctx });
  await app.register(metricsRoutes, { counters });
  return app;
}

function isExpectedFailure(err: unknown): boolean {
  return err instanceof HttpError || err instanceof ProposalError || err instanceof ReadIndexError || err instanceof ClusterError;
}
