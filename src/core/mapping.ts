// What the core remembers about one live mapping (streaming or coherent), whatever the layout.
// Addresses are (pfn, byte offset) pairs in the session's IOVA granule (or pfn 0 and a byte
// address without an IOMMU), so 64-bit IOVAs stay exact without BigInt on the hot path.

import type { AllocatorMarks } from './iova/iova-allocator.js';
import type { SgExplainer } from './explain.js';
import { DMA_DIRECTIONS, type DmaDirection, type KernelErrno } from './constants.js';
import { bool, list, nullable, num, oneOf, record, type Codec, type StateRef } from './state/codec.js';

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
  /** Another mapping's unmap freed and unmapped this mapping's IOVA range (a layout's StrayRule did). */
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
/** What a layout with an IOVA domain lends the IOVA API: its allocator, in granules. */
export interface IovaDomain {
  readonly granule: number;
  readonly shift: number;
  /** iommu_dma_alloc_iova(size, dma_get_mask(dev)): the first pfn of `pages` granules, or 0. */
  allocIova(pages: number): number;
  /**
   * iommu_dma_free_iova: `gathered` (destroy's iotlb_gather) goes through the flush queue when
   * the domain has one (iommu.strict=0); without a gather (dma_iova_free) it is freed now.
   */
  freeIova(pfn: number, pages: number, gathered: boolean): void;
}

export interface DmaOps {
  /** `why`, when given (only for ?explain=true), receives the reason of every segment break and of a failure. */
  mapSg(sg: readonly SgEntry[], dir: DmaDirection, why?: SgExplainer): MapResult | MapFailure;
  mapPage(phys: number, size: number, dir: DmaDirection): MapResult | MapFailure;
  /** Frees what the mapping holds (IOVA, bounce slots). Not called when the ops have a strayRule. */
  unmap(m: Mapping): void;
  /** Present only where an unmap can free another mapping's range instead of its own (see StrayRule). */
  readonly strayRule?: StrayRule;
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
  /** Its saved state (the allocator, swiotlb, strays): src/core/state/codec.ts. */
  state(): StateRef;
  /** dma-direct: where the swiotlb pool's next search starts (area->index). */
  swiotlbIndex?(): number;
  /** The allocator the IOVA API (iova-api.ts) shares with map_page (layout linux only). */
  readonly iovaDomain?: IovaDomain;
}

/**
 * A layout whose unmap can free a range other than the mapping's own, leaving the mapping's
 * IOVA mapped and allocated (a "stray", still visible to the device and the IOVA picture). The
 * DMA device hands every unmap to it instead of DmaOps.unmap and applies what it answers.
 */
export interface StrayRule {
  /** Unmapped mappings whose IOVA is still mapped and allocated, oldest first. */
  readonly strays: readonly Mapping[];
  /**
   * Unmaps `m` (already out of the live handles, which `live` walks): null when it freed
   * exactly m's own range, as any layout would; otherwise what else it did.
   */
  unmap(m: Mapping, live: Iterable<Mapping>): StrayUnmap | null;
}

export interface StrayUnmap {
  /** m became a stray: its IOVA bytes and its budget share stay held. */
  kept: boolean;
  /** The mapping whose range was freed instead (its iovaGone now set): its IOVA bytes are released. */
  gone: Mapping | null;
  /** A stray whose range was freed and that left the ledger: its budget share goes back. */
  dropped: Mapping | null;
  /** The finding that makes it visible (dma-debug reports it on the unmap's answer). */
  finding: { check: string; message: string };
}

const sgEntry = record<SgEntry>({ phys: num, length: num }, ['phys', 'length']);
const segment = record<DmaSegment>({ pfn: num, off: num, len: num }, ['pfn', 'off', 'len']);
const alloc = record<IovaAlloc>({ pfn: num, off: num, bytes: num }, ['pfn', 'off', 'bytes']);
const extent = record<Extent>({ pfn: num, off: num, phys: num, bytes: num }, ['pfn', 'off', 'phys', 'bytes']);
const slot = record<BounceSlot>({ index: num, tlbAddr: num }, ['index', 'tlbAddr']);
const KINDS = ['map_sg', 'map_page', 'coherent'] as const;

/**
 * A mapping in saved state (the mapping table's live ones, a layout's strays): every field but
 * iovaHex, a formatting cache. Read back with MappingTable.add's field order (one hidden class).
 */
export const MAPPING_CODEC: Codec<Mapping> = {
  write(w, m) {
    num.write(w, m.handle);
    oneOf(KINDS).write(w, m.kind);
    oneOf(DMA_DIRECTIONS).write(w, m.dir);
    list(sgEntry).write(w, [...m.sg]);
    num.write(w, m.size);
    list(segment).write(w, m.segments);
    list(alloc).write(w, m.allocs);
    list(extent).write(w, m.extents);
    nullable(list(nullable(slot))).write(w, m.bounce);
    bool.write(w, m.iovaGone === true);
    bool.write(w, m.cpuOwned === true);
  },
  read(r) {
    return {
      handle: num.read(r),
      kind: oneOf(KINDS).read(r),
      dir: oneOf(DMA_DIRECTIONS).read(r),
      sg: list(sgEntry).read(r),
      size: num.read(r),
      segments: list(segment).read(r),
      allocs: list(alloc).read(r),
      extents: list(extent).read(r),
      bounce: nullable(list(nullable(slot))).read(r),
      iovaGone: bool.read(r),
      iovaHex: undefined,
      cpuOwned: bool.read(r),
    };
  },
};

export function isFailure(r: MapResult | MapFailure): r is MapFailure {
  return (r as MapFailure).errno !== undefined;
}
