// What every route plugin shares: the documented error responses, and the session-scoped POST
// route of a DMA call made from its table entry (src/service/calls.ts): parse → execute →
// serialize; nothing else happens here.

import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchema, FastifySchemaCompiler } from 'fastify';
import { z } from 'zod';
import { ErrorBody, SessionParams } from '../schemas/index.js';
import { serializerCompiler } from '../src/service/http-serializer.js';
import type { CallQuery, CallSpec, ErrorStatus } from '../src/service/calls.js';
import { execute } from '../src/service/execute.js';
import { refuseOversized } from '../src/service/http-batch-validator.js';
import { stringifySliced } from '../src/service/json-slices.js';

function wireSerializer(wire: z.ZodType) {
  return (ctx: { schema: unknown; httpStatus?: string }) => serializerCompiler({ schema: ctx.httpStatus === '200' ? wire : ctx.schema });
}

const err = (description: string) => ErrorBody.meta({ description });

/** The HTTP errors a session-scoped call can answer (codes: README "Errors"). */
export const SESSION_ERRORS = {
  400: err('Invalid request; `message` names the field (DMAEMU_INVALID_ARGUMENT, DMAEMU_MALFORMED_BODY)'),
  404: err('Unknown session or handle (DMAEMU_SESSION_NOT_FOUND, DMAEMU_HANDLE_NOT_FOUND)'),
  413: err('Body over DMAEMU_BODY_LIMIT (DMAEMU_BODY_TOO_LARGE), estimated work over DMAEMU_MAX_REQUEST_COST (DMAEMU_REQUEST_TOO_COSTLY), or answer over DMAEMU_MAX_RESPONSE_BYTES (DMAEMU_RESPONSE_TOO_LARGE)'),
  429: err('Over a limit (DMAEMU_TOO_MANY_*, DMAEMU_MEMORY_LIMIT)'),
  503: err("The call could not be made durable in the session's op log (DMAEMU_PERSISTENCE_FAILED)"),
  507: err("The service's memory budget cannot hold the call (DMAEMU_MEMORY_BUDGET); nothing was done"),
} satisfies Record<ErrorStatus, z.ZodType>;

/**
 * A large answer (src/service/execute.ts LARGE_ANSWER) as JSON made in slices that yield
 * (src/service/json-slices.ts): the text JSON.stringify would give, sent as one Buffer. Anything
 * already encoded (a Buffer: the binary /batch answer) goes out as it is.
 */
export async function largeAnswer(reply: FastifyReply, out: unknown): Promise<unknown> {
  if (Buffer.isBuffer(out)) return out;
  const json = await stringifySliced(out);
  void reply.type('application/json; charset=utf-8');
  return json;
}

/** The OpenAPI responses of a call's error statuses. */
export function errorResponses(statuses: readonly ErrorStatus[]): Partial<Record<ErrorStatus, z.ZodType>> {
  return Object.fromEntries(statuses.map((code) => [code, SESSION_ERRORS[code]]));
}

/** What a route may add to its call's table entry (/batch's binary forms). */
export interface CallRouteExtras {
  /** A schema the 200 answer is serialized with instead of the call's `result` (same JSON, faster shape). */
  wire?: z.ZodType;
  /** Turns the call's answer into what is sent (e.g. another encoding the client asked for); default: the answer. */
  respond?: (out: unknown, body: unknown, req: FastifyRequest, reply: FastifyReply) => unknown;
  /** A route-level validator compiler instead of the app's zod one (same schemas, compiled; see src/service/http-batch-validator.ts). */
  validatorCompiler?: FastifySchemaCompiler<FastifySchema>;
  /** More text after the table's description. */
  description?: string;
  /** load/load-server.ts's stubs: the call's schemas and serializer under another path, with a fixed answer and no log. */
  stub?: { path: string; answer: unknown };
}

/** POST /v1/sessions/{id}/<call>: the call's table entry as a route; it runs through execute (checked, charged, in order, journaled). */
export function callRoute(app: FastifyInstance, spec: CallSpec, extras: CallRouteExtras = {}): void {
  const description = [spec.description, extras.description].filter(Boolean).join(' ');
  const path = extras.stub?.path ?? spec.name;
  const answer = extras.stub?.answer;
  const call: CallSpec = extras.stub ? { ...spec, run: () => answer } : spec;
  app.post<{ Params: { id: string } }>(
    `/v1/sessions/:id/${path}`,
    {
      ...(extras.wire ? { serializerCompiler: wireSerializer(extras.wire) } : {}),
      ...(extras.validatorCompiler ? { validatorCompiler: extras.validatorCompiler } : {}),
      // Array lengths counted before the schema walks the body (a 100 k-entry list is refused in microseconds).
      preValidation: async (req) => {
        const limits = app.store.limits;
        refuseOversized(req.body, limits, spec.name === 'batch' ? { wholeLists: false, maxOps: limits.maxBatchOps } : { wholeLists: true });
      },
      schema: {
        tags: [spec.tag],
        operationId: path.replace('/', '_'),
        summary: spec.summary,
        ...(description ? { description } : {}),
        params: SessionParams,
        ...(spec.query ? { querystring: spec.query } : {}),
        body: spec.body,
        response: { 200: spec.result, ...errorResponses(spec.statuses) },
      },
    },
    async (req, reply) => {
      const s = app.store.get(req.params.id);
      const query = spec.query ? (req.query as CallQuery) : undefined;
      const respond = (out: unknown): unknown => (extras.respond ? extras.respond(out, req.body, req, reply) : out);
      let large = false;
      const out = await execute(s, call, req.body, query, {
        journal: extras.stub ? null : app.journal,
        limits: app.store.limits,
        budget: app.store.budget,
        large: (answer) => {
          large = true;
          return largeAnswer(reply, respond(answer));
        },
      });
      return large ? out : respond(out); // the answer only: an error goes out through the error handler as always
    },
  );
}
