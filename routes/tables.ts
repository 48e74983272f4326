// API.md "Tables": read-only views of a session.
import type { FastifyPluginAsync } from 'fastify';
import type { z } from 'zod';
import { DebugResult, FaultsResult, MappingsQuery, MappingsResult, SessionParams } from '../schemas/index.js';
import type { Session } from '../src/service/session.js';
import { SESSION_ERRORS } from './route-kit.js';

export const tablesPlugin: FastifyPluginAsync = async (fastify) => {
  const app = fastify;
  const table = <R extends z.ZodType>(
    path: string,
    summary: string,
    result: R,
    fn: (s: Session, query: unknown) => z.output<R>,
    querystring?: z.ZodType,
  ): void => {
    // Plain generics: the types come from fn's signature (see route-kit.ts).
    app.get<{ Params: { id: string } }>(
      `/v1/sessions/:id/${path}`,
      {
        schema: {
          tags: ['tables'],
          operationId: path,
          summary,
          params: SessionParams,
          ...(querystring ? { querystring } : {}),
          response: { 200: result, 400: SESSION_ERRORS[400], 404: SESSION_ERRORS[404] },
        },
      },
      async (req) => fn(app.store.get(req.params.id), req.query),
    );
  };
  table(
    'mappings',
    'Live mappings: handle, kind, dir, segments, IOVA ranges (paged: ?after=&limit=)',
    MappingsResult,
    (s, q) => s.mappingsTable(q as z.output<typeof MappingsQuery>),
    MappingsQuery,
  );
  table('debug', 'dma-debug findings, in the kernel’s words', DebugResult, (s) => s.debugTable());
  table('faults', 'IOMMU faults the device raised', FaultsResult, (s) => s.faultsTable());
};
