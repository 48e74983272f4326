// The ordered set of IOVA ranges behind the linux and linux-4.4 allocators: an AVL tree kept
// in typed arrays (no per-node objects, so a million live ranges cost no GC work), with parent
// links and an index from each range's first pfn to its node (PfnIndex, pfn-index.ts).
//
// Invariants:
//  - ranges are disjoint and keyed by `lo`; an in-order walk is ascending;
//  - gapLo[n] is where the free gap *below* node n starts: predecessor's hi + 1, or 0 for the
//    lowest node (and only for it: any other node's predecessor ends at hi ≥ 0), so the gap
//    below n is [gapLo[n], lo[n]);
//  - maxGap[n] is the longest *counted* gap in n's subtree, where a node's own gap counts unless
//    it is the lowest node (gapLo 0: the bottom gap, tracked through minKey and tried last by
//    highestFit) or keyed at/above UNCOUNTED (the linux anchor: never below any query bound).
//    Neither ever changes an aggregate, so churn at the bottom of the space or right below the
//    anchor (the walk pattern's two ends) stops re-aggregating within a level or two instead
//    of rewriting maxGap up to the root;
//  - parent[root] = NIL and parent[left[n]] = parent[right[n]] = n;
//  - the index maps every live key to its node and holds nothing else;
//  - minKey is the lowest key, or -1 when empty;
//  - |height(left) − height(right)| ≤ 1 everywhere, so every operation is O(log n).
//
// Node ids are stable for a range's lifetime (a removal relinks nodes, it never moves a
// payload), but callers hold keys (`lo`); the index turns a key into its node in O(1)
// expected, so look-ups of known keys, inserts next to a known range and removals cost no
// descent from the root. Re-aggregation walks up the parent links and stops at the first node
// whose height and maxGap come out unchanged.
//
// Queries that find more than one number (a range's hi and its neighbours') answer through the
// tree's one IovaProbe instead of a fresh object per call: the allocators call them on every
// alloc and free, and a million short-lived result objects a second would be GC work.
//
// The kernel walks rb_prev() one range at a time (linear when many holes are too small —
// FAST'15); `highestFit` answers the same question — the highest gap below a bound that can
// hold `size` pfns at a `align`-aligned top-down position — by skipping every subtree whose
// maxGap is too short.

import { NIL, PfnIndex } from './pfn-index.js';
import { describe, f64s, field } from '../state/codec.js';
import { modPow2 } from './pfn-math.js';

/** Nodes keyed at or above this (IOVA_ANCHOR) don't count their gap below in maxGap. */
const UNCOUNTED = Number.MAX_SAFE_INTEGER;

/**
 * The result of the tree's last probing call, overwritten by the next one: read it right after
 * the call that filled it. One per tree (IovaTree.probe). Every field is -1 when it names no
 * range. Which call fills which field is said at each call; fields it doesn't name are stale.
 * A caller may move `key` itself while it carries the probe along (linux-iova's walk leaves
 * it at the range its pfn goes below).
 */
export class IovaProbe {
  /** Key (first pfn) of the range the call found or removed. */
  key = -1;
  /** Last pfn of that range. */
  hi = -1;
  /** Last pfn of the range right before it (rb_prev), -1 when none. */
  predHi = -1;
  /** Key of the range right after a removed one (rb_next), -1 when none. */
  next = -1;
}

export class IovaTree {
  private lo = new Float64Array(64);
  private hi = new Float64Array(64);
  private gapLo = new Float64Array(64);
  private maxGap = new Float64Array(64);
  private left = new Int32Array(64);
  private right = new Int32Array(64);
  private parent = new Int32Array(64);
  private height = new Int8Array(64);
  private root = NIL;
  private nextFree = 1; // ids 1..nextFree-1 have been handed out at least once
  private freeIds: number[] = [];
  private size = 0;
  private minKey = -1;
  private readonly index = new PfnIndex();
  /** Where locate, lowestEndingAtOrAbove, remove and removeContaining put their findings. */
  readonly probe = new IovaProbe();

  get count(): number {
    return this.size;
  }

  // ---- nodes and balance --------------------------------------------------------------------

  private newNode(lo: number, hi: number, gapLo: number, parent: number): number {
    let id = this.freeIds.pop();
    if (id === undefined) {
      if (this.nextFree === this.lo.length) this.grow();
      id = this.nextFree++;
    }
    this.lo[id] = lo;
    this.hi[id] = hi;
    this.gapLo[id] = gapLo;
    this.maxGap[id] = gapLo === 0 || lo >= UNCOUNTED ? 0 : lo - gapLo;
    this.left[id] = NIL;
    this.right[id] = NIL;
    this.parent[id] = parent;
    this.height[id] = 1;
    return id;
  }

  private grow(): void {
    const n = this.lo.length * 2;
    const f64 = (a: Float64Array): Float64Array<ArrayBuffer> => {
      const b = new Float64Array(n);
      b.set(a);
      return b;
    };
    const i32 = (a: Int32Array): Int32Array<ArrayBuffer> => {
      const b = new Int32Array(n);
      b.set(a);
      return b;
    };
    this.lo = f64(this.lo);
    this.hi = f64(this.hi);
    this.gapLo = f64(this.gapLo);
    this.maxGap = f64(this.maxGap);
    this.left = i32(this.left);
    this.right = i32(this.right);
    this.parent = i32(this.parent);
    const h = new Int8Array(n);
    h.set(this.height);
    this.height = h;
  }

  private pull(n: number): void {
    const l = this.left[n] as number;
    const r = this.right[n] as number;
    const hl = this.height[l] as number;
    const hr = this.height[r] as number;
    this.height[n] = (hl > hr ? hl : hr) + 1;
    const g = this.gapLo[n] as number;
    const lo = this.lo[n] as number;
    let m = g === 0 || lo >= UNCOUNTED ? 0 : lo - g;
    if (l !== NIL && (this.maxGap[l] as number) > m) m = this.maxGap[l] as number;
    if (r !== NIL && (this.maxGap[r] as number) > m) m = this.maxGap[r] as number;
    this.maxGap[n] = m;
  }

  /** Puts `to` where `from` hangs under parent p (or at the root) and sets its parent link. */
  private replaceChild(p: number, from: number, to: number): void {
    if (p === NIL) this.root = to;
    else if (this.left[p] === from) this.left[p] = to;
    else this.right[p] = to;
    if (to !== NIL) this.parent[to] = p;
  }

  private rotateRight(n: number): number {
    const l = this.left[n] as number;
    const lr = this.right[l] as number;
    this.replaceChild(this.parent[n] as number, n, l);
    this.left[n] = lr;
    if (lr !== NIL) this.parent[lr] = n;
    this.right[l] = n;
    this.parent[n] = l;
    this.pull(n);
    this.pull(l);
    return l;
  }

  private rotateLeft(n: number): number {
    const r = this.right[n] as number;
    const rl = this.left[r] as number;
    this.replaceChild(this.parent[n] as number, n, r);
    this.right[n] = rl;
    if (rl !== NIL) this.parent[rl] = n;
    this.left[r] = n;
    this.parent[n] = r;
    this.pull(n);
    this.pull(r);
    return r;
  }

  /** Re-aggregates n and rebalances it in place (links included); returns the subtree's root. */
  private balance(n: number): number {
    this.pull(n);
    const l = this.left[n] as number;
    const r = this.right[n] as number;
    const bf = (this.height[l] as number) - (this.height[r] as number);
    if (bf > 1) {
      if ((this.height[this.left[l] as number] as number) < (this.height[this.right[l] as number] as number)) {
        this.rotateLeft(l);
      }
      return this.rotateRight(n);
    }
    if (bf < -1) {
      if ((this.height[this.right[r] as number] as number) < (this.height[this.left[r] as number] as number)) {
        this.rotateRight(r);
      }
      return this.rotateLeft(n);
    }
    return n;
  }

  /**
   * Rebalances and re-aggregates from n up to the root. `dirty` is an ancestor-or-self of n
   * whose payload changed (or NIL); below it and at n the children may have changed. Once past
   * both, a node that comes out of balance() unrotated with the same height and maxGap ends
   * it: nothing above can change.
   */
  private fixUp(n: number, dirty: number): void {
    let passed = dirty === NIL;
    while (n !== NIL) {
      if (n === dirty) passed = true;
      const h0 = this.height[n] as number;
      const m0 = this.maxGap[n] as number;
      const nn = this.balance(n);
      if (nn === n && passed && this.height[n] === h0 && this.maxGap[n] === m0) return;
      n = this.parent[nn] as number;
    }
  }

  // ---- insert / remove ----------------------------------------------------------------------

  /** Inserts [lo, hi]; the caller guarantees it overlaps nothing. */
  insert(lo: number, hi: number): void {
    let n = this.root;
    let p = NIL;
    let goLeft = false;
    let pred = NIL;
    let succ = NIL;
    while (n !== NIL) {
      p = n;
      if (lo < (this.lo[n] as number)) {
        goLeft = true;
        succ = n;
        n = this.left[n] as number;
      } else {
        goLeft = false;
        pred = n;
        n = this.right[n] as number;
      }
    }
    this.attach(p, goLeft, lo, hi, pred === NIL ? 0 : (this.hi[pred] as number) + 1, succ);
  }

  /**
   * Inserts [lo, hi] right below the range keyed `nextKey` (which must exist), in the gap
   * below it: no descent from the root.
   */
  insertBelow(nextKey: number, lo: number, hi: number): void {
    const s = this.index.get(nextKey);
    if (s === NIL) {
      this.insert(lo, hi);
      return;
    }
    const gapLo = this.gapLo[s] as number;
    let p = this.left[s] as number;
    if (p === NIL) {
      this.attach(s, true, lo, hi, gapLo, s);
      return;
    }
    while (this.right[p] !== NIL) p = this.right[p] as number;
    this.attach(p, false, lo, hi, gapLo, s);
  }

  /**
   * reserve_iova over [lo, hi] (the caller has checked 0 ≤ lo ≤ hi below any anchor): each
   * range it overlaps is widened downwards to cover what lies between it and the previous one
   * (__adjust_overlap_range); what is left above the last overlapping range is inserted as a
   * new range. A widened range changes its key: `rekey(from, to)` tells the caller, whose
   * cached nodes hold keys. Same in v4.4 and today, so both allocators share it.
   */
  reserve(lo: number, hi: number, rekey: (from: number, to: number) => void): void {
    let key = this.lowestEndingAtOrAbove(lo).key;
    while (key >= 0 && key <= hi) {
      let kLo = key;
      const kHi = this.hiOf(key);
      if (lo < kLo) {
        this.remove(kLo);
        this.insert(lo, kHi);
        rekey(kLo, lo);
        kLo = lo;
      }
      if (hi <= kHi) return;
      lo = kHi + 1;
      key = this.nextKey(kLo);
    }
    this.insert(lo, hi);
  }

  /** Hangs a new leaf under p (NIL: as the root); succ (NIL or an ancestor) is its successor. */
  private attach(p: number, goLeft: boolean, lo: number, hi: number, gapLo: number, succ: number): void {
    const x = this.newNode(lo, hi, gapLo, p);
    if (p === NIL) this.root = x;
    else if (goLeft) this.left[p] = x;
    else this.right[p] = x;
    if (succ !== NIL) this.gapLo[succ] = hi + 1;
    if (gapLo === 0) this.minKey = lo;
    this.index.add(lo, x);
    this.size++;
    this.fixUp(p, succ);
  }

  /** Removes the range keyed `lo`. Returns false when there is none; probe as removeNode's. */
  remove(lo: number): boolean {
    const n = this.index.get(lo);
    if (n === NIL) return false;
    this.removeNode(n);
    return true;
  }

  /**
   * Removes the range holding `pfn` unless its key is `keep` — free_iova's find_iova + rb_next
   * + remove, with no descent when pfn is the range's first pfn. Probe: key = the range's key
   * (-1 when no range holds pfn, and nothing else is filled); when removed, hi and next as
   * removeNode's.
   */
  removeContaining(pfn: number, keep: number): IovaProbe {
    let n = this.index.get(pfn);
    if (n === NIL) n = this.containing(pfn);
    if (n === NIL) {
      this.probe.key = -1;
      return this.probe;
    }
    const lo = this.lo[n] as number;
    if (lo === keep) {
      this.probe.key = lo;
      return this.probe;
    }
    this.removeNode(n);
    return this.probe;
  }

  /**
   * Unlinks node n; its successor inherits the gap below n. Probe: key and hi = n's range,
   * next = the successor's key (rb_next), -1 when none.
   */
  private removeNode(n: number): void {
    const lo = this.lo[n] as number;
    const gap = this.gapLo[n] as number;
    const l = this.left[n] as number;
    const r = this.right[n] as number;
    const p = this.parent[n] as number;
    let next: number;
    if (l !== NIL && r !== NIL) {
      // The successor s (leftmost of the right subtree, no left child) takes n's place.
      let s = r;
      while (this.left[s] !== NIL) s = this.left[s] as number;
      next = s;
      this.gapLo[s] = gap;
      let start: number;
      if (s === r) {
        start = s;
      } else {
        start = this.parent[s] as number;
        const sr = this.right[s] as number;
        this.left[start] = sr;
        if (sr !== NIL) this.parent[sr] = start;
        this.right[s] = r;
        this.parent[r] = s;
      }
      this.left[s] = l;
      this.parent[l] = s;
      // s stands where n stood: give it n's aggregates, which p's were computed from, so the
      // early stop in fixUp compares against them.
      this.height[s] = this.height[n] as number;
      this.maxGap[s] = this.maxGap[n] as number;
      this.replaceChild(p, n, s);
      // Payload changed at s (its gap); children changed from start up to s.
      this.fixUp(start, s);
    } else {
      // AVL: a node with one child has a leaf child; that leaf (if right) is the successor,
      // else it is the nearest ancestor n lies left of (found before n is unlinked).
      const child = l !== NIL ? l : r;
      let dirty = NIL;
      if (r !== NIL) {
        next = r;
        this.gapLo[r] = gap;
      } else {
        let c = n;
        let a = p;
        while (a !== NIL && this.right[a] === c) {
          c = a;
          a = this.parent[a] as number;
        }
        next = a;
        if (a !== NIL) {
          this.gapLo[a] = gap;
          dirty = a;
        }
      }
      this.replaceChild(p, n, child);
      if (r !== NIL) this.pull(r);
      this.fixUp(p, dirty);
    }
    const nextKey = next === NIL ? -1 : (this.lo[next] as number);
    const probe = this.probe;
    probe.key = lo;
    probe.hi = this.hi[n] as number;
    probe.next = nextKey;
    if (gap === 0) this.minKey = nextKey;
    this.index.delete(lo);
    this.freeIds.push(n);
    this.size--;
  }

  // ---- queries ------------------------------------------------------------------------------

  /** The node holding pfn, by descent, or NIL. */
  private containing(pfn: number): number {
    let n = this.root;
    while (n !== NIL) {
      if (pfn < (this.lo[n] as number)) n = this.left[n] as number;
      else if (pfn > (this.hi[n] as number)) n = this.right[n] as number;
      else return n;
    }
    return NIL;
  }

  /** The range holding `pfn`, as its key, or -1. */
  findContaining(pfn: number): number {
    let n = this.index.get(pfn);
    if (n === NIL) n = this.containing(pfn);
    return n === NIL ? -1 : (this.lo[n] as number);
  }

  /**
   * The range keyed `key`, by index, O(1) expected. Probe: key and hi = that range, predHi = the
   * range before it (rb_prev; gapLo − 1); all -1 when there is none.
   */
  locate(key: number): IovaProbe {
    const n = this.index.get(key);
    const probe = this.probe;
    if (n === NIL) {
      probe.key = -1;
      probe.hi = -1;
      probe.predHi = -1;
    } else {
      probe.key = key;
      probe.hi = this.hi[n] as number;
      probe.predHi = (this.gapLo[n] as number) - 1;
    }
    return probe;
  }

  /** hi of the range keyed `lo` (which must exist), or -1. */
  hiOf(lo: number): number {
    const n = this.index.get(lo);
    return n === NIL ? -1 : (this.hi[n] as number);
  }

  /** Key of the highest range whose lo < key, or -1 (rb_prev). */
  prevKey(key: number): number {
    let n = this.root;
    let best = -1;
    while (n !== NIL) {
      if ((this.lo[n] as number) < key) {
        best = this.lo[n] as number;
        n = this.right[n] as number;
      } else n = this.left[n] as number;
    }
    return best;
  }

  /** Key of the lowest range whose lo > key, or -1 (rb_next). */
  nextKey(key: number): number {
    let n = this.root;
    let best = -1;
    while (n !== NIL) {
      if ((this.lo[n] as number) > key) {
        best = this.lo[n] as number;
        n = this.left[n] as number;
      } else n = this.right[n] as number;
    }
    return best;
  }

  /**
   * The lowest range whose hi ≥ pfn (iova_find_limit), by descent. Probe: key and hi = that
   * range (-1 when there is none), predHi = the range before it (every range ending below pfn
   * precedes it), -1 when there is none.
   */
  lowestEndingAtOrAbove(pfn: number): IovaProbe {
    let n = this.root;
    let best = -1;
    let bestHi = -1;
    let predHi = -1;
    while (n !== NIL) {
      const h = this.hi[n] as number;
      if (h >= pfn) {
        best = this.lo[n] as number;
        bestHi = h;
        n = this.left[n] as number;
      } else {
        predHi = h;
        n = this.right[n] as number;
      }
    }
    const probe = this.probe;
    probe.key = best;
    probe.hi = bestHi;
    probe.predHi = predHi;
    return probe;
  }

  /** Key of the highest range whose lo ≤ pfn, or -1. */
  highestStartingAtOrBelow(pfn: number): number {
    return this.prevKey(pfn + 1);
  }

  lowestKey(): number {
    return this.minKey;
  }

  /**
   * Key of the highest range r with r.lo < bound whose gap below can hold `size` pfns placed
   * top-down at a multiple of `align` (a power of two): align_down(r.lo − size) ≥ gapLo(r).
   * Returns -1 when no gap below `bound` fits. `bound` ≤ UNCOUNTED (whose gaps maxGap ignores).
   * The bottom gap (below minKey, from 0) is not in maxGap; being the lowest, it is the last
   * candidate and is tried after the tree.
   */
  highestFit(bound: number, size: number, align: number): number {
    const n = this.fitIn(this.root, bound, size, align);
    if (n !== NIL) return this.lo[n] as number;
    const m = this.minKey;
    if (m >= 0 && m < bound && m >= size) return m; // gapLo 0: any candidate ≥ 0 fits
    return -1;
  }

  private fits(n: number, size: number, align: number): boolean {
    const t = (this.lo[n] as number) - size;
    const g = this.gapLo[n] as number;
    return t >= g && t - modPow2(t, align) >= g;
  }

  private fitIn(n: number, bound: number, size: number, align: number): number {
    // Walk down the boundary path; at each node below the bound, look right, then the node,
    // then the whole left subtree (which lies entirely below the bound).
    while (n !== NIL) {
      if ((this.maxGap[n] as number) < size) return NIL;
      if ((this.lo[n] as number) >= bound) {
        n = this.left[n] as number;
        continue;
      }
      const r = this.fitIn(this.right[n] as number, bound, size, align);
      if (r !== NIL) return r;
      if (this.fits(n, size, align)) return n;
      n = this.left[n] as number;
    }
    return NIL;
  }

  /** Gap below the range keyed `lo`, as its start (for gapLo checks by callers), or -1. */
  gapLoOf(lo: number): number {
    const n = this.index.get(lo);
    return n === NIL ? -1 : (this.gapLo[n] as number);
  }

  /**
   * Saved state: the ranges, ascending, as (lo, hi) pairs. Node ids, balance and the index are
   * how this file keeps them, not what they are: a restore inserts the ranges into an empty tree.
   */
  static readonly STATE = describe<IovaTree>('iova-tree', 1, [
    field(
      'ranges',
      f64s,
      (t) => {
        const out = new Float64Array(2 * t.size);
        t.toArray().forEach((r, i) => {
          out[2 * i] = r.lo;
          out[2 * i + 1] = r.hi;
        });
        return out;
      },
      (t, v) => {
        t.clear();
        for (let i = 0; i + 1 < v.length; i += 2) t.insert(v[i] as number, v[i + 1] as number);
      },
    ),
  ]);

  private clear(): void {
    this.lo = new Float64Array(64);
    this.hi = new Float64Array(64);
    this.gapLo = new Float64Array(64);
    this.maxGap = new Float64Array(64);
    this.left = new Int32Array(64);
    this.right = new Int32Array(64);
    this.parent = new Int32Array(64);
    this.height = new Int8Array(64);
    this.root = NIL;
    this.nextFree = 1;
    this.freeIds = [];
    this.size = 0;
    this.minKey = -1;
    this.index.clear();
  }

  /** In-order ranges, for snapshots and tests. */
  toArray(): { lo: number; hi: number }[] {
    const out: { lo: number; hi: number }[] = [];
    const stack: number[] = [];
    let n = this.root;
    while (n !== NIL || stack.length > 0) {
      while (n !== NIL) {
        stack.push(n);
        n = this.left[n] as number;
      }
      n = stack.pop() as number;
      out.push({ lo: this.lo[n] as number, hi: this.hi[n] as number });
      n = this.right[n] as number;
    }
    return out;
  }

  /** Checks every invariant stated at the top; for tests. Throws on the first violation. */
  checkInvariants(): void {
    let prevHi = -1;
    let count = 0;
    let minKey = -1;
    const walk = (n: number, parent: number): { h: number; m: number } => {
      if (n === NIL) return { h: 0, m: 0 };
      if (this.parent[n] !== parent) throw new Error(`parent link wrong at ${this.lo[n]}`);
      const a = walk(this.left[n] as number, n);
      const lo = this.lo[n] as number;
      if (lo <= prevHi) throw new Error(`order/overlap at ${lo}`);
      if ((this.gapLo[n] as number) !== prevHi + 1) throw new Error(`gapLo wrong at ${lo}`);
      if (count === 0) minKey = lo;
      if (this.index.get(lo) !== n) throw new Error(`index wrong at ${lo}`);
      prevHi = this.hi[n] as number;
      count++;
      const b = walk(this.right[n] as number, n);
      if (Math.abs(a.h - b.h) > 1) throw new Error(`unbalanced at ${lo}`);
      const h = Math.max(a.h, b.h) + 1;
      if (h !== this.height[n]) throw new Error(`height wrong at ${lo}`);
      const g = this.gapLo[n] as number;
      const m = Math.max(a.m, b.m, g === 0 || lo >= UNCOUNTED ? 0 : lo - g);
      if (m !== this.maxGap[n]) throw new Error(`maxGap wrong at ${lo}`);
      return { h, m };
    };
    walk(this.root, NIL);
    if (count !== this.size) throw new Error('count wrong');
    if (minKey !== this.minKey) throw new Error('minKey wrong');
    this.index.checkInvariants();
    if (this.index.count !== this.size) throw new Error('index holds stale keys');
  }
}
