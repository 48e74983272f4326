// The CPU's data cache for a non-coherent device (semantics §8): 64-byte lines, write-back,
// allocate on read and write, never evicted by capacity — so a line the CPU touched stays
// until the driver's maintenance (or lack of it) says otherwise. That is what makes a missing
// sync visible: the CPU keeps reading the stale line, the device keeps reading stale RAM.
//
// Invariants: a line holds the RAM contents as of its fill plus the CPU's writes since;
// `dirty` means RAM is older than the line. Maintenance works on whole lines covering a range
// (clean and invalidate round out to lines, as dcache_clean_poc / dcache_inval_poc do, and the
// latter cleans partial lines at the edges first).

import type { Ram } from './ram.js';

export const LINE = 64;

interface Line {
  data: Uint8Array;
  dirty: boolean;
}

export class CpuCache {
  private readonly lines = new Map<number, Line>();

  constructor(private readonly ram: Ram) {}

  get empty(): boolean {
    return this.lines.size === 0;
  }

  get bytes(): number {
    return this.lines.size * LINE;
  }

  /** Lines an access to [phys, phys + length) would allocate. */
  missingLines(phys: number, length: number): number {
    let missing = 0;
    for (let i = Math.floor(phys / LINE); i * LINE < phys + length; i++) if (!this.lines.has(i)) missing++;
    return missing;
  }

  read(phys: number, out: Uint8Array): void {
    this.each(phys, out.length, (line, o, n, done) => out.set(line.data.subarray(o, o + n), done));
  }

  write(phys: number, data: Uint8Array): void {
    this.each(phys, data.length, (line, o, n, done) => {
      line.data.set(data.subarray(done, done + n), o);
      line.dirty = true;
    });
  }

  /** Writes dirty lines in the range back to RAM. */
  clean(phys: number, length: number): void {
    this.forCached(phys, length, (idx, line) => this.writeBack(idx, line));
  }

  /** Drops the lines in the range; lines only partly inside are cleaned first. */
  invalidate(phys: number, length: number): void {
    const end = phys + length;
    this.forCached(phys, length, (idx, line) => {
      const partial = idx * LINE < phys || (idx + 1) * LINE > end;
      if (partial) this.writeBack(idx, line);
      this.lines.delete(idx);
    });
  }

  cleanInvalidate(phys: number, length: number): void {
    this.forCached(phys, length, (idx, line) => {
      this.writeBack(idx, line);
      this.lines.delete(idx);
    });
  }

  private writeBack(idx: number, line: Line): void {
    if (!line.dirty) return;
    this.ram.write(idx * LINE, line.data);
    line.dirty = false;
  }

  /** Visits the cached lines of a range, walking whichever is smaller: the range or the cache. */
  private forCached(phys: number, length: number, fn: (idx: number, line: Line) => void): void {
    if (this.lines.size === 0 || length <= 0) return;
    const first = Math.floor(phys / LINE);
    const last = Math.floor((phys + length - 1) / LINE);
    if (last - first + 1 <= this.lines.size) {
      for (let i = first; i <= last; i++) {
        const line = this.lines.get(i);
        if (line) fn(i, line);
      }
    } else {
      for (const [i, line] of [...this.lines]) if (i >= first && i <= last) fn(i, line);
    }
  }

  private each(phys: number, length: number, fn: (line: Line, o: number, n: number, done: number) => void): void {
    let done = 0;
    while (done < length) {
      const p = phys + done;
      const idx = Math.floor(p / LINE);
      const o = p - idx * LINE;
      const n = Math.min(LINE - o, length - done);
      let line = this.lines.get(idx);
      if (!line) {
        line = { data: new Uint8Array(LINE), dirty: false };
        this.ram.read(idx * LINE, line.data);
        this.lines.set(idx, line);
      }
      fn(line, o, n, done);
      done += n;
    }
  }
}
