// The contracts of the three IOVA allocators (semantics §5). Each layout's allocator — and the
// literal reference models in test/model/ — implement one of these, so property tests can drive
// the fast code and the model with the same calls and compare every answer.
//
// All sizes and addresses are in pfns of the IOMMU granule (linux, linux-4.4) or in bytes
// (arm-legacy, whose allocator works in CPU pages). pfns are plain numbers: with a granule of at
// least 4 KiB a 64-bit address space has at most 2^52 pfns, exactly representable.

/** A live range in the allocator's set, inclusive at both ends. */
export interface PfnRange {
  lo: number;
  hi: number;
}

/**
 * What an allocator holds besides the live mappings' ranges, cheap to take at a million live
 * ranges (no walk of the tree): for the IOVA picture (src/core/iova-picture.ts). Inclusive pfns.
 */
export interface AllocatorMarks {
  /** Freed by the driver, kept by the rcache for reuse (still in the tree); null: the allocator has no rcache (v4.4). */
  rcache: PfnRange[] | null;
  /** Freed by the driver, waiting in the flush queue for an IOTLB flush; null: the domain has none (strict, or v4.4). */
  flushQueue: PfnRange[] | null;
  /** cached_node / cached32_node: the range the next walk starts below (null: the anchor or NULL). */
  cached: PfnRange | null;
  cached32: PfnRange | null;
}

export interface RcacheClassSnapshot {
  /** order_base_2 of the sizes this class caches (0..5). */
  order: number;
  loaded: number[];
  prev: number[];
  /** LIFO: index 0 is the magazine that would be popped first. */
  depot: number[][];
}

export interface LinuxIovaSnapshot {
  ranges: PfnRange[]; // ascending, reserved and allocated alike; the anchor is not listed
  cached32: PfnRange | 'anchor';
  cached: PfnRange | 'anchor';
  max32AllocSize: number;
  dma32BitPfn: number;
  rcache: RcacheClassSnapshot[];
  flushQueue: { pfn: number; pages: number }[]; // oldest first
  pci32BitWorkaround: boolean; // SAC-first still being tried
}

export interface LinuxIovaConfig {
  shift: number; // log2(granule)
  startPfn: number; // max(1, aperture.start >> shift)
  apertureEndPfn: number; // aperture.end >> shift (force_aperture clamp of the limit)
  pci: boolean; // PCI devices try SAC (below 4 GiB) first
  strict: boolean; // false: frees go through the flush queue
  pageShift?: number; // CPU page shift, when known: the granule may not exceed it (init_iova_domain)
}

/** Today's iova.c + dma-iommu.c's iommu_dma_alloc_iova / iommu_dma_free_iova. */
export interface LinuxIovaAllocator {
  /** iommu_dma_alloc_iova: `pages` = aligned length >> shift; `dmaLimitPfn` = dma_mask >> shift.
   *  Returns the first pfn, or 0 on failure (pfn 0 is never handed out). */
  allocIova(pages: number, dmaLimitPfn: number): number;
  /** iommu_dma_free_iova with the unrounded size: strict frees now (free_iova_fast),
   *  non-strict queues. */
  freeIova(pfn: number, pages: number): void;
  /** reserve_iova: never freed. */
  reserve(lo: number, hi: number): void;
  /** Drains the flush queue: every queued IOVA goes through free_iova_fast, oldest first. */
  flushQueue(): void;
  /** free_cpu_cached_iovas + free_global_cached_iovas. */
  flushRcache(): void;
  snapshot(): LinuxIovaSnapshot;
  /** Number of live ranges in the tree, anchor excluded (cheap). */
  readonly rangeCount: number;
}

export interface Iova44Snapshot {
  ranges: PfnRange[];
  cached32: PfnRange | null;
  dma32BitPfn: number;
}

export interface Iova44Config {
  shift: number;
  startPfn: number; // max(1, aperture.start >> shift)
  dma32BitPfn: number; // min(coherent_dma_mask, aperture.end) >> shift
  apertureEndPfn: number; // a range reaching beyond it fails in iommu_map (and is freed again)
  pageShift?: number; // CPU page shift, when known: the granule may not exceed it (init_iova_domain)
}

/** v4.4 iova.c alloc_iova(size_aligned) + dma-iommu.c __alloc_iova / __free_iova. */
export interface Iova44Allocator {
  /** Returns the first pfn of a range of roundup_pow_of_two(pages) pfns, or 0 on failure. */
  allocIova(pages: number, dmaLimitPfn: number): number;
  /** Frees the range that holds `pfn`; returns its first pfn, or -1 when none holds it. */
  freeIova(pfn: number): number;
  reserve(lo: number, hi: number): void;
  snapshot(): Iova44Snapshot;
  readonly rangeCount: number;
}

export interface ArmIovaConfig {
  base: number; // aperture.start, bytes
  size: number; // aperture size in bytes (at most 4 GiB, as arm_iommu_create_mapping demands)
  pageShift: number; // CPU page shift
  alignmentOrder?: number; // CONFIG_ARM_DMA_IOMMU_ALIGNMENT, default 8
}

export interface ArmIovaSnapshot {
  /** Allocated page runs, ascending, as byte ranges [start, end). */
  runs: { start: number; end: number }[];
  bitsPerBitmap: number;
  bitmaps: number; // extensions in use
}

/** arch/arm/mm/dma-mapping.c __alloc_iova / __free_iova. */
export interface ArmIovaAllocator {
  /** Returns the IOVA (bytes) of page_align(size) bytes, or -1 (DMA_MAPPING_ERROR). */
  allocIova(size: number): number;
  /** Clears page_align(size) bytes starting at the page-aligned `addr`. */
  freeIova(addr: number, size: number): void;
  snapshot(): ArmIovaSnapshot;
}
