// The checks of kernel/dma/debug.c that apply to an emulated device (semantics §9), in the
// kernel's words. Findings never change what the emulator does; they are reported on the
// response that triggered them (takeFresh) and kept for GET /debug (all).
//
// Invariants: seq numbers grow by one per finding within a session; at most MAX_FINDINGS are
// kept (the kernel stops printing too: dma-debug has a bounded entry pool), and the last kept
// finding says how many were dropped.

import { describe, field, list, listIn, nullable, num, record, str } from './state/codec.js';
import type { DmaDirection } from './constants.js';
import type { Mapping } from './mapping.js';
import { SILENT_OBSERVER, type DmaObserver } from './observer.js';
import { modPow2 } from './iova/pfn-math.js';

/** schemas/common.ts's DebugFinding must stay this shape (checked there at compile time). */
export interface DebugFinding {
  seq: number;
  check: string;
  message: string;
  handle: number | null;
}

const MAX_FINDINGS = 10_000;

/** (1 << RADIX_TREE_MAX_TAGS) − 1: the overlap count lives in three radix-tree tags. */
export const ACTIVE_CACHELINE_MAX_OVERLAP = 7;

const DIR_NAME: Record<DmaDirection, string> = {
  bidirectional: 'DMA_BIDIRECTIONAL',
  to_device: 'DMA_TO_DEVICE',
  from_device: 'DMA_FROM_DEVICE',
  none: 'DMA_NONE',
};

// debug.c's type2name, typo included, so grep on kernel logs finds the same words.
const TYPE_NAME: Record<Mapping['kind'], string> = {
  map_page: 'single',
  map_sg: 'scather-gather',
  coherent: 'coherent',
};

/** debug.c prints device addresses as 0x%016llx. */
function addr16(addr: string): string {
  return '0x' + addr.slice(2).padStart(16, '0');
}

const findingCodec = record<DebugFinding>({ seq: num, check: str, message: str, handle: nullable(num) }, ['seq', 'check', 'message', 'handle']);

export class DmaDebug {
  /** Saved state: the kept findings, those not yet handed to an answer (a call that threw), the sequence, how many were dropped. */
  static readonly STATE = describe<DmaDebug>('dma-debug', 1, [
    listIn('kept', findingCodec, (o) => o.kept),
    field('fresh', nullable(list(findingCodec)), (o) => o.fresh ?? null, (o, v) => (o.fresh = v ?? undefined)),
    field('seq', num, (o) => o.seq, (o, v) => (o.seq = v)),
    field('dropped', num, (o) => o.dropped, (o, v) => (o.dropped = v)),
  ]);

  private readonly kept: DebugFinding[] = [];
  private fresh: DebugFinding[] | undefined;
  private seq = 0;
  private dropped = 0;

  constructor(private readonly observer: DmaObserver = SILENT_OBSERVER) {}

  private report(check: string, handle: number | null, message: string): void {
    const f: DebugFinding = { seq: ++this.seq, check, message: `DMA-API: ${message}`, handle };
    (this.fresh ??= []).push(f);
    this.observer.finding(check);
    if (this.kept.length < MAX_FINDINGS) this.kept.push(f);
    else this.dropped++;
  }

  /** Findings kept for GET /debug (the memory budget charges them). */
  get keptCount(): number {
    return this.kept.length;
  }

  /** Findings produced since the last call, or undefined (the common case costs nothing). */
  takeFresh(): DebugFinding[] | undefined {
    const f = this.fresh;
    this.fresh = undefined;
    return f;
  }

  /**
   * Called as each call starts: findings of an earlier call that ended in an HTTP error stay
   * at /debug but must not ride along on the next answer.
   */
  discardFresh(): void {
    this.fresh = undefined;
  }

  all(): DebugFinding[] {
    if (this.dropped === 0) return this.kept.slice();
    return [...this.kept, { seq: this.seq, check: 'dropped', message: `DMA-API: ${this.dropped} further findings were not kept`, handle: null }];
  }

  /** check_unmap: the entry was made by another kind of call than the one freeing it. */
  wrongFunction(m: Mapping, unmappedAs: Mapping['kind'], addr: string): void {
    this.report(
      m.kind === 'coherent' ? 'unmap_wrong_function' : 'free_wrong_function',
      m.handle,
      `device driver frees DMA memory with wrong function [device address=${addr16(addr)}] [size=${m.size} bytes] [mapped as ${TYPE_NAME[m.kind]}] [unmapped as ${TYPE_NAME[unmappedAs]}]`,
    );
  }

  // check_unmap, first case: no entry for the address.
  unmapUnknown(handle: number, why: 'freed' | 'never'): void {
    const what = why === 'freed' ? ' (already unmapped)' : '';
    this.report('unmap_unknown', handle, `device driver tries to free DMA memory it has not allocated [handle=${handle}]${what}`);
  }

  /** check_unmap: what the caller says it unmaps vs what was mapped (`addr` is formatted only if a check fires). */
  checkUnmap(m: Mapping, given: { size?: number | undefined; dir?: DmaDirection | undefined; nents?: number | undefined }, addr: () => string): void {
    if (given.size !== undefined && given.size !== m.size) {
      this.report('unmap_size', m.handle, `device driver frees DMA memory with different size [device address=${addr16(addr())}] [map size=${m.size} bytes] [unmap size=${given.size} bytes]`);
    }
    if (given.dir !== undefined && given.dir !== m.dir) {
      this.report(
        'unmap_direction',
        m.handle,
        `device driver frees DMA memory with different direction [device address=${addr16(addr())}] [size=${m.size} bytes] [mapped with ${DIR_NAME[m.dir]}] [unmapped with ${DIR_NAME[given.dir]}]`,
      );
    }
    if (given.nents !== undefined && m.kind === 'map_sg' && given.nents !== m.sg.length) {
      this.report('unmap_nents', m.handle, `device driver frees DMA sg list with different entry count [map count=${m.sg.length}] [unmap count=${given.nents}]`);
    }
  }

  /** Not a debug.c check: a layout's own finding (its StrayRule's, mapping.ts), in the same log. */
  layoutFinding(check: string, handle: number, message: string): void {
    this.report(check, handle, message);
  }

  syncUnknown(handle: number): void {
    this.report('sync_unknown', handle, `device driver tries to sync DMA memory it has not allocated [handle=${handle}]`);
  }

  /** check_sync: range and direction of a sync against the mapping. */
  checkSync(m: Mapping, toCpu: boolean, offset: number, size: number, dir: DmaDirection, addr: () => string): void {
    if (m.kind === 'coherent') {
      this.report('sync_coherent', m.handle, `device driver syncs coherent DMA memory, which needs no sync [device address=${addr16(addr())}] [size=${m.size} bytes]`);
      return;
    }
    if (offset + size > m.size) {
      this.report(
        'sync_range',
        m.handle,
        `device driver syncs DMA memory outside allocated range [device address=${addr16(addr())}] [allocation size=${m.size} bytes] [sync offset+size=${offset + size}]`,
      );
    }
    if (m.dir === 'bidirectional') return;
    const mapped = DIR_NAME[m.dir];
    const synced = DIR_NAME[dir];
    if (dir !== m.dir) {
      this.report('sync_direction', m.handle, `device driver syncs DMA memory with different direction [device address=${addr16(addr())}] [size=${size} bytes] [mapped with ${mapped}] [synced with ${synced}]`);
    }
    if (toCpu && m.dir !== 'from_device' && dir !== 'to_device') {
      this.report('sync_read_only_for_cpu', m.handle, `device driver syncs device read-only DMA memory for cpu [device address=${addr16(addr())}] [size=${size} bytes] [mapped with ${mapped}] [synced with ${synced}]`);
    }
    if (!toCpu && m.dir !== 'to_device' && dir !== 'from_device') {
      this.report('sync_write_only_to_device', m.handle, `device driver syncs device write-only DMA memory to device [device address=${addr16(addr())}] [size=${size} bytes] [mapped with ${mapped}] [synced with ${synced}]`);
    }
  }

  /** check_sync, last test: dma_sync_sg_* with another nents than dma_map_sg was given (sg mappings only, as ref->type must be sg). */
  checkSyncNents(m: Mapping, nents: number): void {
    if (m.kind !== 'map_sg' || nents === m.sg.length) return;
    this.report('sync_nents', m.handle, `device driver syncs DMA sg list with different entry count [map count=${m.sg.length}] [sync count=${nents}]`);
  }

  freeCoherentUnknown(handle: number): void {
    this.report('free_coherent_unknown', handle, `device driver tries to free DMA memory it has not allocated [handle=${handle}]`);
  }

  /** The CPU touched a buffer while the device owns it (between map/sync_for_device and sync_for_cpu/unmap). */
  cpuAccessDeviceOwned(m: Mapping, access: 'read' | 'write', phys: string): void {
    this.report(
      'cpu_access_device_owned',
      m.handle,
      `cpu ${access} at ${phys} touches a buffer the device owns [mapped with ${DIR_NAME[m.dir]}] (call sync for_cpu or unmap first)`,
    );
  }

  /**
   * check_sg_segment, for each of the mapped_ents entries debug_dma_map_sg walks: entry i's
   * own length (the CPU entry, not the i-th DMA segment) against dma_get_max_seg_size, and the
   * i-th DMA segment against dma_get_seg_boundary. `longest` is the longest input entry, `shift`
   * that of the segments' pfns.
   */
  checkSgSegments(m: Mapping, longest: number, maxSeg: number, boundaryBits: number, shift: number): void {
    // Neither check can fire: no entry is too long and the boundary is the whole 64-bit space (the
    // common case, and the map_sg hot path: walking the segments cost ~15 % of a map/unmap pair).
    if (longest <= maxSeg && boundaryBits >= 64) return;
    const segs = m.segments;
    const scale = 2 ** shift;
    for (let i = 0; i < segs.length; i++) {
      const len = (m.sg[i] as Mapping['sg'][number]).length;
      if (len > maxSeg) {
        this.report('sg_segment_too_long', m.handle, `mapping sg segment longer than device claims to support [len=${len}] [max=${maxSeg}]`);
      }
      if (boundaryBits < 64) this.checkSegBoundary(m.handle, segs[i] as Mapping['segments'][number], boundaryBits, scale);
    }
  }

  /** (start ^ end) & ~boundary, in doubles while they are exact, in BigInt past 2^53. */
  private checkSegBoundary(handle: number, s: Mapping['segments'][number], bits: number, scale: number): void {
    if (s.len === 0) return;
    const start = s.pfn * scale + s.off;
    if (start + s.len <= 2 ** 53 && bits <= 52) {
      const w = 2 ** bits;
      if (modPow2(start, w) + s.len <= w) return;
    } else {
      const a = BigInt(s.pfn) * BigInt(scale) + BigInt(s.off);
      const e = a + BigInt(s.len) - 1n;
      if (a >> BigInt(bits) === e >> BigInt(bits)) return;
    }
    const a = BigInt(s.pfn) * BigInt(scale) + BigInt(s.off);
    const f = (v: bigint): string => `0x${v.toString(16).padStart(16, '0')}`;
    this.report(
      'sg_segment_across_boundary',
      handle,
      `mapping sg segment across boundary [start=${f(a)}] [end=${f(a + BigInt(s.len) - 1n)}] [boundary=${f((1n << BigInt(bits)) - 1n)}]`,
    );
  }

  /** add_dma_entry: active_cacheline_insert answered -EEXIST (and no attribute excuses it). */
  cachelineOverlap(handle: number): void {
    this.report('cacheline_overlap', handle, "cacheline tracking EEXIST, overlapping mappings aren't supported");
  }

  /** active_cacheline_inc_overlap's WARN_ONCE: the 3-tag overlap counter is full. `cln` is the cacheline number, printed with %pa. */
  cachelineOverflow(handle: number, cln: number): void {
    this.report('cacheline_overlap_limit', handle, `exceeded ${ACTIVE_CACHELINE_MAX_OVERLAP} overlapping mappings of cacheline 0x${cln.toString(16).padStart(16, '0')}`);
  }

  /** dma_debug_device_change: entries still live when the device goes away. */
  leaks(count: number, one: Mapping, addr: string): void {
    this.report(
      'leak',
      null,
      `device driver has pending DMA allocations while released from device [count=${count}]\n` +
        `One of leaked entries details: [device address=${addr16(addr)}] [size=${one.size} bytes] [mapped with ${DIR_NAME[one.dir]}] [mapped as ${TYPE_NAME[one.kind]}]`,
    );
  }
}
