// /healthz, /openapi.json, and / (a redirect to the explorer). (/docs is @fastify/swagger-ui, /metrics is metrics.ts.)
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

export const servicePlugin: FastifyPluginAsync = async (fastify) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  app.get(
    '/healthz',
    {
      schema: {
        tags: ['service'],
        operationId: 'healthz',
        summary: 'Liveness: 200 while the service takes requests',
        response: { 200: z.object({ status: z.literal('ok'), sessions: z.number().int() }) },
      },
    },
    async () => ({ status: 'ok' as const, sessions: app.store.size }),
  );
  // A browser pointed at the service lands on the explorer, not on a JSON 404. Left out of the
  // OpenAPI document (docs/api.md lists it): an operation with no answer but a redirect is not
  // one a client calls.
  app.get(
    '/',
    { schema: { hide: true } },
    async (_req, reply) => {
      await reply.redirect('/ui', 302);
    },
  );
  app.get(
    '/openapi.json',
    {
      schema: {
        tags: ['service'],
        operationId: 'openapi',
        summary: 'This OpenAPI 3.1 document, generated from the zod schemas',
        response: { 200: z.record(z.string(), z.unknown()) },
      },
    },
    async () => app.swagger() as unknown as Record<string, unknown>,
  );
};
