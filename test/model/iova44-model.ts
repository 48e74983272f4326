// Reference model of the `linux-4.4` IOVA allocator: v4.4 drivers/iommu/iova.c (alloc_iova with
// size_aligned, __alloc_and_insert_iova_range, cached32_node, reserve_iova, free_iova) under
// v4.4 dma-iommu.c (__alloc_iova, and the __free_iova after iommu_map fails beyond the
// aperture), written literally and slowly: bigint pfns with 64-bit wrap-around, a sorted array
// of range objects as the rbtree, cached32_node as an object reference (or null), and the walk
// one range at a time over rb_prev().

import type { Iova44Allocator, Iova44Config, Iova44Snapshot, PfnRange } from '../../src/core/iova/iova-allocator.js';
import { flsLong, roundupPowOfTwo, u64 } from './linux-iova-model.js';

interface Iova {
  pfn_lo: bigint;
  pfn_hi: bigint;
}

/** unsigned int arithmetic. */
function u32(x: bigint): bigint {
  return BigInt.asUintN(32, x);
}

/** ilog2 of a positive value: floor(log2). */
function ilog2(x: bigint): number {
  return flsLong(x) - 1;
}

export class Iova44Model implements Iova44Allocator {
  private readonly rbroot: Iova[] = []; // sorted by pfn_lo
  private cached32_node: Iova | null = null;
  private readonly start_pfn: bigint;
  private readonly dma_32bit_pfn: bigint;
  private readonly aperture_end_pfn: bigint;

  constructor(cfg: Iova44Config) {
    this.start_pfn = BigInt(cfg.startPfn);
    this.dma_32bit_pfn = BigInt(cfg.dma32BitPfn);
    this.aperture_end_pfn = BigInt(cfg.apertureEndPfn);
  }

  get rangeCount(): number {
    return this.rbroot.length;
  }

  private rb_prev(node: Iova): Iova | null {
    const i = this.rbroot.indexOf(node);
    return i > 0 ? (this.rbroot[i - 1] as Iova) : null;
  }

  private rb_next(node: Iova): Iova | null {
    return this.rbroot[this.rbroot.indexOf(node) + 1] ?? null;
  }

  private rb_last(): Iova | null {
    return this.rbroot[this.rbroot.length - 1] ?? null;
  }

  private insert(iova: Iova): void {
    let i = 0;
    while (i < this.rbroot.length && (this.rbroot[i] as Iova).pfn_lo < iova.pfn_lo) i++;
    if (i < this.rbroot.length && (this.rbroot[i] as Iova).pfn_lo === iova.pfn_lo) throw new Error('BUG(): duplicate pfn_lo');
    this.rbroot.splice(i, 0, iova);
  }

  /** __get_cached_rbnode: may lower *limit_pfn; returned as [node, limit]. */
  private __get_cached_rbnode(limit_pfn: bigint): [Iova | null, bigint] {
    if (limit_pfn !== this.dma_32bit_pfn || this.cached32_node === null) return [this.rb_last(), limit_pfn];
    const prev_node = this.rb_prev(this.cached32_node);
    return [prev_node, u64(this.cached32_node.pfn_lo - 1n)];
  }

  private __cached_rbnode_insert_update(limit_pfn: bigint, n: Iova): void {
    if (limit_pfn !== this.dma_32bit_pfn) return;
    this.cached32_node = n;
  }

  private __cached_rbnode_delete_update(free: Iova): void {
    if (!this.cached32_node) return;
    const cached_iova = this.cached32_node;
    if (free.pfn_lo >= cached_iova.pfn_lo) {
      const node = this.rb_next(free);
      // only cache if it's below 32bit pfn
      if (node && node.pfn_lo < this.dma_32bit_pfn) this.cached32_node = node;
      else this.cached32_node = null;
    }
  }

  /** iova_get_pad_size(int size, unsigned int limit_pfn) */
  private iova_get_pad_size(size: bigint, limit_pfn: bigint): bigint {
    let pad_size = 0n;
    const order = ilog2(size);
    if (order) pad_size = u32(u32(limit_pfn) + 1n) % (1n << BigInt(order));
    return pad_size;
  }

  private __alloc_and_insert_iova_range(size: bigint, limit_pfn: bigint): Iova | null {
    let pad_size = 0n;
    const saved_pfn = limit_pfn;
    let curr: Iova | null;
    [curr, limit_pfn] = this.__get_cached_rbnode(limit_pfn);
    while (curr) {
      let adjust = true;
      if (limit_pfn < curr.pfn_lo) {
        adjust = false; // goto move_left
      } else if (limit_pfn < curr.pfn_hi) {
        // goto adjust_limit_pfn
      } else {
        pad_size = this.iova_get_pad_size(size, limit_pfn);
        if (u64(curr.pfn_hi + size + pad_size) <= limit_pfn) break; // found a free slot
      }
      if (adjust) limit_pfn = u64(curr.pfn_lo - 1n);
      curr = this.rb_prev(curr);
    }
    if (!curr) {
      pad_size = this.iova_get_pad_size(size, limit_pfn);
      if (u64(this.start_pfn + size + pad_size) > limit_pfn) return null;
    }
    const pfn_lo = u64(limit_pfn - (size + pad_size) + 1n);
    const n: Iova = { pfn_lo, pfn_hi: u64(pfn_lo + size - 1n) };
    this.insert(n);
    this.__cached_rbnode_insert_update(saved_pfn, n);
    return n;
  }

  private __free_iova(iova: Iova): void {
    this.__cached_rbnode_delete_update(iova);
    this.rbroot.splice(this.rbroot.indexOf(iova), 1);
  }

  private find_iova(pfn: bigint): Iova | null {
    for (const iova of this.rbroot) if (pfn >= iova.pfn_lo && pfn <= iova.pfn_hi) return iova;
    return null;
  }

  /** dma-iommu.c __alloc_iova, then iommu_map: a range beyond the aperture fails and is freed. */
  allocIova(pages: number, dmaLimitPfn: number): number {
    // alloc_iova(size_aligned): size = __roundup_pow_of_two(size)
    const size = roundupPowOfTwo(BigInt(pages));
    const iova = this.__alloc_and_insert_iova_range(size, BigInt(dmaLimitPfn));
    if (!iova) return 0;
    if (iova.pfn_hi > this.aperture_end_pfn) {
      this.__free_iova(iova);
      return 0;
    }
    return Number(iova.pfn_lo);
  }

  /** free_iova: the range holding pfn. */
  freeIova(pfn: number): number {
    const iova = this.find_iova(BigInt(pfn));
    if (!iova) return -1;
    this.__free_iova(iova);
    return Number(iova.pfn_lo);
  }

  reserve(lo: number, hi: number): void {
    let pfn_lo = BigInt(lo);
    const pfn_hi = BigInt(hi);
    let overlap = false;
    for (const iova of this.rbroot) {
      if (pfn_lo <= iova.pfn_hi && pfn_hi >= iova.pfn_lo) {
        if (pfn_lo < iova.pfn_lo) iova.pfn_lo = pfn_lo;
        if (pfn_hi > iova.pfn_hi) pfn_lo = iova.pfn_hi + 1n;
        if (pfn_lo >= iova.pfn_lo && pfn_hi <= iova.pfn_hi) return;
        overlap = true;
      } else if (overlap) break;
    }
    this.insert({ pfn_lo, pfn_hi });
  }

  snapshot(): Iova44Snapshot {
    const range = (i: Iova): PfnRange => ({ lo: Number(i.pfn_lo), hi: Number(i.pfn_hi) });
    return {
      ranges: this.rbroot.map(range),
      cached32: this.cached32_node ? range(this.cached32_node) : null,
      dma32BitPfn: Number(this.dma_32bit_pfn),
    };
  }
}

export function createIova44Model(cfg: Iova44Config): Iova44Model {
  return new Iova44Model(cfg);
}
