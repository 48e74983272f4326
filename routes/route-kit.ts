// What every route plugin shares: the documented error responses and a typed helper for the
// session-scoped POST routes (parse → call the core → serialize; nothing else happens here).

import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchema, FastifySchemaCompiler } from 'fastify';
import { z } from 'zod';
import { ErrorBody, SessionParams } from '../schemas/index.js';
import type { Session } from '../src/service/session.js';
import { serializerCompiler } from '../src/service/http-serializer.js';
import { CALLS, type CallName } from '../src/service/store/op-store.js';

function wireSerializer(wire: z.ZodType) {
  return (ctx: { schema: unknown; httpStatus?: string }) => serializerCompiler({ schema: ctx.httpStatus === '200' ? wire : ctx.schema });
}

const err = (description: string) => ErrorBody.meta({ description });

/** The HTTP errors a session-scoped call can answer (codes: README "Errors"). */
export const SESSION_ERRORS = {
  400: err('Invalid request; `message` names the field (DMAEMU_INVALID_ARGUMENT, DMAEMU_MALFORMED_BODY)'),
  404: err('Unknown session or handle (DMAEMU_SESSION_NOT_FOUND, DMAEMU_HANDLE_NOT_FOUND)'),
  413: err('Body over DMAEMU_BODY_LIMIT (DMAEMU_BODY_TOO_LARGE)'),
  429: err('Over a limit (DMAEMU_TOO_MANY_*, DMAEMU_MEMORY_LIMIT)'),
  503: err("The call could not be made durable in the session's op log (DMAEMU_PERSISTENCE_FAILED)"),
};

export interface SessionPostDef<B extends z.ZodType, R extends z.ZodType, Q extends z.ZodType | undefined> {
  path: string;
  tag: 'dma' | 'memory';
  summary: string;
  description?: string;
  body: B;
  result: R;
  querystring?: Q;
  /** A schema the 200 answer is serialized with instead of `result` (same JSON, faster shape). */
  wire?: z.ZodType;
  /** Turns the call's answer into what is sent (e.g. another encoding the client asked for); default: the answer. */
  respond?: (out: z.output<R>, body: z.output<B>, req: FastifyRequest, reply: FastifyReply) => unknown;
  /** A route-level validator compiler instead of the app's zod one (same schemas, compiled; see src/service/http-batch-validator.ts). */
  validatorCompiler?: FastifySchemaCompiler<FastifySchema>;
}

export function sessionPost<B extends z.ZodType, R extends z.ZodType, Q extends z.ZodType | undefined = undefined>(
  app: FastifyInstance,
  def: SessionPostDef<B, R, Q>,
  call: (s: Session, body: z.output<B>, query: Q extends z.ZodType ? z.output<Q> : undefined) => z.output<R>,
): void {
  // The DMA-API and memory calls are journaled (src/service/journal.ts): answered once durable.
  const journaled = (CALLS as readonly string[]).includes(def.path) ? (def.path as CallName) : null;
  // Plain route generics: the zod provider cannot infer through this helper's own generics,
  // so the types come from `call`'s signature instead (validation still runs on the schemas).
  app.post<{ Params: { id: string } }>(
    `/v1/sessions/:id/${def.path}`,
    {
      ...(def.wire ? { serializerCompiler: wireSerializer(def.wire) } : {}),
      ...(def.validatorCompiler ? { validatorCompiler: def.validatorCompiler } : {}),
      schema: {
        tags: [def.tag],
        operationId: def.path.replace('/', '_'),
        summary: def.summary,
        ...(def.description ? { description: def.description } : {}),
        params: SessionParams,
        ...(def.querystring ? { querystring: def.querystring } : {}),
        body: def.body,
        response: { 200: def.result, ...SESSION_ERRORS },
      },
    },
    async (req, reply) => {
      const s = app.store.get(req.params.id);
      const body = req.body as z.output<B>;
      const query = req.query as Q extends z.ZodType ? z.output<Q> : undefined;
      const out = journaled ? await app.journal.call(s, journaled, body, def.querystring ? query : undefined, () => call(s, body, query)) : call(s, body, query);
      return def.respond ? def.respond(out, body, req, reply) : out;
    },
  );
}
