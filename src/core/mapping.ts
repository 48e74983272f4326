// What the core remembers about one live mapping (streaming or coherent), whatever the layout.
// Addresses are (pfn, byte offset) pairs in the session's IOVA granule (or pfn 0 and a byte
// address without an IOMMU), so 64-bit IOVAs stay exact without BigInt on the hot path.

import type { AllocatorMarks } from './iova/iova-allocator.js';
import type { SgExplainer } from './explain.js';
import type { DmaDirection, KernelErrno } from './constants.js';

// session.ts and layouts/ still import the direction from here; their owners move it to
// constants.ts as they rewrite them (issue 17), then this line goes.
export type { DmaDirection };

export interface SgEntry {
  phys: number;
  length: number;
}

/** One DMA segment handed to the driver: address pfn·granule + off, length len. */
export interface DmaSegment {
  pfn: number;
  off: number;
  len: number;
}

/** An IOVA allocation a mapping holds: `pages` granules from pfn (or bytes for arm-legacy). */
export interface IovaAlloc {
  pfn: number;
  off: number; // byte offset of the allocation from pfn (arm-legacy: address in bytes, pfn 0)
  bytes: number;
}

/** A physically contiguous run mapped at an IOVA: iova = pfn·granule + off. */
export interface Extent {
  pfn: number;
  off: number;
  phys: number;
  bytes: number;
}

export interface Mapping {
  handle: number;
  kind: 'map_sg' | 'map_page' | 'coherent';
  dir: DmaDirection;
  /** The caller's entries (map_page and coherent: one). */
  sg: readonly SgEntry[];
  /** Bytes the caller mapped (sum of lengths). */
  size: number;
  segments: DmaSegment[];
  allocs: IovaAlloc[];
  /** What the IOMMU maps, granule-aligned, in IOVA order (empty without an IOMMU). */
  extents: Extent[];
  /** swiotlb bounce slots, per entry (null: not bounced). */
  bounce: (BounceSlot | null)[] | null;
  /** linux-4.4 only: another unmap freed and unmapped this mapping's IOVA range. */
  iovaGone?: boolean;
  /** Formatted start of allocs[0], filled on first use. */
  iovaHex?: string;
  /** Streaming mappings: true while the CPU owns the buffer (after sync for_cpu). */
  cpuOwned?: boolean;
}

export interface BounceSlot {
  index: number; // first 2 KiB slot
  tlbAddr: number; // physical address of the bounce buffer
}

/** A mapping attempt that Linux itself fails: no handle, the kernel's errno (the wire's KernelError, tied in schemas/common.ts). */
export interface MapFailure {
  errno: KernelErrno;
  message: string;
}

/** What a layout hands back from map_sg / map_page before the session assigns a handle. */
export type MapResult = Omit<Mapping, 'handle' | 'kind' | 'dir'>;

/** The DMA-API operations one layout (or dma-direct) implements. */
export interface DmaOps {
  /** `why`, when given (only for ?explain=true), receives the reason of every segment break and of a failure. */
  mapSg(sg: readonly SgEntry[], dir: DmaDirection, why?: SgExplainer): MapResult | MapFailure;
  mapPage(phys: number, size: number, dir: DmaDirection): MapResult | MapFailure;
  /**
   * Frees what the mapping holds (IOVA, bounce slots). linux-4.4 frees whatever range holds
   * the handle's pfn and returns that range's first pfn (-1: none), which need not be the
   * mapping's own (v4.4's offset bug); the others return nothing.
   */
  unmap(m: Mapping): number | void;
  /** Maps already-allocated coherent pages (contiguous from `phys`), against coherent_dma_mask. */
  mapCoherent(phys: number, size: number): MapResult | MapFailure;
  /** Granule shift for address formatting (0 without an IOMMU). */
  readonly shift: number;
  /** Bytes of IOVA space held by a mapping. */
  iovaBytes(m: Mapping): number;
  /** depotTrim: the rcache depot's delayed trim runs to completion (layout linux only). */
  flush(rcache: boolean, depotTrim?: boolean): { flushed: number; rcacheFreed: number };
  /** Ranges in the allocator (for summaries). */
  rangeCount(): number;
  /** rcache, flush queue and cached nodes, for the IOVA picture (layouts with an IOVA tree). */
  allocatorMarks?(): AllocatorMarks;
}

export function isFailure(r: MapResult | MapFailure): r is MapFailure {
  return (r as MapFailure).errno !== undefined;
}
