// POST/GET/DELETE /v1/sessions: one device and its IOMMU domain per session.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { ErrorBody, LeakReport, SessionCreatedReplay, SessionCreateRequest, SessionParams, SessionSummary } from '../schemas/index.js';
import { createSession } from '../src/service/trace.js';
import { SESSION_ERRORS } from './route-kit.js';
import { inOrder } from '../src/service/execute.js';
import { refuseOversized } from '../src/service/http-batch-validator.js';

export const sessionsPlugin: FastifyPluginAsync = async (fastify) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();

  app.post(
    '/v1/sessions',
    {
      // "Every field is optional": a POST without a body is a session with every default.
      preValidation: async (req) => {
        if (req.body === undefined || req.body === null) req.body = {};
        refuseOversized(req.body, app.store.limits, { wholeLists: false }); // a trace's ops, counted before the schema walks them
      },
      schema: {
        tags: ['sessions'],
        operationId: 'create_session',
        summary: 'Create a session: a device, its IOMMU domain (or none) and emulated memory',
        description:
          "Every field is optional; the response echoes the config resolved with Linux's defaults. " +
          'With `trace` (and no other field) the session is rebuilt from a trace (GET /v1/sessions/{id}/trace, or a file of test/vectors): ' +
          'its config, then its ops in order; `replay` lists every answer that differs from its `expect`.',
        body: SessionCreateRequest.default({}),
        response: {
          201: SessionCreatedReplay,
          400: SESSION_ERRORS[400],
          413: SESSION_ERRORS[413],
          429: ErrorBody.meta({ description: 'DMAEMU_MAX_SESSIONS sessions are live (DMAEMU_TOO_MANY_SESSIONS)' }),
          503: SESSION_ERRORS[503],
          507: SESSION_ERRORS[507],
        },
      },
    },
    async (req, reply) => {
      const { session: s, replay } = await createSession(app.store, app.journal, req.body ?? {});
      void reply.code(201);
      return { id: s.id, config: s.wireConfig, ...(replay ? { replay } : {}) };
    },
  );

  app.get(
    '/v1/sessions/:id',
    {
      schema: {
        tags: ['sessions'],
        operationId: 'get_session',
        summary: 'Summary: config, live mappings, IOVA space in use, counters',
        params: SessionParams,
        response: { 200: SessionSummary, 404: SESSION_ERRORS[404] },
      },
    },
    async (req) => app.store.get(req.params.id).summary(),
  );

  app.delete(
    '/v1/sessions/:id',
    {
      schema: {
        tags: ['sessions'],
        operationId: 'delete_session',
        summary: 'Delete the session; the answer lists what was still mapped (leaks)',
        params: SessionParams,
        response: { 200: LeakReport, 404: SESSION_ERRORS[404], 503: SESSION_ERRORS[503] },
      },
    },
    async (req) => {
      // After the calls queued on the session (a long /batch runs in slices): its log ends after them.
      const s = app.store.get(req.params.id);
      const report = await inOrder(s, async () => app.store.delete(req.params.id));
      await app.journal.ended(req.params.id, 'deleted');
      return report;
    },
  );
};
