// GET /metrics in Prometheus text through prom-client: request durations by route, and the
// emulator's own gauges (live sessions, live mappings, IOVA bytes in use), computed at scrape.
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { z } from 'zod';

const plugin: FastifyPluginAsync = async (fastify) => {
  const register = new Registry();
  collectDefaultMetrics({ register, prefix: 'dmaemu_' });
  const store = fastify.store;
  const duration = new Histogram({
    name: 'dmaemu_http_request_duration_seconds',
    help: 'HTTP request duration by route',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1],
    registers: [register],
  });
  const sum = (f: (s: { liveMappings: number; iovaBytesInUse: number }) => number): number => {
    let n = 0;
    for (const s of store.values()) n += f(s);
    return n;
  };
  new Gauge({ name: 'dmaemu_sessions_live', help: 'Live sessions', registers: [register], collect() { this.set(store.size); } });
  new Gauge({ name: 'dmaemu_mappings_live', help: 'Live mappings and coherent buffers, all sessions', registers: [register], collect() { this.set(sum((s) => s.liveMappings)); } });
  new Gauge({ name: 'dmaemu_iova_bytes_in_use', help: 'IOVA bytes held by live mappings, all sessions', registers: [register], collect() { this.set(sum((s) => s.iovaBytesInUse)); } });

  fastify.addHook('onResponse', async (req, reply) => {
    duration.observe({ method: req.method, route: req.routeOptions.url ?? 'unmatched', status_code: reply.statusCode }, reply.elapsedTime / 1000);
  });

  fastify.withTypeProvider<ZodTypeProvider>().get(
    '/metrics',
    {
      schema: {
        tags: ['service'],
        operationId: 'metrics',
        summary: 'Prometheus metrics (text exposition format)',
        response: { 200: z.string().meta({ description: 'Prometheus text format' }) },
      },
    },
    async (_req, reply) => {
      void reply.type(register.contentType);
      return register.metrics();
    },
  );
};

// fastify-plugin: the onResponse hook must see every route, not only this plugin's.
export const metricsPlugin = fp(plugin, { name: 'dmaemu-metrics' });
