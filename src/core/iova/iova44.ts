// The `linux-4.4` layout's IOVA allocator: iova.c as of v4.4 with dma-iommu.c's __alloc_iova
// (alloc_iova with size_aligned: every size rounded up to a power of two) and __free_iova.
// No rcache, no anchor, no SAC-first; one cached node, cached32_node, used only by requests
// whose limit is exactly the domain's 32-bit pfn.
//
// The v4.4 walk goes down from the highest range (or from just below cached32_node) and takes
// the first gap whose top can hold the size-aligned range: the same "highest fitting gap"
// question IovaTree.highestFit answers, with two v4.4 quirks kept:
//  - only the gap below the lowest range is checked against start_pfn, and there the test is
//    `start_pfn + size + pad <= limit`, so start_pfn itself is never handed out;
//  - the request's limit is dma_mask, not clamped to the aperture: a range placed beyond the
//    aperture fails in iommu_map and is freed again (the cached node updates still happen).
//
// Invariants: ranges disjoint; cached32 is null or the key of a live range below dma_32bit_pfn.

import type { AllocatorMarks, Iova44Allocator, Iova44Config, Iova44Snapshot } from './iova-allocator.js';
import {
  checkApertureEndPfn,
  checkBoundPfn,
  checkDmaLimit,
  checkGranuleShift,
  checkPages,
  checkReserve,
  checkStartPfn,
  maxPfnOf,
} from './iova-checks.js';
import { IovaTree } from './iova-tree.js';
import { alignDown, roundupPowOfTwo } from './pfn-math.js';
import { describe, field, nested, num, stateRef, type StateRef } from '../state/codec.js';

class Iova44 implements Iova44Allocator {
  /** Saved state: the tree and cached32_node's key (-1: NULL). */
  static readonly STATE = describe<Iova44>('iova44', 1, [nested('tree', IovaTree.STATE, (a) => a.tree), field('cached32', num, (a) => a.cached32, (a, v) => (a.cached32 = v))]);

  private readonly tree = new IovaTree();
  private readonly startPfn: number;
  private readonly dma32BitPfn: number;
  private readonly apertureEndPfn: number;
  private cached32 = -1; // NULL

  constructor(cfg: Iova44Config) {
    checkGranuleShift(cfg.shift, cfg.pageShift);
    const maxPfn = maxPfnOf(cfg.shift);
    checkStartPfn(cfg.startPfn, maxPfn);
    checkBoundPfn('dma32BitPfn', cfg.dma32BitPfn, cfg.startPfn, maxPfn, 'the 32-bit pfn must not be below the start pfn');
    checkApertureEndPfn(cfg.apertureEndPfn, cfg.startPfn, maxPfn);
    this.startPfn = cfg.startPfn;
    this.dma32BitPfn = cfg.dma32BitPfn;
    this.apertureEndPfn = cfg.apertureEndPfn;
  }

  get rangeCount(): number {
    return this.tree.count;
  }

  /** The pfns alloc_iova(size_aligned) really takes for a request of `pages`: every size rounds up. */
  allocatedPages(pages: number): number {
    return roundupPowOfTwo(pages);
  }

  allocIova(pages: number, dmaLimitPfn: number): number {
    checkPages(pages);
    // v4.4 doesn't clamp the limit to the aperture (see the top of this file).
    checkDmaLimit(dmaLimitPfn, dmaLimitPfn, this.startPfn);
    const size = this.allocatedPages(pages);
    const pfn = this.place(size, dmaLimitPfn);
    if (pfn === -2) {
      // The walk passed a range starting at pfn 0: `pfn_lo - 1` wrapped, the range landed at
      // the top of the 64-bit space, iommu_map refused it, and inserting then freeing it left
      // cached32_node NULL either way.
      this.cached32 = -1;
      return 0;
    }
    if (pfn < 0) return 0;
    this.tree.insert(pfn, pfn + size - 1);
    if (dmaLimitPfn === this.dma32BitPfn) this.cached32 = pfn; // __cached_rbnode_insert_update
    if (pfn + size - 1 > this.apertureEndPfn) {
      this.freeIova(pfn);
      return 0;
    }
    return pfn;
  }

  /** The v4.4 walk: the pfn, -1 for -ENOMEM, -2 for the pfn-0 wrap described above. */
  private place(size: number, dmaLimitPfn: number): number {
    let fitKey: number;
    if (dmaLimitPfn === this.dma32BitPfn && this.cached32 >= 0) {
      // Start below cached32_node, limit = its pfn_lo - 1: its own gap is the first one tried.
      fitKey = this.tree.highestFit(this.cached32 + 1, size, size);
      if (fitKey < 0 && this.tree.lowestKey() === 0) return -2;
    } else {
      const x = this.tree.highestStartingAtOrBelow(dmaLimitPfn);
      if (x < 0) return this.bottom(dmaLimitPfn + 1, size);
      const xHi = this.tree.hiOf(x);
      if (xHi < dmaLimitPfn) {
        const top = alignDown(dmaLimitPfn + 1 - size, size);
        if (dmaLimitPfn + 1 >= size && top > xHi) return top;
      }
      fitKey = this.tree.highestFit(x + 1, size, size);
      if (fitKey < 0 && this.tree.lowestKey() === 0) return -2;
    }
    if (fitKey < 0) return -1;
    if (this.tree.gapLoOf(fitKey) === 0) return this.bottom(fitKey, size);
    return alignDown(fitKey - size, size);
  }

  /** Below the lowest range (exclusive top `high`): fail unless start_pfn + size + pad <= limit. */
  private bottom(high: number, size: number): number {
    if (high < size) return -1;
    const pfn = alignDown(high - size, size);
    return pfn > this.startPfn ? pfn : -1;
  }

  freeIova(pfn: number): number {
    const lo = this.tree.findContaining(pfn);
    if (lo < 0) return -1;
    // __cached_rbnode_delete_update (v4.4)
    if (this.cached32 >= 0 && lo >= this.cached32) {
      const next = this.tree.nextKey(lo);
      this.cached32 = next >= 0 && next < this.dma32BitPfn ? next : -1;
    }
    this.tree.remove(lo);
    return lo;
  }

  reserve(lo: number, hi: number): void {
    // No anchor in v4.4: any hi a pfn can be.
    checkReserve(lo, hi, Number.MAX_SAFE_INTEGER);
    this.tree.reserve(lo, hi, (from, to) => {
      if (this.cached32 === from) this.cached32 = to;
    });
  }

  snapshot(): Iova44Snapshot {
    return {
      ranges: this.tree.toArray(),
      cached32: this.cached32 < 0 ? null : { lo: this.cached32, hi: this.tree.hiOf(this.cached32) },
      dma32BitPfn: this.dma32BitPfn,
    };
  }

  /** cached32_node without walking the tree (the IOVA picture); v4.4 had no rcache or flush queue. */
  marks(): AllocatorMarks {
    const cached32 = this.cached32 < 0 ? null : { lo: this.cached32, hi: this.tree.hiOf(this.cached32) };
    return { rcache: null, flushQueue: null, cached: null, cached32 }; // v4.4's iova.c: no rcache, no flush queue
  }

  state(): StateRef {
    return stateRef(Iova44.STATE, this);
  }
}

export type FastIova44 = Iova44Allocator & { marks(): AllocatorMarks; allocatedPages(pages: number): number; state(): StateRef };

export function createIova44(cfg: Iova44Config): FastIova44 {
  return new Iova44(cfg);
}
