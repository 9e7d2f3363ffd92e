// /v1/agent/metrics: Consul's metrics shape (Timestamp, Gauges, Points, Counters, Samples) with the
// counters Konsul keeps so far: HTTP requests this server answered (the agent benchmark reads it to
// count the requests that reach the servers).
import type { FastifyPluginAsync } from 'fastify';
import { sendJson } from '../../../http/reply.ts';
import { readQuery } from '../../../http/schemas.ts';

export interface HttpCounters {
  requests: number;
}

export const metricsRoutes: FastifyPluginAsync<{ counters: HttpCounters }> = async (app, { counters }) => {
  // No response schema: Gauges, Points, Samples and Labels are open (Konsul reports none of them yet).
  app.get('/v1/agent/metrics', { schema: { querystring: readQuery() } }, async (_request, reply) => {
    const counter = (name: string, count: number) => ({ Name: name, Count: count, Rate: 0, Sum: count, Min: 1, Max: 1, Mean: 1, Stddev: 0, Labels: {} });
    return sendJson(reply, { Timestamp: new Date().toISOString(), Gauges: [], Points: [], Counters: [counter('konsul.http.requests', counters.requests)], Samples: [] });
  });
};
