// The ordered set of IOVA ranges behind the linux and linux-4.4 allocators: an AVL tree kept
// in typed arrays (no per-node objects, so a million live ranges cost no GC work).
//
// Invariants:
//  - ranges are disjoint and keyed by `lo`; an in-order walk is ascending;
//  - gapLo[n] is where the free gap *below* node n starts: predecessor's hi + 1, or 0 for the
//    lowest node, so the gap below n is [gapLo[n], lo[n]);
//  - maxGap[n] is the longest *counted* gap in n's subtree, where a node's own gap counts unless
//    it is the lowest node (gapLo 0: the bottom gap, tracked through minKey and tried last by
//    highestFit) or keyed at/above UNCOUNTED (the linux anchor: never below any query bound).
//    Neither ever changes an aggregate, so churn at the bottom of the space or right below the
//    anchor (the walk pattern's two ends) stops re-aggregating within a level or two instead
//    of rewriting maxGap up to the root;
//  - minKey is the lowest key, or -1 when empty;
//  - |height(left) − height(right)| ≤ 1 everywhere, so every operation is O(log n).
//
// Node ids are *not* stable across removals (a removal may move a successor's payload into
// the removed slot); callers hold keys (`lo`), never ids.
//
// The kernel walks rb_prev() one range at a time (linear when many holes are too small —
// FAST'15); `highestFit` answers the same question — the highest gap below a bound that can
// hold `size` pfns at a `align`-aligned top-down position — by skipping every subtree whose
// maxGap is too short.

import { modPow2 } from './pfn-math.js';

const NIL = 0;
/** Nodes keyed at or above this (IOVA_ANCHOR) don't count their gap below in maxGap. */
const UNCOUNTED = Number.MAX_SAFE_INTEGER;

export class IovaTree {
  private lo = new Float64Array(64);
  private hi = new Float64Array(64);
  private gapLo = new Float64Array(64);
  private maxGap = new Float64Array(64);
  private left = new Int32Array(64);
  private right = new Int32Array(64);
  private height = new Int8Array(64);
  private root = NIL;
  private nextFree = 1; // ids 1..nextFree-1 have been handed out at least once
  private freeIds: number[] = [];
  private size = 0;
  private minKey = -1;
  /** Side outputs of the last locate/removeContaining/lowestEndingAtOrAbove call. */
  outHi = -1;
  outPredHi = -1;
  outNext = -1;
  // One remembered node (see locate); memoKey NaN when none. Every insert/remove resets it.
  private memoKey = NaN;
  private memoHi = -1;
  private memoPredHi = -1;
  // Scratch path for insert/remove: nodes from the root down and the side taken at each.
  private path = new Int32Array(128);
  private side = new Uint8Array(128);

  get count(): number {
    return this.size;
  }

  private newNode(lo: number, hi: number, gapLo: number): number {
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

  private rotateRight(n: number): number {
    const l = this.left[n] as number;
    this.left[n] = this.right[l] as number;
    this.right[l] = n;
    this.pull(n);
    this.pull(l);
    return l;
  }

  private rotateLeft(n: number): number {
    const r = this.right[n] as number;
    this.right[n] = this.left[r] as number;
    this.left[r] = n;
    this.pull(n);
    this.pull(r);
    return r;
  }

  private balance(n: number): number {
    this.pull(n);
    const l = this.left[n] as number;
    const r = this.right[n] as number;
    const bf = (this.height[l] as number) - (this.height[r] as number);
    if (bf > 1) {
      if ((this.height[this.left[l] as number] as number) < (this.height[this.right[l] as number] as number)) {
        this.left[n] = this.rotateLeft(l);
      }
      return this.rotateRight(n);
    }
    if (bf < -1) {
      if ((this.height[this.right[r] as number] as number) < (this.height[this.left[r] as number] as number)) {
        this.right[n] = this.rotateRight(r);
      }
      return this.rotateLeft(n);
    }
    return n;
  }

  /**
   * Rebalances and re-aggregates path[0..depth-1], bottom-up. Nodes at index ≥ `dirty` may have
   * had their payload or children changed; above that, once a node comes out of balance() with
   * the same height and maxGap and no rotation, nothing above it can change, so it stops.
   */
  private fixPath(depth: number, dirty: number): void {
    for (let i = depth - 1; i >= 0; i--) {
      const n = this.path[i] as number;
      const h0 = this.height[n] as number;
      const m0 = this.maxGap[n] as number;
      const nn = this.balance(n);
      if (nn === n) {
        if (i <= dirty && this.height[n] === h0 && this.maxGap[n] === m0) return;
        continue;
      }
      if (i === 0) this.root = nn;
      else if (this.side[i - 1] === 0) this.left[this.path[i - 1] as number] = nn;
      else this.right[this.path[i - 1] as number] = nn;
    }
  }

  /** Inserts [lo, hi]; the caller guarantees it overlaps nothing. */
  insert(lo: number, hi: number): void {
    let n = this.root;
    let depth = 0;
    let pred = NIL;
    let succ = NIL;
    let succIdx = -1;
    while (n !== NIL) {
      this.path[depth] = n;
      if (lo < (this.lo[n] as number)) {
        succIdx = depth;
        this.side[depth++] = 0;
        succ = n;
        n = this.left[n] as number;
      } else {
        this.side[depth++] = 1;
        pred = n;
        n = this.right[n] as number;
      }
    }
    const x = this.newNode(lo, hi, pred === NIL ? 0 : (this.hi[pred] as number) + 1);
    if (depth === 0) this.root = x;
    else if (this.side[depth - 1] === 0) this.left[this.path[depth - 1] as number] = x;
    else this.right[this.path[depth - 1] as number] = x;
    // The successor of a new leaf is one of its ancestors, so fixPath re-aggregates it.
    if (succ !== NIL) this.gapLo[succ] = hi + 1;
    if (pred === NIL) this.minKey = lo;
    this.memoKey = lo;
    this.memoHi = hi;
    this.memoPredHi = pred === NIL ? -1 : (this.hi[pred] as number);
    this.size++;
    // The new leaf's parent changed (a child); the successor's payload changed.
    this.fixPath(depth, succIdx >= 0 ? succIdx : depth - 1);
  }

  /** Removes the range keyed `lo`. Returns false when there is none. */
  remove(lo: number): boolean {
    let n = this.root;
    let depth = 0;
    let succ = NIL;
    let succIdx = -1;
    while (n !== NIL && (this.lo[n] as number) !== lo) {
      this.path[depth] = n;
      if (lo < (this.lo[n] as number)) {
        succIdx = depth;
        this.side[depth++] = 0;
        succ = n;
        n = this.left[n] as number;
      } else {
        this.side[depth++] = 1;
        n = this.right[n] as number;
      }
    }
    if (n === NIL) return false;
    this.outNext = this.removeAt(n, depth, succ, succIdx);
    return true;
  }

  /**
   * Removes the range holding `pfn` unless its key is `keep`. Returns its key (or -1 when no
   * range holds pfn); when it removed it, its hi is in outHi and the next range's key (rb_next,
   * or -1) in outNext — one descent for free_iova's find_iova + rb_next + remove.
   */
  removeContaining(pfn: number, keep: number): number {
    let n = this.root;
    let depth = 0;
    let succ = NIL;
    let succIdx = -1;
    while (n !== NIL) {
      if (pfn < (this.lo[n] as number)) {
        this.path[depth] = n;
        succIdx = depth;
        this.side[depth++] = 0;
        succ = n;
        n = this.left[n] as number;
      } else if (pfn > (this.hi[n] as number)) {
        this.path[depth] = n;
        this.side[depth++] = 1;
        n = this.right[n] as number;
      } else break;
    }
    if (n === NIL) return -1;
    const lo = this.lo[n] as number;
    this.outHi = this.hi[n] as number;
    if (lo === keep) return lo;
    this.outNext = this.removeAt(n, depth, succ, succIdx);
    return lo;
  }

  /**
   * Unlinks node n found at path depth `depth` (path[0..depth-1] its ancestors; succ the last
   * ancestor it lies left of, at succIdx). Returns the key of its successor, or -1.
   */
  private removeAt(n: number, depth: number, succ: number, succIdx: number): number {
    const gap = this.gapLo[n] as number;
    const wasMin = (this.lo[n] as number) === this.minKey;
    const l = this.left[n] as number;
    const r = this.right[n] as number;
    let next: number;
    let nextHi = -1;
    let dirty: number;
    if (l !== NIL && r !== NIL) {
      // Move the successor's payload here; it inherits the removed range's gap below.
      dirty = depth;
      this.path[depth] = n;
      this.side[depth++] = 1;
      let s = r;
      while (this.left[s] !== NIL) {
        this.path[depth] = s;
        this.side[depth++] = 0;
        s = this.left[s] as number;
      }
      next = this.lo[s] as number;
      nextHi = this.hi[s] as number;
      this.lo[n] = next;
      this.hi[n] = nextHi;
      this.gapLo[n] = gap;
      const parent = this.path[depth - 1] as number;
      if (this.side[depth - 1] === 0) this.left[parent] = this.right[s] as number;
      else this.right[parent] = this.right[s] as number;
      this.freeIds.push(s);
    } else {
      // AVL: a node with one child has a leaf child; that leaf (if right) is the successor.
      const child = l !== NIL ? l : r;
      dirty = depth - 1;
      if (r !== NIL) {
        this.gapLo[r] = gap;
        next = this.lo[r] as number;
        nextHi = this.hi[r] as number;
      } else if (succ !== NIL) {
        this.gapLo[succ] = gap;
        next = this.lo[succ] as number;
        nextHi = this.hi[succ] as number;
        if (succIdx < dirty) dirty = succIdx;
      } else next = -1;
      if (child !== NIL) this.pull(child);
      if (depth === 0) this.root = child;
      else if (this.side[depth - 1] === 0) this.left[this.path[depth - 1] as number] = child;
      else this.right[this.path[depth - 1] as number] = child;
      this.freeIds.push(n);
    }
    if (wasMin) this.minKey = next;
    this.memoKey = next < 0 ? NaN : next;
    this.memoHi = nextHi;
    this.memoPredHi = gap - 1;
    this.size--;
    this.fixPath(depth, dirty);
    return next;
  }

  /**
   * hi of the range keyed `key` (-1 when there is none), with the hi of the range before it
   * (rb_prev; gapLo − 1, so -1 when there is none) in outPredHi. The node the last insert
   * placed, or the successor the last removal reported, is remembered, so the allocator's
   * next look-up of its cached node costs no descent.
   */
  locate(key: number): number {
    if (key === this.memoKey) {
      this.outPredHi = this.memoPredHi;
      return this.memoHi;
    }
    let n = this.root;
    while (n !== NIL) {
      const k = this.lo[n] as number;
      if (key < k) n = this.left[n] as number;
      else if (key > k) n = this.right[n] as number;
      else {
        this.outPredHi = (this.gapLo[n] as number) - 1;
        return this.hi[n] as number;
      }
    }
    this.outPredHi = -1;
    return -1;
  }

  /** The range holding `pfn`, as its key, or -1. */
  findContaining(pfn: number): number {
    let n = this.root;
    while (n !== NIL) {
      if (pfn < (this.lo[n] as number)) n = this.left[n] as number;
      else if (pfn > (this.hi[n] as number)) n = this.right[n] as number;
      else return this.lo[n] as number;
    }
    return -1;
  }

  /** hi of the range keyed `lo` (which must exist). */
  hiOf(lo: number): number {
    let n = this.root;
    while (n !== NIL) {
      const k = this.lo[n] as number;
      if (lo < k) n = this.left[n] as number;
      else if (lo > k) n = this.right[n] as number;
      else return this.hi[n] as number;
    }
    return -1;
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
   * Key of the lowest range whose hi ≥ pfn, or -1; the hi of the range before it (every range
   * ending below pfn precedes it) in outPredHi, or -1 when there is none.
   */
  lowestEndingAtOrAbove(pfn: number): number {
    let n = this.root;
    let best = -1;
    let predHi = -1;
    while (n !== NIL) {
      const h = this.hi[n] as number;
      if (h >= pfn) {
        best = this.lo[n] as number;
        n = this.left[n] as number;
      } else {
        predHi = h;
        n = this.right[n] as number;
      }
    }
    this.outPredHi = predHi;
    return best;
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
   * The bottom gap (below minKey, from 0) is not in
   * maxGap; being the lowest, it is the last candidate and is tried after the tree.
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

  /** Gap below the range keyed `lo`, as its start (for gapLo checks by callers). */
  gapLoOf(lo: number): number {
    let n = this.root;
    while (n !== NIL) {
      const k = this.lo[n] as number;
      if (lo < k) n = this.left[n] as number;
      else if (lo > k) n = this.right[n] as number;
      else return this.gapLo[n] as number;
    }
    return -1;
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
    const walk = (n: number): { h: number; m: number } => {
      if (n === NIL) return { h: 0, m: -Infinity };
      const a = walk(this.left[n] as number);
      const lo = this.lo[n] as number;
      if (lo <= prevHi) throw new Error(`order/overlap at ${lo}`);
      if ((this.gapLo[n] as number) !== prevHi + 1) throw new Error(`gapLo wrong at ${lo}`);
      prevHi = this.hi[n] as number;
      count++;
      const b = walk(this.right[n] as number);
      if (Math.abs(a.h - b.h) > 1) throw new Error(`unbalanced at ${lo}`);
      const h = Math.max(a.h, b.h) + 1;
      if (h !== this.height[n]) throw new Error(`height wrong at ${lo}`);
      const g = this.gapLo[n] as number;
      const m = Math.max(a.m, b.m, g === 0 || lo >= UNCOUNTED ? 0 : lo - g);
      if (Math.max(m, 0) !== this.maxGap[n]) throw new Error(`maxGap wrong at ${lo}`);
      return { h, m };
    };
    walk(this.root);
    if (count !== this.size) throw new Error('count wrong');
    let n = this.root;
    while (n !== NIL && this.left[n] !== NIL) n = this.left[n] as number;
    if ((n === NIL ? -1 : (this.lo[n] as number)) !== this.minKey) throw new Error('minKey wrong');
  }
}
