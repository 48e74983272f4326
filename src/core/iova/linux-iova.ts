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
// The two rules the layout also reports — how many pfns a request really takes (allocatedPages)
// and the limit it is placed under (limitPfn) — are methods here, so the layout's messages and
// byte counts can't drift from what the allocator does.
//
// Invariants: the anchor range [ANCHOR, ANCHOR] is always present; cached32/cached hold the
// key of a live range (or the anchor); every pfn in the rcache or the flush queue heads a live
// range.

import type { AllocatorMarks, LinuxIovaAllocator, LinuxIovaConfig, LinuxIovaSnapshot, PfnRange } from './iova-allocator.js';
import {
  checkApertureEndPfn,
  checkDmaLimit,
  checkGranuleShift,
  checkPages,
  checkReserve,
  checkStartPfn,
  maxPfnOf,
} from './iova-checks.js';
import { IovaRcache, IOVA_RANGE_CACHE_MAX_SIZE } from './iova-rcache.js';
import { IovaTree } from './iova-tree.js';
import { alignDown, orderBase2, roundupPowOfTwo } from './pfn-math.js';
import { bool, describe, f64s, field, nested, num, stateRef, StateError, type StateRef } from '../state/codec.js';

/** IOVA_ANCHOR (~0UL): above every real pfn (those stay below 2^52). */
export const ANCHOR = Number.MAX_SAFE_INTEGER;
/** IOVA_DEFAULT_FQ_SIZE: a ring of 256 slots that counts as full at 255 entries (fq_full). */
export const IOVA_FQ_SIZE = 256;

/**
 * alloc_iova_fast rounds a request below this many pfns (the rcache's largest class, 2^5) up to
 * a power of two; larger ones are taken as they are.
 */
export const IOVA_ROUNDUP_BELOW = 1 << (IOVA_RANGE_CACHE_MAX_SIZE - 1);

class LinuxIova implements LinuxIovaAllocator {
  /** Saved state: the tree (anchor included), the rcache, the cached nodes' keys, max32_alloc_size, SAC, and the flush queue oldest first. */
  static readonly STATE = describe<LinuxIova>('linux-iova', 1, [
    nested('tree', IovaTree.STATE, (a) => a.tree),
    nested('rcache', IovaRcache.STATE, (a) => a.rcache),
    field('cached32', num, (a) => a.cached32, (a, v) => (a.cached32 = v)),
    field('cached', num, (a) => a.cached, (a, v) => (a.cached = v)),
    field('max32AllocSize', num, (a) => a.max32AllocSize, (a, v) => (a.max32AllocSize = v)),
    field('pci32BitWorkaround', bool, (a) => a.pci32BitWorkaround, (a, v) => (a.pci32BitWorkaround = v)),
    field(
      'flushQueue',
      f64s,
      (a) => {
        const out = new Float64Array(2 * a.fqLen);
        for (let k = 0; k < a.fqLen; k++) {
          const i = (a.fqHead + k) % IOVA_FQ_SIZE;
          out[2 * k] = a.fqPfn[i] as number;
          out[2 * k + 1] = a.fqPages[i] as number;
        }
        return out;
      },
      (a, v) => {
        if (v.length > 2 * IOVA_FQ_SIZE) throw new StateError(`a flush queue of ${v.length / 2} entries (at most ${IOVA_FQ_SIZE})`);
        a.fqHead = 0;
        a.fqLen = v.length / 2;
        for (let k = 0; k < a.fqLen; k++) {
          a.fqPfn[k] = v[2 * k] as number;
          a.fqPages[k] = v[2 * k + 1] as number;
        }
      },
    ),
  ]);

  private readonly tree = new IovaTree();
  private readonly rcache = new IovaRcache();
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
  private fqLen = 0;
  private readonly freeTreeBound: (pfn: number) => void;

  constructor(cfg: LinuxIovaConfig) {
    checkGranuleShift(cfg.shift, cfg.pageShift);
    const maxPfn = maxPfnOf(cfg.shift);
    checkStartPfn(cfg.startPfn, maxPfn);
    checkApertureEndPfn(cfg.apertureEndPfn, cfg.startPfn, maxPfn);
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

  /** iommu_dma_alloc_iova's clamp: the highest pfn an alloc under `dmaLimitPfn` may take. */
  limitPfn(dmaLimitPfn: number): number {
    return dmaLimitPfn < this.apertureEndPfn ? dmaLimitPfn : this.apertureEndPfn;
  }

  /** The pfns alloc_iova_fast really takes for a request of `pages` (≥ 1). */
  allocatedPages(pages: number): number {
    return pages < IOVA_ROUNDUP_BELOW ? roundupPowOfTwo(pages) : pages;
  }

  allocIova(pages: number, dmaLimitPfn: number): number {
    checkPages(pages);
    const limit = this.limitPfn(dmaLimitPfn);
    checkDmaLimit(dmaLimitPfn, limit, this.startPfn);
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
    const size = this.allocatedPages(pages);
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
    const at = this.tree.locate(is32 ? this.cached32 : this.cached);
    const retryPfn = at.hi;
    // A start at/above the limit restarts from the lowest range ending at/above it: the cached
    // range itself when the range below it ends under the limit.
    let pfn =
      retryPfn < limit || at.predHi < limit
        ? this.walk(at.key, at.predHi, size, align, limit, this.startPfn)
        : this.walkFromLimit(size, align, limit, this.startPfn);
    if (pfn < 0 && retryPfn < limit) {
      // Second pass: from the limit down to just above where the first pass started.
      pfn = this.walkFromLimit(size, align, limit, retryPfn + 1);
    }
    if (pfn < 0) {
      this.max32AllocSize = size; // the kernel records it whatever the limit was
      return 0;
    }
    // walk() left the probe at the range right above the pfn's gap.
    this.tree.insertBelow(this.tree.probe.key, pfn, pfn + size - 1);
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
    const at = this.tree.lowestEndingAtOrAbove(limit);
    return this.walk(at.key, at.predHi, size, align, limit, low);
  }

  /**
   * One pass of the kernel's top-down walk from the range E (key eKey; predHi: the range below
   * it, -1 when none; both as the probe just gave them), placing `size` pfns aligned to `align`
   * below the exclusive `limit` and at or above `low`. Returns the pfn, or -1; on success the
   * tree's probe.key is the range right above the pfn's gap (insertBelow's key). The two
   * numbers come as arguments, not as the probe object: read through the object on every step
   * the walk ran 15-25 % slower (bench:allocator, walk pattern at 100 k).
   */
  private walk(eKey: number, predHi: number, size: number, align: number, limit: number, low: number): number {
    const high = eKey < limit ? eKey : limit;
    if (high < size) return -1;
    const top = alignDown(high - size, align);
    if (predHi < 0 || top > predHi) return top >= low ? top : -1;
    if (top < low) return -1;
    const fitKey = this.tree.highestFit(eKey, size, align);
    if (fitKey < 0) return -1;
    this.tree.probe.key = fitKey;
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

  /**
   * iommu_dma_free_iova without a gather (dma_iova_free): free_iova_fast now, past the flush
   * queue even in a non-strict domain.
   */
  freeIovaNow(pfn: number, pages: number): void {
    checkPages(pages);
    this.freeIovaFast(pfn, pages);
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
    const gone = this.tree.removeContaining(pfn, ANCHOR);
    const lo = gone.key;
    if (lo < 0 || lo === ANCHOR) return;
    const hi = gone.hi;
    const next = gone.next;
    const c32 = this.cached32;
    if (lo === c32 || (hi < this.dma32BitPfn && lo >= c32)) this.cached32 = next;
    if (lo < this.dma32BitPfn) this.max32AllocSize = this.dma32BitPfn;
    if (lo >= this.cached) this.cached = next;
  }

  reserve(lo: number, hi: number): void {
    // Below the anchor, so the tree's walk over overlapping ranges never reaches it.
    checkReserve(lo, hi, ANCHOR - 1);
    // The cached nodes stay on the same ranges, whose keys a widening may lower.
    this.tree.reserve(lo, hi, (from, to) => {
      if (this.cached32 === from) this.cached32 = to;
      if (this.cached === from) this.cached = to;
    });
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
      flushQueue: this.strict ? null : flushQueue,
      cached: this.cached === ANCHOR ? null : range(this.cached),
      cached32: this.cached32 === ANCHOR ? null : range(this.cached32),
    };
  }

  /** Frees waiting in the flush queue (non-strict). */
  get queuedFrees(): number {
    return this.fqLen;
  }

  /** For invariant checks in tests. */
  checkInvariants(): void {
    this.tree.checkInvariants();
  }

  state(): StateRef {
    return stateRef(LinuxIova.STATE, this);
  }
}

export type FastLinuxIova = LinuxIovaAllocator & {
  checkInvariants(): void;
  readonly queuedFrees: number;
  trimDepot(): number;
  marks(): AllocatorMarks;
  limitPfn(dmaLimitPfn: number): number;
  allocatedPages(pages: number): number;
  state(): StateRef;
  freeIovaNow(pfn: number, pages: number): void;
};

export function createLinuxIova(cfg: LinuxIovaConfig): FastLinuxIova {
  return new LinuxIova(cfg);
}
