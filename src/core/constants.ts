// The closed sets of names the core and the wire share. Each tuple is the one definition: the
// core's types are derived from it and the zod schemas build their enums from it, so a name
// cannot drift between them. Order is part of the contract: the binary /batch format
// (schemas/batch-binary.ts) sends a direction, a sync target and a cache op as their index here.

/** enum dma_data_direction, in the kernel's order (DMA_BIDIRECTIONAL = 0 ... DMA_NONE = 3). */
export const DMA_DIRECTIONS = ['bidirectional', 'to_device', 'from_device', 'none'] as const;
export type DmaDirection = (typeof DMA_DIRECTIONS)[number];

/** The layouts a session can emulate (semantics §1): today's dma-iommu.c, v4.4's, arch/arm's. */
export const LAYOUTS = ['linux', 'linux-4.4', 'arm-legacy'] as const;
export type Layout = (typeof LAYOUTS)[number];

/**
 * The kernel versions layout `linux` can be (layouts/kernels.ts): each one recorded on a real
 * boot (docs/conformance.md). The last is the default: the newest recorded.
 */
export const KERNELS = ['6.12', '7.3'] as const;
export type KernelVersion = (typeof KERNELS)[number];

/** The errnos a DMA call can fail with, as the kernel reports them (they are results, not errors). */
export const KERNEL_ERRNOS = ['ENOMEM', 'EIO', 'EINVAL'] as const;
export type KernelErrno = (typeof KERNEL_ERRNOS)[number];

/** Who a dma_sync_* call hands the buffer to. */
export const SYNC_TARGETS = ['cpu', 'device'] as const;
export type SyncTarget = (typeof SYNC_TARGETS)[number];

/** The cache maintenance a map, unmap or sync performs on a non-coherent device. */
export const CACHE_OPS = ['clean', 'invalidate', 'clean+invalidate', 'none'] as const;
export type CacheOp = (typeof CACHE_OPS)[number];
