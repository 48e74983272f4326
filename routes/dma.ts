// The DMA-API calls (API.md "DMA operations"). Failures Linux itself reports are results
// (200 with `error`), not HTTP errors; see the core in src/service/session.ts.
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import * as S from '../schemas/index.js';
import { sessionPost } from './route-kit.js';
import { serializerCompiler } from '../src/service/http-serializer.js';
import { batchValidatorCompiler, parseBinaryBatch } from '../src/service/http-batch-validator.js';
import { BATCH_BINARY_TYPE, BATCH_RESULTS_BINARY_TYPE, encodeBatchResults } from '../schemas/batch-binary.js';

export const dmaPlugin: FastifyPluginAsync = async (app) => {
  sessionPost(
    app,
    {
      path: 'map_sg',
      tag: 'dma',
      summary: 'dma_map_sg: the segments the driver gets, and the IOVA behind them',
      description:
        'nents 0 with `error` when Linux fails the call. `?pages=true` also lists one IOVA→phys row per IOMMU granule; `?explain=true` adds `explain`: the rule behind each segment break and a verdict.',
      body: S.MapSgBody,
      result: S.MapSgResult,
      querystring: S.MapSgQuery,
    },
    (s, body, q) => s.mapSg(body, q.pages, q.explain),
  );
  sessionPost(
    app,
    {
      path: 'map_page',
      tag: 'dma',
      summary: 'dma_map_page / dma_map_single',
      description: 'dma_address 0xffffffffffffffff (DMA_MAPPING_ERROR) with `error` when Linux fails the call.',
      body: S.MapPageBody,
      result: S.MapPageResult,
      querystring: S.PagesQuery,
    },
    (s, body, q) => s.mapPage(body, q.pages),
  );
  sessionPost(
    app,
    {
      path: 'unmap',
      tag: 'dma',
      summary: 'dma_unmap_sg / dma_unmap_page of a handle',
      description: 'Optional dir, size, nents are checked against the mapping as dma-debug does.',
      body: S.UnmapBody,
      result: S.UnmapResult,
    },
    (s, body) => s.unmap(body),
  );
  sessionPost(
    app,
    { path: 'sync', tag: 'dma', summary: 'dma_sync_*_for_cpu / _for_device: cache maintenance and swiotlb copies', body: S.SyncBody, result: S.SyncResult },
    (s, body) => s.sync(body),
  );
  sessionPost(
    app,
    { path: 'alloc_coherent', tag: 'dma', summary: 'dma_alloc_coherent: zeroed pages mapped for the device', body: S.AllocCoherentBody, result: S.AllocCoherentResult },
    (s, body) => s.allocCoherent(body),
  );
  sessionPost(
    app,
    { path: 'free_coherent', tag: 'dma', summary: 'dma_free_coherent', body: S.FreeCoherentBody, result: S.FreeCoherentResult },
    (s, body) => s.freeCoherent(body),
  );
  sessionPost(
    app,
    {
      path: 'flush',
      tag: 'dma',
      summary: 'Drain the non-strict flush queue now (and with rcache:true, the rcache magazines)',
      body: S.FlushBody,
      result: S.FlushResult,
    },
    (s, body) => s.flush(body),
  );
  // /batch in a scope of its own, so its binary parser is seen by no other route: there the type
  // is refused (415) like every type that is not JSON.
  await app.register(async (scope) => batchRoute(scope));
};

async function batchRoute(app: FastifyInstance): Promise<void> {
  const stringifyResult = serializerCompiler({ schema: S.BatchResultWire.shape.results.element });
  app.addContentTypeParser(BATCH_BINARY_TYPE, { parseAs: 'buffer' }, parseBinaryBatch);
  sessionPost(
    app,
    {
      path: 'batch',
      tag: 'dma',
      summary: 'Several calls in order; {"ref": i} stands for the handle op i returned',
      description:
        "One result per op, each the single call's answer or its error body. A map_sg op's `sg` entries may be `[phys, length]` tuples " +
        '(the compact form, cheaper to parse and check); they decode to the same `{phys, length}` entries and give the same results. ' +
        `The same ops may come packed in binary (Content-Type: ${BATCH_BINARY_TYPE}), and the answer is packed (${BATCH_RESULTS_BINARY_TYPE}) when Accept names that type: ` +
        'the format is in docs/api.md ("Binary /batch"); client/ encodes and decodes it. Errors stay JSON.',
      body: S.BatchBody,
      result: S.BatchResult,
      wire: S.BatchResultWire,
      validatorCompiler: batchValidatorCompiler(),
      respond: (out, body, req, reply) => {
        if (!req.headers.accept?.includes(BATCH_RESULTS_BINARY_TYPE)) return out;
        void reply.type(BATCH_RESULTS_BINARY_TYPE);
        return encodeBatchResults(body.ops, out.results, stringifyResult);
      },
    },
    (s, body) => s.batch(body),
  );
}
