// /batch: several operations in one request, run in order; `{ "ref": i }` stands for the
// handle returned by op i of the same batch. A map_sg op's entries may also come as
// `[phys, length]` tuples (the compact form: a third of the bytes to parse and check); both
// forms decode to the same `{phys, length}` objects, so nothing past validation can tell them apart.
import { z } from 'zod';
import { ErrorBody, Handle, KernelError, Length32, PhysIn } from './common.js';
import {
  AllocCoherentBody,
  AllocCoherentResult,
  FlushBody,
  FlushResult,
  FreeCoherentBody,
  FreeCoherentResult,
  MapPageBody,
  MapPageResult,
  MapSgBody,
  MapSgResult,
  SgEntry,
  SyncBody,
  SyncResult,
  UnmapBody,
  UnmapResult,
} from './dma.js';

export const HandleOrRef = z.union([
  Handle,
  z.strictObject({ ref: z.number().int().min(0).meta({ description: 'Index of an earlier op in this batch' }) }),
]);

/** `[phys, length]`: the compact scatterlist entry, decoded to `{phys, length}`. */
export const SgTuple = z
  .tuple([PhysIn, Length32])
  .transform(([phys, length]) => ({ phys, length }))
  .meta({ description: 'Compact form of {phys, length}: [phys, length], phys a hex string or a safe integer', example: ['0x90000000', 4096] });

// Tuples first: the compiled check tries anyOf branches in order, and a failed branch costs an
// error object per entry; the hot (compact) form should never fail one.
export const BatchSg = z.array(z.union([SgTuple, SgEntry])).min(1);

export const BatchOp = z.discriminatedUnion('op', [
  MapSgBody.extend({ op: z.literal('map_sg'), sg: BatchSg, pages: z.boolean().optional(), explain: z.boolean().optional().meta({ description: 'As ?explain=true on map_sg' }) }),
  MapPageBody.extend({ op: z.literal('map_page'), pages: z.boolean().optional() }),
  UnmapBody.extend({ op: z.literal('unmap'), handle: HandleOrRef }),
  SyncBody.extend({ op: z.literal('sync'), handle: HandleOrRef }),
  AllocCoherentBody.extend({ op: z.literal('alloc_coherent') }),
  FreeCoherentBody.extend({ op: z.literal('free_coherent'), handle: HandleOrRef }),
  FlushBody.extend({ op: z.literal('flush') }),
]);

export const BatchBody = z.strictObject({ ops: z.array(BatchOp).min(1) }).meta({ id: 'BatchRequest' });

export const BatchResultItem = z.union([
  MapSgResult,
  MapPageResult,
  UnmapResult,
  SyncResult,
  AllocCoherentResult,
  FreeCoherentResult,
  FlushResult,
  ErrorBody,
]);

export const BatchResult = z.object({ results: z.array(BatchResultItem) }).meta({ id: 'BatchResult' });

/**
 * The serializer's view of BatchResult: one object type carrying every field any result can
 * have. fast-json-stringify resolves an anyOf by validating each item against the branches,
 * which doubled the cost of a 64-op answer; the OpenAPI document keeps the precise union above.
 */
const wireItem: Record<string, z.ZodType> = {};
for (const option of BatchResultItem.options) {
  for (const [key, schema] of Object.entries(option.shape as Record<string, z.ZodType>)) wireItem[key] ??= schema.optional();
}
wireItem.handle = z.number().int().nullable().optional();
wireItem.error = z.union([KernelError, z.string()]).optional(); // kernel failure object, or the HTTP error's text
export const BatchResultWire = z.object({ results: z.array(z.object(wireItem)) });

/** PhysIn's transform: a safe integer stays, "0x…" (≤ 13 hex digits, checked already) → number. */
const physOf = (v: string | number): number => (typeof v === 'number' ? v : Number.parseInt(v.slice(2), 16));

/**
 * BatchBody's transforms as one pass, in place, over a body already checked against BatchBody's
 * JSON Schema (the compiled fast path in src/service/http-batch-validator.ts): hex `phys` → number,
 * `[phys, length]` → `{phys, length}`. test/batch-compact.test.ts checks that the result equals
 * zod's output on random bodies and that these are the only transforms BatchBody holds.
 */
export function decodeBatchBody(raw: z.input<typeof BatchBody>): z.output<typeof BatchBody> {
  for (const op of raw.ops) {
    if (op.op === 'map_sg') {
      const sg = op.sg;
      for (let i = 0; i < sg.length; i++) {
        const e = sg[i] as (typeof sg)[number];
        if (Array.isArray(e)) sg[i] = { phys: physOf(e[0]), length: e[1] };
        else if (typeof e.phys === 'string') e.phys = physOf(e.phys);
      }
    } else if (op.op === 'map_page' && typeof op.phys === 'string') op.phys = physOf(op.phys);
  }
  return raw as z.output<typeof BatchBody>;
}
