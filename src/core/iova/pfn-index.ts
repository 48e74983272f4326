// The key index of IovaTree: each live range's first pfn → its node id, so that a known key
// costs one hash probe instead of a descent from the root. Open addressing in typed arrays (no
// per-entry objects: a million live ranges cost no GC work), linear probing, backward-shift
// deletion (no tombstones, so probe runs never lengthen with churn).
//
// Invariants:
//  - slot i is empty iff node[i] = NIL (0); node ids are ≥ 1;
//  - every stored key is reachable from its home slot, slot(key), by stepping +1 (mod the
//    capacity) over occupied slots only: no empty slot lies between a key's home and its slot;
//  - each key is stored at most once; keys are integers in [0, 2^53);
//  - the capacity is a power of two (mask = capacity − 1) and at least twice the count
//    (load ≤ 1/2), which keeps expected probe runs short.

export const NIL = 0;
const TWO32 = 0x100000000;

export class PfnIndex {
  private keys = new Float64Array(128);
  private nodes = new Int32Array(128);
  private mask = 127;
  private size = 0;

  get count(): number {
    return this.size;
  }

  private slot(key: number): number {
    // Keys reach 2^52, past 32-bit bitwise operators: mix both 32-bit halves.
    const lo32 = key >>> 0;
    const hi32 = (key - lo32) / TWO32;
    let h = Math.imul(lo32 ^ Math.imul(hi32, 0x9e3779b1), 0x85ebca6b);
    h ^= h >>> 16;
    return h & this.mask;
  }

  /** Empty again, at the starting capacity (a restore rebuilds the index from its tree). */
  clear(): void {
    this.keys = new Float64Array(128);
    this.nodes = new Int32Array(128);
    this.mask = 127;
    this.size = 0;
  }

  /** The node stored for `key`, or NIL. */
  get(key: number): number {
    const mask = this.mask;
    let i = this.slot(key);
    for (;;) {
      const n = this.nodes[i] as number;
      if (n === NIL || this.keys[i] === key) return n;
      i = (i + 1) & mask;
    }
  }

  /** Stores key → n; the caller guarantees `key` is not stored yet. */
  add(key: number, n: number): void {
    if (2 * (this.size + 1) > this.mask + 1) this.grow();
    const mask = this.mask;
    let i = this.slot(key);
    while (this.nodes[i] !== NIL) i = (i + 1) & mask;
    this.keys[i] = key;
    this.nodes[i] = n;
    this.size++;
  }

  /** Drops `key`, which the caller guarantees is stored. */
  delete(key: number): void {
    const mask = this.mask;
    let i = this.slot(key);
    while (this.keys[i] !== key || this.nodes[i] === NIL) i = (i + 1) & mask;
    // Backward shift: pull later entries of the probe run into the hole when their home allows.
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const n = this.nodes[j] as number;
      if (n === NIL) break;
      const home = this.slot(this.keys[j] as number);
      // Entry at j may move to i iff its home is not cyclically in (i, j].
      if (i <= j ? home > i && home <= j : home > i || home <= j) continue;
      this.keys[i] = this.keys[j] as number;
      this.nodes[i] = n;
      i = j;
    }
    this.nodes[i] = NIL;
    this.size--;
  }

  private grow(): void {
    const oldKey = this.keys;
    const oldNode = this.nodes;
    const cap = (this.mask + 1) * 2;
    this.keys = new Float64Array(cap);
    this.nodes = new Int32Array(cap);
    this.mask = cap - 1;
    for (let i = 0; i < oldNode.length; i++) {
      const n = oldNode[i] as number;
      if (n === NIL) continue;
      let k = this.slot(oldKey[i] as number);
      while (this.nodes[k] !== NIL) k = (k + 1) & this.mask;
      this.keys[k] = oldKey[i] as number;
      this.nodes[k] = n;
    }
  }

  /** Checks the invariants stated at the top; for tests. Throws on the first violation. */
  checkInvariants(): void {
    let occupied = 0;
    for (let i = 0; i <= this.mask; i++) {
      const n = this.nodes[i] as number;
      if (n === NIL) continue;
      occupied++;
      // get() stops at the first empty slot or the first copy of the key: finding this very
      // slot proves the probe run is unbroken and no earlier copy exists.
      const key = this.keys[i] as number;
      let k = this.slot(key);
      while (this.nodes[k] !== NIL && this.keys[k] !== key) k = (k + 1) & this.mask;
      if (k !== i) throw new Error(`index: key ${key} unreachable or stored twice`);
    }
    if (occupied !== this.size) throw new Error('index: count wrong');
    if (2 * this.size > this.mask + 1) throw new Error('index: load above 1/2');
  }
}
