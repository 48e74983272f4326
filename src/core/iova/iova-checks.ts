// The argument checks of the linux and linux-4.4 IOVA allocators, each written once. The
// kernel BUG()s or corrupts its tree on these inputs; dmaemu answers with a typed error naming
// the field, so a bad request is a 400 and never an allocator in a state Linux can't reach.
//
// Invariant: a check either returns, or throws `invalid(field, …)`; none touches allocator
// state, so an allocator runs them all before its first change and a throw leaves it as it was.

import { invalid } from '../errors.js';

/** init_iova_domain's BUG_ON(granule > PAGE_SIZE || !is_power_of_2(granule)), as a typed error. */
export function checkGranuleShift(shift: number, pageShift: number | undefined): void {
  if (!Number.isInteger(shift) || shift < 12 || shift > 30) {
    throw invalid('shift', 'the granule must be a power of two from 4 KiB to 1 GiB (an integer shift in 12..30)');
  }
  if (pageShift !== undefined && shift > pageShift) {
    throw invalid('shift', 'the IOMMU granule must not exceed the CPU page size');
  }
}

/** The highest pfn of a 64-bit IOVA space in granules of 2^shift bytes. */
export function maxPfnOf(shift: number): number {
  return 2 ** (64 - shift) - 1;
}

/** start_pfn: pfn 0 is the allocators' "failed", so it is never handed out. */
export function checkStartPfn(startPfn: number, maxPfn: number): void {
  if (!Number.isSafeInteger(startPfn) || startPfn < 1 || startPfn > maxPfn) {
    throw invalid('startPfn', 'start pfn must be at least 1 and inside the 64-bit space');
  }
}

/** A domain bound (aperture end, v4.4's dma_32bit_pfn) in [startPfn, maxPfn]. */
export function checkBoundPfn(field: string, pfn: number, startPfn: number, maxPfn: number, message: string): void {
  if (!Number.isSafeInteger(pfn) || pfn < startPfn || pfn > maxPfn) throw invalid(field, message);
}

export function checkApertureEndPfn(apertureEndPfn: number, startPfn: number, maxPfn: number): void {
  checkBoundPfn('apertureEndPfn', apertureEndPfn, startPfn, maxPfn, 'aperture end must not be below the start pfn');
}

export function checkPages(pages: number): void {
  if (!Number.isSafeInteger(pages) || pages < 1) throw invalid('pages', 'size must be a positive whole number of pfns');
}

/**
 * An alloc's limit: `dmaLimitPfn` as asked (dma_mask >> shift), `limitPfn` as the allocator
 * uses it (today's clamps it to the aperture, v4.4 doesn't). Below start_pfn nothing could
 * ever be placed.
 */
export function checkDmaLimit(dmaLimitPfn: number, limitPfn: number, startPfn: number): void {
  if (!Number.isSafeInteger(dmaLimitPfn) || !(limitPfn >= startPfn)) {
    throw invalid('dmaLimitPfn', 'the DMA limit lies below the first allocatable pfn');
  }
}

/** reserve_iova's [lo, hi], with hi at most `maxHi` (today's: below the anchor). */
export function checkReserve(lo: number, hi: number, maxHi: number): void {
  if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi) || lo < 0 || hi < lo || hi > maxHi) {
    throw invalid('reserve', 'a reserved range needs 0 ≤ lo ≤ hi inside the IOVA space');
  }
}
