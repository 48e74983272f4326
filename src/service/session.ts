// One session as the service sees it: wire input (schemas/) → a call on its DMA device
// (src/core/dma-device.ts) → the answer (present.ts), with the call's dma-debug findings
// attached. The id, idle time and wire config live here; everything the DMA API does, and the
// session's share of the memory budget, is the device's.

import type { SessionConfig } from '../core/config.js';
import type { DebugFinding } from '../core/dma-debug.js';
import { DEFAULT_SESSION_LIMITS, DmaDevice, type SessionLimits } from '../core/dma-device.js';
import { DMA_MAPPING_ERROR_HEX } from '../core/hex.js';
import { isFailure, type MapFailure } from '../core/mapping.js';
import { SgExplainer, explainOut } from '../core/explain.js';
import type { IovaState } from '../core/iova-picture.js';
import { SILENT_OBSERVER, type DmaObserver } from '../core/observer.js';
import { UNLIMITED_BUDGET, type MemoryBudget } from '../core/memory-budget.js';
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
import { checkBatchOps, runBatch, type CostUnit } from './calls.js';
import { configToWire } from './config-wire.js';
import { coherentPages, faultOut, firstAddress, memoryOut, iovaOut, iovaRangesOut, leakRow, mappingRow, pageRows, segmentsOut } from './present.js';

export { DEFAULT_SESSION_LIMITS, type SessionLimits };

/**
 * A /mappings page also ends once its rows hold this many array items (segments, IOVA ranges and
 * phys entries together), whatever `limit` says: a row of a 4096-entry scatterlist carries
 * thousands of items, so rows alone bound neither the answer's size nor the time it holds the
 * event loop (API.md "Tables"). 4096 items is 1365 one-page rows, about 360 KB: tens of
 * milliseconds (16 384 items held other tenants for 246 ms in npm run load:stall). A page
 * always holds at least one row.
 */
export const MAPPINGS_PAGE_ITEMS = 4096;
export type { MapFailure };

export class Session {
  readonly id: string;
  readonly wireConfig: SessionConfigOut;
  /** Milliseconds since the epoch of the last call (idle expiry). */
  lastUsed = Date.now();
  readonly device: DmaDevice;

  constructor(
    id: string,
    config: SessionConfig,
    limits: SessionLimits = DEFAULT_SESSION_LIMITS,
    observer: DmaObserver = SILENT_OBSERVER,
    budget: MemoryBudget = UNLIMITED_BUDGET,
  ) {
    this.id = id;
    this.wireConfig = configToWire(config);
    this.device = new DmaDevice(config, limits, observer, budget);
  }

  get config(): SessionConfig {
    return this.device.config;
  }

  get limits(): SessionLimits {
    return this.device.limits;
  }

  // ---- streaming mappings -------------------------------------------------------------

  mapSg(input: MapSgInput, withPages = false, explain = false): MapSgOut {
    const d = this.device;
    d.begin();
    const why = explain ? new SgExplainer() : undefined;
    const m = d.mapSg(input, withPages, why);
    if (isFailure(m)) {
      const failed: MapSgOut = this.withDebug({ handle: null, nents: 0, segments: [], iova: null, iova_ranges: [], error: m });
      if (why) failed.explain = explainOut(why, [], () => 0n);
      return failed;
    }
    const shift = d.shift;
    const out: MapSgOut = {
      handle: m.handle,
      nents: m.segments.length,
      segments: segmentsOut(m, shift),
      iova: iovaOut(m, shift),
      iova_ranges: iovaRangesOut(m, shift),
    };
    if (m.bounce) out.bounced = true;
    if (withPages) out.pages = pageRows(m, shift, this.granule());
    if (why) out.explain = explainOut(why, m.segments, (x) => BigInt(x.pfn) * 2n ** BigInt(shift) + BigInt(x.off));
    return this.withDebug(out);
  }

  mapPage(input: MapPageInput, withPages = false): MapPageOut {
    const d = this.device;
    d.begin();
    const m = d.mapPage(input, withPages);
    if (isFailure(m)) return this.withDebug({ handle: null, dma_address: DMA_MAPPING_ERROR_HEX, iova: null, error: m });
    const out: MapPageOut = { handle: m.handle, dma_address: firstAddress(m, d.shift), iova: iovaOut(m, d.shift) };
    if (m.bounce) out.bounced = true;
    if (withPages) out.pages = pageRows(m, d.shift, this.granule());
    return this.withDebug(out);
  }

  unmap(input: UnmapInput): UnmapOut {
    const d = this.device;
    d.begin();
    const m = d.unmap(input);
    return this.withDebug({ handle: m.handle, iova: iovaOut(m, d.shift) });
  }

  sync(input: SyncInput): SyncOut {
    this.device.begin();
    const r = this.device.sync(input);
    return this.withDebug({ handle: input.handle, cache: r.cache, bounced_bytes: r.bounced });
  }

  // ---- coherent buffers ---------------------------------------------------------------

  allocCoherent(input: AllocCoherentInput): AllocCoherentOut {
    const d = this.device;
    d.begin();
    const m = d.allocCoherent(input.size);
    if (isFailure(m)) return this.withDebug({ handle: null, dma_handle: DMA_MAPPING_ERROR_HEX, size: input.size, phys: [], error: m });
    return this.withDebug({ handle: m.handle, dma_handle: firstAddress(m, d.shift), size: input.size, phys: coherentPages(m, input.size, this.config.pageSize) });
  }

  freeCoherent(input: FreeCoherentInput): FreeCoherentOut {
    this.device.begin();
    const m = this.device.freeCoherent(input.handle);
    return this.withDebug({ handle: m.handle });
  }

  flush(input: FlushInput): FlushOut {
    const r = this.device.flush(input.rcache === true, input.depot_trim === true);
    return { flushed: r.flushed, rcache_freed: r.rcacheFreed };
  }

  batch(input: BatchInput): BatchOut {
    checkBatchOps(input.ops.length, this.limits.maxBatchOps);
    return runBatch(this, input);
  }

  // ---- memory -------------------------------------------------------------------------

  cpuWrite(input: CpuWriteInput): MemoryOut {
    this.device.begin();
    return this.withDebug(memoryOut(this.device.cpuWrite(input.phys, Buffer.from(input.data, 'base64'))));
  }

  cpuRead(input: CpuReadInput): MemoryOut {
    this.device.begin();
    return this.withDebug(memoryOut(this.device.cpuRead(input.phys, input.length)));
  }

  deviceWrite(input: DeviceWriteInput): MemoryOut {
    this.device.begin();
    return this.withDebug(memoryOut(this.device.deviceWrite(input.dma_address, Buffer.from(input.data, 'base64'))));
  }

  deviceRead(input: DeviceReadInput): MemoryOut {
    this.device.begin();
    return this.withDebug(memoryOut(this.device.deviceRead(input.dma_address, input.length)));
  }

  // ---- tables -------------------------------------------------------------------------

  /** Live mappings in handle order, a page at a time (a million rows would not fit one answer). */
  mappingsTable(page: { after?: number | undefined; limit?: number | undefined } = {}): MappingsOut {
    const limit = page.limit ?? Infinity;
    const shift = this.device.shift;
    const rows: MappingRowOut[] = [];
    let next: number | null = null;
    let items = 0;
    for (const m of this.device.table.values(page.after ?? 0)) {
      const weight = m.segments.length + m.allocs.length + m.sg.length;
      if (rows.length === limit || (rows.length > 0 && items + weight > MAPPINGS_PAGE_ITEMS)) {
        next = (rows[rows.length - 1] as MappingRowOut).handle;
        break;
      }
      rows.push(mappingRow(m, shift));
      items += weight;
    }
    return { mappings: rows, next };
  }

  debugTable(): DebugOut {
    return { debug: this.device.debug.all() };
  }

  faultsTable(): FaultsOut {
    return { faults: this.device.memory.faults().map(faultOut) };
  }

  summary(): SessionSummaryOut {
    const d = this.device;
    return {
      id: this.id,
      config: this.wireConfig,
      live_mappings: d.table.liveStreaming,
      live_coherent: d.table.liveCoherent,
      iova_bytes_in_use: d.table.iovaBytesInUse,
      iova_ranges: d.rangeCount(),
      counters: { ...d.counters },
      memory_bytes_touched: d.memory.bytesTouched(),
      memory_budget_bytes: d.budget.chargedBytes,
    };
  }

  get liveMappings(): number {
    return this.device.table.size;
  }

  get iovaBytesInUse(): number {
    return this.device.table.iovaBytesInUse;
  }

  iovaState(): IovaState {
    return this.device.iovaState();
  }

  /** DELETE: what is still live is a leak (dma-debug's "pending DMA allocations"). */
  close(): LeakReportOut {
    const shift = this.device.shift;
    const leaks = this.device.reportLeaks().map((m) => leakRow(m, shift));
    const streaming = leaks.filter((l) => l.kind !== 'coherent').length;
    return {
      id: this.id,
      leaked_mappings: streaming,
      leaked_coherent: leaks.length - streaming,
      leaks,
      debug: this.device.debug.all(),
    };
  }

  // ---- the memory budget (src/core/budget-share.ts) ------------------------------------

  /** Bytes this session holds of the process-wide memory budget. */
  get budgetBytes(): number {
    return this.device.budget.totalBytes;
  }

  /** A new session's fixed footprint, charged by the store before it registers the session (throws DMAEMU_MEMORY_BUDGET). */
  chargeCreation(): void {
    this.device.budget.chargeCreation();
  }

  /**
   * Bytes held for this session outside its own state (the memory-only trace buffer): charged when
   * the budget has room (false, nothing charged, otherwise: keeping a trace never refuses a call),
   * given back when negative.
   */
  holdBytes(bytes: number): boolean {
    return this.device.budget.hold(bytes);
  }

  /** Gives the session's whole share back (it is deleted, expired or dropped); idempotent. */
  releaseBudget(): void {
    this.device.budget.releaseAll();
  }

  // ---- internals ----------------------------------------------------------------------

  /** What a call's cost is counted in (calls.ts). */
  get costUnit(): CostUnit {
    return { granule: this.granule(), pageSize: this.config.pageSize };
  }

  /** The unit of ?pages=true rows: the IOMMU granule, or the page without an IOMMU. */
  private granule(): number {
    return this.config.iommu?.granule ?? this.config.pageSize;
  }

  /** Attaches the findings this call produced (and settles the budget as the answer leaves). */
  private withDebug<T extends object>(out: T): T {
    const fresh = this.device.finish();
    if (fresh) (out as { debug?: DebugFinding[] }).debug = fresh;
    return out;
  }
}
