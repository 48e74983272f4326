// The ordered set of IOVA ranges behind the linux and linux-4.4 allocators: an AVL tree kept
// in typed arrays (no per-node objects, so a million live ranges cost no GC work), with parent
// links and a hash index from each range's first pfn to its node.
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
// The kernel walks rb_prev() one range at a time (linear when many holes are too small —
// FAST'15); `highestFit` answers the same question — the highest gap below a bound that can
// hold `size` pfns at a `align`-aligned top-down position — by skipping every subtree whose
// maxGap is too short.

import { modPow2 } from './pfn-math.js';

const NIL = 0;
/** Nodes keyed at or above this (IOVA_ANCHOR) don't count their gap below in maxGap. */
const UNCOUNTED = Number.MAX_SAFE_INTEGER;
const TWO32 = 0x100000000;

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
  // Open-addressing index key → node (linear probing, backward-shift deletion; node NIL = empty).
  private hKey = new Float64Array(128);
  private hNode = new Int32Array(128);
  private hMask = 127;
  /** Side outputs of the last locate / removeContaining / lowestEndingAtOrAbove / remove call. */
  outHi = -1;
  outPredHi = -1;
  outNext = -1;

  get count(): number {
    return this.size;
  }

  // ---- index ------------------------------------------------------------------------------

  private slot(key: number): number {
    // Keys are integers below 2^53: mix both 32-bit halves.
    const lo32 = key >>> 0;
    const hi32 = (key - lo32) / TWO32;
    let h = Math.imul(lo32 ^ Math.imul(hi32, 0x9e3779b1), 0x85ebca6b);
    h ^= h >>> 16;
    return h & this.hMask;
  }

  /** The node keyed `key`, or NIL. */
  private node(key: number): number {
    const mask = this.hMask;
    let i = this.slot(key);
    for (;;) {
      const n = this.hNode[i] as number;
      if (n === NIL || this.hKey[i] === key) return n;
      i = (i + 1) & mask;
    }
  }

  private indexAdd(key: number, n: number): void {
    if (2 * (this.size + 1) > this.hMask + 1) this.indexGrow();
    const mask = this.hMask;
    let i = this.slot(key);
    while (this.hNode[i] !== NIL) i = (i + 1) & mask;
    this.hKey[i] = key;
    this.hNode[i] = n;
  }

  private indexDelete(key: number): void {
    const mask = this.hMask;
    let i = this.slot(key);
    while (this.hKey[i] !== key || this.hNode[i] === NIL) i = (i + 1) & mask;
    // Backward shift: pull later entries of the probe run into the hole when their home allows.
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const n = this.hNode[j] as number;
      if (n === NIL) break;
      const home = this.slot(this.hKey[j] as number);
      // Entry at j may move to i iff its home is not cyclically in (i, j].
      if (i <= j ? home > i && home <= j : home > i || home <= j) continue;
      this.hKey[i] = this.hKey[j] as number;
      this.hNode[i] = n;
      i = j;
    }
    this.hNode[i] = NIL;
  }

  private indexGrow(): void {
    const oldKey = this.hKey;
    const oldNode = this.hNode;
    const cap = (this.hMask + 1) * 2;
    this.hKey = new Float64Array(cap);
    this.hNode = new Int32Array(cap);
    this.hMask = cap - 1;
    for (let i = 0; i < oldNode.length; i++) {
      const n = oldNode[i] as number;
      if (n === NIL) continue;
      let k = this.slot(oldKey[i] as number);
      while (this.hNode[k] !== NIL) k = (k + 1) & this.hMask;
      this.hKey[k] = oldKey[i] as number;
      this.hNode[k] = n;
    }
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
    const s = this.node(nextKey);
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

  /** Hangs a new leaf under p (NIL: as the root); succ (NIL or an ancestor) is its successor. */
  private attach(p: number, goLeft: boolean, lo: number, hi: number, gapLo: number, succ: number): void {
    const x = this.newNode(lo, hi, gapLo, p);
    if (p === NIL) this.root = x;
    else if (goLeft) this.left[p] = x;
    else this.right[p] = x;
    if (succ !== NIL) this.gapLo[succ] = hi + 1;
    if (gapLo === 0) this.minKey = lo;
    this.indexAdd(lo, x);
    this.size++;
    this.outHi = hi;
    this.outPredHi = gapLo - 1;
    this.fixUp(p, succ);
  }

  /** Removes the range keyed `lo`. Returns false when there is none; outNext as below. */
  remove(lo: number): boolean {
    const n = this.node(lo);
    if (n === NIL) return false;
    this.removeNode(n);
    return true;
  }

  /**
   * Removes the range holding `pfn` unless its key is `keep`. Returns its key (or -1 when no
   * range holds pfn); when it removed it, its hi is in outHi and the next range's key (rb_next,
   * or -1) in outNext — free_iova's find_iova + rb_next + remove, with no descent when pfn is
   * the range's first pfn.
   */
  removeContaining(pfn: number, keep: number): number {
    let n = this.node(pfn);
    if (n === NIL) n = this.containing(pfn);
    if (n === NIL) return -1;
    const lo = this.lo[n] as number;
    if (lo === keep) return lo;
    this.outHi = this.hi[n] as number;
    this.removeNode(n);
    return lo;
  }

  /** Unlinks node n; its successor (key in outNext, -1 when none) inherits the gap below n. */
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
    this.outNext = next === NIL ? -1 : (this.lo[next] as number);
    if (gap === 0) this.minKey = this.outNext;
    this.indexDelete(lo);
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
    let n = this.node(pfn);
    if (n === NIL) n = this.containing(pfn);
    return n === NIL ? -1 : (this.lo[n] as number);
  }

  /**
   * hi of the range keyed `key` (-1 when there is none), with the hi of the range before it
   * (rb_prev; gapLo − 1, so -1 when there is none) in outPredHi. O(1) expected.
   */
  locate(key: number): number {
    const n = this.node(key);
    if (n === NIL) {
      this.outPredHi = -1;
      return -1;
    }
    this.outPredHi = (this.gapLo[n] as number) - 1;
    return this.hi[n] as number;
  }

  /** hi of the range keyed `lo` (which must exist), or -1. */
  hiOf(lo: number): number {
    const n = this.node(lo);
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
    const n = this.node(lo);
    return n === NIL ? -1 : (this.gapLo[n] as number);
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
      if (this.node(lo) !== n) throw new Error(`index wrong at ${lo}`);
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
    let indexed = 0;
    for (let i = 0; i <= this.hMask; i++) if (this.hNode[i] !== NIL) indexed++;
    if (indexed !== this.size) throw new Error('index holds stale keys');
  }
}
