// GET /v1/sessions/{id}/trace: the session as a replayable document (src/service/trace.ts); POST it
// back to /v1/sessions as `trace` to rebuild the session (routes/sessions.ts).
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { ErrorBody, SessionParams, TraceDocument } from '../schemas/index.js';
import { internal } from '../src/core/errors.js';
import { traceOf } from '../src/service/trace.js';
import { VERSION } from '../src/service/version.js';
import { SESSION_ERRORS } from './route-kit.js';

export const tracePlugin: FastifyPluginAsync = async (fastify) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  app.get(
    '/v1/sessions/:id/trace',
    {
      schema: {
        tags: ['sessions'],
        operationId: 'get_trace',
        summary: 'The session as a trace: its create body and every call with its answer as `expect` (the format of test/vectors)',
        description:
          'POST it back to /v1/sessions as `{ "trace": … }` to rebuild the session, or edit `session.layout` to replay it under another layout; handles are `ref`s to the op that returned them.',
        params: SessionParams,
        response: {
          200: TraceDocument,
          404: SESSION_ERRORS[404],
          409: ErrorBody.meta({ description: 'The history was compacted into a snapshot, or outgrew the in-memory cap (DMAEMU_TRACE_UNAVAILABLE)' }),
        },
      },
    },
    async (req) => {
      const s = app.store.get(req.params.id);
      const stored = await app.journal.history(s.id);
      if (!stored) throw internal(`session ${s.id} is live but has no log`); // the journal logs every creation
      return traceOf(stored, VERSION);
    },
  );
};
