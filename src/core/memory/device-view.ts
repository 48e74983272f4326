// What the CPU and the device each see of a session's memory (semantics §6, §8): the CPU
// through its cache when the device is not coherent, the device through the IOMMU page table
// (or at dma_address − dma_offset without one), swiotlb-bounced buffers through their bounce
// copy. Every map, unmap and sync performs the cache maintenance and bounce copies Linux does.
//
// Maintenance per direction (arch_sync_dma_for_device / _for_cpu):
//  - for_device, today's arm64: clean, whatever the direction (dcache_clean_poc);
//    older arch code (arm64 v4.4 __dma_map_area, arm __dma_page_cpu_to_dev): DMA_FROM_DEVICE
//    invalidates, the others clean. Which one a session gets is its layout's
//    forDeviceAlwaysCleans (layouts/layout.ts);
//  - for_cpu: DMA_TO_DEVICE does nothing, the others invalidate;
//  - coherent devices, and alloc_coherent buffers (mapped uncached), need none.
// swiotlb (swiotlb_tbl_map_single / swiotlb_sync_single_* / swiotlb_tbl_unmap_single): map
// always copies original → bounce; sync for_device copies for TO_DEVICE/BIDIRECTIONAL; sync
// for_cpu and unmap copy bounce → original for FROM_DEVICE/BIDIRECTIONAL, after the cache
// maintenance of the bounce buffer.

import { bigint, bool, describe, field, list, listIn, nested, num, oneOf, readState, record, StateError, str, writeState } from '../state/codec.js';
import type { SessionConfig } from '../session-config.js';
import { backendOf } from '../layouts/registry.js';
import type { DmaDebug } from '../dma-debug.js';
import { DmaemuError, invalid } from '../errors.js';
import { hex } from '../hex.js';
import type { CacheOp, DmaDirection, SyncTarget } from '../constants.js';
import type { Mapping } from '../mapping.js';
import { CpuCache, LINE } from './cpu-cache.js';
import { PageTable, permits, type Permission } from './page-table.js';
import { CHUNK, Ram } from './ram.js';
import { FOOTPRINT } from '../memory-budget.js';

/** A device access the IOMMU (or the bus) refused; src/service/present.ts writes it for the wire. */
export interface Fault {
  seq: number;
  dma_address: bigint;
  access: Permission;
  reason: string;
  length: number;
}

/** What one CPU or device access did: the bytes read, the count written, or the fault. */
export interface MemoryAccess {
  data?: Uint8Array;
  written?: number;
  fault?: Fault;
}

const MAX_FAULTS = 10_000;
const PHYS_END = 2 ** 52;
const U64_END = 1n << 64n;

/** One physically contiguous piece of a mapping: where the CPU's buffer is, where the device reads it. */
interface Piece {
  orig: number;
  tlb: number | null; // bounce copy, or null when not bounced
  length: number;
}

const faultCodec = record<Fault>({ seq: num, dma_address: bigint, access: oneOf(['read', 'write'] as const), reason: str, length: num }, ['seq', 'dma_address', 'access', 'reason', 'length']);

export class DeviceView {
  /**
   * Saved state: RAM, the CPU cache (non-coherent devices), the fault log, the coherent buffers
   * (by handle: they are the mapping table's), the fault sequence. The IOMMU page table is built
   * from the live mappings, so a restore only marks it stale.
   */
  static readonly STATE = describe<DeviceView>(
    'device-view',
    1,
    [
      nested('ram', Ram.STATE, (o) => o.ram),
      field(
        'cache',
        bool,
        (o) => o.cache !== null,
        (o, v) => {
          if (v !== (o.cache !== null)) throw new StateError(`saved ${v ? 'with' : 'without'} a CPU cache; this session's device is ${v ? '' : 'not '}coherent`);
        },
      ),
      {
        name: 'cacheLines',
        write: (w, o) => {
          if (o.cache) writeState(w, CpuCache.STATE, o.cache);
        },
        read: (r, o) => {
          if (o.cache) readState(r, CpuCache.STATE, o.cache);
        },
      },
      listIn('faultLog', faultCodec, (o) => o.faultLog),
      field(
        'coherentBufs',
        list(num),
        (o) => [...o.coherentBufs].map((m) => m.handle),
        (o, v) => {
          const byHandle = new Map<number, Mapping>();
          for (const m of o.mappings.values()) byHandle.set(m.handle, m);
          o.coherentBufs.clear();
          for (const h of v) {
            const m = byHandle.get(h);
            if (!m || m.kind !== 'coherent') throw new StateError(`coherent buffer ${h} is not a live coherent mapping`);
            o.coherentBufs.add(m);
          }
        },
      ),
      field('faultSeq', num, (o) => o.faultSeq, (o, v) => (o.faultSeq = v)),
    ],
    { loaded: (o) => o.table?.changed() },
  );

  private readonly ram: Ram;
  private readonly cache: CpuCache | null;
  private readonly table: PageTable | null;
  private readonly unitShift: number;
  private readonly modernForDevice: boolean;
  private readonly faultLog: Fault[] = [];
  // alloc_coherent buffers (uncached for the CPU), kept apart so the CPU's every access and
  // bounce copy need not look through all live mappings.
  private readonly coherentBufs = new Set<Mapping>();
  private faultSeq = 0;

  constructor(
    private readonly config: SessionConfig,
    private readonly mappings: { values(): Iterable<Mapping> },
    private readonly debug: DmaDebug,
    /** Throws DMAEMU_MEMORY_BUDGET unless the process-wide budget has room for `bytes` more. */
    private readonly budgetCheck: (bytes: number) => void = () => undefined,
  ) {
    this.ram = new Ram();
    this.cache = config.coherent ? null : new CpuCache(this.ram);
    // The unit extents count in and the for_device maintenance are the layout's (or dma-direct's).
    const backend = backendOf(config);
    this.unitShift = backend.addressShift(config);
    this.table = config.iommu ? new PageTable(mappings, 2 ** this.unitShift) : null;
    this.modernForDevice = backend.forDeviceAlwaysCleans;
  }

  /** Emulated RAM chunks plus CPU cache lines: what memory_limit bounds. */
  bytesTouched(): number {
    return this.ram.bytesTouched + (this.cache?.bytes ?? 0);
  }

  /** What RAM chunks, cache chunks and the fault log cost the memory budget (src/core/memory-budget.ts). */
  footprint(): number {
    return this.ram.chunkCount * FOOTPRINT.ramChunk + (this.cache ? this.cache.chunkCount * FOOTPRINT.cacheChunk : 0) + this.faultLog.length * FOOTPRINT.fault;
  }

  /**
   * Refuses, before any effect, a caller-driven access that would grow memory past the
   * session's memory_limit or the process-wide memory budget. Internal copies (cache write-back, swiotlb bounces) are never
   * refused mid-call; they can add at most the bytes already counted for the lines and the
   * bounce pool.
   */
  private checkRoom(phys: number, length: number, write: boolean, cached: boolean): void {
    let more = 0;
    if (cached && this.cache) more = this.cache.missingLines(phys, length) * LINE;
    else if (write) more = this.ram.missingChunks(phys, length) * CHUNK;
    const total = this.bytesTouched() + more;
    if (more > 0 && total > this.config.memoryLimit) {
      throw new DmaemuError(
        'DMAEMU_MEMORY_LIMIT',
        `this access would bring the session's emulated memory (RAM chunks and cache lines) to ${total} bytes; its memory_limit is ${this.config.memoryLimit}`,
        write ? 'data' : 'length',
      );
    }
    // The session's own quota first (its tenant's business), then the whole service's room.
    if (more > 0) this.budgetCheck(cached && this.cache ? this.cache.missingChunks(phys, length) * FOOTPRINT.cacheChunk : this.ram.missingChunks(phys, length) * FOOTPRINT.ramChunk);
  }

  faults(): Fault[] {
    return this.faultLog.slice();
  }

  // ---- the maintenance Linux does -------------------------------------------------------

  private forDeviceOp(dir: DmaDirection): CacheOp {
    if (!this.cache) return 'none';
    return this.modernForDevice || dir !== 'from_device' ? 'clean' : 'invalidate';
  }

  private forCpuOp(dir: DmaDirection): CacheOp {
    if (!this.cache || dir === 'to_device') return 'none';
    return 'invalidate';
  }

  private maintain(op: CacheOp, phys: number, length: number): void {
    if (!this.cache) return;
    if (op === 'clean') this.cache.clean(phys, length);
    else if (op === 'invalidate') this.cache.invalidate(phys, length);
    else if (op === 'clean+invalidate') this.cache.cleanInvalidate(phys, length);
  }

  /** dma_map_*: bounce copy, then arch_sync_dma_for_device unless DMA_ATTR_SKIP_CPU_SYNC. */
  syncForDeviceOnMap(m: Mapping, skipCpuSync: boolean): void {
    this.table?.changed();
    m.cpuOwned = false;
    if (m.kind === 'coherent') {
      this.coherentBufs.add(m);
      return;
    }
    const op = skipCpuSync ? 'none' : this.forDeviceOp(m.dir);
    if ((op === 'none' || this.cache?.empty) && !m.bounce) return; // nothing cached: maintenance is a no-op
    this.eachPiece(m, 0, m.size, (p) => {
      if (p.tlb !== null) this.copy(p.orig, p.tlb, p.length);
      this.maintain(op, p.tlb ?? p.orig, p.length);
    });
  }

  /** dma_unmap_*: arch_sync_dma_for_cpu, then the bounce copy back, unless skipped. */
  syncForCpuOnUnmap(m: Mapping, skipCpuSync: boolean): void {
    if (skipCpuSync || m.kind === 'coherent') return;
    const op = this.forCpuOp(m.dir);
    const copyBack = m.dir === 'from_device' || m.dir === 'bidirectional';
    if ((op === 'none' || this.cache?.empty) && !(m.bounce && copyBack)) return;
    this.eachPiece(m, 0, m.size, (p) => {
      this.maintain(op, p.tlb ?? p.orig, p.length);
      if (p.tlb !== null && copyBack) this.copy(p.tlb, p.orig, p.length);
    });
  }

  released(m: Mapping): void {
    this.table?.changed();
    m.cpuOwned = true;
    if (m.kind === 'coherent') this.coherentBufs.delete(m);
  }

  /** dma_sync_*_for_cpu / _for_device on [offset, offset + size) of the mapping. */
  sync(m: Mapping, target: SyncTarget, offset: number, size: number, dir: DmaDirection, addr: () => string): { cache: CacheOp; bounced: number } {
    const toCpu = target === 'cpu';
    this.debug.checkSync(m, toCpu, offset, size, dir, addr);
    if (m.kind === 'coherent') return { cache: 'none', bounced: 0 };
    m.cpuOwned = toCpu;
    const op = toCpu ? this.forCpuOp(dir) : this.forDeviceOp(dir);
    const copies = toCpu ? dir === 'from_device' || dir === 'bidirectional' : dir === 'to_device' || dir === 'bidirectional';
    let bounced = 0;
    const end = Math.min(offset + size, m.size);
    this.eachPiece(m, Math.min(offset, m.size), end, (p) => {
      if (toCpu) this.maintain(op, p.tlb ?? p.orig, p.length);
      if (p.tlb !== null && copies) {
        if (toCpu) this.copy(p.tlb, p.orig, p.length);
        else this.copy(p.orig, p.tlb, p.length);
        bounced += p.length;
      }
      if (!toCpu) this.maintain(op, p.tlb ?? p.orig, p.length);
    });
    return { cache: op, bounced };
  }

  /** The pieces of [from, to) of the mapping's byte stream (its entries back to back). */
  private eachPiece(m: Mapping, from: number, to: number, fn: (p: Piece) => void): void {
    let pos = 0;
    for (let i = 0; i < m.sg.length && pos < to; i++) {
      const e = m.sg[i] as { phys: number; length: number };
      const lo = Math.max(from, pos);
      const hi = Math.min(to, pos + e.length);
      if (lo < hi) {
        const slot = m.bounce?.[i] ?? null;
        const skip = lo - pos;
        fn({ orig: e.phys + skip, tlb: slot ? slot.tlbAddr + skip : null, length: hi - lo });
      }
      pos += e.length;
    }
  }

  /** A memcpy by the CPU (swiotlb_bounce): through the cache like any CPU access. */
  private copy(from: number, to: number, length: number): void {
    const buf = new Uint8Array(length);
    this.cpuReadRaw(from, buf);
    this.cpuWriteRaw(to, buf);
  }

  // ---- the CPU ----------------------------------------------------------------------------

  /** alloc_coherent's pages come back zeroed, and nothing of them lingers in the cache. */
  zero(phys: number, size: number): void {
    this.cache?.cleanInvalidate(phys, size);
    this.ram.zero(phys, size);
  }

  cpuWrite(phys: number, data: Uint8Array): MemoryAccess {
    checkPhysRange(phys, data.length);
    this.checkRoom(phys, data.length, true, this.cached(phys, data.length));
    this.checkOwnership(phys, data.length, 'write');
    this.cpuWriteRaw(phys, data);
    return { written: data.length };
  }

  cpuRead(phys: number, length: number): MemoryAccess {
    checkPhysRange(phys, length);
    this.checkRoom(phys, length, false, this.cached(phys, length));
    this.checkOwnership(phys, length, 'read');
    const buf = new Uint8Array(length);
    this.cpuReadRaw(phys, buf);
    return { data: buf };
  }

  private cached(phys: number, length: number): boolean {
    if (!this.cache) return false;
    // alloc_coherent memory is mapped uncached for a non-coherent device.
    for (const m of this.coherentBufs) {
      const e = m.sg[0];
      if (e && phys >= e.phys && phys + length <= e.phys + Math.max(e.length, m.size)) return false;
    }
    return true;
  }

  private cpuReadRaw(phys: number, out: Uint8Array): void {
    if (this.cache && this.cached(phys, out.length)) this.cache.read(phys, out);
    else this.ram.read(phys, out);
  }

  private cpuWriteRaw(phys: number, data: Uint8Array): void {
    if (this.cache && this.cached(phys, data.length)) this.cache.write(phys, data);
    else this.ram.write(phys, data);
  }

  /**
   * dma-debug: the CPU touching a streaming buffer the device owns. O(live mappings) per CPU
   * access, on purpose: keeping a set of device-owned buffers would cost every map/unmap pair a
   * set insert and delete, and a million-entry set under churn rehashes into full GCs.
   */
  private checkOwnership(phys: number, length: number, access: 'read' | 'write'): void {
    for (const m of this.mappings.values()) {
      if (m.kind === 'coherent' || m.cpuOwned) continue;
      if (access === 'read' && m.dir === 'to_device') continue; // the device only reads it
      for (const e of m.sg) {
        if (phys < e.phys + e.length && e.phys < phys + length) {
          this.debug.cpuAccessDeviceOwned(m, access, hex(Math.max(phys, e.phys)));
          break;
        }
      }
    }
  }

  // ---- the device -------------------------------------------------------------------------

  deviceWrite(addr: bigint, data: Uint8Array): MemoryAccess {
    const t = this.translate(addr, data.length, 'write');
    if ('fault' in t) return t;
    for (const p of t.pieces) this.checkRoom(p.phys, p.length, true, false);
    let done = 0;
    for (const p of t.pieces) {
      this.ram.write(p.phys, data, done, p.length);
      done += p.length;
    }
    return { written: data.length };
  }

  deviceRead(addr: bigint, length: number): MemoryAccess {
    const t = this.translate(addr, length, 'read');
    if ('fault' in t) return t;
    const buf = new Uint8Array(length);
    let done = 0;
    for (const p of t.pieces) {
      this.ram.read(p.phys, buf, done, p.length);
      done += p.length;
    }
    return { data: buf };
  }

  /** The physical pieces behind [addr, addr + length), or the fault the first bad byte raises. */
  private translate(addr: bigint, length: number, access: Permission): { pieces: { phys: number; length: number }[] } | { fault: Fault } {
    if (addr + BigInt(length) > U64_END) return { fault: this.fault(addr, access, length, 'the access runs past the 64-bit bus address space') };
    if (!this.table) {
      const c = this.config;
      if (addr + BigInt(length) - 1n > c.dmaMask) {
        return { fault: this.fault(addr, access, length, `beyond the device's dma_mask ${hex(c.dmaMask)}: the device cannot drive this address`) };
      }
      if (addr < BigInt(c.dmaOffset)) return { fault: this.fault(addr, access, length, `below dma_offset ${hex(c.dmaOffset)}: no memory there`) };
      const phys = Number(addr - BigInt(c.dmaOffset));
      if (phys + length > PHYS_END) return { fault: this.fault(addr, access, length, 'beyond the 52-bit physical address space') };
      return { pieces: [{ phys, length }] };
    }
    const shift = BigInt(this.unitShift);
    const unit = 2 ** this.unitShift;
    const pieces: { phys: number; length: number }[] = [];
    let done = 0;
    while (done < length) {
      const a = addr + BigInt(done);
      const pfn = Number(a >> shift);
      const inner = Number(a & BigInt(unit - 1));
      const e = this.table.lookup(pfn);
      if (!e) return { fault: this.fault(a, access, length - done, 'unmapped IOVA (translation fault)') };
      if (!permits(e.mapping.dir, access, this.config.iommu?.enforceRead)) {
        const why = access === 'write' ? 'write to a read-only mapping' : 'read of a write-only mapping';
        return { fault: this.fault(a, access, length - done, `${why} (permission fault: handle ${e.mapping.handle} mapped ${e.mapping.dir})`) };
      }
      const n = Math.min((e.hi - pfn) * unit - inner, length - done);
      pieces.push({ phys: e.phys + (pfn - e.lo) * unit + inner, length: n });
      done += n;
    }
    return { pieces };
  }

  private fault(addr: bigint, access: Permission, length: number, reason: string): Fault {
    const f: Fault = { seq: ++this.faultSeq, dma_address: addr, access, reason, length };
    if (this.faultLog.length < MAX_FAULTS) this.faultLog.push(f);
    return f;
  }
}

function checkPhysRange(phys: number, length: number): void {
  if (phys + length > PHYS_END) throw invalid('phys', 'the access runs past the 52-bit physical address space');
}
