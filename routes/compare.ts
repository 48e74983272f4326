// POST /v1/compare: a trace (or one scatterlist) under every layout and without an IOMMU, side
// by side. Stateless: the sessions it runs in are temporary (src/service/compare.ts).
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { COMPARE_COLUMNS, CompareBody, CompareResult } from '../schemas/index.js';
import { compareRequest } from '../src/service/compare-vary.js';
import { refuseOversized } from '../src/service/http-batch-validator.js';
import { errorResponses, largeAnswer } from './route-kit.js';

export const comparePlugin: FastifyPluginAsync = async (fastify) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  app.post(
    '/v1/compare',
    {
      // Counted on the raw body before zod walks it: 100 k entries are refused in microseconds.
      // Each op and entry runs in every column, and map_sg ops are explained unless they say not to.
      preValidation: async (req) => refuseOversized(req.body, app.store.limits, { wholeLists: true, columns: COMPARE_COLUMNS.length, explained: true }),
      schema: {
        tags: ['dma'],
        operationId: 'compare',
        summary: 'Replay a trace (or one scatterlist) under linux, linux-4.4, arm-legacy and no IOMMU, side by side',
        description:
          'One row per op with each column\'s answer and `differs`, the fields that are not the same everywhere. map_sg answers carry `explain` (why each segment break happened). ' +
          'Nothing is stored: the sessions live for this request only (their memory is charged to the budget while it runs). `ftrace` takes the sequence from the kernel\'s dma events (docs/ftrace.md); `vary` also runs it under each combination of some device parameters, side by side in `varied`. See docs/explain.md.',
        body: CompareBody,
        response: { 200: CompareResult, ...errorResponses([400, 413, 429, 507]) },
      },
    },
    async (req, reply) => {
      let large = false;
      const out = await compareRequest(req.body, { limits: app.store.limits, budget: app.store.budget, onLargeAnswer: () => (large = true) });
      return large ? largeAnswer(reply, out) : out;
    },
  );
};
