// One session: a device, its IOMMU domain (or none), its live mappings and its findings. The
// DMA-API calls take validated wire input (schemas/) and return wire output; what each layout
// does lives in layouts/ and dma-direct.ts, the checks in dma-debug.ts, memory in memory/.

import { DmaemuError, invalid } from '../core/errors.js';
import { configToWire, type SessionConfig } from '../core/config.js';
import { DmaDebug, type DebugFinding } from '../core/dma-debug.js';
import { DmaDirect } from '../core/dma-direct.js';
import { DMA_MAPPING_ERROR_HEX, hex, hexAddr } from '../core/hex.js';
import { ArmLegacyIommuDma } from '../core/layouts/arm-legacy.js';
import { Linux44IommuDma } from '../core/layouts/linux-4.4.js';
import { LinuxIommuDma } from '../core/layouts/linux.js';
import { isFailure, type DmaDirection, type DmaOps, type MapFailure, type MapResult, type Mapping, type SgEntry } from '../core/mapping.js';
import { PageAllocator } from '../core/memory/page-allocator.js';
import { DeviceView } from '../core/memory/device-view.js';
import { HandleTable } from '../core/handle-table.js';
import { CachelineTracker } from '../core/debug-cacheline.js';
import { SgExplainer, explainOut } from '../core/explain.js';
import type { IovaState } from '../core/iova-picture.js';
import type {
  AllocCoherentInput,
  AllocCoherentOut,
  BatchInput,
  BatchOut,
  CpuReadInput,
  CpuWriteInput,
  DebugOut,
  DeviceReadInput,
  DeviceWriteInput,
  FaultsOut,
  FlushInput,
  FlushOut,
  FreeCoherentInput,
  FreeCoherentOut,
  LeakReportOut,
  MapPageInput,
  MapPageOut,
  MappingRowOut,
  MappingsOut,
  MapSgInput,
  MapSgOut,
  MemoryOut,
  SessionConfigOut,
  SessionSummaryOut,
  SyncInput,
  SyncOut,
  UnmapInput,
  UnmapOut,
} from '../../schemas/index.js';
import { runBatch } from './batch.js';
import { SILENT_OBSERVER, type DmaObserver } from '../core/observer.js';
import { FOOTPRINT, UNLIMITED_BUDGET, type MemoryBudget } from '../core/memory-budget.js';

export interface SessionLimits {
  /** Live mappings + coherent buffers per session. */
  maxMappings: number;
  /** Entries in one scatterlist. */
  maxSgEntries: number;
  /** Rows `?pages=true` may list for one mapping. */
  maxPageRows: number;
  /** Ops in one /batch. */
  maxBatchOps: number;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = {
  maxMappings: 1_000_000,
  maxSgEntries: 4096,
  maxPageRows: 262_144,
  maxBatchOps: 1024,
};

type Counters = Record<'map_sg' | 'map_page' | 'unmap' | 'sync' | 'alloc_coherent' | 'free_coherent' | 'failed_maps' | 'device_faults', number>;

export class Session {
  readonly id: string;
  readonly config: SessionConfig;
  readonly wireConfig: SessionConfigOut;
  readonly limits: SessionLimits;
  /** Milliseconds since the epoch of the last call (idle expiry). */
  lastUsed = Date.now();
  private readonly ops: DmaOps;
  private readonly mappings = new HandleTable<Mapping>();
  /** linux-4.4: unmapped handles whose IOVA the kernel left mapped and allocated (see release). */
  private readonly strays: Mapping[] = [];
  private nextHandle = 1;
  private coherentCount = 0;
  private iovaInUse = 0;
  readonly debug: DmaDebug;
  private readonly cachelines: CachelineTracker;
  readonly memory: DeviceView;
  private readonly pages: PageAllocator;
  private readonly counters: Counters = {
    map_sg: 0,
    map_page: 0,
    unmap: 0,
    sync: 0,
    alloc_coherent: 0,
    free_coherent: 0,
    failed_maps: 0,
    device_faults: 0,
  };

  private readonly observer: DmaObserver;
  /** The process-wide memory budget (src/core/memory-budget.ts); `charged` is this session's share of it. */
  private readonly budget: MemoryBudget;
  private charged = 0;
  /** The part of `charged` that is derived state (RAM, cache, findings, faults, handle pages): see settle. */
  private derived = 0;
  /** Budget bytes held for the session outside its state (holdBytes); not part of its summary, which describes state. */
  private heldBytes = 0;

  constructor(
    id: string,
    config: SessionConfig,
    limits: SessionLimits = DEFAULT_SESSION_LIMITS,
    observer: DmaObserver = SILENT_OBSERVER,
    budget: MemoryBudget = UNLIMITED_BUDGET,
  ) {
    this.observer = observer;
    this.budget = budget;
    this.id = id;
    this.config = config;
    this.wireConfig = configToWire(config);
    this.limits = limits;
    if (!config.iommu) this.ops = new DmaDirect(config);
    else if (config.layout === 'linux') this.ops = new LinuxIommuDma(config);
    else if (config.layout === 'linux-4.4') this.ops = new Linux44IommuDma(config);
    else this.ops = new ArmLegacyIommuDma(config);
    this.debug = new DmaDebug(observer);
    this.cachelines = new CachelineTracker(this.debug);
    this.pages = new PageAllocator(config.pageSize);
    // The device sees live mappings and the strays a linux-4.4 unmap left mapped.
    const strays = this.strays;
    const mappings = this.mappings;
    this.memory = new DeviceView(config, { *values() { yield* mappings.values(); yield* strays; } }, this.debug, (bytes) => budget.check(bytes));
  }

  // ---- streaming mappings -------------------------------------------------------------

  mapSg(input: MapSgInput, withPages = false, explain = false): MapSgOut {
    this.debug.discardFresh();
    const dir = mappingDirection(input.dir);
    if (input.sg.length > this.limits.maxSgEntries) {
      throw new DmaemuError('DMAEMU_TOO_MANY_SG_ENTRIES', `a scatterlist may hold at most ${this.limits.maxSgEntries} entries`, 'sg');
    }
    let longest = 0;
    for (let i = 0; i < input.sg.length; i++) {
      const e = input.sg[i] as SgEntry;
      checkPhys(e, `sg.${i}`);
      if (e.length > longest) longest = e.length;
    }
    if (withPages) this.checkPageRows(input.sg);
    this.checkRoom(input.sg.length);
    this.counters.map_sg++;
    const why = explain ? new SgExplainer() : undefined;
    const r = this.ops.mapSg(input.sg, dir, why);
    if (isFailure(r)) {
      const failed = this.failedSg(r);
      if (why) failed.explain = explainOut(why, [], () => 0n);
      return failed;
    }
    const m = this.adopt(r, 'map_sg', dir, input.skip_cpu_sync === true);
    // debug_dma_map_sg: check_sg_segment per mapped entry, then add_dma_entry's cacheline tracking.
    this.debug.checkSgSegments(m, longest, this.config.maxSegmentSize, this.config.segmentBoundaryBits, this.ops.shift);
    this.cachelines.insert(m, input.skip_cpu_sync === true);
    const out: MapSgOut = {
      handle: m.handle,
      nents: m.segments.length,
      segments: this.segmentsOut(m),
      iova: this.iovaOut(m),
      iova_ranges: this.iovaRangesOut(m),
    };
    if (m.bounce) out.bounced = true;
    if (withPages) out.pages = this.pageRows(m);
    if (why) out.explain = explainOut(why, m.segments, (x) => BigInt(x.pfn) * 2n ** BigInt(this.ops.shift) + BigInt(x.off));
    this.observer.call('map_sg', null);
    return this.withDebug(out);
  }

  mapPage(input: MapPageInput, withPages = false): MapPageOut {
    this.debug.discardFresh();
    const dir = mappingDirection(input.dir);
    checkPhys({ phys: input.phys, length: input.size }, 'phys');
    if (withPages) this.checkPageRows([{ phys: input.phys, length: input.size }]);
    this.checkRoom(1);
    this.counters.map_page++;
    const r = this.ops.mapPage(input.phys, input.size, dir);
    if (isFailure(r)) {
      this.counters.failed_maps++;
      this.observer.call('map_page', r.errno);
      return this.withDebug({ handle: null, dma_address: DMA_MAPPING_ERROR_HEX, iova: null, error: r });
    }
    const m = this.adopt(r, 'map_page', dir, input.skip_cpu_sync === true);
    this.cachelines.insert(m, input.skip_cpu_sync === true);
    const out: MapPageOut = { handle: m.handle, dma_address: this.addr(m.segments[0]), iova: this.iovaOut(m) };
    if (m.bounce) out.bounced = true;
    if (withPages) out.pages = this.pageRows(m);
    this.observer.call('map_page', null);
    return this.withDebug(out);
  }

  unmap(input: UnmapInput): UnmapOut {
    this.debug.discardFresh();
    const m = this.mappings.get(input.handle);
    if (!m || m.kind === 'coherent') {
      if (m) this.debug.wrongFunction(m, 'map_page', this.addr(m.segments[0]));
      else this.debug.unmapUnknown(input.handle, input.handle < this.nextHandle ? 'freed' : 'never');
      if (m) {
        // dma-debug reports it; Linux would tear down the wrong kind of mapping. We refuse,
        // keeping the buffer intact, and say so.
        throw new DmaemuError('DMAEMU_INVALID_ARGUMENT', `handle ${input.handle} is a coherent buffer: free it with free_coherent (DMA-API: device driver frees DMA memory with wrong function)`, 'handle');
      }
      throw new DmaemuError('DMAEMU_HANDLE_NOT_FOUND', `handle ${input.handle}: device driver tries to free DMA memory it has not allocated`);
    }
    this.debug.checkUnmap(m, input, () => this.addr(m.segments[0]));
    this.memory.syncForCpuOnUnmap(m, input.skip_cpu_sync === true);
    this.cachelines.remove(m);
    this.release(m);
    this.counters.unmap++;
    this.observer.call('unmap', null);
    return this.withDebug({ handle: m.handle, iova: this.iovaOut(m) });
  }

  sync(input: SyncInput): SyncOut {
    this.debug.discardFresh();
    const m = this.mappings.get(input.handle);
    if (!m) {
      this.debug.syncUnknown(input.handle);
      throw new DmaemuError('DMAEMU_HANDLE_NOT_FOUND', `handle ${input.handle}: device driver tries to sync DMA memory it has not allocated`);
    }
    const offset = input.offset ?? 0;
    const size = input.size ?? m.size - offset;
    const dir = input.dir === undefined ? m.dir : mappingDirection(input.dir);
    this.counters.sync++;
    const r = this.memory.sync(m, input.for, offset, size, dir, () => this.addr(m.segments[0]));
    if (input.nents !== undefined) this.debug.checkSyncNents(m, input.nents);
    this.observer.call('sync', null);
    return this.withDebug({ handle: m.handle, cache: r.cache, bounced_bytes: r.bounced });
  }

  // ---- coherent buffers ---------------------------------------------------------------

  allocCoherent(input: AllocCoherentInput): AllocCoherentOut {
    this.debug.discardFresh();
    this.checkRoom(1);
    this.counters.alloc_coherent++;
    const size = Math.ceil(input.size / this.config.pageSize) * this.config.pageSize;
    const phys = this.pages.alloc(size);
    const fail = (r: MapFailure): AllocCoherentOut => {
      this.counters.failed_maps++;
      this.observer.call('alloc_coherent', r.errno);
      return this.withDebug({ handle: null, dma_handle: DMA_MAPPING_ERROR_HEX, size: input.size, phys: [], error: r });
    };
    if (phys < 0) return fail({ errno: 'ENOMEM', message: 'emulated page allocator exhausted' });
    const r = this.ops.mapCoherent(phys, size);
    if (isFailure(r)) {
      this.pages.release(phys, size);
      return fail(r);
    }
    this.memory.zero(phys, size);
    const m = this.adopt({ ...r, size: input.size }, 'coherent', 'bidirectional', true);
    this.cachelines.insert(m, false); // debug_dma_alloc_coherent: attrs carry no SKIP_CPU_SYNC
    const pages: string[] = [];
    for (let p = 0; p < size; p += this.config.pageSize) pages.push(hex(phys + p));
    this.coherentCount++;
    this.observer.call('alloc_coherent', null);
    return this.withDebug({ handle: m.handle, dma_handle: this.addr(m.segments[0]), size: input.size, phys: pages });
  }

  freeCoherent(input: FreeCoherentInput): FreeCoherentOut {
    this.debug.discardFresh();
    const m = this.mappings.get(input.handle);
    if (!m || m.kind !== 'coherent') {
      if (m) this.debug.wrongFunction(m, 'coherent', this.addr(m.segments[0]));
      else this.debug.freeCoherentUnknown(input.handle);
      if (m) throw new DmaemuError('DMAEMU_INVALID_ARGUMENT', `handle ${input.handle} is a streaming mapping: unmap it (DMA-API: device driver frees DMA memory with wrong function)`, 'handle');
      throw new DmaemuError('DMAEMU_HANDLE_NOT_FOUND', `handle ${input.handle}: device driver tries to free DMA memory it has not allocated`);
    }
    this.cachelines.remove(m);
    this.release(m);
    const first = m.sg[0];
    if (first) this.pages.release(first.phys, Math.ceil(m.size / this.config.pageSize) * this.config.pageSize);
    this.coherentCount--;
    this.counters.free_coherent++;
    this.observer.call('free_coherent', null);
    return this.withDebug({ handle: m.handle });
  }

  flush(input: FlushInput): FlushOut {
    const r = this.ops.flush(input.rcache === true, input.depot_trim === true);
    this.observer.call('flush', null);
    return { flushed: r.flushed, rcache_freed: r.rcacheFreed };
  }

  batch(input: BatchInput): BatchOut {
    if (input.ops.length > this.limits.maxBatchOps) {
      throw new DmaemuError('DMAEMU_TOO_MANY_BATCH_OPS', `a batch may hold at most ${this.limits.maxBatchOps} ops`, 'ops');
    }
    return runBatch(this, input);
  }

  // ---- memory -------------------------------------------------------------------------

  cpuWrite(input: CpuWriteInput): MemoryOut {
    this.debug.discardFresh();
    return this.withDebug(this.memory.cpuWrite(input.phys, Buffer.from(input.data, 'base64')));
  }

  cpuRead(input: CpuReadInput): MemoryOut {
    this.debug.discardFresh();
    return this.withDebug(this.memory.cpuRead(input.phys, input.length));
  }

  deviceWrite(input: DeviceWriteInput): MemoryOut {
    this.debug.discardFresh();
    const r = this.memory.deviceWrite(input.dma_address, Buffer.from(input.data, 'base64'));
    if (r.fault) this.deviceFault(r.fault.reason);
    return this.withDebug(r);
  }

  deviceRead(input: DeviceReadInput): MemoryOut {
    this.debug.discardFresh();
    const r = this.memory.deviceRead(input.dma_address, input.length);
    if (r.fault) this.deviceFault(r.fault.reason);
    return this.withDebug(r);
  }

  // ---- tables -------------------------------------------------------------------------

  /** Live mappings in handle order, a page at a time (a million rows would not fit one answer). */
  mappingsTable(page: { after?: number | undefined; limit?: number | undefined } = {}): MappingsOut {
    const limit = page.limit ?? Infinity;
    const rows: MappingRowOut[] = [];
    let next: number | null = null;
    for (const m of this.mappings.values(page.after ?? 0)) {
      if (rows.length === limit) {
        next = (rows[rows.length - 1] as MappingRowOut).handle;
        break;
      }
      rows.push(this.row(m));
    }
    return { mappings: rows, next };
  }

  debugTable(): DebugOut {
    return { debug: this.debug.all() };
  }

  faultsTable(): FaultsOut {
    return { faults: this.memory.faults() };
  }

  summary(): SessionSummaryOut {
    return {
      id: this.id,
      config: this.wireConfig,
      live_mappings: this.mappings.size - this.coherentCount,
      live_coherent: this.coherentCount,
      iova_bytes_in_use: this.iovaInUse,
      iova_ranges: this.ops.rangeCount(),
      counters: { ...this.counters },
      memory_bytes_touched: this.memory.bytesTouched(),
      memory_budget_bytes: this.charged,
    };
  }

  get liveMappings(): number {
    return this.mappings.size;
  }

  get iovaBytesInUse(): number {
    return this.iovaInUse;
  }

  /** What the IOVA picture draws (src/core/iova-picture.ts): nothing is copied, the mappings are walked once. */
  iovaState(): IovaState {
    return { mappings: this.mappings.values(), strays: this.strays, shift: this.ops.shift, marks: this.ops.allocatorMarks?.() ?? null };
  }

  /** DELETE: what is still live is a leak (dma-debug's "pending DMA allocations"). */
  close(): LeakReportOut {
    const leaks = [...this.mappings.values()].map((m) => ({
      handle: m.handle,
      kind: m.kind,
      dir: m.dir,
      size: m.size,
      dma_address: this.addr(m.segments[0]),
    }));
    const streaming = leaks.filter((l) => l.kind !== 'coherent').length;
    const first = this.mappings.values().next();
    if (!first.done) this.debug.leaks(leaks.length, first.value, this.addr(first.value.segments[0]));
    return {
      id: this.id,
      leaked_mappings: streaming,
      leaked_coherent: leaks.length - streaming,
      leaks,
      debug: this.debug.all(),
    };
  }

  // ---- internals ----------------------------------------------------------------------

  /** Room for one more mapping of `entries` scatterlist entries: the per-session limit, then the budget (charged in adopt). */
  private checkRoom(entries: number): void {
    if (this.mappings.size >= this.limits.maxMappings) {
      throw new DmaemuError('DMAEMU_TOO_MANY_MAPPINGS', `the session already holds ${this.limits.maxMappings} live mappings`);
    }
    this.budget.check(mappingCost(entries));
  }

  /** Bytes this session holds of the process-wide memory budget. */
  get budgetBytes(): number {
    return this.charged + this.heldBytes;
  }

  /** A new session's fixed footprint, charged by the store before it registers the session (throws DMAEMU_MEMORY_BUDGET). */
  chargeCreation(): void {
    this.budget.charge(FOOTPRINT.session);
    this.charged += FOOTPRINT.session;
  }

  /**
   * Bytes held for this session outside its own state (the memory-only trace buffer): charged when
   * the budget has room (false, nothing charged, otherwise: keeping a trace never refuses a call),
   * given back when negative.
   */
  holdBytes(bytes: number): boolean {
    if (bytes > 0 && this.budget.used + bytes > this.budget.limit) return false;
    this.budget.add(bytes);
    this.heldBytes += bytes;
    return true;
  }

  /** Gives the session's whole share back (it is deleted, expired or dropped); idempotent. */
  releaseBudget(): void {
    this.budget.release(this.charged + this.heldBytes);
    this.charged = 0;
    this.heldBytes = 0;
    this.derived = 0;
  }

  /**
   * Charges the derived state as it now stands: emulated RAM and cache chunks, kept findings,
   * faults and handle-table pages. Called as every answer leaves (withDebug): what a call
   * produced that could not be refused beforehand is charged here, after the fact.
   */
  private settle(): void {
    const now = this.memory.footprint() + this.debug.keptCount * FOOTPRINT.finding + this.mappings.pageCount * FOOTPRINT.handlePage;
    const d = now - this.derived;
    if (d !== 0) {
      this.derived = now;
      this.charged += d;
      this.budget.add(d);
    }
  }

  private checkPageRows(sg: readonly SgEntry[]): void {
    const g = this.config.iommu?.granule ?? this.config.pageSize;
    let rows = 0;
    for (const s of sg) rows += Math.ceil(((s.phys % g) + s.length) / g);
    if (rows > this.limits.maxPageRows) {
      throw invalid('pages', `the mapping would list ${rows} page rows; at most ${this.limits.maxPageRows} (ask without ?pages=true)`);
    }
  }

  private deviceFault(reason: string): void {
    this.counters.device_faults++;
    this.observer.fault(reason);
  }

  private failedSg(r: MapFailure): MapSgOut {
    this.counters.failed_maps++;
    this.observer.call('map_sg', r.errno);
    return this.withDebug({ handle: null, nents: 0, segments: [], iova: null, iova_ranges: [], error: r });
  }

  private adopt(r: MapResult, kind: Mapping['kind'], dir: DmaDirection, skipCpuSync: boolean): Mapping {
    // Every mapping gets the same fields in the same order, whatever layout or call made it:
    // one hidden class keeps the hot path's property accesses monomorphic (layouts build their
    // results in different shapes, and adding fields later forked the shape per call site).
    const m: Mapping = {
      handle: this.nextHandle++,
      kind,
      dir,
      sg: r.sg,
      size: r.size,
      segments: r.segments,
      allocs: r.allocs,
      extents: r.extents,
      bounce: r.bounce,
      iovaGone: false,
      iovaHex: undefined,
      cpuOwned: false,
    };
    this.mappings.set(m.handle, m);
    const cost = mappingCost(r.sg.length);
    this.budget.add(cost); // checkRoom checked it fits
    this.charged += cost;
    this.iovaInUse += this.ops.iovaBytes(m);
    this.memory.syncForDeviceOnMap(m, skipCpuSync);
    return m;
  }

  private release(m: Mapping): void {
    const freed = this.ops.unmap(m);
    this.mappings.delete(m.handle);
    if (typeof freed === 'number' && (m.iovaGone || freed !== m.allocs[0]?.pfn)) this.releaseOther(m, freed);
    else this.iovaInUse -= this.ops.iovaBytes(m);
    this.memory.released(m);
    // A linux-4.4 stray (pushed last by releaseOther) is still held; its share goes back when its range is freed.
    if (this.strays.length === 0 || this.strays[this.strays.length - 1] !== m) this.refund(m); // (strays[-1] would be a slow property lookup)
  }

  private refund(m: Mapping): void {
    const cost = mappingCost(m.sg.length);
    this.budget.release(cost);
    this.charged -= cost;
  }

  /**
   * linux-4.4 freed a range that is not `m`'s own: v4.4 put the CPU-page offset into the handle,
   * so with page_size > granule the handle's pfn can lie in a neighbour's range. The kernel
   * unmaps and frees that range (its owner keeps a handle to nothing) and leaves `m`'s mapped.
   */
  private releaseOther(m: Mapping, freedPfn: number): void {
    if (!m.iovaGone) this.strays.push(m);
    let owner: Mapping | undefined;
    for (const x of this.mappings.values()) if (!x.iovaGone && x.allocs[0]?.pfn === freedPfn) owner = x;
    const k = this.strays.findIndex((x) => x !== m && x.allocs[0]?.pfn === freedPfn);
    if (!owner && k >= 0) {
      owner = this.strays.splice(k, 1)[0];
      if (owner) this.refund(owner);
    }
    if (owner) {
      owner.iovaGone = true;
      this.iovaInUse -= this.ops.iovaBytes(owner);
    }
    this.debug.unmapFreedOther(m, owner?.handle ?? null, freedPfn < 0 ? null : hex(freedPfn * (this.config.iommu?.granule ?? 1)));
  }

  private addr(s: { pfn: number; off: number } | undefined): string {
    return s ? hexAddr(s.pfn, this.ops.shift, s.off) : DMA_MAPPING_ERROR_HEX;
  }

  /** The first allocation's start, formatted once per mapping (it is answered up to four times). */
  private iovaHex(m: Mapping): string {
    const a = m.allocs[0];
    if (!a) return DMA_MAPPING_ERROR_HEX;
    return (m.iovaHex ??= hexAddr(a.pfn, this.ops.shift, a.off));
  }

  private segmentsOut(m: Mapping): { dma_address: string; dma_length: number }[] {
    const out = new Array<{ dma_address: string; dma_length: number }>(m.segments.length);
    const a = m.allocs[0];
    for (let i = 0; i < m.segments.length; i++) {
      const s = m.segments[i] as Mapping['segments'][number];
      const addr = a && s.pfn === a.pfn && s.off === a.off ? this.iovaHex(m) : hexAddr(s.pfn, this.ops.shift, s.off);
      out[i] = { dma_address: addr, dma_length: s.len };
    }
    return out;
  }

  private iovaOut(m: Mapping): { start: string; size: number } | null {
    const a = m.allocs[0];
    return a ? { start: this.iovaHex(m), size: a.bytes } : null;
  }

  private iovaRangesOut(m: Mapping): { start: string; size: number }[] {
    const out = new Array<{ start: string; size: number }>(m.allocs.length);
    for (let i = 0; i < m.allocs.length; i++) {
      const a = m.allocs[i] as Mapping['allocs'][number];
      out[i] = { start: i === 0 ? this.iovaHex(m) : hexAddr(a.pfn, this.ops.shift, a.off), size: a.bytes };
    }
    return out;
  }

  /** One row per IOMMU granule mapped, in IOVA order. */
  private pageRows(m: Mapping): { iova: string; phys: string }[] {
    const g = this.config.iommu?.granule ?? this.config.pageSize;
    const rows: { iova: string; phys: string }[] = [];
    for (const e of m.extents) {
      for (let k = 0; k < e.bytes; k += g) rows.push({ iova: hexAddr(e.pfn, this.ops.shift, e.off + k), phys: hex(e.phys + k) });
    }
    return rows;
  }

  private row(m: Mapping): MappingRowOut {
    return {
      handle: m.handle,
      kind: m.kind,
      dir: m.dir,
      nents: m.sg.length,
      segments: this.segmentsOut(m),
      iova: this.iovaOut(m),
      iova_ranges: this.iovaRangesOut(m),
      size: m.size,
      phys: m.sg.map((s) => hex(s.phys)),
    };
  }

  /** Attaches the findings this call produced. */
  private withDebug<T extends object>(out: T): T {
    this.settle();
    const fresh = this.debug.takeFresh();
    if (fresh) (out as { debug?: DebugFinding[] }).debug = fresh;
    return out;
  }
}

/** valid_dma_direction: mapping with DMA_NONE hits BUG_ON in dma_map_*. */
function mappingDirection(dir: DmaDirection): DmaDirection {
  if (dir === 'none') throw invalid('dir', 'DMA_NONE is not a valid direction for a mapping (BUG_ON(!valid_dma_direction(dir)))');
  return dir;
}

/** The budget charge of a live mapping of `entries` scatterlist entries (memory-budget.ts FOOTPRINT). */
function mappingCost(entries: number): number {
  return FOOTPRINT.mapping + FOOTPRINT.sgEntry * (entries - 1);
}

function checkPhys(s: SgEntry, field: string): void {
  if (s.phys + s.length > 2 ** 52) throw invalid(field, 'the buffer runs past the 52-bit physical address space');
}

export type { MapFailure };
