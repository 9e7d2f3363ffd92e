// /v1/agent/metrics: Consul's metrics shape (Timestamp, Gauges, Points, Counters, Samples) with the
// counters Konsul keeps so far: HTTP requests this server answered (the agent benchmark reads it to
// count the requests that reach the servers).
import type { FastifyPluginAsync } from 'fastify';
import { sendJson } from '../catalog-query.ts';

export interface HttpCounters {
  requests: number;
}

export const metricsRoutes: FastifyPluginAsync<{ counters: HttpCounters }> = async (app, { counters }) => {
  app.get('/v1/agent/metrics', async (_request, reply) => {
    const counter = (name: string, count: number) => ({ Name: name, Count: count, Rate: 0, Sum: count, Min: 1, Max: 1, Mean: 1, Stddev: 0, Labels: {} });
    return sendJson(reply, { Timestamp: new Date().toISOString(), Gauges: [], Points: [], Counters: [counter('konsul.http.requests', counters.requests)], Samples: [] });
  });
};
