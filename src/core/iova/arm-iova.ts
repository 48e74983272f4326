// The `arm-legacy` layout's IOVA allocator: arch/arm/mm/dma-mapping.c __alloc_iova /
// __free_iova over arm_iommu_create_mapping's bitmaps. One bit per CPU page; bitmaps of at
// most PAGE_SIZE bytes each ("extensions", created on demand in order); bottom-up first fit
// (bitmap_find_next_zero_area) with the start aligned to 2^min(get_order(size), 8) pages; an
// allocation never spans two bitmaps. dma_mask is not consulted: the old ARM code never did.
//
// Invariants: bit i of bitmap b is set iff page base + b·mappingSize + i·PAGE_SIZE is allocated.
// Bitmaps are sized in 32-bit longs (ARM32), so the last one may cover a little more than the
// aperture, as in the kernel.

import { describe, field, list, StateError, u32s } from '../state/codec.js';
import { invalid } from '../errors.js';
import type { ArmIovaAllocator, ArmIovaConfig, ArmIovaSnapshot } from './iova-allocator.js';

const BITS_PER_LONG = 32; // arch/arm is 32-bit

export class ArmIova implements ArmIovaAllocator {
  /** Saved state: the bitmaps in order (the first, then each extension as it was added). */
  static readonly STATE = describe<ArmIova>('arm-iova', 1, [
    field(
      'bitmaps',
      list(u32s),
      (a) => a.bitmaps,
      (a, v) => {
        if (v.length > a.extensions || v.some((b) => b.length !== a.bits / 32)) throw new StateError(`bitmaps of another mapping size (${v.length} of ${v[0]?.length ?? 0} words; this one has up to ${a.extensions} of ${a.bits / 32})`);
        a.bitmaps.length = 0;
        a.bitmaps.push(...v);
      },
    ),
  ]);

  private readonly base: number;
  private readonly pageShift: number;
  private readonly pageSize: number;
  private readonly bits: number; // bits per bitmap (mapping->bits)
  private readonly extensions: number; // how many bitmaps may exist
  private readonly alignOrder: number;
  private readonly bitmaps: Uint32Array[] = [];

  constructor(cfg: ArmIovaConfig) {
    if (!Number.isInteger(cfg.pageShift) || cfg.pageShift < 12 || cfg.pageShift > 16) {
      throw invalid('page_size', 'page size must be 4, 16 or 64 KiB');
    }
    this.pageShift = cfg.pageShift;
    this.pageSize = 2 ** cfg.pageShift;
    if (!Number.isSafeInteger(cfg.size) || cfg.size > 2 ** 32 || cfg.size < this.pageSize) {
      throw invalid('iommu.aperture', 'arm-legacy maps at most 4 GiB and at least one page (arm_iommu_create_mapping)');
    }
    if (!Number.isSafeInteger(cfg.base) || cfg.base < 0 || cfg.base % this.pageSize !== 0) {
      throw invalid('iommu.aperture.start', 'arm-legacy needs a page-aligned mapping base');
    }
    this.base = cfg.base;
    this.alignOrder = cfg.alignmentOrder ?? 8;
    const pages = Math.floor(cfg.size / this.pageSize);
    let bitmapBytes = Math.ceil(pages / BITS_PER_LONG) * (BITS_PER_LONG / 8);
    let extensions = 1;
    if (bitmapBytes > this.pageSize) {
      extensions = Math.floor(bitmapBytes / this.pageSize);
      bitmapBytes = this.pageSize;
    }
    this.extensions = extensions;
    this.bits = bitmapBytes * 8;
    this.bitmaps.push(new Uint32Array(this.bits / 32));
  }

  private get mappingSize(): number {
    return this.bits * this.pageSize;
  }

  /** Bytes of IOVA one bitmap covers: the largest allocation __alloc_iova can make. */
  get bitmapBytes(): number {
    return this.mappingSize;
  }

  /** Would a fresh mapping hold one allocation of `size` bytes (it never spans two bitmaps)? */
  fitsOneBitmap(size: number): boolean {
    return size >= 1 && Math.ceil(size / this.pageSize) <= this.bits;
  }

  allocIova(size: number): number {
    if (!Number.isSafeInteger(size) || size < 1) throw invalid('size', 'size must be a positive number of bytes');
    let order = Math.max(0, Math.ceil(Math.log2(Math.ceil(size / this.pageSize)))); // get_order
    if (order > this.alignOrder) order = this.alignOrder;
    const count = Math.ceil(size / this.pageSize);
    const align = 2 ** order;
    let i = 0;
    let start = -1;
    for (; i < this.bitmaps.length; i++) {
      start = findZeroArea(this.bitmaps[i] as Uint32Array, this.bits, count, align);
      if (start >= 0) break;
    }
    if (start < 0) {
      // extend_iommu_mapping, then one more try in the new bitmap.
      if (this.bitmaps.length >= this.extensions) return -1;
      this.bitmaps.push(new Uint32Array(this.bits / 32));
      i = this.bitmaps.length - 1;
      start = findZeroArea(this.bitmaps[i] as Uint32Array, this.bits, count, align);
      if (start < 0) return -1;
    }
    setBits(this.bitmaps[i] as Uint32Array, start, count, true);
    return this.base + this.mappingSize * i + start * this.pageSize;
  }

  freeIova(addr: number, size: number): void {
    const off = addr - this.base;
    const i = Math.floor(off / this.mappingSize);
    const bm = this.bitmaps[i];
    if (!bm || !size) return;
    const start = Math.floor((off - i * this.mappingSize) / this.pageSize);
    const count = Math.ceil(size / this.pageSize);
    setBits(bm, start, count, false);
  }

  snapshot(): ArmIovaSnapshot {
    const runs: { start: number; end: number }[] = [];
    this.bitmaps.forEach((bm, b) => {
      let runStart = -1;
      for (let bit = 0; bit <= this.bits; bit++) {
        const set = bit < this.bits && ((bm[bit >>> 5] as number) >>> (bit & 31)) & 1;
        if (set && runStart < 0) runStart = bit;
        if (!set && runStart >= 0) {
          const at = this.base + b * this.mappingSize;
          runs.push({ start: at + runStart * this.pageSize, end: at + bit * this.pageSize });
          runStart = -1;
        }
      }
    });
    return { runs, bitsPerBitmap: this.bits, bitmaps: this.bitmaps.length };
  }

  get shift(): number {
    return this.pageShift;
  }
}

function testBit(bm: Uint32Array, bit: number): boolean {
  return (((bm[bit >>> 5] as number) >>> (bit & 31)) & 1) === 1;
}

function setBits(bm: Uint32Array, start: number, count: number, value: boolean): void {
  for (let b = start; b < start + count; b++) {
    const w = b >>> 5;
    const m = 1 << (b & 31);
    bm[w] = value ? (bm[w] as number) | m : (bm[w] as number) & ~m;
  }
}

/** bitmap_find_next_zero_area from 0 with align mask `align - 1`; -1 when it reports failure. */
function findZeroArea(bm: Uint32Array, size: number, nr: number, align: number): number {
  let start = 0;
  for (;;) {
    let index = start;
    while (index < size && testBit(bm, index)) {
      // Skip whole full words quickly.
      if ((index & 31) === 0 && bm[index >>> 5] === 0xffffffff) index += 32;
      else index++;
    }
    if (index > size) index = size;
    index = Math.ceil(index / align) * align;
    const end = index + nr;
    if (end > size) return -1;
    let busy = -1;
    for (let b = index; b < end; b++) {
      if (testBit(bm, b)) {
        busy = b;
        break;
      }
    }
    if (busy < 0) return index;
    start = busy + 1;
  }
}

export function createArmIova(cfg: ArmIovaConfig): ArmIovaAllocator {
  return new ArmIova(cfg);
}
