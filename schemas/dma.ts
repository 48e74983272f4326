// The DMA-API operations (API.md "DMA operations"). Request schemas parse to the core's input
// types; response schemas are exactly what the core returns.
import { z } from 'zod';
import { CACHE_OPS, SYNC_TARGETS } from '../src/core/constants.js';
import type { BreakRule as CoreBreakRule, ExplainOut, ObstacleRule as CoreObstacleRule } from '../src/core/explain.js';
import { AddressOut, PhysIn, DebugFinding, Direction, Handle, IovaRange, KernelError, Length32, PageRow } from './common.js';
import type { Assert, Exact } from './exact.js';

export const SgEntry = z.strictObject({
  phys: PhysIn,
  length: Length32.meta({ description: 'Bytes (unsigned int, ≥ 1: a zero-length entry is a caller error)' }),
});

export const MapSgBody = z
  .strictObject({
    dir: Direction,
    sg: z.array(SgEntry).min(1),
    skip_cpu_sync: z.boolean().optional().meta({ description: 'DMA_ATTR_SKIP_CPU_SYNC' }),
  })
  .meta({ id: 'MapSgRequest' });

export const PagesQuery = z.strictObject({
  pages: z
    .enum(['true', 'false', '1', '0'])
    .optional()
    .transform((v) => v === 'true' || v === '1')
    .meta({ description: 'Also list the IOVA→phys page rows' }),
});

export const MapSgQuery = PagesQuery.extend({
  explain: z
    .enum(['true', 'false', '1', '0'])
    .optional()
    .transform((v) => v === 'true' || v === '1')
    .meta({ description: 'Also say why each segment break happened and whether a device parameter would give one segment (docs/explain.md)' }),
});

const EXPLAIN_EXAMPLE = {
  breaks: [
    {
      before_entry: 1,
      segment: 1,
      rule: 'max_segment_size',
      kernel: '__finalise_sg',
      message: 'max_segment_size 65536 − cur_len 65536 < length 16384',
      values: { max_segment_size: 65536, cur_len: 65536, length: 16384 },
    },
    {
      before_entry: 2,
      segment: 2,
      rule: 'max_segment_size',
      kernel: '__finalise_sg',
      message: 'max_segment_size 65536 − cur_len 16384 < length 65536',
      values: { max_segment_size: 65536, cur_len: 16384, length: 65536 },
    },
  ],
  obstacles: [
    {
      rule: 'max_segment_size',
      entries: [1, 2],
      fixed_by: { max_segment_size: 147456 },
      message: 'max_segment_size 65536 is less than the entries add up to: one segment needs Σ length = 147456',
    },
  ],
  contiguous_iova: true,
  one_segment: false,
  would_merge_with: { max_segment_size: 147456 },
  verdict: 'one contiguous IOVA range, not one segment (3 segments); max_segment_size ≥ 147456 would give one segment',
};

export const BreakRule = z.enum(['max_segment_size', 'segment_boundary', 'entry_offset', 'previous_partial', 'arm_new_chunk', 'v4.4_never_merges', 'no_iommu', 'swiotlb_bounce']);
type _BreakRuleIsCore = Assert<Exact<CoreBreakRule, z.output<typeof BreakRule>>>;

export const ObstacleRule = z.enum([...BreakRule.options, 'dma_length_limit', 'iova_space']);
type _ObstacleRuleIsCore = Assert<Exact<CoreObstacleRule, z.output<typeof ObstacleRule>>>;

const WireFix = z.object({ max_segment_size: z.number().int().optional(), segment_boundary_mask: AddressOut.optional() });

const WhyValues = z.record(z.string(), z.union([z.number(), z.string()])).meta({ description: 'The numbers the rule compared (addresses and masks as hex strings)' });

export const Explain = z
  .object({
    breaks: z.array(
      z.object({
        before_entry: z.number().int().meta({ description: 'The input entry that starts a new segment' }),
        segment: z.number().int().meta({ description: 'Index of the segment it starts' }),
        rule: BreakRule,
        condition: z.string().optional().meta({ description: "arm-legacy: which of __iommu_map_sg's tests started the chunk (offset, chunk_not_page_multiple, max_segment_size)" }),
        kernel: z.string().meta({ description: 'The kernel function whose test it is' }),
        message: z.string(),
        values: WhyValues,
      }),
    ),
    obstacles: z
      .array(
        z.object({
          rule: ObstacleRule,
          condition: z.string().optional().meta({ description: 'arm-legacy: which test of __iommu_map_sg' }),
          entries: z.array(z.number().int()).meta({ description: 'The input entries it would start a new segment before' }),
          fixed_by: WireFix.nullable().meta({ description: 'The device parameters that remove it on a fresh session; null when none does' }),
          message: z.string(),
        }),
      )
      .meta({ description: 'Every kind of break that stands between the list and one segment, hidden ones included (empty when it is one segment)' }),
    contiguous_iova: z.boolean().meta({ description: 'The segments lie back to back in IOVA space' }),
    one_segment: z.boolean(),
    would_merge_with: WireFix.nullable().meta({
      description: 'Device parameters that give one segment on a fresh session (at least these values); null when no parameter would (an obstacle has no fix) or it already is one',
    }),
    verdict: z.string(),
    failure: z.object({ kernel: z.string(), message: z.string(), values: WhyValues }).optional().meta({ description: 'Why the mapping failed: which allocation, how big, under what limit' }),
  })
  .meta({ id: 'MapSgExplain', description: 'With ?explain=true: the rule behind each segment break', example: EXPLAIN_EXAMPLE });
type _ExplainIsCore = Assert<Exact<ExplainOut, z.output<typeof Explain>>>;

export const Segment = z.object({ dma_address: AddressOut, dma_length: z.number().int() });

const Common = {
  error: KernelError.optional(),
  debug: z.array(DebugFinding).optional(),
};

export const MapSgResult = z
  .object({
    handle: z.number().int().nullable().meta({ description: 'null when the kernel call failed (nents 0)' }),
    nents: z.number().int(),
    segments: z.array(Segment),
    iova: IovaRange.nullable().meta({ description: 'The IOVA allocation (the first one for arm-legacy); null without an IOMMU' }),
    iova_ranges: z.array(IovaRange).meta({ description: 'Every IOVA allocation this mapping holds' }),
    bounced: z.boolean().optional().meta({ description: 'Some entry goes through swiotlb' }),
    pages: z.array(PageRow).optional(),
    explain: Explain.optional(),
    ...Common,
  })
  .meta({ id: 'MapSgResult' });

export const MapPageBody = z
  .strictObject({
    phys: PhysIn,
    size: Length32,
    dir: Direction,
    skip_cpu_sync: z.boolean().optional(),
  })
  .meta({ id: 'MapPageRequest' });

export const MapPageResult = z
  .object({
    handle: z.number().int().nullable(),
    dma_address: AddressOut.meta({ description: '0xffffffffffffffff (DMA_MAPPING_ERROR) on failure' }),
    iova: IovaRange.nullable(),
    bounced: z.boolean().optional(),
    pages: z.array(PageRow).optional(),
    ...Common,
  })
  .meta({ id: 'MapPageResult' });

export const UnmapBody = z
  .strictObject({
    handle: Handle,
    dir: Direction.optional().meta({ description: 'Checked against the mapping like dma-debug' }),
    size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    nents: z.number().int().min(0).max(0xffffffff).optional(),
    skip_cpu_sync: z.boolean().optional(),
  })
  .meta({ id: 'UnmapRequest' });

export const UnmapResult = z
  .object({
    handle: z.number().int(),
    iova: IovaRange.nullable(),
    ...Common,
  })
  .meta({ id: 'UnmapResult' });

export const SyncBody = z
  .strictObject({
    handle: Handle,
    for: z.enum(SYNC_TARGETS),
    offset: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    size: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
    dir: Direction.optional().meta({ description: "Defaults to the mapping's direction" }),
    nents: z
      .number()
      .int()
      .min(1)
      .max(0xffffffff)
      .optional()
      .meta({ description: 'dma_sync_sg_*: the entry count the driver passes; checked against the mapping like dma-debug (extension)' }),
  })
  .meta({ id: 'SyncRequest' });

export const SyncResult = z
  .object({
    handle: z.number().int(),
    cache: z.enum(CACHE_OPS).meta({ description: 'Cache maintenance performed' }),
    bounced_bytes: z.number().int().meta({ description: 'Bytes copied between swiotlb and the original buffer' }),
    ...Common,
  })
  .meta({ id: 'SyncResult' });

export const AllocCoherentBody = z
  .strictObject({ size: z.number().int().min(1).max(2 ** 32) })
  .meta({ id: 'AllocCoherentRequest' });

export const AllocCoherentResult = z
  .object({
    handle: z.number().int().nullable(),
    dma_handle: AddressOut,
    size: z.number().int(),
    phys: z.array(AddressOut).meta({ description: 'The physical pages, in order' }),
    ...Common,
  })
  .meta({ id: 'AllocCoherentResult' });

export const FreeCoherentBody = z.strictObject({ handle: Handle }).meta({ id: 'FreeCoherentRequest' });

export const FreeCoherentResult = z
  .object({ handle: z.number().int(), ...Common })
  .meta({ id: 'FreeCoherentResult' });

export const FlushBody = z
  .strictObject({
    rcache: z.boolean().optional(),
    depot_trim: z
      .boolean()
      .optional()
      .meta({
        description:
          "layout linux: let time pass for the rcache depot's delayed trim (iova_depot_work_func, one CPU): every size class keeps at most one full magazine in its depot, the others go back to the tree (extension)",
      }),
  })
  .meta({ id: 'FlushRequest' });

export const FlushResult = z
  .object({
    flushed: z.number().int().meta({ description: 'IOVAs taken out of the flush queue' }),
    rcache_freed: z.number().int().meta({ description: 'IOVAs returned from the rcache to the tree' }),
  })
  .meta({ id: 'FlushResult' });
