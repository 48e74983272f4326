// The IOVA range caches of iova.c (iova_rcache_get / iova_rcache_insert) for one CPU: per size
// class (order 0..5) a `loaded` and a `prev` magazine of 127 pfns plus a LIFO depot of full
// magazines. The depot's delayed trim (iova_depot_work_func) runs only when asked: dmaemu's
// virtual time stands still, so `/flush {depot_trim}` says "enough time has passed".
//
// Invariants: loaded and prev hold 0..127 pfns; every depot magazine is full; a pfn cached in
// class k heads a live tree range of exactly 2^k pfns (alloc_iova_fast rounds small sizes up,
// and free gives back the order of the unrounded size, which is the same).

import { describe, f64s, field, list, record, StateError } from '../state/codec.js';

export const IOVA_MAG_SIZE = 127;
export const IOVA_RANGE_CACHE_MAX_SIZE = 6;

class Magazine {
  readonly pfns = new Float64Array(IOVA_MAG_SIZE);
  size = 0;
  toArray(): number[] {
    return Array.from(this.pfns.subarray(0, this.size));
  }
}

class RcacheClass {
  loaded = new Magazine();
  prev = new Magazine();
  readonly depot: Magazine[] = []; // top of the LIFO is the end of the array
}

/** A magazine's pfns, in slot order (the order get and drain walk them). */
const magazine = {
  of: (m: Magazine): Float64Array => m.pfns.slice(0, m.size),
  to: (pfns: Float64Array): Magazine => {
    const m = new Magazine();
    m.pfns.set(pfns.subarray(0, IOVA_MAG_SIZE));
    m.size = Math.min(pfns.length, IOVA_MAG_SIZE);
    return m;
  },
};

const classCodec = record<{ loaded: Float64Array; prev: Float64Array; depot: Float64Array[] }>({ loaded: f64s, prev: f64s, depot: list(f64s) }, ['loaded', 'prev', 'depot']);

export class IovaRcache {
  /**
   * Saved state: per size class (order 0..5), the loaded and prev magazines' pfns and the depot's
   * magazines bottom to top. Spare magazines are a GC economy, not state.
   */
  static readonly STATE = describe<IovaRcache>('iova-rcache', 1, [
    field(
      'classes',
      list(classCodec),
      (c) => c.classes.map((rc) => ({ loaded: magazine.of(rc.loaded), prev: magazine.of(rc.prev), depot: rc.depot.map(magazine.of) })),
      (c, v) => {
        if (v.length !== c.classes.length) throw new StateError(` ${v.length} size classes saved, ${c.classes.length} here`);
        v.forEach((saved, i) => {
          const rc = c.classes[i] as RcacheClass;
          rc.loaded = magazine.to(saved.loaded);
          rc.prev = magazine.to(saved.prev);
          rc.depot.length = 0;
          for (const d of saved.depot) rc.depot.push(magazine.to(d));
        });
      },
    ),
  ]);

  private readonly classes: RcacheClass[] = [];
  private readonly spare: Magazine[] = []; // emptied magazines kept for reuse (no GC churn)

  constructor() {
    for (let i = 0; i < IOVA_RANGE_CACHE_MAX_SIZE; i++) this.classes.push(new RcacheClass());
  }

  private fresh(): Magazine {
    const m = this.spare.pop();
    if (m) {
      m.size = 0;
      return m;
    }
    return new Magazine();
  }

  /** __iova_rcache_get for class `order`: a pfn ≤ maxPfn, or 0. */
  get(order: number, maxPfn: number): number {
    const rc = this.classes[order] as RcacheClass;
    if (rc.loaded.size === 0) {
      if (rc.prev.size !== 0) {
        const t = rc.loaded;
        rc.loaded = rc.prev;
        rc.prev = t;
      } else {
        const d = rc.depot.pop();
        if (!d) return 0;
        this.spare.push(rc.loaded);
        rc.loaded = d;
      }
    }
    // iova_magazine_pop: the highest index whose pfn fits, swapped with the last.
    const mag = rc.loaded;
    const pfns = mag.pfns;
    let i = mag.size - 1;
    while ((pfns[i] as number) > maxPfn) {
      if (i === 0) return 0;
      i--;
    }
    const pfn = pfns[i] as number;
    pfns[i] = pfns[--mag.size] as number;
    return pfn;
  }

  /** __iova_rcache_insert for class `order` (always succeeds: magazine allocation can't fail here). */
  insert(order: number, pfn: number): void {
    const rc = this.classes[order] as RcacheClass;
    if (rc.loaded.size === IOVA_MAG_SIZE) {
      if (rc.prev.size !== IOVA_MAG_SIZE) {
        const t = rc.loaded;
        rc.loaded = rc.prev;
        rc.prev = t;
      } else {
        rc.depot.push(rc.loaded);
        rc.loaded = this.fresh();
      }
    }
    rc.loaded.pfns[rc.loaded.size++] = pfn;
  }

  /** free_cpu_cached_iovas then free_global_cached_iovas: every cached pfn, in the kernel's order. */
  drain(free: (pfn: number) => void): void {
    for (const rc of this.classes) {
      for (const mag of [rc.loaded, rc.prev]) {
        for (let i = 0; i < mag.size; i++) free(mag.pfns[i] as number);
        mag.size = 0;
      }
    }
    for (const rc of this.classes) {
      for (let d = rc.depot.pop(); d; d = rc.depot.pop()) {
        for (let i = 0; i < d.size; i++) free(d.pfns[i] as number);
        d.size = 0;
        this.spare.push(d);
      }
    }
  }

  /**
   * iova_depot_work_func run until it stops: while a class's depot holds more than `keep`
   * (num_online_cpus) magazines, the top one is popped and its pfns freed in index order
   * (iova_magazine_free_pfns). Classes in ascending order. Returns the pfns freed.
   */
  trimDepot(keep: number, free: (pfn: number) => void): number {
    let n = 0;
    for (const rc of this.classes) {
      while (rc.depot.length > keep) {
        const d = rc.depot.pop();
        if (!d) break;
        for (let i = 0; i < d.size; i++) free(d.pfns[i] as number);
        n += d.size;
        d.size = 0;
        this.spare.push(d);
      }
    }
    return n;
  }

  snapshot(): { order: number; loaded: number[]; prev: number[]; depot: number[][] }[] {
    return this.classes.map((rc, order) => ({
      order,
      loaded: rc.loaded.toArray(),
      prev: rc.prev.toArray(),
      depot: rc.depot.map((m) => m.toArray()).reverse(),
    }));
  }
}
