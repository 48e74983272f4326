// Builds the Fastify application: zod schemas (schemas/) validate, serialize and document
// every route (routes/); errors leave in one shape with stable codes (src/core/errors.ts). Kept
// separate from server.ts so tests can `inject` without a socket.

import Fastify, { LogController, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { jsonSchemaTransform, jsonSchemaTransformObject, validatorCompiler } from 'fastify-type-provider-zod';
import { errorHandler, frameworkErrors, notFoundHandler } from './http-errors.js';
import { parseJsonRequest } from './json-count.js';
import { serializerCompiler } from './http-serializer.js';
import { SessionStore, limitsFromEnv, type StoreLimits } from './session-store.js';
import { metricsPlugin } from '../../routes/metrics.js';
import { servicePlugin } from '../../routes/service.js';
import { sessionsPlugin } from '../../routes/sessions.js';
import { dmaPlugin } from '../../routes/dma.js';
import { memoryPlugin } from '../../routes/memory.js';
import { tablesPlugin } from '../../routes/tables.js';
import { comparePlugin } from '../../routes/compare.js';
import { iovaSvgPlugin } from '../../routes/iova-svg.js';
import { uiPlugin } from '../../routes/ui.js';
import { tracePlugin } from '../../routes/trace.js';
import { importPlugin } from '../../routes/import.js';
import type { ImportLimits } from './ftrace.js';
import type { Journal, JournalOptions } from './journal.js';
import { dataDirFromEnv, journalOptionsFromEnv, openJournal } from './persistence.js';
import { VERSION } from './version.js';
import { safeStdout } from './log-destination.js';
import type { StoreIo } from './store/file-op-store.js';
import { polishDocument, type OpenApiDoc } from './openapi-document.js';
import { ErrorBody } from '../../schemas/common.js';
import { z } from 'zod';

export interface AppOptions {
  logLevel?: string;
  /** Where the pino lines go (default stdout); tests pass a stream to read them. */
  logStream?: { write(line: string): void };
  limits?: Partial<StoreLimits>;
  /** Largest request body in bytes (DMAEMU_BODY_LIMIT, default 8 MiB). */
  bodyLimit?: number;
  /** Where op logs go (docs/persistence.md); null: memory only; default: DMAEMU_DATA_DIR, else memory only. */
  dataDir?: string | null;
  /** When logs are compacted (default: DMAEMU_COMPACT_*, else src/service/journal.ts's defaults). */
  journal?: Partial<JournalOptions>;
  /** POST /v1/import/ftrace's limits (default: DMAEMU_IMPORT_BODY_LIMIT, DMAEMU_MAX_IMPORT_EVENTS). */
  importLimits?: Partial<ImportLimits>;
  /** The op store's writes (tests inject short writes and ENOSPC where no small filesystem can be mounted). */
  storeIo?: StoreIo;
}

export const DEFAULT_BODY_LIMIT = 8 * 1024 * 1024;

declare module 'fastify' {
  interface FastifyInstance {
    store: SessionStore;
    journal: Journal;
  }
}

export async function buildApp(opts: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    // stdout through safeStdout: a log line that cannot be written must never kill the service.
    logger: { level: opts.logLevel ?? 'info', stream: opts.logStream ?? safeStdout() },
    logController: new OneLinePerRequest(),
    bodyLimit: opts.bodyLimit ?? bodyLimitFromEnv(),
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    // A malformed percent-escape or an over-long path segment: refused by the router before any route, in our error shape.
    frameworkErrors,
  });
  const store = new SessionStore({ ...limitsFromEnv(), ...opts.limits });
  store.startSweeping();
  app.decorate('store', store);
  app.addHook('onClose', async () => store.stopSweeping());
  const journal = openJournal(opts.dataDir === undefined ? dataDirFromEnv() : opts.dataDir, store, app.log, { ...journalOptionsFromEnv(), ...opts.journal }, opts.storeIo);
  app.decorate('journal', journal);
  drainOnClose(app);
  // After the routes' onClose hooks: in-flight requests have been answered, so their records are written.
  app.addHook('onClose', async () => journal.store.close());

  // JSON only: Fastify's text/plain parser would hand strings to the schemas (→ a misleading 400).
  app.removeContentTypeParser('text/plain');
  // Ours names a poisoning key and where it is (json-body.ts); Fastify's says only "not valid JSON".
  app.removeContentTypeParser('application/json');
  // A long body's ops are counted on the raw text first (json-count.ts): too many is refused unparsed.
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    parseJsonRequest(req.routeOptions.url, body as string, store.limits).then(
      (v) => done(null, v),
      (err: unknown) => done(err as Error, undefined),
    );
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);

  // A GET route that takes no query parameters refuses unknown ones (400 naming them), as the
  // routes with a query schema do: `?page=true` for `?pages=true` is a mistake to report.
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (!methods.includes('GET') || route.schema?.querystring) return;
    route.schema = { ...route.schema, querystring: z.strictObject({}) };
    if (route.schema.response && typeof route.schema.response === 'object' && !('400' in route.schema.response)) {
      route.schema.response = { ...route.schema.response, 400: ErrorBody.meta({ description: 'An unknown query parameter (DMAEMU_INVALID_ARGUMENT)' }) };
    }
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'dmaemu',
        version: VERSION,
        description:
          'The Linux DMA API on an emulated IOMMU: which segments, IOVAs, cache maintenance and faults Linux would give your buffers. ' +
          'Addresses are hex strings. Failures Linux itself reports are 200 with an `error` object; HTTP errors carry a stable `code`.',
        license: { name: 'MIT', identifier: 'MIT' },
      },
      // Relative: Swagger UI's "Try it out" calls the server that served the document.
      servers: [{ url: '/', description: 'This service' }],
      // No authentication: the service is meant for loopback and CI networks (README "Security").
      security: [],
      tags: [
        { name: 'sessions', description: 'One device and its IOMMU domain per session' },
        { name: 'dma', description: 'The DMA-API calls' },
        { name: 'memory', description: 'What the CPU and the device see' },
        { name: 'tables', description: 'Live mappings, dma-debug findings, IOMMU faults' },
        { name: 'service', description: 'Health, metrics, this document' },
      ],
    },
    transform: jsonSchemaTransform,
    transformObject: (doc) => polishDocument(jsonSchemaTransformObject(doc) as OpenApiDoc) as ReturnType<typeof jsonSchemaTransformObject>,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  await app.register(metricsPlugin);
  await app.register(servicePlugin);
  await app.register(sessionsPlugin);
  await app.register(dmaPlugin);
  await app.register(memoryPlugin);
  await app.register(tablesPlugin);
  await app.register(iovaSvgPlugin);
  await app.register(uiPlugin);
  await app.register(tracePlugin);
  await app.register(comparePlugin);
  await app.register(importPlugin, { limits: opts.importLimits });
  // Last: restored sessions get the observer the plugins installed.
  // Restored work was acknowledged before: the budget admits it all, then counts what it holds (docs/memory-budget.md).
  store.budget.admitAll(true);
  const restored = await journal.restore().finally(() => store.budget.admitAll(false));
  store.budget.resync(store.values());
  app.log.info({ store: journal.store.description, ...restored, ms: Math.round(restored.ms) }, 'op store opened');
  return app;
}

/**
 * While the app closes (SIGTERM: server.ts), answers to requests already in flight carry
 * `Connection: close`, so their keep-alive connections end with the answer instead of staying
 * open until keepAliveTimeout and holding server.close() (and the process) up. Connections idle
 * when close starts are closed by Node's server.close() (forceCloseConnections 'idle', Fastify's
 * default); requests arriving during the drain get Fastify's 503 with Connection: close.
 */
function drainOnClose(app: FastifyInstance): void {
  let draining = false;
  app.addHook('preClose', (done) => {
    draining = true;
    done();
  });
  app.addHook('onSend', (_req, reply, payload, done) => {
    if (draining) void reply.header('connection', 'close');
    done(null, payload);
  });
}

type LoggedRequest = Parameters<LogController['incomingRequest']>[0];
type LoggedReply = Parameters<LogController['incomingRequest']>[1];

/**
 * One info line per request, written when it completes: method, route pattern (the op, e.g.
 * /v1/sessions/:id/map_sg), session id, status and milliseconds, as flat fields. Fastify's
 * "incoming request" goes to debug. The line is built from fields Fastify already holds,
 * without its req/res serializers, so logging costs the load test nothing it can measure.
 */
export class OneLinePerRequest extends LogController {
  override incomingRequest(request: LoggedRequest): void {
    request.log.debug({ req: request }, 'incoming request');
  }

  override requestCompleted(error: Error | null | undefined, request: LoggedRequest, reply: LoggedReply): void {
    const log = reply.log;
    const line = {
      method: request.method,
      route: request.routeOptions.url ?? 'unmatched',
      session: (request.params as { id?: string } | undefined)?.id ?? null,
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 1000) / 1000,
    };
    if (error) log.error({ ...line, err: error }, 'request errored');
    else log.info(line, 'request completed');
  }
}

function bodyLimitFromEnv(): number {
  const raw = process.env.DMAEMU_BODY_LIMIT;
  if (raw === undefined || raw === '') return DEFAULT_BODY_LIMIT;
  const v = Number(raw);
  if (!Number.isSafeInteger(v) || v < 1024) throw new Error(`DMAEMU_BODY_LIMIT must be an integer ≥ 1024, got ${JSON.stringify(raw)}`);
  return v;
}
