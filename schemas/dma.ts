// The DMA-API operations (API.md "DMA operations"). Request schemas parse to the core's input
// types; response schemas are exactly what the core returns.
import { z } from 'zod';
import { AddressOut, PhysIn, DebugFinding, Direction, Handle, IovaRange, KernelError, Length32, PageRow } from './common.js';

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
    for: z.enum(['cpu', 'device']),
    offset: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    size: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
    dir: Direction.optional().meta({ description: "Defaults to the mapping's direction" }),
  })
  .meta({ id: 'SyncRequest' });

export const SyncResult = z
  .object({
    handle: z.number().int(),
    cache: z.enum(['clean', 'invalidate', 'clean+invalidate', 'none']).meta({ description: 'Cache maintenance performed' }),
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
