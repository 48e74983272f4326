// Sparse emulated RAM: 4 KiB chunks created on first write, so a 52-bit physical space costs
// only what is touched. Reads of untouched memory return zeros without creating anything.
//
// Invariants: a chunk exists only once a non-zero byte was written into it; `chunks.size`
// × CHUNK is the session's memory footprint (bytesTouched).

import { describe, field, list, num, record, StateError, u8s } from '../state/codec.js';

export const CHUNK = 4096;

/** fn(chunk, lo, hi, done) for each 4 KiB chunk [phys, phys + length) touches: [lo, hi) relative to the chunk, `done` bytes before it. */
export function chunkSpans(phys: number, length: number, fn: (c: number, lo: number, hi: number, done: number) => void): void {
  let done = 0;
  while (done < length) {
    const p = phys + done;
    const c = Math.floor(p / CHUNK);
    const lo = p - c * CHUNK;
    const hi = Math.min(lo + length - done, CHUNK);
    fn(c, lo, hi, done);
    done += hi - lo;
  }
}

const chunkEntry = record<{ index: number; bytes: Uint8Array }>({ index: num, bytes: u8s }, ['index', 'bytes']);

export class Ram {
  /** Saved state: the touched 4 KiB chunks, by chunk number, in the order they were made. */
  static readonly STATE = describe<Ram>('ram', 1, [
    field(
      'chunks',
      list(chunkEntry),
      (o) => [...o.chunks].map(([index, bytes]) => ({ index, bytes })),
      (o, v) => {
        o.chunks.clear();
        for (const c of v) {
          if (c.bytes.length !== CHUNK) throw new StateError(`RAM chunk ${c.index} of ${c.bytes.length} bytes (chunks are ${CHUNK})`);
          o.chunks.set(c.index, c.bytes);
        }
      },
    ),
  ]);

  private readonly chunks = new Map<number, Uint8Array>();

  get bytesTouched(): number {
    return this.chunks.size * CHUNK;
  }

  get chunkCount(): number {
    return this.chunks.size;
  }

  /** Chunks a write of [phys, phys + length) would create. */
  missingChunks(phys: number, length: number): number {
    let missing = 0;
    for (let c = Math.floor(phys / CHUNK); c * CHUNK < phys + length; c++) if (!this.chunks.has(c)) missing++;
    return missing;
  }

  read(phys: number, out: Uint8Array, at = 0, length = out.length - at): void {
    chunkSpans(phys, length, (c, o, hi, done) => {
      const chunk = this.chunks.get(c);
      if (chunk) out.set(chunk.subarray(o, hi), at + done);
      else out.fill(0, at + done, at + done + hi - o);
    });
  }

  write(phys: number, data: Uint8Array, at = 0, length = data.length - at): void {
    chunkSpans(phys, length, (c, o, hi, done) => {
      const src = data.subarray(at + done, at + done + hi - o);
      let chunk = this.chunks.get(c);
      if (!chunk && src.some((b) => b !== 0)) this.chunks.set(c, (chunk = new Uint8Array(CHUNK)));
      if (chunk) chunk.set(src, o);
    });
  }



  /** Zeroes a range (alloc_coherent's pages): whole chunks are simply dropped. */
  zero(phys: number, length: number): void {
    for (let c = Math.floor(phys / CHUNK); c * CHUNK < phys + length; c++) {
      const chunk = this.chunks.get(c);
      if (!chunk) continue;
      const lo = Math.max(phys, c * CHUNK) - c * CHUNK;
      const hi = Math.min(phys + length, (c + 1) * CHUNK) - c * CHUNK;
      if (lo === 0 && hi === CHUNK) this.chunks.delete(c);
      else chunk.fill(0, lo, hi);
    }
  }
}
