// Session creation and its resolved configuration (API.md "Sessions"). Every field is optional;
// the core fills in Linux's defaults (semantics §2) and the response echoes the result.
import { z } from 'zod';
import { KERNELS, LAYOUTS } from '../src/core/constants.js';
import type { SessionConfig as CoreSessionConfig } from '../src/core/config.js';
import type { Assert, Exact } from './exact.js';
import { AddressIn, AddressOut, DebugFinding } from './common.js';

const Range = z.strictObject({ start: AddressIn, end: AddressIn });

export const DeviceIn = z.strictObject({
  bus: z.enum(['platform', 'pci']).optional(),
  dma_mask: AddressIn.optional(),
  coherent_dma_mask: AddressIn.optional(),
  max_segment_size: z
    .number()
    .int()
    .min(0)
    .max(0xffffffff)
    .optional()
    .meta({ description: 'dma_parms max_segment_size (unsigned int); default 65536. 0 reads as 65536 (dma_get_max_seg_size since v4.4), except in arm-legacy' }),
  segment_boundary_mask: AddressIn.optional().meta({
    description: '2^n − 1; default 0xffffffffffffffff (linux), 0xffffffff (linux-4.4, and every layout for bus pci: pci_device_add). 0 reads as the kernel reads it: ULONG_MAX (linux), 0xffffffff (linux-4.4)',
  }),
  coherent: z.boolean().optional(),
  dma_offset: AddressIn.optional().meta({ description: 'dma-direct: dma_address = phys + dma_offset (extension)' }),
});

export const IommuIn = z.strictObject({
  granule: z.union([z.literal(4096), z.literal(16384), z.literal(65536)]).optional(),
  aperture: Range.optional(),
  reserved: z.array(Range).max(64).optional(),
  strict: z.boolean().optional(),
  forcedac: z
    .boolean()
    .optional()
    .meta({ description: 'Layout linux: iommu.forcedac=1, a PCI device gets no SAC-first try below 4 GiB (pci_32bit_workaround off); default false' }),
  enforce_read: z
    .boolean()
    .optional()
    .meta({
      description:
        'Default true: a device read of a DMA_FROM_DEVICE mapping faults (no IOMMU_READ), as on IOMMUs with read permission (VT-d, AMD-Vi, SMMU stage 2). false: arm64 SMMU stage-1 tables, which cannot express write-only, let the read through (extension)',
    }),
});

export const SessionCreateBody = z
  .strictObject({
    device: DeviceIn.optional(),
    iommu: IommuIn.nullable().optional().meta({ description: 'null: no IOMMU (dma-direct + swiotlb)' }),
    layout: z.enum(LAYOUTS).optional(),
    kernel: z
      .enum(KERNELS)
      .optional()
      .meta({ description: `Layout linux only: the kernel version whose rules apply (docs/conformance.md); default ${KERNELS[KERNELS.length - 1]}, the newest recorded` }),
    page_size: z.union([z.literal(4096), z.literal(16384), z.literal(65536)]).optional(),
    swiotlb: z
      .strictObject({
        size: z.number().int().min(2048).max(1 << 30).optional().meta({ description: 'Bytes, a multiple of 2 KiB' }),
        force: z.boolean().optional(),
        start: AddressIn.optional().meta({
          description: "The pool's physical base, as the boot placed it (swiotlb_init; dev->dma_io_tlb_mem's pool); a multiple of 2 KiB at or above 0x8000000 (below it lie the emulated coherent pages); default 0x8000000",
        }),
        index: z
          .number()
          .int()
          .min(0)
          .max((1 << 30) / 2048 - 1)
          .optional()
          .meta({ description: "The slot the pool's first search starts at (area->index): the kernel's pool is shared by every device of a boot, and each leaves it where its last allocation ended; default 0" }),
      })
      .optional(),
    memory_limit: z.number().int().min(4096).max(2 ** 34).optional().meta({ description: 'Bytes of emulated RAM this session may touch (extension)' }),
  })
  .meta({ id: 'SessionCreate' });

const RangeOut = z.object({ start: AddressOut, end: AddressOut });

export const SessionConfig = z
  .object({
    device: z.object({
      bus: z.enum(['platform', 'pci']),
      dma_mask: AddressOut,
      coherent_dma_mask: AddressOut,
      max_segment_size: z.number().int(),
      segment_boundary_mask: AddressOut,
      coherent: z.boolean(),
      dma_offset: AddressOut,
    }),
    iommu: z
      .object({
        granule: z.number().int(),
        aperture: RangeOut,
        reserved: z.array(RangeOut),
        strict: z.boolean(),
        forcedac: z.boolean(),
        enforce_read: z.boolean(),
      })
      .nullable(),
    layout: z.enum(LAYOUTS),
    kernel: z.enum(KERNELS).nullable().meta({ description: 'Layout linux: the kernel version; null for the other layouts' }),
    page_size: z.number().int(),
    swiotlb: z.object({ size: z.number().int(), force: z.boolean(), start: AddressOut, index: z.number().int() }),
    memory_limit: z.number().int(),
  })
  .meta({ id: 'SessionConfig' });
type _BusInIsCore = Assert<Exact<CoreSessionConfig['bus'], NonNullable<z.output<typeof DeviceIn>['bus']>>>;
type _BusOutIsCore = Assert<Exact<CoreSessionConfig['bus'], z.output<typeof SessionConfig>['device']['bus']>>;

export const SessionCreated = z.object({ id: z.string(), config: SessionConfig }).meta({ id: 'SessionCreated' });

export const SessionParams = z.strictObject({ id: z.string().min(1).max(128) });

export const Counters = z.record(z.string(), z.number().int());

export const SessionSummary = z
  .object({
    id: z.string(),
    config: SessionConfig,
    live_mappings: z.number().int(),
    live_coherent: z.number().int(),
    iova_bytes_in_use: z.number().int().meta({ description: 'Bytes of IOVA held by live mappings' }),
    iova_ranges: z.number().int().meta({ description: 'Ranges in the IOVA allocator (reserved and cached included)' }),
    counters: Counters,
    memory_bytes_touched: z.number().int(),
    memory_budget_bytes: z.number().int().meta({ description: "Estimated bytes this session holds of the service's memory budget (DMAEMU_MEMORY_BUDGET)" }),
  })
  .meta({ id: 'SessionSummary' });

export const LeakReport = z
  .object({
    id: z.string(),
    leaked_mappings: z.number().int(),
    leaked_coherent: z.number().int(),
    leaks: z.array(z.object({ handle: z.number().int(), kind: z.string(), dir: z.string(), size: z.number().int(), dma_address: AddressOut })),
    debug: z.array(DebugFinding),
  })
  .meta({ id: 'LeakReport' });
