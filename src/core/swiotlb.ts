// The swiotlb bounce-buffer pool (kernel/dma/swiotlb.c, one area): 2 KiB slots grouped in
// segments of 128 that no allocation crosses, so one mapping holds at most 256 KiB.
//
// Invariants: list[i] is the number of free slots from i to the end of its free run, capped by
// the end of i's 128-slot segment (0 for a used slot); `index` is where the next search starts
// (next fit, wrapping to 0); `used` counts allocated slots.
//
// The kernel's pool is one per boot, shared by every device: a session can start with the
// search index an earlier device left (`startIndex`, config swiotlb.index), and says where its
// own left it (`nextIndex`).

import { describe, f64s, field, num, StateError, u8s } from './state/codec.js';

export const IO_TLB_SHIFT = 11;
export const IO_TLB_SIZE = 1 << IO_TLB_SHIFT;
export const IO_TLB_SEGSIZE = 128;

export class Swiotlb {
  /** Saved state: each slot's free-run count and mapped size, the next search index, the slots in use. */
  static readonly STATE = describe<Swiotlb>('swiotlb', 1, [
    field('list', u8s, (o) => o.list, (o, v) => o.slots(v.length).list.set(v)),
    field('allocSize', f64s, (o) => o.allocSize, (o, v) => o.slots(v.length).allocSize.set(v)),
    field('index', num, (o) => o.index, (o, v) => (o.index = v)),
    field('used', num, (o) => o.used, (o, v) => (o.used = v)),
  ]);

  readonly start: number; // physical address of slot 0
  readonly nslabs: number;
  private readonly list: Uint8Array; // values 0..128
  private readonly allocSize: Float64Array; // bytes mapped from each slot onwards (0: free)
  private index = 0;
  private used = 0;

  /** This pool, if it has `n` slots (a restore's check that the saved pool is this config's). */
  private slots(n: number): this {
    if (n !== this.nslabs) throw new StateError(`a pool of ${n} slots; this session's has ${this.nslabs}`);
    return this;
  }

  constructor(start: number, bytes: number, startIndex = 0) {
    this.start = start;
    // swiotlb_init rounds the pool to whole 128-slot segments.
    this.nslabs = Math.ceil(bytes / IO_TLB_SIZE / IO_TLB_SEGSIZE) * IO_TLB_SEGSIZE;
    this.list = new Uint8Array(this.nslabs);
    this.allocSize = new Float64Array(this.nslabs);
    for (let i = 0; i < this.nslabs; i++) this.list[i] = IO_TLB_SEGSIZE - (i % IO_TLB_SEGSIZE);
    this.index = startIndex < this.nslabs ? startIndex : 0;
  }

  /** area->index: the slot the next search starts at. */
  get nextIndex(): number {
    return this.index;
  }

  /**
   * swiotlb_search_pool_area: the first slot of `size` bytes, or -1 when the pool is full.
   * `tblDmaAddr` is the pool's DMA address masked by the segment boundary (boundaryBits).
   */
  alloc(size: number, pageSize: number, tblDmaAddr: number, boundaryBits: number): number {
    const nslots = Math.ceil(size / IO_TLB_SIZE);
    if (nslots > this.nslabs - this.used) return -1;
    // Allocations of a page or more stay page-aligned (the historical guarantee).
    const alignMask = (size >= pageSize ? pageSize - 1 : 0) | (IO_TLB_SIZE - 1);
    const stride = Math.floor(alignMask / IO_TLB_SIZE) + 1;
    const maxSlots = boundaryBits >= IO_TLB_SHIFT ? 2 ** (boundaryBits - IO_TLB_SHIFT) : 1;
    const baseSlot = Math.floor(tblDmaAddr / IO_TLB_SIZE);
    let index = this.index;
    for (let checked = 0; checked < this.nslabs; ) {
      const tlbAddr = tblDmaAddr + index * IO_TLB_SIZE;
      if (tlbAddr % (alignMask + 1) !== 0) {
        index = this.wrap(index + 1);
        checked++;
        continue;
      }
      const spans = ((baseSlot + index) % maxSlots) + nslots > maxSlots; // iommu_is_span_boundary
      if (!spans && (this.list[index] as number) >= nslots) return this.take(index, nslots, size);
      index = this.wrap(index + stride);
      checked += stride;
    }
    return -1;
  }

  private wrap(i: number): number {
    return i >= this.nslabs ? 0 : i;
  }

  private take(slot: number, nslots: number, size: number): number {
    for (let i = slot; i < slot + nslots; i++) {
      this.list[i] = 0;
      this.allocSize[i] = size - (i - slot) * IO_TLB_SIZE;
    }
    let count = 0;
    for (let i = slot - 1; i >= 0 && i % IO_TLB_SEGSIZE !== IO_TLB_SEGSIZE - 1 && this.list[i] !== 0; i--) {
      this.list[i] = ++count;
    }
    this.index = this.wrap(slot + nslots);
    this.used += nslots;
    return slot;
  }

  /** swiotlb_release_slots */
  release(slot: number): void {
    const nslots = Math.ceil((this.allocSize[slot] as number) / IO_TLB_SIZE);
    let count = slot + nslots < Math.ceil((slot + 1) / IO_TLB_SEGSIZE) * IO_TLB_SEGSIZE ? (this.list[slot + nslots] as number) : 0;
    for (let i = slot + nslots - 1; i >= slot; i--) {
      this.list[i] = ++count;
      this.allocSize[i] = 0;
    }
    for (let i = slot - 1; i >= 0 && i % IO_TLB_SEGSIZE !== IO_TLB_SEGSIZE - 1 && this.list[i] !== 0; i--) {
      this.list[i] = ++count;
    }
    this.used -= nslots;
  }

  addr(slot: number): number {
    return this.start + slot * IO_TLB_SIZE;
  }
}
