// Read-only tables of a session (API.md "Tables").
import { z } from 'zod';
import { AddressOut, DebugFinding, IovaRange } from './common.js';
import { Segment } from './dma.js';
import { Fault } from './memory.js';
import type { Mapping } from '../src/core/mapping.js';
import type { Assert, Exact } from './exact.js';

export const MappingRow = z.object({
  handle: z.number().int(),
  kind: z.enum(['map_sg', 'map_page', 'coherent']),
  dir: z.string(),
  nents: z.number().int().meta({ description: 'Input entries (map_sg), 1 otherwise' }),
  segments: z.array(Segment),
  iova: IovaRange.nullable(),
  iova_ranges: z.array(IovaRange),
  size: z.number().int().meta({ description: 'Bytes the caller mapped' }),
  phys: z.array(AddressOut).meta({ description: 'Physical start of each input entry / page' }),
});
type _KindIsCore = Assert<Exact<Mapping['kind'], z.output<typeof MappingRow>['kind']>>;

export const MappingsQuery = z.strictObject({
  after: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional().meta({ description: 'Only handles above this one (the previous page\'s `next`)' }),
  limit: z.coerce.number().int().min(1).max(100_000).default(10_000).meta({ description: 'Rows per page (default 10000)' }),
});

export const MappingsResult = z
  .object({
    mappings: z.array(MappingRow),
    next: z.number().int().nullable().optional().meta({ description: 'Pass as `after` for the next page; null on the last page (extension)' }),
  })
  .meta({ id: 'Mappings' });
export const DebugResult = z.object({ debug: z.array(DebugFinding) }).meta({ id: 'DebugFindings' });
export const FaultsResult = z.object({ faults: z.array(Fault) }).meta({ id: 'Faults' });
