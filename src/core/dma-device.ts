// The DMA device of one session: the DMA-API calls (map_sg, map_page, unmap, sync,
// alloc/free_coherent, flush, CPU and device memory accesses, the leak check) over core types,
// with dma-debug watching. Its layout (or dma-direct) lays out each mapping; this file is the
// kernel's common path around it: valid_dma_direction, the per-session limits and the budget
// before anything happens, the mapping table and the cache maintenance after, and dma-debug's
// checks where debug.c makes them. No wire types: the service's facade (src/service/session.ts)
// turns requests into these calls and the results into answers (src/service/present.ts).
//
// Invariants: a call either throws before any effect (bad argument, a limit, the budget) or
// counts itself and completes; every live mapping is in `table` and charged to `budget`; a
// layout's stray rule (mapping.ts StrayRule) is the only way an unmap frees another's range.

import { DmaemuError, invalid } from './errors.js';
import type { SessionConfig } from './session-config.js';
import type { CacheOp, DmaDirection, SyncTarget } from './constants.js';
import { DmaDebug, type DebugFinding } from './dma-debug.js';
import { DMA_MAPPING_ERROR_HEX, hexAddr } from './hex.js';
import { backendOf } from './layouts/registry.js';
import { isFailure, type DmaOps, type DmaSegment, type MapFailure, type MapResult, type Mapping, type SgEntry, type StrayRule } from './mapping.js';
import { MappingTable } from './mapping-table.js';
import { PageAllocator } from './memory/page-allocator.js';
import { DeviceView, type MemoryAccess } from './memory/device-view.js';
import { CachelineTracker } from './debug-cacheline.js';
import type { SgExplainer } from './explain.js';
import type { IovaState } from './iova-picture.js';
import { SILENT_OBSERVER, type DmaObserver } from './observer.js';
import { FOOTPRINT, UNLIMITED_BUDGET, type MemoryBudget } from './memory-budget.js';
import { BudgetShare, mappingCost } from './budget-share.js';
import { describe, field, nested, num, part, record, StateReader, StateWriter, readState, writeState, StateError } from './state/codec.js';
import { kernelSpec } from './layouts/kernels.js';
import {
  IovaApi,
  noIovaApi,
  type IovaCallResult,
  type IovaDestroyRequest,
  type IovaFreeRequest,
  type IovaLinkRequest,
  type IovaSyncRequest,
  type IovaTryAllocRequest,
  type IovaTryAllocResult,
  type IovaUnlinkRequest,
} from './iova-api.js';

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
  // 16 384 rows (64 MiB at 4 KiB) are built and logged in one turn of the event loop: 7 + 3.5 ms
  // on a loaded 2-core machine, against 103 + 48 ms for 65 536 (issue 22: no stall beyond 50 ms).
  maxPageRows: 16_384,
  maxBatchOps: 1024,
};

export type Counters = Record<'map_sg' | 'map_page' | 'unmap' | 'sync' | 'alloc_coherent' | 'free_coherent' | 'failed_maps' | 'device_faults', number>;

/** dma_map_sg's arguments (attrs: DMA_ATTR_SKIP_CPU_SYNC only). */
export interface MapSgRequest {
  sg: readonly SgEntry[];
  dir: DmaDirection;
  skip_cpu_sync?: boolean | undefined;
}

export interface MapPageRequest {
  phys: number;
  size: number;
  dir: DmaDirection;
  skip_cpu_sync?: boolean | undefined;
}

/** What the driver says it unmaps: dma-debug compares size, dir and nents with the mapping. */
export interface UnmapRequest {
  handle: number;
  size?: number | undefined;
  dir?: DmaDirection | undefined;
  nents?: number | undefined;
  skip_cpu_sync?: boolean | undefined;
}

export interface SyncRequest {
  handle: number;
  for: SyncTarget;
  offset?: number | undefined;
  size?: number | undefined;
  dir?: DmaDirection | undefined;
  nents?: number | undefined;
}

/** A DMA address as dma-debug prints it (and the wire answers it): pfn·2^shift + off, DMA_MAPPING_ERROR for none. */
export function dmaAddress(s: DmaSegment | undefined, shift: number): string {
  return s ? hexAddr(s.pfn, shift, s.off) : DMA_MAPPING_ERROR_HEX;
}

const NO_STRAYS: readonly Mapping[] = [];

const COUNTER_NAMES = ['map_sg', 'map_page', 'unmap', 'sync', 'alloc_coherent', 'free_coherent', 'failed_maps', 'device_faults'] as const;
const countersCodec = record<Counters>({ map_sg: num, map_page: num, unmap: num, sync: num, alloc_coherent: num, free_coherent: num, failed_maps: num, device_faults: num }, COUNTER_NAMES);

/** The first bytes of a device's saved state (an older snapshot, V8's serialization, starts otherwise). */
export const DEVICE_STATE_MAGIC = Buffer.from('DMAEMU-STATE\n', 'latin1');

export class DmaDevice {
  /**
   * Saved state, in restore order: the mapping table first (the device view's coherent buffers are
   * its mappings), the layout's ops (allocator, swiotlb, strays), then what watches and models
   * around them. Config, limits, observer and the process-wide budget are given, not saved.
   */
  static readonly STATE = describe<DmaDevice>('dma-device', 1, [
    field('counters', countersCodec, (o) => o.counters, (o, v) => Object.assign(o.counters, v)),
    nested('table', MappingTable.STATE, (o) => o.table),
    part('ops', (o) => o.ops.state()),
    nested('debug', DmaDebug.STATE, (o) => o.debug),
    nested('cachelines', CachelineTracker.STATE, (o) => o.cachelines),
    nested('memory', DeviceView.STATE, (o) => o.memory),
    nested('pages', PageAllocator.STATE, (o) => o.pages),
    nested('budget', BudgetShare.STATE, (o) => o.budget),
  ]);

  /** The device's state as bytes (DEVICE_STATE_MAGIC, then STATE). */
  saveState(): Buffer {
    const w = new StateWriter();
    for (const b of DEVICE_STATE_MAGIC) w.u8(b);
    writeState(w, DmaDevice.STATE, this);
    return w.finish();
  }

  /** Restores what saveState wrote into this device (newly constructed, same config); throws StateError naming what is wrong. */
  loadState(bytes: Buffer): void {
    if (!bytes.subarray(0, DEVICE_STATE_MAGIC.length).equals(DEVICE_STATE_MAGIC)) throw new StateError('not a dmaemu device state (its first bytes are not DMAEMU-STATE)');
    const r = new StateReader(bytes, DEVICE_STATE_MAGIC.length);
    readState(r, DmaDevice.STATE, this);
    if (r.offset !== bytes.length) throw new StateError(`${bytes.length - r.offset} bytes after the device state`);
  }

  readonly table = new MappingTable();
  readonly debug: DmaDebug;
  readonly memory: DeviceView;
  readonly budget: BudgetShare;
  readonly counters: Counters = {
    map_sg: 0,
    map_page: 0,
    unmap: 0,
    sync: 0,
    alloc_coherent: 0,
    free_coherent: 0,
    failed_maps: 0,
    device_faults: 0,
  };
  private readonly ops: DmaOps;
  /** The layout's stray rule, or null (every layout but linux-4.4): looked up once, not per unmap. */
  private readonly strayRule: StrayRule | null;
  private readonly cachelines: CachelineTracker;
  private readonly pages: PageAllocator;
  /** The IOVA API's states, or null where the kernel version (or layout) has none. */
  private readonly iova: IovaApi | null;

  constructor(
    readonly config: SessionConfig,
    readonly limits: SessionLimits = DEFAULT_SESSION_LIMITS,
    private readonly observer: DmaObserver = SILENT_OBSERVER,
    budget: MemoryBudget = UNLIMITED_BUDGET,
  ) {
    this.budget = new BudgetShare(budget);
    this.ops = backendOf(config).createOps(config);
    this.strayRule = this.ops.strayRule ?? null;
    this.debug = new DmaDebug(observer);
    this.cachelines = new CachelineTracker(this.debug);
    this.pages = new PageAllocator(config.pageSize);
    const rules = config.kernel === null ? null : kernelSpec(config.kernel).iovaApi;
    this.iova = rules ? new IovaApi(this.ops.iovaDomain ?? null, rules, this.debug) : null;
    // The device sees the live mappings and the strays a stray rule left mapped.
    const table = this.table;
    const strays = this.strayRule?.strays;
    const seen = strays ? { *values() { yield* table.values(); yield* strays; } } : table;
    this.memory = new DeviceView(config, seen, this.debug, (bytes) => budget.check(bytes));
  }

  /** Granule shift of the mappings' addresses (0 without an IOMMU, and for arm-legacy's byte addresses). */
  get shift(): number {
    return this.ops.shift;
  }

  // ---- call boundaries ----------------------------------------------------------------

  /**
   * Called as each call starts: findings of an earlier call that ended in an error stay at
   * /debug but must not ride along on the next answer.
   */
  begin(): void {
    this.debug.discardFresh();
  }

  /**
   * Called as each answer leaves: charges the derived state as it now stands (emulated RAM and
   * cache chunks, kept findings, faults, handle-table pages: what the call produced that could
   * not be refused beforehand) and hands over the call's findings.
   */
  finish(): DebugFinding[] | undefined {
    this.budget.settle(this.memory.footprint() + this.debug.keptCount * FOOTPRINT.finding + this.table.pageCount * FOOTPRINT.handlePage);
    return this.debug.takeFresh();
  }

  // ---- streaming mappings -------------------------------------------------------------

  /** dma_map_sg: the mapping, or the kernel's failure (then `why` holds the reason, when given). */
  mapSg(req: MapSgRequest, pageRows: boolean, why?: SgExplainer): Mapping | MapFailure {
    const dir = mappingDirection(req.dir);
    const sg = req.sg;
    if (sg.length > this.limits.maxSgEntries) {
      throw new DmaemuError('DMAEMU_TOO_MANY_SG_ENTRIES', `a scatterlist may hold at most ${this.limits.maxSgEntries} entries`, 'sg');
    }
    let longest = 0;
    for (let i = 0; i < sg.length; i++) {
      const e = sg[i] as SgEntry;
      checkPhys(e, `sg.${i}`);
      if (e.length > longest) longest = e.length;
    }
    if (pageRows) this.checkPageRows(sg);
    this.checkRoom(sg.length);
    this.counters.map_sg++;
    const r = this.ops.mapSg(sg, dir, why);
    if (isFailure(r)) return this.failed('map_sg', r);
    const skip = req.skip_cpu_sync === true;
    const m = this.adopt(r, 'map_sg', dir, skip);
    // debug_dma_map_sg: check_sg_segment per mapped entry, then add_dma_entry's cacheline tracking.
    this.debug.checkSgSegments(m, longest, this.config.maxSegmentSize, this.config.segmentBoundaryBits, this.ops.shift);
    this.cachelines.insert(m, skip);
    this.observer.call('map_sg', null);
    return m;
  }

  mapPage(req: MapPageRequest, pageRows: boolean): Mapping | MapFailure {
    const dir = mappingDirection(req.dir);
    const entry = { phys: req.phys, length: req.size };
    checkPhys(entry, 'phys');
    if (pageRows) this.checkPageRows([entry]);
    this.checkRoom(1);
    this.counters.map_page++;
    const r = this.ops.mapPage(req.phys, req.size, dir);
    if (isFailure(r)) return this.failed('map_page', r);
    const skip = req.skip_cpu_sync === true;
    const m = this.adopt(r, 'map_page', dir, skip);
    this.cachelines.insert(m, skip);
    this.observer.call('map_page', null);
    return m;
  }

  /** dma_unmap_sg / dma_unmap_page: the mapping it tore down (throws for an unknown or coherent handle). */
  unmap(req: UnmapRequest): Mapping {
    const m = this.table.get(req.handle);
    if (!m) {
      this.debug.unmapUnknown(req.handle, this.table.issued(req.handle) ? 'freed' : 'never');
      throw new DmaemuError('DMAEMU_HANDLE_NOT_FOUND', `handle ${req.handle}: device driver tries to free DMA memory it has not allocated`);
    }
    if (m.kind === 'coherent') {
      // dma-debug reports it; Linux would tear down the wrong kind of mapping. We refuse,
      // keeping the buffer intact, and say so.
      this.debug.wrongFunction(m, 'map_page', this.addr(m));
      throw new DmaemuError('DMAEMU_INVALID_ARGUMENT', `handle ${req.handle} is a coherent buffer: free it with free_coherent (DMA-API: device driver frees DMA memory with wrong function)`, 'handle');
    }
    this.debug.checkUnmap(m, req, () => this.addr(m));
    this.memory.syncForCpuOnUnmap(m, req.skip_cpu_sync === true);
    this.cachelines.remove(m);
    this.release(m);
    this.counters.unmap++;
    this.observer.call('unmap', null);
    return m;
  }

  /** dma_sync_*_for_cpu / _for_device: the maintenance done and the bytes bounced. */
  sync(req: SyncRequest): { cache: CacheOp; bounced: number } {
    const m = this.table.get(req.handle);
    if (!m) {
      this.debug.syncUnknown(req.handle);
      throw new DmaemuError('DMAEMU_HANDLE_NOT_FOUND', `handle ${req.handle}: device driver tries to sync DMA memory it has not allocated`);
    }
    const offset = req.offset ?? 0;
    const size = req.size ?? m.size - offset;
    const dir = req.dir === undefined ? m.dir : mappingDirection(req.dir);
    this.counters.sync++;
    const r = this.memory.sync(m, req.for, offset, size, dir, () => this.addr(m));
    if (req.nents !== undefined) this.debug.checkSyncNents(m, req.nents);
    this.observer.call('sync', null);
    return r;
  }

  // ---- coherent buffers ---------------------------------------------------------------

  /** dma_alloc_coherent: the buffer's mapping (its pages from m.sg[0].phys on), or the failure. */
  allocCoherent(size: number): Mapping | MapFailure {
    this.checkRoom(1);
    this.counters.alloc_coherent++;
    const bytes = Math.ceil(size / this.config.pageSize) * this.config.pageSize;
    const phys = this.pages.alloc(bytes);
    if (phys < 0) return this.failed('alloc_coherent', { errno: 'ENOMEM', message: 'emulated page allocator exhausted' });
    const r = this.ops.mapCoherent(phys, bytes);
    if (isFailure(r)) {
      this.pages.release(phys, bytes);
      return this.failed('alloc_coherent', r);
    }
    this.memory.zero(phys, bytes);
    const m = this.adopt({ ...r, size }, 'coherent', 'bidirectional', true);
    this.cachelines.insert(m, false); // debug_dma_alloc_coherent: attrs carry no SKIP_CPU_SYNC
    this.observer.call('alloc_coherent', null);
    return m;
  }

  freeCoherent(handle: number): Mapping {
    const m = this.table.get(handle);
    if (!m || m.kind !== 'coherent') {
      if (m) this.debug.wrongFunction(m, 'coherent', this.addr(m));
      else this.debug.freeCoherentUnknown(handle);
      if (m) throw new DmaemuError('DMAEMU_INVALID_ARGUMENT', `handle ${handle} is a streaming mapping: unmap it (DMA-API: device driver frees DMA memory with wrong function)`, 'handle');
      throw new DmaemuError('DMAEMU_HANDLE_NOT_FOUND', `handle ${handle}: device driver tries to free DMA memory it has not allocated`);
    }
    this.cachelines.remove(m);
    this.release(m);
    const first = m.sg[0];
    if (first) this.pages.release(first.phys, Math.ceil(m.size / this.config.pageSize) * this.config.pageSize);
    this.counters.free_coherent++;
    this.observer.call('free_coherent', null);
    return m;
  }

  /** The flush queue (and the rcache, the depot's delayed trim) drained now. */
  flush(rcache: boolean, depotTrim: boolean): { flushed: number; rcacheFreed: number } {
    const r = this.ops.flush(rcache, depotTrim);
    this.observer.call('flush', null);
    return r;
  }

  // ---- the IOVA API (iova-api.ts; Linux 6.16+) -----------------------------------------

  /** dma_iova_try_alloc: a range (ok) or false, as the kernel says it. */
  iovaTryAlloc(req: IovaTryAllocRequest): IovaTryAllocResult {
    const api = this.iovaCalls();
    checkPhys({ phys: req.phys, length: req.size }, 'phys');
    this.checkRoom(1);
    const r = api.tryAlloc(req);
    if (r.ok) this.budget.addMapping(1);
    return r;
  }

  /** dma_iova_link: 0 or the kernel's negative errno (a refused link changes nothing). */
  iovaLink(req: IovaLinkRequest): IovaCallResult {
    const api = this.iovaCalls();
    checkPhys({ phys: req.phys, length: req.size }, 'phys');
    return api.link(req);
  }

  iovaSync(req: IovaSyncRequest): IovaCallResult {
    return this.iovaCalls().sync(req);
  }

  iovaUnlink(req: IovaUnlinkRequest): void {
    this.iovaCalls().unlink(req);
  }

  iovaDestroy(req: IovaDestroyRequest): void {
    this.iovaCalls().destroy(req);
    this.budget.refundMapping(1);
  }

  iovaFree(req: IovaFreeRequest): void {
    this.iovaCalls().free(req);
    this.budget.refundMapping(1);
  }

  private iovaCalls(): IovaApi {
    if (this.iova) return this.iova;
    throw this.config.kernel === null ? noIovaApi('layout', `layout ${this.config.layout}`) : noIovaApi('kernel', `Linux ${this.config.kernel}`);
  }

  // ---- memory -------------------------------------------------------------------------

  cpuWrite(phys: number, data: Uint8Array): MemoryAccess {
    return this.memory.cpuWrite(phys, data);
  }

  cpuRead(phys: number, length: number): MemoryAccess {
    return this.memory.cpuRead(phys, length);
  }

  deviceWrite(addr: bigint, data: Uint8Array): MemoryAccess {
    const r = this.memory.deviceWrite(addr, data);
    if (r.fault) this.deviceFault(r.fault.reason);
    return r;
  }

  deviceRead(addr: bigint, length: number): MemoryAccess {
    const r = this.memory.deviceRead(addr, length);
    if (r.fault) this.deviceFault(r.fault.reason);
    return r;
  }

  // ---- state --------------------------------------------------------------------------

  /** dma-direct's swiotlb search index (area->index) as the session leaves it; null behind an IOMMU. */
  swiotlbIndex(): number | null {
    return this.ops.swiotlbIndex?.() ?? null;
  }

  /** Ranges in the IOVA allocator (reserved and cached included). */
  rangeCount(): number {
    return this.ops.rangeCount();
  }

  /** What the IOVA picture draws (iova-picture.ts): nothing is copied, the mappings are walked once. */
  iovaState(): IovaState {
    return { mappings: this.table.values(), strays: this.strayRule?.strays ?? NO_STRAYS, straysPossible: this.strayRule !== null, shift: this.ops.shift, marks: this.ops.allocatorMarks?.() ?? null };
  }

  /** dma_debug_device_change: what is still live is a leak (reported once, with one of them). */
  reportLeaks(): Mapping[] {
    const live = [...this.table.values()];
    const first = live[0];
    if (first) this.debug.leaks(live.length, first, this.addr(first));
    this.iova?.reportLeaks();
    return live;
  }

  /** The address dma-debug prints for a mapping: its first segment's. */
  addr(m: Mapping): string {
    return dmaAddress(m.segments[0], this.ops.shift);
  }

  // ---- internals ----------------------------------------------------------------------

  /** Room for one more mapping of `entries` scatterlist entries: the per-session limit, then the budget (charged in adopt). */
  private checkRoom(entries: number): void {
    if (this.table.size + (this.iova?.size ?? 0) >= this.limits.maxMappings) {
      throw new DmaemuError('DMAEMU_TOO_MANY_MAPPINGS', `the session already holds ${this.limits.maxMappings} live mappings`);
    }
    this.budget.check(mappingCost(entries));
  }

  private checkPageRows(sg: readonly SgEntry[]): void {
    const g = this.config.iommu?.granule ?? this.config.pageSize;
    let rows = 0;
    for (const s of sg) rows += Math.ceil(((s.phys % g) + s.length) / g);
    if (rows > this.limits.maxPageRows) {
      throw invalid('pages', `the mapping would list ${rows} page rows; at most ${this.limits.maxPageRows} (ask without ?pages=true)`);
    }
  }

  private failed(call: 'map_sg' | 'map_page' | 'alloc_coherent', r: MapFailure): MapFailure {
    this.counters.failed_maps++;
    this.observer.call(call, r.errno);
    return r;
  }

  private deviceFault(reason: string): void {
    this.counters.device_faults++;
    this.observer.fault(reason);
  }

  private adopt(r: MapResult, kind: Mapping['kind'], dir: DmaDirection, skipCpuSync: boolean): Mapping {
    const m = this.table.add(r, kind, dir);
    this.budget.addMapping(r.sg.length); // checkRoom checked it fits
    this.table.holdIova(this.ops.iovaBytes(m));
    this.memory.syncForDeviceOnMap(m, skipCpuSync);
    return m;
  }

  private release(m: Mapping): void {
    const rule = this.strayRule;
    if (rule === null) {
      this.ops.unmap(m);
      this.table.remove(m);
      this.table.releaseIova(this.ops.iovaBytes(m));
      this.memory.released(m);
      this.budget.refundMapping(m.sg.length);
      return;
    }
    this.table.remove(m);
    const fx = rule.unmap(m, this.table.values());
    if (fx === null) this.table.releaseIova(this.ops.iovaBytes(m));
    else {
      if (fx.gone) this.table.releaseIova(this.ops.iovaBytes(fx.gone));
      if (fx.dropped) this.budget.refundMapping(fx.dropped.sg.length);
      this.debug.layoutFinding(fx.finding.check, m.handle, fx.finding.message);
    }
    this.memory.released(m);
    if (fx === null || !fx.kept) this.budget.refundMapping(m.sg.length); // a stray's share goes back when its range is freed
  }
}

/** valid_dma_direction: mapping with DMA_NONE hits BUG_ON in dma_map_*. */
function mappingDirection(dir: DmaDirection): DmaDirection {
  if (dir === 'none') throw invalid('dir', 'DMA_NONE is not a valid direction for a mapping (BUG_ON(!valid_dma_direction(dir)))');
  return dir;
}

function checkPhys(s: SgEntry, field: string): void {
  if (s.phys + s.length > 2 ** 52) throw invalid(field, 'the buffer runs past the 52-bit physical address space');
}
