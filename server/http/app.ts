// The server's HTTP API: the shared platform (http/app.ts) with the server's routes, backed by its
// Raft host, state machine and own agent. Built apart from the process, so tests can drive it with inject().
import type { FastifyInstance } from 'fastify';
import { createHttpApp } from '../../http/app.ts';
import { agentLocalRoutes, agentSelfRoutes } from '../../http/routes/agent.ts';
import { KonsulError } from '../../lib/errors.ts';
import type { LocalAgent } from '../../agent/core/local-agent.ts';
import { serverAgentSelf } from './agent-self.ts';
import { createAnswerHub, type AnswerHub } from './answer-hub.ts';
import type { ServerContext } from './context.ts';
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
  // Requests answered, for /v1/agent/metrics (routes/metrics.ts).
  const counters = { requests: 0 };
  const app = createHttpApp({ logger: options.logger ?? false, shutdownSignal: ctx.shutdownSignal, counters });

  await app.register(statusRoutes, { ctx });
  const agent = (): LocalAgent => {
    if (ctx.localAgent === undefined) throw new KonsulError('internal', 'the local agent is not running');
    return ctx.localAgent;
  };
  await app.register(agentLocalRoutes, { agent, datacenter: ctx.config.datacenter });
  await app.register(agentSelfRoutes, { self: serverAgentSelf(ctx) });
  // KV reads share one serialised answer per (query, state), written straight to Node's response
  // (answer-hub.ts); those answers follow the platform's shutdown rule themselves.
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
