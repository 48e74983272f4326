// POST /v1/import/ftrace: the kernel's dma tracepoints in, one dmaemu trace per device out
// (src/service/ftrace.ts). JSON bodies ({text, options}) stay under DMAEMU_BODY_LIMIT; a
// text/plain body is the trace itself, up to DMAEMU_IMPORT_BODY_LIMIT, options in the query.
// The parse runs in a worker thread (src/service/ftrace-pool.ts): the answer comes back as
// JSON bytes and is sent as they are.
import type { FastifyError, FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ImportFtraceBody, ImportFtraceQuery, ImportFtraceResult } from '../schemas/import.js';
import { DmaemuError } from '../src/core/errors.js';
import { errorHandler } from '../src/service/http-errors.js';
import { importLimitsFromEnv, type ImportLimits } from '../src/service/ftrace.js';
import { importInWorker } from '../src/service/ftrace-pool.js';
import { charged } from '../src/service/execute.js';
import { SESSION_ERRORS } from './route-kit.js';

export const importPlugin: FastifyPluginAsync<{ limits?: Partial<ImportLimits> | undefined }> = async (fastify, opts) => {
  const limits = { ...importLimitsFromEnv(), ...opts.limits };
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  // Only in this plugin: a text/plain body is kept as its bytes, for the worker (never decoded
  // on this thread); the schema sees an empty string in its place.
  const rawTexts = new WeakMap<FastifyRequest, Buffer>();
  app.addContentTypeParser('text/plain', { parseAs: 'buffer', bodyLimit: limits.bodyLimit }, (req, body, done) => {
    rawTexts.set(req, body as Buffer);
    done(null, '');
  });
  app.post(
    '/v1/import/ftrace',
    {
      schema: {
        tags: ['dma'],
        operationId: 'import_ftrace',
        summary: "Turn the kernel's dma tracepoints (trace-cmd report, tracefs trace or trace_pipe) into dmaemu traces, one per device",
        description:
          'Reads dma_map_sg, dma_map_page / dma_map_phys, dma_unmap_*, dma_alloc / dma_free and dma_sync_* events of Linux 6.12 and later. Each device gets a trace for POST /v1/sessions `{ "trace": … }` or POST /v1/compare; ' +
          "events no dmaemu op can express are listed in `unexpressed` with their line. Body: JSON `{ text, session, devices, device, expect }`, or the trace itself as text/plain (up to DMAEMU_IMPORT_BODY_LIMIT bytes) with `device` and `expect` in the query. At most DMAEMU_MAX_IMPORT_EVENTS dma events. See docs/ftrace.md.",
        consumes: ['application/json', 'text/plain'],
        querystring: ImportFtraceQuery,
        body: z.union([ImportFtraceBody, z.string().meta({ description: 'text/plain: the trace itself' })]),
        response: {
          200: ImportFtraceResult,
          400: SESSION_ERRORS[400].meta({ description: 'A line that is not an ftrace event (the message names it), a bad option, or more than DMAEMU_MAX_IMPORT_EVENTS dma events' }),
          413: SESSION_ERRORS[413].meta({ description: 'Over DMAEMU_BODY_LIMIT (JSON) or DMAEMU_IMPORT_BODY_LIMIT (text/plain) (DMAEMU_BODY_TOO_LARGE)' }),
          507: SESSION_ERRORS[507],
        },
      },
      // The generic 413 names DMAEMU_BODY_LIMIT; here the text/plain limit is another one.
      errorHandler: (err: FastifyError, req, reply): void => {
        if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' && req.headers['content-type']?.startsWith('text/plain')) {
          const e = new DmaemuError('DMAEMU_BODY_TOO_LARGE', `the trace is over DMAEMU_IMPORT_BODY_LIMIT (${limits.bodyLimit} bytes)`);
          void reply.code(413).send(e.toBody());
          return;
        }
        errorHandler(err, req, reply);
      },
    },
    async (req, reply) => {
      const b = req.body;
      const opts = typeof b === 'string' ? { device: req.query.device, expect: req.query.expect } : { ...b, text: undefined, device: b.device ?? req.query.device, expect: b.expect ?? req.query.expect };
      const text = typeof b === 'string' ? (rawTexts.get(req) ?? Buffer.alloc(0)) : b.text;
      // The text and the answer (about as large) are held while the worker runs: charged to the
      // memory budget like any request's answer (507 when it cannot hold them).
      const json = await charged(app.store.budget, text.length, () => importInWorker(text, { ...opts, maxEvents: limits.maxEvents }));
      // Already the ImportFtraceResult's JSON (the worker serialized it): Fastify sends a Buffer as it is.
      return reply.type('application/json; charset=utf-8').send(json as unknown as z.output<typeof ImportFtraceResult>);
    },
  );
};
