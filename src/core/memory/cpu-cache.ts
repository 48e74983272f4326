// The CPU's data cache for a non-coherent device (semantics §8): 64-byte lines, write-back,
// allocate on read and write, never evicted by capacity — so a line the CPU touched stays
// until the driver's maintenance (or lack of it) says otherwise. That is what makes a missing
// sync visible: the CPU keeps reading the stale line, the device keeps reading stale RAM.
//
// Lines are grouped by 4 KiB chunk (one Map lookup and bulk copies per chunk, not per line).
// Invariants: state[l] & PRESENT means line l of the chunk holds the RAM contents as of its fill
// plus the CPU's writes since; & DIRTY means RAM is older than the line; `present` counts the
// chunk's present lines and no chunk without any is kept. Maintenance works on whole lines
// covering a range (clean and invalidate round out to lines, as dcache_clean_poc /
// dcache_inval_poc do, and the latter cleans partial lines at the edges first).

import { describe, field, list, num, record, StateError, u8s } from '../state/codec.js';
import { CHUNK, chunkSpans, type Ram } from './ram.js';

export const LINE = 64;
const LINES = CHUNK / LINE;
const PRESENT = 1;
const DIRTY = 2;

interface Chunk {
  data: Uint8Array;
  state: Uint8Array;
  present: number;
}

const chunkEntry = record<{ index: number; data: Uint8Array; state: Uint8Array; present: number }>({ index: num, data: u8s, state: u8s, present: num }, ['index', 'data', 'state', 'present']);

export class CpuCache {
  /** Saved state: each chunk's lines (bytes and PRESENT/DIRTY per line), in the order they were made, and the line count. */
  static readonly STATE = describe<CpuCache>('cpu-cache', 1, [
    field(
      'chunks',
      list(chunkEntry),
      (o) => [...o.chunks].map(([index, c]) => ({ index, data: c.data, state: c.state, present: c.present })),
      (o, v) => {
        o.chunks.clear();
        for (const c of v) {
          if (c.data.length !== CHUNK || c.state.length !== LINES) throw new StateError(`cache chunk ${c.index} of another size`);
          o.chunks.set(c.index, { data: c.data, state: c.state, present: c.present });
        }
      },
    ),
    field('lineCount', num, (o) => o.lineCount, (o, v) => (o.lineCount = v)),
  ]);

  private readonly chunks = new Map<number, Chunk>();
  private lineCount = 0;

  constructor(private readonly ram: Ram) {}

  get empty(): boolean {
    return this.lineCount === 0;
  }

  get bytes(): number {
    return this.lineCount * LINE;
  }

  /** Chunks held: one line present costs a whole chunk (the memory budget charges these). */
  get chunkCount(): number {
    return this.chunks.size;
  }

  /** Chunks an access to [phys, phys + length) would create. */
  missingChunks(phys: number, length: number): number {
    let missing = 0;
    for (let c = Math.floor(phys / CHUNK); c * CHUNK < phys + length; c++) if (!this.chunks.has(c)) missing++;
    return missing;
  }

  /** Lines an access to [phys, phys + length) would allocate. */
  missingLines(phys: number, length: number): number {
    let missing = 0;
    chunkSpans(phys, length, (c, lo, hi) => {
      const ch = this.chunks.get(c);
      for (let l = Math.floor(lo / LINE); l * LINE < hi; l++) if (!ch || !((ch.state[l] as number) & PRESENT)) missing++;
    });
    return missing;
  }

  read(phys: number, out: Uint8Array): void {
    chunkSpans(phys, out.length, (c, lo, hi, done) => {
      const ch = this.fill(c, lo, hi, false);
      out.set(ch.data.subarray(lo, hi), done);
    });
  }

  write(phys: number, data: Uint8Array): void {
    chunkSpans(phys, data.length, (c, lo, hi, done) => {
      const ch = this.fill(c, lo, hi, true);
      ch.data.set(data.subarray(done, done + hi - lo), lo);
      for (let l = Math.floor(lo / LINE); l * LINE < hi; l++) ch.state[l] = PRESENT | DIRTY;
    });
  }

  /** Writes dirty lines in the range back to RAM. */
  clean(phys: number, length: number): void {
    this.maintain(phys, length, () => false);
  }

  /** Drops the lines in the range; lines only partly inside are cleaned first. */
  invalidate(phys: number, length: number): void {
    const end = phys + length;
    this.maintain(phys, length, (addr, dirty) => {
      if (dirty && (addr < phys || addr + LINE > end)) this.ram.write(addr, this.scratch);
      return true;
    });
  }

  cleanInvalidate(phys: number, length: number): void {
    this.maintain(phys, length, (addr, dirty) => {
      if (dirty) this.ram.write(addr, this.scratch);
      return true;
    });
  }

  private scratch: Uint8Array = new Uint8Array(0);

  /**
   * Visits the cached lines of the range. `drop(addr, dirty)` (with the line's bytes in
   * `scratch`) says whether the line goes; a line that stays is cleaned.
   */
  private maintain(phys: number, length: number, drop: (addr: number, dirty: boolean) => boolean): void {
    if (this.lineCount === 0 || length <= 0) return;
    const visit = (c: number, ch: Chunk, lo: number, hi: number): void => {
      for (let l = Math.floor(lo / LINE); l * LINE < hi; l++) {
        const st = ch.state[l] as number;
        if (!(st & PRESENT)) continue;
        const addr = c * CHUNK + l * LINE;
        this.scratch = ch.data.subarray(l * LINE, (l + 1) * LINE);
        const dirty = (st & DIRTY) !== 0;
        if (drop(addr, dirty)) {
          ch.state[l] = 0;
          ch.present--;
          this.lineCount--;
        } else if (dirty) {
          this.ram.write(addr, this.scratch);
          ch.state[l] = PRESENT;
        }
      }
      if (ch.present === 0) this.chunks.delete(c);
    };
    const first = Math.floor(phys / CHUNK);
    const last = Math.floor((phys + length - 1) / CHUNK);
    if (last - first + 1 <= this.chunks.size) {
      chunkSpans(phys, length, (c, lo, hi) => {
        const ch = this.chunks.get(c);
        if (ch) visit(c, ch, lo, hi);
      });
    } else {
      // A huge range over a small cache: walk the cache instead.
      for (const [c, ch] of [...this.chunks]) {
        if (c < first || c > last) continue;
        const lo = Math.max(phys, c * CHUNK) - c * CHUNK;
        const hi = Math.min(phys + length, (c + 1) * CHUNK) - c * CHUNK;
        visit(c, ch, lo, hi);
      }
    }
  }

  /** The chunk with every line of [lo, hi) present (a write need not fill lines it covers whole). */
  private fill(c: number, lo: number, hi: number, forWrite: boolean): Chunk {
    let ch = this.chunks.get(c);
    if (!ch) this.chunks.set(c, (ch = { data: new Uint8Array(CHUNK), state: new Uint8Array(LINES), present: 0 }));
    for (let l = Math.floor(lo / LINE); l * LINE < hi; l++) {
      if ((ch.state[l] as number) & PRESENT) continue;
      const whole = forWrite && lo <= l * LINE && (l + 1) * LINE <= hi;
      if (!whole) this.ram.read(c * CHUNK + l * LINE, ch.data, l * LINE, LINE);
      ch.state[l] = PRESENT;
      ch.present++;
      this.lineCount++;
    }
    return ch;
  }
}
