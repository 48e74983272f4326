// dma-debug's active cacheline tracking (kernel/dma/debug.c, dma_active_cacheline): every
// debug entry that lets the device write memory (not DMA_TO_DEVICE) is keyed by the cacheline
// of its *first* byte — map_page/map_single and coherent buffers one entry, map_sg one per
// mapped segment, keyed by the CPU entry of the same index (debug_dma_map_sg walks the first
// mapped_ents entries). A second live entry on the same line is an overlap the kernel reports.
//
// Invariants: `overlap` holds, per tracked line, the live entries on it minus one, saturating at
// ACTIVE_CACHELINE_MAX_OVERLAP as the kernel's three radix-tree tags do; so past eight mappings
// the count is lost, and the line is untracked one unmap early, exactly as in the kernel. The
// "exceeded" warning is WARN_ONCE: once per session (per boot in Linux).

import { ACTIVE_CACHELINE_MAX_OVERLAP, type DmaDebug } from './dma-debug.js';
import type { Mapping } from './mapping.js';
import { bool, describe, f64s, field } from './state/codec.js';
import { LINE } from './memory/cpu-cache.js';

export class CachelineTracker {
  /** Saved state: the overlap count of each tracked cacheline (as pairs, in insertion order), and whether the one-time warning was given. */
  static readonly STATE = describe<CachelineTracker>('dma-debug-cacheline', 1, [
    field(
      'overlap',
      f64s,
      (o) => Float64Array.from([...o.overlap].flat()),
      (o, v) => {
        o.overlap.clear();
        for (let i = 0; i + 1 < v.length; i += 2) o.overlap.set(v[i] as number, v[i + 1] as number);
      },
    ),
    field('warnedOnce', bool, (o) => o.warnedOnce, (o, v) => (o.warnedOnce = v)),
  ]);

  private readonly overlap = new Map<number, number>();
  private warnedOnce = false;

  constructor(private readonly debug: DmaDebug) {}

  /** add_dma_entry → active_cacheline_insert, for each debug entry of a new mapping. */
  insert(m: Mapping, skipCpuSync: boolean): void {
    if (m.dir === 'to_device') return; // the device does not write: no stale-data concern
    const n = m.kind === 'map_sg' ? m.segments.length : 1;
    for (let i = 0; i < n; i++) {
      const cln = Math.floor((m.sg[i] as Mapping['sg'][number]).phys / LINE);
      const o = this.overlap.get(cln);
      if (o === undefined) {
        this.overlap.set(cln, 0);
        continue;
      }
      // active_cacheline_inc_overlap: the counter cannot go past 7; the WARN_ONCE says so.
      if (o + 1 > ACTIVE_CACHELINE_MAX_OVERLAP) {
        if (!this.warnedOnce) this.debug.cachelineOverflow(m.handle, cln);
        this.warnedOnce = true;
      } else this.overlap.set(cln, o + 1);
      // DMA_ATTR_SKIP_CPU_SYNC excuses the overlap (the driver manages the cache itself).
      if (!skipCpuSync) this.debug.cachelineOverlap(m.handle);
    }
  }

  /** dma_entry_free → active_cacheline_remove. */
  remove(m: Mapping): void {
    if (m.dir === 'to_device') return;
    const n = m.kind === 'map_sg' ? m.segments.length : 1;
    for (let i = 0; i < n; i++) {
      const cln = Math.floor((m.sg[i] as Mapping['sg'][number]).phys / LINE);
      const o = this.overlap.get(cln);
      if (o === undefined) continue;
      if (o === 0) this.overlap.delete(cln);
      else this.overlap.set(cln, o - 1);
    }
  }
}
