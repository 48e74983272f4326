// Reference model of the `arm-legacy` IOVA allocator: arch/arm/mm/dma-mapping.c
// arm_iommu_create_mapping (bitmap sizing in 32-bit longs), __alloc_iova, extend_iommu_mapping
// and __free_iova, over lib/bitmap.c's bitmap_find_next_zero_area — written literally with one
// array slot per bit and bit-at-a-time scans. dma_mask is never consulted: the ARM code never did.

import type { ArmIovaAllocator, ArmIovaConfig, ArmIovaSnapshot } from '../../src/core/iova/iova-allocator.js';

const BITS_PER_LONG = 32; // ARM32
const BITS_PER_BYTE = 8;
const DMA_MAPPING_ERROR = -1;

type Bitmap = Uint8Array; // one bit per element

/** find_next_bit / find_next_zero_bit: first index ≥ start (below size) whose bit is `value`, else size. */
function findNext(map: Bitmap, size: number, start: number, value: number): number {
  for (let i = start; i < size; i++) if (map[i] === value) return i;
  return size;
}

/** bitmap_find_next_zero_area(map, size, start, nr, align_mask): an index, or a value > size on failure. */
export function bitmapFindNextZeroArea(map: Bitmap, size: number, start: number, nr: number, alignMask: number): number {
  for (;;) {
    let index = findNext(map, size, start, 0);
    index = Math.ceil(index / (alignMask + 1)) * (alignMask + 1); // __ALIGN_MASK(index, align_mask)
    const end = index + nr;
    if (end > size) return end;
    const i = findNext(map, end, index, 1);
    if (i < end) {
      start = i + 1;
      continue;
    }
    return index;
  }
}

/** get_order(size): the smallest order with PAGE_SIZE << order ≥ size. */
function getOrder(size: number, pageSize: number): number {
  let order = 0;
  while (pageSize * 2 ** order < size) order++;
  return order;
}

export class ArmIovaModel implements ArmIovaAllocator {
  private readonly base: number;
  private readonly pageSize: number;
  private readonly bits: number;
  private readonly extensions: number;
  private readonly alignment: number; // CONFIG_ARM_DMA_IOMMU_ALIGNMENT
  private readonly bitmaps: Bitmap[] = [];

  constructor(cfg: ArmIovaConfig) {
    // arm_iommu_create_mapping
    this.pageSize = 2 ** cfg.pageShift;
    const bits = Math.floor(cfg.size / this.pageSize);
    let bitmap_size = Math.ceil(bits / BITS_PER_LONG) * (BITS_PER_LONG / BITS_PER_BYTE); // BITS_TO_LONGS * sizeof(long)
    let extensions = 1;
    if (bitmap_size > this.pageSize) {
      extensions = Math.floor(bitmap_size / this.pageSize);
      bitmap_size = this.pageSize;
    }
    this.base = cfg.base;
    this.bits = BITS_PER_BYTE * bitmap_size;
    this.extensions = extensions;
    this.alignment = cfg.alignmentOrder ?? 8;
    this.bitmaps.push(new Uint8Array(this.bits));
  }

  private extend_iommu_mapping(): boolean {
    if (this.bitmaps.length >= this.extensions) return false;
    this.bitmaps.push(new Uint8Array(this.bits));
    return true;
  }

  allocIova(size: number): number {
    let order = getOrder(size, this.pageSize);
    if (order > this.alignment) order = this.alignment;
    const count = Math.ceil(size / this.pageSize); // PAGE_ALIGN(size) >> PAGE_SHIFT
    const align = 2 ** order - 1;
    const mapping_size = this.bits * this.pageSize;
    let start = 0;
    let i = 0;
    for (; i < this.bitmaps.length; i++) {
      start = bitmapFindNextZeroArea(this.bitmaps[i] as Bitmap, this.bits, 0, count, align);
      if (start > this.bits) continue;
      (this.bitmaps[i] as Bitmap).fill(1, start, start + count); // bitmap_set
      break;
    }
    if (i === this.bitmaps.length) {
      if (!this.extend_iommu_mapping()) return DMA_MAPPING_ERROR;
      start = bitmapFindNextZeroArea(this.bitmaps[i] as Bitmap, this.bits, 0, count, align);
      if (start > this.bits) return DMA_MAPPING_ERROR;
      (this.bitmaps[i] as Bitmap).fill(1, start, start + count);
    }
    return this.base + mapping_size * i + start * this.pageSize;
  }

  /** __free_iova; every arm caller passes PAGE_ALIGN(offset + len), which `count` mirrors. */
  freeIova(addr: number, size: number): void {
    if (!size) return;
    const mapping_size = this.bits * this.pageSize;
    const bitmap_index = Math.floor((addr - this.base) / mapping_size);
    const bitmap_base = this.base + mapping_size * bitmap_index;
    const start = (addr - bitmap_base) / this.pageSize;
    const count = Math.ceil(size / this.pageSize);
    (this.bitmaps[bitmap_index] as Bitmap).fill(0, start, start + count); // bitmap_clear
  }

  snapshot(): ArmIovaSnapshot {
    const runs: { start: number; end: number }[] = [];
    const mapping_size = this.bits * this.pageSize;
    this.bitmaps.forEach((map, b) => {
      const at = this.base + b * mapping_size;
      let bit = 0;
      while (bit < this.bits) {
        const s = findNext(map, this.bits, bit, 1);
        if (s === this.bits) break;
        const e = findNext(map, this.bits, s, 0);
        runs.push({ start: at + s * this.pageSize, end: at + e * this.pageSize });
        bit = e;
      }
    });
    return { runs, bitsPerBitmap: this.bits, bitmaps: this.bitmaps.length };
  }
}

export function createArmIovaModel(cfg: ArmIovaConfig): ArmIovaModel {
  return new ArmIovaModel(cfg);
}
