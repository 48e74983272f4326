// The /batch body's validator: ajv code compiled once from BatchBody's own JSON Schema
// (z.toJSONSchema, input side), then one decoding pass (decodeBatchBody) instead of zod's
// generic walk, which cost half of a 64-op request. zod stays the single definition: a body
// ajv accepts is one zod accepts (test/batch-compact.test.ts checks both directions on random
// bodies), and a body ajv rejects goes to zod, so every 400 is zod's own, naming the field.

import { Ajv2020 } from 'ajv/dist/2020.js';
import type { FastifyRequest, FastifySchema, FastifySchemaCompiler, FastifySchemaValidationError } from 'fastify';
import { validatorCompiler as zodValidatorCompiler } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { BatchBody, BatchOp, decodeBatchBody } from '../../schemas/batch.js';
import { BatchBinaryError, decodeBatchRequest, requestOpCount, type BatchOps } from '../../schemas/batch-binary.js';
import { DmaemuError, invalid } from '../core/errors.js';
import { MIN_ANSWER_BYTES, checkBatchOps } from './calls.js';
import { REQUEST_LIMIT_ENV, type RequestLimits } from './execute.js';
import type { SessionLimits } from './session.js';

type Json = Record<string, unknown>;

/** BatchBody as the JSON Schema ajv compiles; its ops `oneOf` dispatches on `op` (ajv's discriminator). */
export function batchJsonSchema(): Json {
  const json = z.toJSONSchema(BatchBody, { io: 'input', target: 'draft-2020-12' }) as Json;
  const defs = json.$defs as Record<string, Json>;
  const ops = (defs.BatchRequest?.properties as Record<string, Json> | undefined)?.ops;
  const items = ops?.items as Json | undefined;
  if (!items || !Array.isArray(items.oneOf)) throw new Error('BatchBody: expected ops to be a oneOf (zod discriminatedUnion)');
  items.type = 'object'; // ajv's strict mode wants the discriminator's type said where it stands
  items.discriminator = { propertyName: 'op' };
  return json;
}

/** The compiled check: true when zod would accept `data` as a BatchBody (raw JSON, before decoding). */
export function compileBatchCheck(): (data: unknown) => boolean {
  // `example` is an annotation zod's .meta() emits; ajv's strict mode only needs to know it.
  const ajv = new Ajv2020({ strict: true, discriminator: true, allErrors: false });
  ajv.addKeyword({ keyword: 'example', schemaType: ['string', 'number', 'array', 'object', 'boolean'] });
  const check = ajv.compile(batchJsonSchema());
  return (data) => check(data);
}

type BranchIssue = { code: string; path: PropertyKey[]; message: string };
type ZodIssueEntry = FastifySchemaValidationError & { params: { errors?: BranchIssue[][] } };

/**
 * A scatterlist entry is `{phys, length}` or `[phys, length]`, a zod union: zod reports a bad
 * entry as "Invalid input" at the entry. When the entry's own type picks one branch (the other
 * failed on the type alone), report that branch's first issue instead: `body.ops.3.sg.1.1: Too small…`.
 */
function narrowUnionIssue(entry: ZodIssueEntry): ZodIssueEntry {
  if (entry.keyword !== 'invalid_union' || !entry.params.errors) return entry;
  const typed = entry.params.errors.filter((b) => !(b.length === 1 && b[0]?.code === 'invalid_type' && b[0].path.length === 0));
  const issue = typed.length === 1 ? typed[0]?.[0] : undefined;
  if (!issue) return entry;
  const instancePath = [entry.instancePath, ...issue.path.map(String)].join('/').replace(/\/+/g, '/');
  return { ...entry, keyword: issue.code, instancePath, message: issue.message, params: {} };
}

/** The route-level validatorCompiler of /batch: the compiled path for the body, zod for the rest. */
export function batchValidatorCompiler(): FastifySchemaCompiler<FastifySchema> {
  const check = compileBatchCheck();
  return (route) => {
    const slow = zodValidatorCompiler({ ...route, schema: route.schema as z.ZodType });
    if (route.httpPart !== 'body') return slow;
    return (data: unknown): ReturnType<ReturnType<FastifySchemaCompiler<FastifySchema>>> => {
      if (data instanceof DecodedBinaryBatch) return { value: { ops: data.ops } };
      if (check(data)) return { value: decodeBatchBody(data as z.input<typeof BatchBody>) };
      const r = slow(data) as { error?: ZodIssueEntry[]; value?: unknown };
      return r.error ? { error: r.error.map(narrowUnionIssue) } : r;
    };
  };
}

/** A binary /batch body, already checked and decoded by its content-type parser. */
class DecodedBinaryBatch {
  constructor(readonly ops: BatchOps) {}
}

/** A JSON record inside a binary body: one op of the JSON form, checked by zod's BatchOp. */
function jsonOp(value: unknown, prefix: string): BatchOps[number] {
  const r = BatchOp.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new BatchBinaryError([prefix, ...(issue?.path.map(String) ?? [])].join('.'), issue?.message ?? 'invalid op');
}

/**
 * The content-type parser of binary /batch bodies (schemas/batch-binary.ts): decoded and checked
 * here, whole, before the route runs; a bad body is a 400 naming the field, as in the JSON form.
 */
export function parseBinaryBatch(req: FastifyRequest, body: Buffer, done: (err: Error | null, value?: unknown) => void): void {
  try {
    // The op count is the header's: a body of a million ops is refused before one is decoded.
    checkBatchOps(requestOpCount(body) ?? 0, req.server.store.limits.maxBatchOps);
    done(null, new DecodedBinaryBatch(decodeBatchRequest(body, jsonOp)));
  } catch (err) {
    done(err instanceof BatchBinaryError ? invalid(err.field, err.message) : (err as Error));
  }
}

/**
 * Cheap checks on a raw JSON body, before its schema walks it (a preValidation hook): ops at
 * most `maxOps` (/batch: DMAEMU_MAX_BATCH_OPS); with `wholeLists`, each scatterlist at most
 * DMAEMU_MAX_SG_ENTRIES long (where one list over it fails the whole request anyway: map_sg,
 * compare; in a /batch or a trace only its op fails); ops plus entries (twice for an
 * `explained` map_sg, once per column for compare) within DMAEMU_MAX_REQUEST_COST — never more
 * than calls.ts estimates once the body is parsed; ops × MIN_ANSWER_BYTES within
 * DMAEMU_MAX_RESPONSE_BYTES. Reads only array lengths; everything else is left to the schema.
 */
export function refuseOversized(raw: unknown, limits: SessionLimits & RequestLimits, how: { wholeLists: boolean; maxOps?: number; columns?: number; explained?: boolean }): void {
  if (typeof raw !== 'object' || raw === null) return;
  const b = raw as { sg?: unknown; ops?: unknown; trace?: { ops?: unknown } };
  let work = 0;
  const sgOf = (sg: unknown, field: string, explained: boolean): void => {
    if (!Array.isArray(sg)) return;
    if (how.wholeLists && sg.length > limits.maxSgEntries) throw new DmaemuError('DMAEMU_TOO_MANY_SG_ENTRIES', `a scatterlist may hold at most ${limits.maxSgEntries} entries`, field);
    work += explained ? 2 * sg.length : sg.length; // an explanation is a unit more per entry (calls.ts)
  };
  sgOf(b.sg, 'sg', how.explained === true);
  const ops: unknown[] = Array.isArray(b.ops) ? b.ops : Array.isArray(b.trace?.ops) ? (b.trace.ops as unknown[]) : [];
  if (how.maxOps !== undefined) checkBatchOps(ops.length, how.maxOps);
  work += ops.length;
  ops.forEach((op, i) => {
    if (typeof op === 'object' && op !== null) sgOf((op as { sg?: unknown }).sg, `ops.${i}.sg`, how.explained === true && (op as { explain?: unknown }).explain !== false);
  });
  work *= how.columns ?? 1;
  if (work > limits.maxRequestCost) {
    throw new DmaemuError('DMAEMU_REQUEST_TOO_COSTLY', `this request is estimated at ${work} work units at least (its ops and scatterlist entries${how.columns ? `, in ${how.columns} columns` : ''}), over ${REQUEST_LIMIT_ENV.maxRequestCost}=${limits.maxRequestCost}: split it`);
  }
  refuseOpCount(ops.length, limits);
}

/**
 * What an op count alone refuses: every op's answer is estimated at MIN_ANSWER_BYTES at least
 * (calls.ts), so a trace of half a million ops is refused from its count; `maxOps` (a /batch's
 * limit) first. Also run on the raw text, before JSON.parse (json-count.ts).
 */
export function refuseOpCount(ops: number, limits: RequestLimits, maxOps?: number): void {
  if (maxOps !== undefined) checkBatchOps(ops, maxOps);
  if (ops * MIN_ANSWER_BYTES > limits.maxResponseBytes) {
    throw new DmaemuError(
      'DMAEMU_RESPONSE_TOO_LARGE',
      `this request's ${ops} ops would answer ~${ops * MIN_ANSWER_BYTES} bytes at least; ${REQUEST_LIMIT_ENV.maxResponseBytes}=${limits.maxResponseBytes}: split it`,
    );
  }
}
