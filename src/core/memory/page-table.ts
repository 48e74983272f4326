// The IOMMU page table: IOVA → physical + permission, built from the live mappings' extents.
// Map and unmap only mark it stale (the hot path pays O(1)); the first device access after a
// change rebuilds a sorted index, O(n log n) in live extents, then lookups are O(log n).
//
// Addresses are in units of the granule (pfn) plus a byte offset, so 64-bit IOVAs stay exact.
// Invariants: entries are sorted by `lo`, disjoint; an overlap means two live mappings share
// IOVA — an emulator bug — and is thrown, never silently resolved.

import { internal } from '../errors.js';
import type { DmaDirection } from '../constants.js';
import type { Mapping } from '../mapping.js';

export interface PtEntry {
  lo: number; // first granule
  hi: number; // one past the last granule
  phys: number; // physical address of granule lo
  mapping: Mapping;
}

export type Permission = 'read' | 'write';

/** What the IOMMU lets the device do with a mapping of this direction (IOMMU_READ / IOMMU_WRITE). */
export function permits(dir: DmaDirection, access: Permission, enforceRead = true): boolean {
  if (dir === 'bidirectional') return true;
  return access === 'read' ? dir === 'to_device' || !enforceRead : dir === 'from_device';
}

export class PageTable {
  private entries: PtEntry[] = [];
  private stale = true;

  constructor(
    private readonly mappings: { values(): Iterable<Mapping> },
    private readonly granule: number,
  ) {}

  changed(): void {
    this.stale = true;
  }

  /** The entry mapping granule `pfn`, or undefined for an unmapped IOVA. */
  lookup(pfn: number): PtEntry | undefined {
    if (this.stale) this.rebuild();
    const e = this.entries;
    let lo = 0;
    let hi = e.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const x = e[mid] as PtEntry;
      if (pfn < x.lo) hi = mid - 1;
      else if (pfn >= x.hi) lo = mid + 1;
      else return x;
    }
    return undefined;
  }

  private rebuild(): void {
    const g = this.granule;
    const out: PtEntry[] = [];
    for (const m of this.mappings.values()) {
      if (m.iovaGone) continue;
      for (const x of m.extents) {
        const lo = x.pfn + Math.floor(x.off / g);
        out.push({ lo, hi: lo + Math.ceil(x.bytes / g), phys: x.phys, mapping: m });
      }
    }
    out.sort((a, b) => a.lo - b.lo);
    for (let i = 1; i < out.length; i++) {
      const a = out[i - 1] as PtEntry;
      const b = out[i] as PtEntry;
      if (b.lo < a.hi) throw internal(`IOMMU page table: handle ${b.mapping.handle} maps over live IOVA of handle ${a.mapping.handle}`);
    }
    this.entries = out;
    this.stale = false;
  }
}
