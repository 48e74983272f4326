// The `linux` layout's IOVA allocator: today's drivers/iommu/iova.c (alloc_iova_fast,
// __alloc_and_insert_iova_range, the cached nodes, max32_alloc_size, the rcache) under
// dma-iommu.c's iommu_dma_alloc_iova (aperture clamp, PCI SAC-first) and iommu_dma_free_iova
// (strict, or through the flush queue).
//
// Results equal the kernel's linear rb_prev() walk, step for step (test/model/ holds that walk
// written out literally; property tests compare the two). The walk itself is replaced by
// IovaTree.highestFit. Why that is the same answer:
//   Walking down from a start range E with `high = min(limit, E.lo)`, the kernel stops at the
//   first gap whose top-down aligned candidate lies above the next lower range, or as soon as
//   the candidate drops below `low`. Candidates only decrease on the way down, so the walk
//   succeeds iff the *highest* fitting gap at or below E yields a candidate ≥ low. Ranges
//   wholly above the limit only pass `high = limit` along, so starting from the cached node or
//   from the lowest range ending at/above the limit (iova_find_limit) is the same walk.
//
// Invariants: the anchor range [ANCHOR, ANCHOR] is always present; cached32/cached hold the
// key of a live range (or the anchor); every pfn in the rcache or the flush queue heads a live
// range.

import { invalid } from '../errors.js';
import type { AllocatorMarks, LinuxIovaAllocator, LinuxIovaConfig, LinuxIovaSnapshot, PfnRange } from './iova-allocator.js';
import { IovaRcache, IOVA_RANGE_CACHE_MAX_SIZE } from './iova-rcache.js';
import { IovaTree } from './iova-tree.js';
import { alignDown, orderBase2, roundupPowOfTwo } from './pfn-math.js';

/** IOVA_ANCHOR (~0UL): above every real pfn (those stay below 2^52). */
export const ANCHOR = Number.MAX_SAFE_INTEGER;
/** IOVA_DEFAULT_FQ_SIZE: a ring of 256 slots that counts as full at 255 entries (fq_full). */
export const IOVA_FQ_SIZE = 256;

/** init_iova_domain's BUG_ON(granule > PAGE_SIZE || !is_power_of_2(granule)), as a typed error. */
export function checkGranuleShift(shift: number, pageShift: number | undefined): void {
  if (!Number.isInteger(shift) || shift < 12 || shift > 30) {
    throw invalid('shift', 'the granule must be a power of two from 4 KiB to 1 GiB (an integer shift in 12..30)');
  }
  if (pageShift !== undefined && shift > pageShift) {
    throw invalid('shift', 'the IOMMU granule must not exceed the CPU page size');
  }
}

export function checkLinuxIovaConfig(cfg: LinuxIovaConfig): void {
  checkGranuleShift(cfg.shift, cfg.pageShift);
  const maxPfn = 2 ** (64 - cfg.shift) - 1;
  if (!Number.isSafeInteger(cfg.startPfn) || cfg.startPfn < 1 || cfg.startPfn > maxPfn) {
    throw invalid('startPfn', 'start pfn must be at least 1 and inside the 64-bit space');
  }
  if (!Number.isSafeInteger(cfg.apertureEndPfn) || cfg.apertureEndPfn < cfg.startPfn || cfg.apertureEndPfn > maxPfn) {
    throw invalid('apertureEndPfn', 'aperture end must not be below the start pfn');
  }
}

export function checkPages(pages: number): void {
  if (!Number.isSafeInteger(pages) || pages < 1) throw invalid('pages', 'size must be a positive whole number of pfns');
}

class LinuxIova implements LinuxIovaAllocator {
  private readonly tree = new IovaTree();
  private readonly rcache = new IovaRcache();
  private readonly shift: number;
  private readonly startPfn: number;
  private readonly apertureEndPfn: number;
  private readonly dma32BitPfn: number;
  private readonly pci: boolean;
  private readonly strict: boolean;
  private cached32 = ANCHOR;
  private cached = ANCHOR;
  private max32AllocSize: number;
  private pci32BitWorkaround: boolean;
  // Flush queue (non-strict), oldest first: a ring over two parallel arrays.
  private readonly fqPfn = new Float64Array(IOVA_FQ_SIZE);
  private readonly fqPages = new Float64Array(IOVA_FQ_SIZE);
  private fqHead = 0;
  /** Set by walk(): the key of the range whose gap below the placed pfn lies in. */
  private placedBelow = ANCHOR;
  private fqLen = 0;
  private readonly freeTreeBound: (pfn: number) => void;

  constructor(cfg: LinuxIovaConfig) {
    checkLinuxIovaConfig(cfg);
    this.shift = cfg.shift;
    this.startPfn = cfg.startPfn;
    this.apertureEndPfn = cfg.apertureEndPfn;
    this.dma32BitPfn = 2 ** (32 - cfg.shift);
    this.max32AllocSize = this.dma32BitPfn;
    this.pci = cfg.pci;
    this.pci32BitWorkaround = cfg.pci;
    this.strict = cfg.strict;
    this.tree.insert(ANCHOR, ANCHOR);
    this.freeTreeBound = (pfn: number) => this.freeIovaTree(pfn);
  }

  get rangeCount(): number {
    return this.tree.count - 1;
  }

  allocIova(pages: number, dmaLimitPfn: number): number {
    checkPages(pages);
    const limit = dmaLimitPfn < this.apertureEndPfn ? dmaLimitPfn : this.apertureEndPfn;
    if (!Number.isSafeInteger(dmaLimitPfn) || !(limit >= this.startPfn)) {
      throw invalid('dmaLimitPfn', 'the DMA limit lies below the first allocatable pfn');
    }
    const mask32 = this.dma32BitPfn - 1; // DMA_BIT_MASK(32) >> shift
    if (this.pci32BitWorkaround && limit > mask32) {
      const pfn = this.allocIovaFast(pages, mask32, false);
      if (pfn !== 0) return pfn;
      // dev_notice "Using %d-bit DMA addresses": SAC is never tried again for this device.
      this.pci32BitWorkaround = false;
    }
    return this.allocIovaFast(pages, limit, true);
  }

  /** alloc_iova_fast */
  private allocIovaFast(pages: number, limitPfn: number, flushRcache: boolean): number {
    const size = pages < 1 << (IOVA_RANGE_CACHE_MAX_SIZE - 1) ? roundupPowOfTwo(pages) : pages;
    const order = orderBase2(size);
    if (order < IOVA_RANGE_CACHE_MAX_SIZE) {
      // iova_rcache_get passes limit_pfn + 1 - size as an unsigned long: a request larger than
      // everything below its limit wraps around and takes any cached pfn of its class.
      const maxPfn = limitPfn + 1 - size;
      const pfn = this.rcache.get(order, maxPfn >= 0 ? maxPfn : Infinity);
      if (pfn !== 0) return pfn;
    }
    let pfn = this.allocAndInsert(size, limitPfn + 1);
    if (pfn === 0 && flushRcache) {
      this.rcache.drain(this.freeTreeBound);
      pfn = this.allocAndInsert(size, limitPfn + 1);
    }
    return pfn;
  }

  /** __alloc_and_insert_iova_range, size-aligned; `limit` is exclusive (limit_pfn + 1). */
  private allocAndInsert(size: number, limit: number): number {
    const is32 = limit <= this.dma32BitPfn;
    if (is32 && size >= this.max32AllocSize) return 0;
    const align = roundupPowOfTwo(size);
    const cachedKey = is32 ? this.cached32 : this.cached;
    const retryPfn = this.tree.locate(cachedKey);
    const predHi = this.tree.outPredHi;
    // A start at/above the limit restarts from the lowest range ending at/above it: the cached
    // range itself when the range below it ends under the limit.
    let pfn =
      retryPfn < limit || predHi < limit
        ? this.walk(cachedKey, predHi, size, align, limit, this.startPfn)
        : this.walkFromLimit(size, align, limit, this.startPfn);
    if (pfn < 0 && retryPfn < limit) {
      // Second pass: from the limit down to just above where the first pass started.
      pfn = this.walkFromLimit(size, align, limit, retryPfn + 1);
    }
    if (pfn < 0) {
      this.max32AllocSize = size; // the kernel records it whatever the limit was
      return 0;
    }
    this.tree.insertBelow(this.placedBelow, pfn, pfn + size - 1);
    // __cached_rbnode_insert_update
    if (pfn + size - 1 < this.dma32BitPfn) this.cached32 = pfn;
    else this.cached = pfn;
    return pfn;
  }

  /**
   * A pass that starts at or above the limit: ranges wholly at/above the limit only pass
   * high = limit down, so it starts at the lowest of them (iova_find_limit).
   */
  private walkFromLimit(size: number, align: number, limit: number, low: number): number {
    const eKey = this.tree.lowestEndingAtOrAbove(limit);
    return this.walk(eKey, this.tree.outPredHi, size, align, limit, low);
  }

  /**
   * One pass of the kernel's top-down walk from the range keyed `eKey` (below which lies the
   * range ending at `predHi`, or none when -1), placing `size` pfns aligned to `align` below
   * the exclusive `limit` and at or above `low`. Returns the pfn, or -1; on success the key of
   * the range right above the pfn's gap is in placedBelow.
   */
  private walk(eKey: number, predHi: number, size: number, align: number, limit: number, low: number): number {
    const high = eKey < limit ? eKey : limit;
    if (high < size) return -1;
    const top = alignDown(high - size, align);
    this.placedBelow = eKey;
    if (predHi < 0 || top > predHi) return top >= low ? top : -1;
    if (top < low) return -1;
    const fitKey = this.tree.highestFit(eKey, size, align);
    if (fitKey < 0) return -1;
    this.placedBelow = fitKey;
    const pfn = alignDown(fitKey - size, align);
    return pfn >= low ? pfn : -1;
  }

  freeIova(pfn: number, pages: number): void {
    checkPages(pages);
    if (this.strict) {
      this.freeIovaFast(pfn, pages);
      return;
    }
    // queue_iova: a full ring is flushed (every entry freed, oldest first) before adding.
    if (this.fqLen === IOVA_FQ_SIZE - 1) this.flushQueue();
    const tail = (this.fqHead + this.fqLen) % IOVA_FQ_SIZE;
    this.fqPfn[tail] = pfn;
    this.fqPages[tail] = pages;
    this.fqLen++;
  }

  /** free_iova_fast: into the rcache when the size class has one, else straight to the tree. */
  private freeIovaFast(pfn: number, pages: number): void {
    const order = orderBase2(pages);
    if (order < IOVA_RANGE_CACHE_MAX_SIZE) this.rcache.insert(order, pfn);
    else this.freeIovaTree(pfn);
  }

  /** free_iova: remove_iova with __cached_rbnode_delete_update. */
  private freeIovaTree(pfn: number): void {
    // find_iova + rb_next + remove in one descent; the cached-node rules only read keys.
    const lo = this.tree.removeContaining(pfn, ANCHOR);
    if (lo < 0 || lo === ANCHOR) return;
    const hi = this.tree.outHi;
    const next = this.tree.outNext;
    const c32 = this.cached32;
    if (lo === c32 || (hi < this.dma32BitPfn && lo >= c32)) this.cached32 = next;
    if (lo < this.dma32BitPfn) this.max32AllocSize = this.dma32BitPfn;
    if (lo >= this.cached) this.cached = next;
  }

  reserve(lo: number, hi: number): void {
    if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi) || lo < 0 || hi < lo || hi >= ANCHOR) {
      throw invalid('reserve', 'a reserved range needs 0 ≤ lo ≤ hi inside the IOVA space');
    }
    // reserve_iova: ranges it overlaps are widened downwards (__adjust_overlap_range); what is
    // left above the last overlapping range is inserted as a new range. Cached nodes untouched.
    let key = this.tree.lowestEndingAtOrAbove(lo);
    while (key >= 0 && key !== ANCHOR && key <= hi) {
      let kLo = key;
      const kHi = this.tree.hiOf(key);
      if (lo < kLo) {
        // Widening a range's lo changes its key: reinsert it.
        this.tree.remove(kLo);
        this.tree.insert(lo, kHi);
        this.rekeyCached(kLo, lo);
        kLo = lo;
      }
      if (hi <= kHi) return;
      lo = kHi + 1;
      key = this.tree.nextKey(kLo);
    }
    this.tree.insert(lo, hi);
  }

  private rekeyCached(from: number, to: number): void {
    if (this.cached32 === from) this.cached32 = to;
    if (this.cached === from) this.cached = to;
  }

  flushQueue(): void {
    while (this.fqLen > 0) {
      const i = this.fqHead;
      this.fqHead = (this.fqHead + 1) % IOVA_FQ_SIZE;
      this.fqLen--;
      this.freeIovaFast(this.fqPfn[i] as number, this.fqPages[i] as number);
    }
  }

  flushRcache(): void {
    this.rcache.drain(this.freeTreeBound);
  }

  /** The depot's delayed trim with one online CPU: each class keeps at most one magazine. */
  trimDepot(): number {
    return this.rcache.trimDepot(1, this.freeTreeBound);
  }

  snapshot(): LinuxIovaSnapshot {
    const ranges = this.tree.toArray().filter((r) => r.lo !== ANCHOR);
    const nodeOf = (key: number): PfnRange | 'anchor' =>
      key === ANCHOR ? 'anchor' : { lo: key, hi: this.tree.hiOf(key) };
    const flushQueue: { pfn: number; pages: number }[] = [];
    for (let k = 0; k < this.fqLen; k++) {
      const i = (this.fqHead + k) % IOVA_FQ_SIZE;
      flushQueue.push({ pfn: this.fqPfn[i] as number, pages: this.fqPages[i] as number });
    }
    return {
      ranges,
      cached32: nodeOf(this.cached32),
      cached: nodeOf(this.cached),
      max32AllocSize: this.max32AllocSize,
      dma32BitPfn: this.dma32BitPfn,
      rcache: this.rcache.snapshot(),
      flushQueue,
      pci32BitWorkaround: this.pci32BitWorkaround,
    };
  }

  /** The rcache, flush queue and cached nodes, without walking the tree (the IOVA picture). */
  marks(): AllocatorMarks {
    const range = (pfn: number): PfnRange => ({ lo: pfn, hi: this.tree.hiOf(pfn) });
    const rcache: PfnRange[] = [];
    for (const c of this.rcache.snapshot()) {
      for (const pfn of c.loaded) rcache.push(range(pfn));
      for (const pfn of c.prev) rcache.push(range(pfn));
      for (const mag of c.depot) for (const pfn of mag) rcache.push(range(pfn));
    }
    const flushQueue: PfnRange[] = [];
    for (let k = 0; k < this.fqLen; k++) {
      const i = (this.fqHead + k) % IOVA_FQ_SIZE;
      flushQueue.push(range(this.fqPfn[i] as number)); // the tree's range: the queued size is unrounded
    }
    return {
      rcache,
      flushQueue,
      cached: this.cached === ANCHOR ? null : range(this.cached),
      cached32: this.cached32 === ANCHOR ? null : range(this.cached32),
    };
  }

  /** Granule shift of this domain (for callers converting addresses). */
  get granuleShift(): number {
    return this.shift;
  }

  /** Frees waiting in the flush queue (non-strict). */
  get queuedFrees(): number {
    return this.fqLen;
  }

  /** For invariant checks in tests. */
  checkInvariants(): void {
    this.tree.checkInvariants();
  }
}

export type FastLinuxIova = LinuxIovaAllocator & { checkInvariants(): void; readonly queuedFrees: number; trimDepot(): number; marks(): AllocatorMarks };

export function createLinuxIova(cfg: LinuxIovaConfig): FastLinuxIova {
  return new LinuxIova(cfg);
}
