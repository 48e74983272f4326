// /batch: several operations in one request, run in order; `{ "ref": i }` stands for the
// handle returned by op i of the same batch.
import { z } from 'zod';
import { ErrorBody, Handle, KernelError } from './common.js';
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
  SyncBody,
  SyncResult,
  UnmapBody,
  UnmapResult,
} from './dma.js';

export const HandleOrRef = z.union([
  Handle,
  z.strictObject({ ref: z.number().int().min(0).meta({ description: 'Index of an earlier op in this batch' }) }),
]);

export const BatchOp = z.discriminatedUnion('op', [
  MapSgBody.extend({ op: z.literal('map_sg'), pages: z.boolean().optional(), explain: z.boolean().optional().meta({ description: 'As ?explain=true on map_sg' }) }),
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
