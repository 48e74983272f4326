// Reference model of the `linux` IOVA allocator: drivers/iommu/iova.c (alloc_iova_fast,
// __alloc_and_insert_iova_range, the cached nodes, max32_alloc_size, reserve_iova, the rcache)
// under dma-iommu.c's iommu_dma_alloc_iova / iommu_dma_free_iova, written as literally as
// TypeScript allows and deliberately slow:
//  - every pfn is a bigint and every subtraction wraps at 64 bits (`u64`), as unsigned long does;
//  - the rbtree is a plain array of range objects sorted by pfn_lo; rb_prev and rb_next are a
//    lookup and a step; cached_node / cached32_node hold the range *objects*, as the kernel holds
//    node pointers;
//  - the walk visits one range at a time, exactly like the kernel's do/while over rb_prev().
// It exists to be obviously right, so property tests can hold the fast allocator to it.

import type {
  LinuxIovaAllocator,
  LinuxIovaConfig,
  LinuxIovaSnapshot,
  PfnRange,
  RcacheClassSnapshot,
} from '../../src/core/iova/iova-allocator.js';

const ULONG_MAX = (1n << 64n) - 1n;
const IOVA_ANCHOR = ULONG_MAX; // ~0UL
const IOVA_RANGE_CACHE_MAX_SIZE = 6;
const IOVA_MAG_SIZE = 127;
const IOVA_FQ_SIZE = 256; // fq_full(): (tail + 1) % size == head, i.e. 255 entries

/** unsigned long arithmetic. */
export function u64(x: bigint): bigint {
  return BigInt.asUintN(64, x);
}

/** fls_long: 1-based index of the highest set bit, 0 for 0. */
export function flsLong(x: bigint): number {
  return x === 0n ? 0 : x.toString(2).length;
}

/** roundup_pow_of_two(n) = 1 << fls_long(n - 1). */
export function roundupPowOfTwo(n: bigint): bigint {
  return 1n << BigInt(flsLong(n - 1n));
}

/** order_base_2(n) = ilog2(roundup_pow_of_two(n)). */
export function orderBase2(n: bigint): number {
  return flsLong(n - 1n);
}

function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

interface Iova {
  pfn_lo: bigint;
  pfn_hi: bigint;
}

interface CpuRcache {
  loaded: bigint[]; // a magazine: its length is mag->size
  prev: bigint[];
}

interface Rcache {
  depot: bigint[][]; // singly linked list of full magazines: depot[0] is rcache->depot
  cpu: CpuRcache; // one CPU
}

export class LinuxIovaModel implements LinuxIovaAllocator {
  // struct iova_domain
  private readonly rbroot: Iova[] = []; // sorted by pfn_lo, highest first
  private readonly anchor: Iova = { pfn_lo: IOVA_ANCHOR, pfn_hi: IOVA_ANCHOR };
  private cached_node: Iova;
  private cached32_node: Iova;
  private readonly start_pfn: bigint;
  private readonly dma_32bit_pfn: bigint;
  private max32_alloc_size: bigint;
  private readonly rcaches: Rcache[] = [];
  // dma-iommu.c
  private readonly shift: bigint;
  private readonly aperture_end_pfn: bigint;
  private pci_32bit_workaround: boolean;
  private readonly strict: boolean;
  private readonly fq: { iova_pfn: bigint; pages: bigint }[] = [];

  constructor(cfg: LinuxIovaConfig) {
    // init_iova_domain
    this.shift = BigInt(cfg.shift);
    this.start_pfn = BigInt(cfg.startPfn);
    this.dma_32bit_pfn = 1n << (32n - this.shift);
    this.max32_alloc_size = this.dma_32bit_pfn;
    this.rbroot.push(this.anchor);
    this.cached_node = this.anchor;
    this.cached32_node = this.anchor;
    for (let i = 0; i < IOVA_RANGE_CACHE_MAX_SIZE; i++) this.rcaches.push({ depot: [], cpu: { loaded: [], prev: [] } });
    this.aperture_end_pfn = BigInt(cfg.apertureEndPfn);
    this.pci_32bit_workaround = cfg.pci;
    this.strict = cfg.strict;
  }

  get rangeCount(): number {
    return this.rbroot.length - 1;
  }

  // ---- the rbtree as a sorted array ----
  // Highest range first (the anchor at index 0): the kernel allocates top-down, so new ranges
  // land near the end of the array, where inserting is cheap enough to bench the model at 100k
  // live ranges. Positions are found by binary search on pfn_lo; the walk itself still steps
  // one range at a time.

  private indexOf(node: Iova): number {
    let lo = 0;
    let hi = this.rbroot.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const m = this.rbroot[mid] as Iova;
      if (m.pfn_lo === node.pfn_lo) {
        if (m !== node) throw new Error('indexOf: a different range has this pfn_lo');
        return mid;
      }
      if (m.pfn_lo > node.pfn_lo) lo = mid + 1;
      else hi = mid - 1;
    }
    throw new Error('indexOf: range not in the tree');
  }

  private rb_prev(node: Iova): Iova | null {
    return this.rbroot[this.indexOf(node) + 1] ?? null;
  }

  private rb_next(node: Iova): Iova | null {
    const i = this.indexOf(node);
    return i > 0 ? (this.rbroot[i - 1] as Iova) : null;
  }

  /** Index of the highest range whose pfn_lo ≤ pfn, or rbroot.length when there is none. */
  private atOrBelow(pfn: bigint): number {
    let lo = 0;
    let hi = this.rbroot.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.rbroot[mid] as Iova).pfn_lo > pfn) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private iova_insert_rbtree(iova: Iova): void {
    const i = this.atOrBelow(iova.pfn_lo);
    if (this.rbroot[i]?.pfn_lo === iova.pfn_lo) {
      throw new Error('iova_insert_rbtree: WARN_ON(1), duplicate pfn_lo');
    }
    this.rbroot.splice(i, 0, iova);
  }

  private rb_erase(iova: Iova): void {
    this.rbroot.splice(this.indexOf(iova), 1);
  }

  /** In ascending order, as rb_first()/rb_next() visit them. */
  private *ascending(): Generator<Iova> {
    for (let i = this.rbroot.length - 1; i >= 0; i--) yield this.rbroot[i] as Iova;
  }

  private private_find_iova(pfn: bigint): Iova | null {
    const iova = this.rbroot[this.atOrBelow(pfn)];
    return iova && pfn <= iova.pfn_hi ? iova : null;
  }

  // ---- iova.c ----

  private __get_cached_rbnode(limit_pfn: bigint): Iova {
    if (limit_pfn <= this.dma_32bit_pfn) return this.cached32_node;
    return this.cached_node;
  }

  private __cached_rbnode_insert_update(n: Iova): void {
    if (n.pfn_hi < this.dma_32bit_pfn) this.cached32_node = n;
    else this.cached_node = n;
  }

  private __cached_rbnode_delete_update(free: Iova): void {
    let cached_iova = this.cached32_node;
    if (free === cached_iova || (free.pfn_hi < this.dma_32bit_pfn && free.pfn_lo >= cached_iova.pfn_lo)) {
      this.cached32_node = this.rb_next(free) as Iova; // the anchor is above every freed range
    }
    if (free.pfn_lo < this.dma_32bit_pfn) this.max32_alloc_size = this.dma_32bit_pfn;
    cached_iova = this.cached_node;
    if (free.pfn_lo >= cached_iova.pfn_lo) this.cached_node = this.rb_next(free) as Iova;
  }

  /**
   * iova_find_limit: the kernel descends its rbtree for *a* range with pfn_hi ≥ limit_pfn from
   * which to restart the walk (the anchor when limit_pfn > dma_32bit_pfn). Which one depends on
   * the tree's shape, but not the result: every range above the lowest such range has
   * pfn_lo ≥ limit_pfn, so walking down through it leaves high_pfn = limit_pfn and new_pfn
   * unchanged. The model takes the lowest one.
   */
  private iova_find_limit(limit_pfn: bigint): Iova {
    if (limit_pfn > this.dma_32bit_pfn) return this.anchor;
    for (const iova of this.ascending()) if (iova.pfn_hi >= limit_pfn) return iova;
    return this.anchor;
  }

  /** __alloc_and_insert_iova_range with size_aligned = true; `limit_pfn` is exclusive. */
  private __alloc_and_insert_iova_range(size: bigint, limit_pfn: bigint): Iova | null {
    let align_mask = ULONG_MAX;
    let high_pfn = limit_pfn;
    let low_pfn = this.start_pfn;
    align_mask = u64(align_mask << BigInt(flsLong(size - 1n)));

    if (limit_pfn <= this.dma_32bit_pfn && size >= this.max32_alloc_size) return null; // iova32_full

    let curr: Iova | null = this.__get_cached_rbnode(limit_pfn);
    let curr_iova: Iova = curr;
    const retry_pfn = curr_iova.pfn_hi;
    let new_pfn: bigint;
    for (;;) {
      // retry:
      do {
        high_pfn = min(high_pfn, curr_iova.pfn_lo);
        new_pfn = u64(high_pfn - size) & align_mask;
        curr = this.rb_prev(curr_iova);
        if (curr) curr_iova = curr;
      } while (curr && new_pfn <= curr_iova.pfn_hi && new_pfn >= low_pfn);

      if (high_pfn < size || new_pfn < low_pfn) {
        if (low_pfn === this.start_pfn && retry_pfn < limit_pfn) {
          high_pfn = limit_pfn;
          low_pfn = retry_pfn + 1n;
          curr = this.iova_find_limit(limit_pfn);
          curr_iova = curr;
          continue;
        }
        this.max32_alloc_size = size;
        return null; // iova32_full
      }
      break;
    }
    const n: Iova = { pfn_lo: new_pfn, pfn_hi: new_pfn + size - 1n };
    this.iova_insert_rbtree(n);
    this.__cached_rbnode_insert_update(n);
    return n;
  }

  /** alloc_iova(size_aligned = true) */
  private alloc_iova(size: bigint, limit_pfn: bigint): Iova | null {
    return this.__alloc_and_insert_iova_range(size, limit_pfn + 1n);
  }

  private remove_iova(iova: Iova): void {
    this.__cached_rbnode_delete_update(iova);
    this.rb_erase(iova);
  }

  private free_iova(pfn: bigint): void {
    const iova = this.private_find_iova(pfn);
    if (!iova) return;
    this.remove_iova(iova);
  }

  private alloc_iova_fast(size: bigint, limit_pfn: bigint, flush_rcache: boolean): bigint {
    if (size < 1n << BigInt(IOVA_RANGE_CACHE_MAX_SIZE - 1)) size = roundupPowOfTwo(size);
    const iova_pfn = this.iova_rcache_get(size, limit_pfn + 1n);
    if (iova_pfn) return iova_pfn;
    for (;;) {
      const new_iova = this.alloc_iova(size, limit_pfn);
      if (!new_iova) {
        if (!flush_rcache) return 0n;
        flush_rcache = false;
        this.free_cpu_cached_iovas();
        this.free_global_cached_iovas();
        continue;
      }
      return new_iova.pfn_lo;
    }
  }

  private free_iova_fast(pfn: bigint, size: bigint): void {
    if (this.iova_rcache_insert(pfn, size)) return;
    this.free_iova(pfn);
  }

  // ---- the rcache ----

  private iova_rcache_insert(pfn: bigint, size: bigint): boolean {
    const log_size = orderBase2(size);
    if (log_size >= IOVA_RANGE_CACHE_MAX_SIZE) return false;
    const rcache = this.rcaches[log_size] as Rcache;
    const cpu = rcache.cpu;
    if (cpu.loaded.length !== IOVA_MAG_SIZE) {
      // can insert
    } else if (cpu.prev.length !== IOVA_MAG_SIZE) {
      [cpu.prev, cpu.loaded] = [cpu.loaded, cpu.prev];
    } else {
      rcache.depot.unshift(cpu.loaded); // iova_depot_push
      cpu.loaded = []; // iova_magazine_alloc never fails here
    }
    cpu.loaded.push(pfn); // iova_magazine_push
    return true;
  }

  private iova_rcache_get(size: bigint, limit_pfn: bigint): bigint {
    const log_size = orderBase2(size);
    if (log_size >= IOVA_RANGE_CACHE_MAX_SIZE) return 0n;
    const rcache = this.rcaches[log_size] as Rcache;
    const cpu = rcache.cpu;
    let has_pfn = false;
    if (cpu.loaded.length !== 0) {
      has_pfn = true;
    } else if (cpu.prev.length !== 0) {
      [cpu.prev, cpu.loaded] = [cpu.loaded, cpu.prev];
      has_pfn = true;
    } else if (rcache.depot.length > 0) {
      cpu.loaded = rcache.depot.shift() as bigint[]; // iova_depot_pop; the empty loaded is freed
      has_pfn = true;
    }
    return has_pfn ? iova_magazine_pop(cpu.loaded, u64(limit_pfn - size)) : 0n;
  }

  private iova_magazine_free_pfns(mag: bigint[]): void {
    for (const pfn of mag) {
      const iova = this.private_find_iova(pfn);
      if (!iova) continue; // WARN_ON
      this.remove_iova(iova);
    }
    mag.length = 0;
  }

  private free_cpu_cached_iovas(): void {
    for (const rcache of this.rcaches) {
      this.iova_magazine_free_pfns(rcache.cpu.loaded);
      this.iova_magazine_free_pfns(rcache.cpu.prev);
    }
  }

  private free_global_cached_iovas(): void {
    for (const rcache of this.rcaches) {
      while (rcache.depot.length > 0) this.iova_magazine_free_pfns(rcache.depot.shift() as bigint[]);
    }
  }

  // ---- dma-iommu.c ----

  /** iommu_dma_alloc_iova, in pfns. */
  allocIova(pages: number, dmaLimitPfn: number): number {
    const iova_len = BigInt(pages);
    let dma_limit = BigInt(dmaLimitPfn);
    dma_limit = min(dma_limit, this.aperture_end_pfn); // force_aperture
    const mask32 = 0xffffffffn >> this.shift; // DMA_BIT_MASK(32) >> shift
    // dma_limit > DMA_BIT_MASK(32) in bytes is the same test on pfns.
    if (dma_limit > mask32 && this.pci_32bit_workaround) {
      const iova = this.alloc_iova_fast(iova_len, mask32, false);
      if (iova) return Number(iova);
      this.pci_32bit_workaround = false; // dev_notice "Using %d-bit DMA addresses"
    }
    return Number(this.alloc_iova_fast(iova_len, dma_limit, true));
  }

  /** iommu_dma_free_iova: strict frees now, non-strict queues (queue_iova). */
  freeIova(pfn: number, pages: number): void {
    if (this.strict) {
      this.free_iova_fast(BigInt(pfn), BigInt(pages));
      return;
    }
    if (this.fq.length === IOVA_FQ_SIZE - 1) {
      // fq_full: iommu_dma_flush_iotlb_all, then fq_ring_free frees every entry, oldest first.
      this.flushQueue();
    }
    this.fq.push({ iova_pfn: BigInt(pfn), pages: BigInt(pages) });
  }

  reserve(lo: number, hi: number): void {
    let pfn_lo = BigInt(lo);
    const pfn_hi = BigInt(hi);
    let overlap = false;
    for (const iova of this.ascending()) {
      if (pfn_lo <= iova.pfn_hi && pfn_hi >= iova.pfn_lo) {
        // __adjust_overlap_range
        if (pfn_lo < iova.pfn_lo) iova.pfn_lo = pfn_lo;
        if (pfn_hi > iova.pfn_hi) pfn_lo = iova.pfn_hi + 1n;
        if (pfn_lo >= iova.pfn_lo && pfn_hi <= iova.pfn_hi) return;
        overlap = true;
      } else if (overlap) break;
    }
    this.iova_insert_rbtree({ pfn_lo, pfn_hi });
  }

  flushQueue(): void {
    while (this.fq.length > 0) {
      const e = this.fq.shift() as { iova_pfn: bigint; pages: bigint };
      this.free_iova_fast(e.iova_pfn, e.pages);
    }
  }

  flushRcache(): void {
    this.free_cpu_cached_iovas();
    this.free_global_cached_iovas();
  }

  snapshot(): LinuxIovaSnapshot {
    const range = (i: Iova): PfnRange => ({ lo: Number(i.pfn_lo), hi: Number(i.pfn_hi) });
    const node = (i: Iova): PfnRange | 'anchor' => (i === this.anchor ? 'anchor' : range(i));
    const rcache: RcacheClassSnapshot[] = this.rcaches.map((rc, order) => ({
      order,
      loaded: rc.cpu.loaded.map(Number),
      prev: rc.cpu.prev.map(Number),
      depot: rc.depot.map((m) => m.map(Number)),
    }));
    return {
      ranges: [...this.ascending()].filter((i) => i !== this.anchor).map(range),
      cached32: node(this.cached32_node),
      cached: node(this.cached_node),
      max32AllocSize: Number(this.max32_alloc_size),
      dma32BitPfn: Number(this.dma_32bit_pfn),
      rcache,
      flushQueue: this.fq.map((e) => ({ pfn: Number(e.iova_pfn), pages: Number(e.pages) })),
      pci32BitWorkaround: this.pci_32bit_workaround,
    };
  }
}

/** iova_magazine_pop: the highest index whose pfn ≤ limit_pfn, swapped with the last. */
function iova_magazine_pop(mag: bigint[], limit_pfn: bigint): bigint {
  let i = mag.length - 1;
  for (; (mag[i] as bigint) > limit_pfn; i--) if (i === 0) return 0n;
  const pfn = mag[i] as bigint;
  mag[i] = mag[mag.length - 1] as bigint;
  mag.length--;
  return pfn;
}

export function createLinuxIovaModel(cfg: LinuxIovaConfig): LinuxIovaModel {
  return new LinuxIovaModel(cfg);
}
