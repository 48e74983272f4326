// The finishing pass over the generated OpenAPI document (app.ts hands it to @fastify/swagger's
// transformObject). The zod schemas stay the single source of every shape; this pass adds what a
// reader and a linter (Redocly's recommended ruleset, test/openapi-lint.test.ts) need and zod
// cannot say: an example request and answer for every operation (openapi-steps.ts, in the order a
// reader would make them, with the answers the service really gives: openapi-examples.ts), a real
// error body for each documented error code, success responses named for what they hold, boolean
// query flags typed as booleans, and no component that nothing refers to.

import { STATUS_CODES } from 'node:http';
import { ERROR_CODES, type ErrorCode } from '../core/errors.js';
import { EXAMPLE_ANSWERS } from './openapi-examples.js';
import { EXAMPLE_STEPS } from './openapi-steps.js';

type Json = Record<string, unknown>;
export type OpenApiDoc = { paths?: Record<string, Record<string, Json>>; components?: { schemas?: Record<string, Json> } } & Json;

/**
 * One real message per error code, as the service words it (the limits at their defaults), so an
 * error example reads like the answer a harness will get.
 */
export const ERROR_MESSAGES: Readonly<Record<ErrorCode, string>> = {
  DMAEMU_INVALID_ARGUMENT: 'body.sg.0.length: Too small: expected number to be >=1',
  DMAEMU_SESSION_NOT_FOUND: 'no live session has this id (never created, deleted, or idle past DMAEMU_SESSION_TTL_MS)',
  DMAEMU_HANDLE_NOT_FOUND: 'handle 99: device driver tries to free DMA memory it has not allocated',
  DMAEMU_TOO_MANY_SESSIONS: 'the live-session limit (DMAEMU_MAX_SESSIONS=1000) is reached; delete a session first',
  DMAEMU_TOO_MANY_MAPPINGS: 'the session already holds 1000000 live mappings',
  DMAEMU_TOO_MANY_SG_ENTRIES: 'sg: a scatterlist may hold at most 4096 entries',
  DMAEMU_TOO_MANY_BATCH_OPS: 'ops: a batch may hold at most 1024 ops',
  DMAEMU_MEMORY_LIMIT: "data: this access would bring the session's emulated memory (RAM chunks and cache lines) to 268439552 bytes; its memory_limit is 268435456",
  DMAEMU_MEMORY_BUDGET:
    "the service's memory budget (DMAEMU_MEMORY_BUDGET, 512.0 MiB) cannot hold this call: 511.9 MiB are in use by all sessions and it needs ~1048576 bytes more; unmap, free or delete sessions first",
  DMAEMU_MALFORMED_BODY: "Body is not valid JSON but content-type is set to 'application/json'",
  DMAEMU_ROUTE_NOT_FOUND: 'no route GET /v1/session (see /openapi.json)',
  DMAEMU_BODY_TOO_LARGE: 'The body exceeds DMAEMU_BODY_LIMIT bytes (default 8 MiB)',
  DMAEMU_UNSUPPORTED_MEDIA_TYPE: 'Bodies must be application/json (POST /batch also takes application/vnd.dmaemu.batch)',
  DMAEMU_TRACE_UNAVAILABLE:
    "the session's first 4096 calls were folded into a snapshot (compaction, or the in-memory history cap without DMAEMU_DATA_DIR); a trace must start at creation",
  DMAEMU_PERSISTENCE_FAILED:
    "session yRpgwbjfxTBT5HteoCE-Xg: a call could not be made durable, so this session's log stopped; create a new session (see the service log)",
  DMAEMU_REQUEST_TOO_COSTLY:
    'this map_page is estimated at 1048578 work units (ops + scatterlist entries + page rows + 4 KiB pages touched); DMAEMU_MAX_REQUEST_COST=1048576: split it',
  DMAEMU_RESPONSE_TOO_LARGE: 'this cpu/read would answer ~5592606 bytes; DMAEMU_MAX_RESPONSE_BYTES=4194304: ask for less (fewer ops, no ?pages, shorter reads)',
  DMAEMU_PRECONDITION_FAILED: 'headers.if-match: Precondition Failed',
  DMAEMU_RANGE_NOT_SATISFIABLE: 'headers.range: Range Not Satisfiable',
  DMAEMU_INTERNAL: 'internal error (logged on the server)',
};

/** An operation without a body refuses a wrong query parameter (e.g. `?page=true` for `?pages=true`). */
const QUERY_MESSAGE = 'querystring.page: Unrecognized key: "page"';

/** The error body the service sends for `code` (`withBody`: to an operation that takes one). */
export function errorExample(code: ErrorCode, withBody = true): { statusCode: number; error: string; code: ErrorCode; message: string } {
  const statusCode = ERROR_CODES[code].status;
  const message = code === 'DMAEMU_INVALID_ARGUMENT' && !withBody ? QUERY_MESSAGE : ERROR_MESSAGES[code];
  return { statusCode, error: STATUS_CODES[statusCode] ?? 'Error', code, message };
}

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** zod's `.int()` bounds: every integer on this wire is a count, size, handle or code. */
function stripSafeIntegerBounds(node: unknown): void {
  if (!isObject(node) && !Array.isArray(node)) return;
  if (isObject(node)) {
    if (node.minimum === Number.MIN_SAFE_INTEGER) node.minimum = 0;
    if (node.maximum === Number.MAX_SAFE_INTEGER) delete node.maximum;
  }
  for (const v of Object.values(node)) stripSafeIntegerBounds(v);
}

/** The flags the routes parse from '1' / '0' / 'true' / 'false' are booleans to a reader and to Swagger UI. */
function booleanQueryFlags(op: Json): void {
  for (const p of (op.parameters as Json[] | undefined) ?? []) {
    const s = p.schema;
    if (p.in === 'query' && isObject(s) && Array.isArray(s.enum) && [...(s.enum as unknown[])].sort().join() === '0,1,false,true') {
      p.schema = { type: 'boolean', default: false };
      p.description = `${typeof p.description === 'string' ? `${p.description}. ` : ''}\`true\` or \`false\` (\`1\` and \`0\` are accepted too)`;
    }
  }
}

/** The codes a response's description names ("… (CODE_A, CODE_B)"), else every code of that status. */
function codesOf(status: number, description: unknown): ErrorCode[] {
  const all = (Object.keys(ERROR_CODES) as ErrorCode[]).filter((c) => ERROR_CODES[c].status === status);
  const named = typeof description === 'string' ? all.filter((c) => description.includes(c)) : [];
  return named.length > 0 ? named : all;
}

function examplesFor(op: Json, answers: Readonly<Record<string, unknown>>, bodies: ReadonlyMap<string, unknown>): void {
  const id = typeof op.operationId === 'string' ? op.operationId : '';
  const body = bodies.get(id);
  const media = (o: unknown): Json | undefined => (isObject(o) && isObject(o.content) && isObject(o.content['application/json']) ? o.content['application/json'] : undefined);
  const req = media(op.requestBody);
  if (req && body !== undefined) req.example = body;
  for (const [status, response] of Object.entries((op.responses as Record<string, Json> | undefined) ?? {})) {
    const code = Number(status);
    const m = media(response);
    if (code >= 200 && code < 300) {
      if (response.description === 'Default Response') response.description = `${STATUS_CODES[code] ?? 'OK'}: ${typeof op.summary === 'string' ? op.summary : id}`;
      if (m && answers[id] !== undefined) m.example = answers[id];
    } else if (m && code >= 400) {
      delete m.example;
      m.examples = Object.fromEntries(codesOf(code, response.description).map((c) => [c, { summary: ERROR_CODES[c].doc, value: errorExample(c, req !== undefined) }]));
    }
  }
}

/** Drops components nothing refers to (zod emits an input and an output variant of each). */
function pruneComponents(doc: OpenApiDoc): void {
  const schemas = doc.components?.schemas;
  if (!schemas) return;
  for (;;) {
    const text = JSON.stringify({ ...doc, components: { ...doc.components, schemas: {} } }) + JSON.stringify(schemas);
    const unused = Object.keys(schemas).filter((name) => !text.includes(`"#/components/schemas/${name}"`));
    if (unused.length === 0) return;
    for (const name of unused) delete schemas[name];
  }
}

/**
 * The finishing pass. Also: /docs, which @fastify/swagger-ui registers hidden, is part of the
 * contract (API.md "Service"), so it is described too.
 */
export function polishDocument(doc: OpenApiDoc): OpenApiDoc {
  stripSafeIntegerBounds(doc);
  doc.paths = {
    ...doc.paths,
    '/docs': {
      get: {
        tags: ['service'],
        operationId: 'docs',
        summary: 'Swagger UI for this document',
        responses: {
          '200': { description: 'The Swagger UI page (HTML)', content: { 'text/html': { schema: { type: 'string' } } } },
          '400': { description: 'An unknown query parameter (DMAEMU_INVALID_ARGUMENT)', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
        },
      },
    },
  };
  const bodies = new Map(EXAMPLE_STEPS.filter((s) => s.body !== undefined).map((s) => [s.operationId, s.body]));
  for (const methods of Object.values(doc.paths)) {
    for (const op of Object.values(methods)) {
      booleanQueryFlags(op);
      examplesFor(op, EXAMPLE_ANSWERS, bodies);
    }
  }
  pruneComponents(doc);
  return doc;
}
