// POST /v1/compare: a trace (or one scatterlist) under every layout and without an IOMMU, side
// by side. Stateless: the sessions it runs in are temporary (src/service/compare.ts).
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { CompareBody, CompareResult } from '../schemas/index.js';
import { compareRequest } from '../src/service/compare-vary.js';
import { SESSION_ERRORS } from './route-kit.js';

export const comparePlugin: FastifyPluginAsync = async (fastify) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  app.post(
    '/v1/compare',
    {
      schema: {
        tags: ['dma'],
        operationId: 'compare',
        summary: 'Replay a trace (or one scatterlist) under linux, linux-4.4, arm-legacy and no IOMMU, side by side',
        description:
          'One row per op with each column\'s answer and `differs`, the fields that are not the same everywhere. map_sg answers carry `explain` (why each segment break happened). ' +
          'Nothing is stored: the four sessions live for this request only. `ftrace` takes the sequence from the kernel\'s dma events (docs/ftrace.md); `vary` also runs it under each combination of some device parameters, side by side in `varied`. See docs/explain.md.',
        body: CompareBody,
        response: { 200: CompareResult, 400: SESSION_ERRORS[400], 413: SESSION_ERRORS[413], 429: SESSION_ERRORS[429] },
      },
    },
    async (req) => compareRequest(req.body),
  );
};
