// The DMA-API calls (API.md "DMA operations"), one route per entry of the call table
// (src/service/calls.ts). Failures Linux itself reports are results (200 with `error`), not
// HTTP errors; see the core in src/service/session.ts.
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import * as S from '../schemas/index.js';
import { callRoute } from './route-kit.js';
import { serializerCompiler } from '../src/service/http-serializer.js';
import { batchValidatorCompiler, parseBinaryBatch } from '../src/service/http-batch-validator.js';
import { CALL_SPECS, CALL_TABLE } from '../src/service/calls.js';
import { BATCH_BINARY_TYPE, BATCH_RESULTS_BINARY_TYPE, encodeBatchResults } from '../schemas/batch-binary.js';

export const dmaPlugin: FastifyPluginAsync = async (app) => {
  for (const spec of CALL_SPECS) if (spec.tag === 'dma' && spec.name !== 'batch') callRoute(app, spec);
  // /batch in a scope of its own, so its binary parser is seen by no other route: there the type
  // is refused (415) like every type that is not JSON.
  await app.register(async (scope) => batchRoute(scope));
};

async function batchRoute(app: FastifyInstance): Promise<void> {
  const stringifyResult = serializerCompiler({ schema: S.BatchResultWire.shape.results.element });
  app.addContentTypeParser(BATCH_BINARY_TYPE, { parseAs: 'buffer' }, parseBinaryBatch);
  callRoute(app, CALL_TABLE.batch, {
    description:
      "One result per op, each the single call's answer or its error body. A map_sg op's `sg` entries may be `[phys, length]` tuples " +
      '(the compact form, cheaper to parse and check); they decode to the same `{phys, length}` entries and give the same results. ' +
      `The same ops may come packed in binary (Content-Type: ${BATCH_BINARY_TYPE}), and the answer is packed (${BATCH_RESULTS_BINARY_TYPE}) when Accept names that type: ` +
      'the format is in docs/api.md ("Binary /batch"); client/ encodes and decodes it. Errors stay JSON.',
    wire: S.BatchResultWire,
    validatorCompiler: batchValidatorCompiler(),
    respond: (out, body, req, reply) => {
      if (!req.headers.accept?.includes(BATCH_RESULTS_BINARY_TYPE)) return out;
      void reply.type(BATCH_RESULTS_BINARY_TYPE);
      return encodeBatchResults((body as S.BatchInput).ops, (out as S.BatchOut).results, stringifyResult);
    },
  });
}
