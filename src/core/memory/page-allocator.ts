// The emulated page allocator behind alloc_coherent: a buddy-like allocator over a fixed
// low-memory region, so coherent buffers are zeroed, physically contiguous, aligned to their
// order (as alloc_pages(get_order(size)) gives) and below 4 GiB for any sane coherent mask.
//
// Invariants: `free` holds disjoint [start, end) runs in ascending order, all inside
// [REGION_START, REGION_END); an allocation of n pages takes 2^order pages aligned to them.

import { describe, listIn, num, record } from '../state/codec.js';

const REGION_START = 0x00800000;
const REGION_END = 0x08000000; // the swiotlb pool starts here (config.SWIOTLB_START)

export class PageAllocator {
  /** Saved state: the free runs, ascending. */
  static readonly STATE = describe<PageAllocator>('page-allocator', 1, [
    listIn('free', record<{ start: number; end: number }>({ start: num, end: num }, ['start', 'end']), (o) => o.free),
  ]);

  private readonly free: { start: number; end: number }[] = [{ start: REGION_START, end: REGION_END }];

  constructor(private readonly pageSize: number) {}

  /** Bytes one call really takes: the order-rounded size. */
  blockSize(size: number): number {
    const pages = Math.max(1, Math.ceil(size / this.pageSize));
    return 2 ** Math.ceil(Math.log2(pages)) * this.pageSize;
  }

  /** First fit of an order-aligned block; the physical address, or -1 when nothing fits. */
  alloc(size: number): number {
    const block = this.blockSize(size);
    for (let i = 0; i < this.free.length; i++) {
      const run = this.free[i] as { start: number; end: number };
      const at = Math.ceil(run.start / block) * block;
      if (at + block > run.end) continue;
      const tail = { start: at + block, end: run.end };
      const parts = [];
      if (at > run.start) parts.push({ start: run.start, end: at });
      if (tail.end > tail.start) parts.push(tail);
      this.free.splice(i, 1, ...parts);
      return at;
    }
    return -1;
  }

  /** Returns a block from alloc(size) and merges it with its free neighbours. */
  release(phys: number, size: number): void {
    const start = phys;
    const end = phys + this.blockSize(size);
    let i = 0;
    while (i < this.free.length && (this.free[i] as { start: number }).start < start) i++;
    const prev = this.free[i - 1];
    const next = this.free[i];
    if ((prev && prev.end > start) || (next && next.start < end)) throw new Error(`page allocator: double free of 0x${phys.toString(16)}`);
    if (prev && prev.end === start) {
      prev.end = end;
      if (next && next.start === end) {
        prev.end = next.end;
        this.free.splice(i, 1);
      }
    } else if (next && next.start === end) {
      next.start = start;
    } else {
      this.free.splice(i, 0, { start, end });
    }
  }
}
