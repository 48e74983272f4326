// Live mappings by handle. Handles grow monotonically (never reused, so dma-debug can tell a
// stale handle from a wild one), and harnesses churn through millions of them while a million
// others stay live. A plain Map at that size rehashes its whole backing store every few
// thousand deletes+inserts, and each new store is a large old-space object that drags in a
// full GC. Here handles live in fixed pages of PAGE slots: a pair of map/unmap calls touches one
// page, and a page is dropped as soon as its last live handle is.
//
// Invariants: pages.get(h >> SHIFT)[h & MASK] is the mapping for live handle h; `live[p]` counts
// the non-empty slots of page p; no empty page is kept except the tail (highest) page.

import { describe, field, list, num, type Codec, type StateDescription } from './state/codec.js';

const SHIFT = 12;
const PAGE = 1 << SHIFT;
const MASK = PAGE - 1;

interface Page<T> {
  slots: (T | undefined)[];
  live: number;
}

export class HandleTable<T> {
  /**
   * The saved state of a handle table of `value`s: its tail page, then its live values in handle
   * order (`handleOf` gives each one's handle). Pages are rebuilt from the handles; the tail is kept
   * even when empty, as a live table keeps it (the memory budget counts pages).
   */
  static state<T>(value: Codec<T>, handleOf: (v: T) => number): StateDescription<HandleTable<T>> {
    return describe<HandleTable<T>>('handle-table', 1, [
      field('tail', num, (o) => o.tail, (o, v) => o.restoreTail(v)),
      field(
        'values',
        list(value),
        (o) => [...o.values()],
        (o, v) => {
          for (const x of v) o.set(handleOf(x), x);
        },
      ),
    ]);
  }

  private readonly pages = new Map<number, Page<T>>();
  private count = 0;
  /** The page new handles land in: kept even when empty, or a map/unmap pair would rebuild it each time. */
  private tail = -1;

  get size(): number {
    return this.count;
  }

  /** Pages held (each costs PAGE slots, however few are live): the memory budget charges them. */
  get pageCount(): number {
    return this.pages.size;
  }

  /** Empties the table and makes page `tail` its (empty) tail: the start of a restore. */
  private restoreTail(tail: number): void {
    this.pages.clear();
    this.count = 0;
    this.tail = tail;
    if (tail >= 0) this.pages.set(tail, { slots: new Array<T | undefined>(PAGE).fill(undefined), live: 0 });
  }

  get(handle: number): T | undefined {
    return this.pages.get(Math.floor(handle / PAGE))?.slots[handle & MASK];
  }

  set(handle: number, value: T): void {
    const p = Math.floor(handle / PAGE);
    let page = this.pages.get(p);
    if (!page) this.pages.set(p, (page = { slots: new Array<T | undefined>(PAGE).fill(undefined), live: 0 }));
    if (p > this.tail) {
      const old = this.pages.get(this.tail);
      if (old && old.live === 0) this.pages.delete(this.tail);
      this.tail = p;
    }
    if (page.slots[handle & MASK] === undefined) {
      page.live++;
      this.count++;
    }
    page.slots[handle & MASK] = value;
  }

  delete(handle: number): boolean {
    const p = Math.floor(handle / PAGE);
    const page = this.pages.get(p);
    if (!page || page.slots[handle & MASK] === undefined) return false;
    page.slots[handle & MASK] = undefined;
    this.count--;
    if (--page.live === 0 && p !== this.tail) this.pages.delete(p);
    return true;
  }

  /** Live values in ascending handle order (those above `after`, when given). */
  *values(after = 0): IterableIterator<T> {
    const from = after + 1;
    for (const p of [...this.pages.keys()].sort((a, b) => a - b)) {
      if ((p + 1) * PAGE <= from) continue;
      const page = this.pages.get(p);
      if (!page) continue;
      for (let i = Math.max(0, from - p * PAGE); i < PAGE; i++) {
        const v = page.slots[i];
        if (v !== undefined) yield v;
      }
    }
  }
}
