// Layout `linux`: today's drivers/iommu/dma-iommu.c (semantics §3, §6).
//
// map_sg lays every entry out inside ONE IOVA allocation (iommu_dma_map_sg): each entry is
// padded to whole granules, and an entry that would straddle a segment_boundary_mask boundary
// makes the previous entry grow so that it starts exactly on the boundary. __finalise_sg then
// concatenates an entry onto the current output segment when it starts on a granule, the
// previous entry ended where it starts, the entry's IOVA is not on a boundary, and
// max_segment_size allows it — in unsigned int arithmetic, as in the kernel, so after an entry
// longer than max_segment_size the test `max_len − cur_len ≥ s_length` wraps and more entries
// join it.

import type { SessionConfig } from '../session-config.js';
import type { AllocatorMarks } from '../iova/iova-allocator.js';
import { createLinuxIova, IOVA_ROUNDUP_BELOW, type FastLinuxIova } from '../iova/linux-iova.js';
import { alignUp, modPow2 } from '../iova/pfn-math.js';
import type { DmaDirection } from '../constants.js';
import type { DmaOps, DmaSegment, Extent, IovaDomain, MapFailure, MapResult, Mapping, SgEntry } from '../mapping.js';
import { totalLength, type SgExplainer } from '../explain.js';
import { describe, part, stateRef, type StateRef } from '../state/codec.js';
import type { LayoutSpec } from './layout.js';
import { kernelSpec, NEWEST_KERNEL } from './kernels.js';

/**
 * Today's kernel: no layout-specific probe checks; a 48-bit aperture; the device's dma_parms read
 * as the session's kernel version reads them (kernels.ts), by default the newest recorded.
 */
export const LINUX_LAYOUT: LayoutSpec = {
  name: 'linux',
  readDmaParms: (stored, bus, kernel) => kernelSpec(kernel ?? NEWEST_KERNEL).readDmaParms(stored, bus),
  defaultKernel: NEWEST_KERNEL,
  defaultApertureEnd: (1n << 48n) - 1n,
  checkAperture: () => undefined,
  checkDomain: () => undefined,
  createOps: (config) => new LinuxIommuDma(config),
  forDeviceAlwaysCleans: true,
  addressShift: (config) => config.iommu?.shift ?? 0,
};

export class LinuxIommuDma implements DmaOps {
  /** Saved state: the allocator only (the rest is config, and scratch buffers). */
  static readonly STATE = describe<LinuxIommuDma>('linux-iommu-dma', 1, [part('iova', (o) => o.iova.state())]);

  readonly shift: number;
  private readonly granule: number;
  private readonly pageSize: number;
  private readonly iova: FastLinuxIova;
  private readonly startPfn: number;
  private readonly dmaLimitPfn: number;
  private readonly coherentLimitPfn: number;
  private readonly maxSeg: number;
  private readonly segBits: number;
  private readonly boundarySpanPfns: number;
  /** The allocator, as the IOVA API sees it: iommu_dma_alloc_iova against dma_get_mask. */
  readonly iovaDomain: IovaDomain;
  // Scratch for map_sg's per-entry layout (reused: no allocation per call).
  private entryOff = new Float64Array(64);
  private sIovaLen = new Float64Array(64); // 2^(segBits − shift): the boundary in pfns

  constructor(cfg: SessionConfig) {
    const iommu = cfg.iommu;
    if (!iommu) throw new TypeError('LinuxIommuDma needs an IOMMU');
    this.shift = iommu.shift;
    this.granule = iommu.granule;
    this.pageSize = cfg.pageSize;
    const sh = BigInt(iommu.shift);
    const startPfn = Number(iommu.apertureStart >> sh);
    this.startPfn = startPfn > 1 ? startPfn : 1; // iommu_dma_init_domain: never pfn 0
    this.dmaLimitPfn = Number(cfg.dmaMask >> sh);
    this.coherentLimitPfn = Number(cfg.coherentDmaMask >> sh);
    this.maxSeg = cfg.maxSegmentSize;
    this.segBits = cfg.segmentBoundaryBits;
    this.boundarySpanPfns = cfg.segmentBoundaryBits - iommu.shift >= 53 ? Infinity : 2 ** (cfg.segmentBoundaryBits - iommu.shift);
    this.iova = createLinuxIova({
      shift: iommu.shift,
      pageShift: cfg.pageShift,
      startPfn: this.startPfn,
      apertureEndPfn: Number(iommu.apertureEnd >> sh),
      // iommu_setup_dma_ops: pci_32bit_workaround = !iommu_dma_forcedac
      pci: cfg.bus === 'pci' && !iommu.forcedac,
      strict: iommu.strict,
    });
    // iova_reserve_iommu_regions
    for (const r of iommu.reserved) this.iova.reserve(Number(r.start >> sh), Number(r.end >> sh));
    const iova = this.iova;
    this.iovaDomain = {
      granule: this.granule,
      shift: this.shift,
      allocIova: (pages) => this.alloc(pages, this.dmaLimitPfn),
      freeIova: (pfn, pages, gathered) => (gathered ? iova.freeIova(pfn, pages) : iova.freeIovaNow(pfn, pages)),
    };
  }

  /** iommu_dma_alloc_iova, or 0 when the limit lies below the domain (every request fails). */
  alloc(pages: number, limitPfn: number): number {
    if (this.iova.limitPfn(limitPfn) < this.startPfn) return 0;
    return this.iova.allocIova(pages, limitPfn);
  }

  /** (mask − iova_len + 1) & mask for mask = 2^segBits − 1. */
  private boundaryPad(iovaLen: number): number {
    if (this.segBits >= 53) return iovaLen === 0 ? 0 : Number.MAX_SAFE_INTEGER; // never < s_length − 1
    const span = 2 ** this.segBits;
    const r = iovaLen % span;
    return r === 0 ? 0 : span - r;
  }

  /** (dma_addr & seg_mask) != 0 for the granule-aligned IOVA pfn·granule. */
  private offBoundary(pfn: number): boolean {
    if (this.segBits <= this.shift) return false;
    // pfns stay below 2^52: with a wide mask the modulo (a slow fmod on doubles) is the pfn itself.
    const span = this.boundarySpanPfns;
    return pfn < span ? pfn !== 0 : pfn % span !== 0;
  }

  mapSg(sg: readonly SgEntry[], _dir: DmaDirection, why?: SgExplainer): MapResult | MapFailure {
    const g = this.granule;
    const n = sg.length;
    if (this.entryOff.length < n) {
      this.entryOff = new Float64Array(n * 2);
      this.sIovaLen = new Float64Array(n * 2);
    }
    const entryOff = this.entryOff; // byte offset of each entry's first granule
    const sIovaLen = this.sIovaLen; // padded length, later grown by boundary pads
    let iovaLen = 0;
    for (let i = 0; i < n; i++) {
      const s = sg[i] as SgEntry;
      const sLen = alignUp(s.length + modPow2(s.phys, g), g);
      const pad = this.boundaryPad(iovaLen);
      if (pad !== 0 && pad < sLen - 1) {
        sIovaLen[i - 1] = (sIovaLen[i - 1] as number) + pad;
        iovaLen += pad;
      }
      entryOff[i] = iovaLen;
      sIovaLen[i] = sLen;
      iovaLen += sLen;
    }
    const pages = iovaLen / g;
    const pfn = this.alloc(pages, this.dmaLimitPfn);
    if (pfn === 0) {
      if (why) this.explainFailure(why, pages);
      return { errno: 'ENOMEM', message: `no IOVA space for ${iovaLen} bytes below the DMA mask (iommu_dma_alloc_iova)` };
    }

    // __finalise_sg
    const segments: DmaSegment[] = [];
    const extents: Extent[] = [];
    let cur: DmaSegment | undefined;
    let curLen = 0;
    for (let i = 0; i < n; i++) {
      const s = sg[i] as SgEntry;
      const sIovaOff = modPow2(s.phys, g);
      const off = entryOff[i] as number;
      const sLen = sIovaLen[i] as number;
      if (curLen !== 0 && sIovaOff === 0 && this.offBoundary(pfn + off / g) && (this.maxSeg - curLen) >>> 0 >= s.length && cur) {
        curLen = (curLen + s.length) >>> 0;
      } else {
        if (why && i > 0) this.explainBreak(why, sg, i, curLen, pfn + off / g);
        cur = { pfn, off: off + sIovaOff, len: 0 };
        segments.push(cur);
        curLen = s.length;
      }
      cur.len = curLen;
      if (s.length + sIovaOff < sLen) curLen = 0;
      extents.push({ pfn, off, phys: s.phys - sIovaOff, bytes: sLen });
    }
    if (why && segments.length > 1) this.explainObstacles(why, sg, pfn);
    return {
      sg,
      size: sumLengths(sg),
      segments,
      allocs: [{ pfn, off: 0, bytes: this.allocatedPages(pages) * g }],
      extents,
      bounce: null,
    };
  }

  /**
   * Why __finalise_sg started a new segment at entry i: the first of its conditions that failed,
   * in the kernel's order (cur_len, s_iova_off, the boundary, max_segment_size).
   */
  private explainBreak(why: SgExplainer, sg: readonly SgEntry[], i: number, curLen: number, entryPfn: number): void {
    const g = this.granule;
    const s = sg[i] as SgEntry;
    const iovaOff = modPow2(s.phys, g);
    const kernel = '__finalise_sg';
    if (curLen === 0) {
      const p = sg[i - 1] as SgEntry;
      const pOff = modPow2(p.phys, g);
      const ownEnd = p.length + pOff;
      if (ownEnd % g !== 0) {
        const values = { prev_length: p.length, prev_iova_off: pOff, granule: g };
        why.brk({ entry: i, rule: 'previous_partial', kernel, values, message: `entry ${i - 1} ends ${ownEnd % g} bytes into a granule (iova_off ${pOff} + length ${p.length} is not a multiple of ${g}): cur_len was reset, nothing may follow it` });
      } else {
        const values = { segment_boundary_mask: `0x${(2n ** BigInt(this.segBits) - 1n).toString(16)}`, prev_length: p.length };
        why.brk({ entry: i, rule: 'segment_boundary', kernel: 'iommu_dma_map_sg', values, message: `entry ${i} would straddle a segment boundary: entry ${i - 1} was padded so that entry ${i} starts on it, and cur_len was reset` });
      }
      return;
    }
    if (iovaOff !== 0) {
      why.brk({ entry: i, rule: 'entry_offset', kernel, values: { iova_off: iovaOff, granule: g }, message: `entry ${i} starts ${iovaOff} bytes into a granule (s_iova_off ${iovaOff} != 0)` });
      return;
    }
    if (!this.offBoundary(entryPfn)) {
      const values = { dma_address: `0x${(BigInt(entryPfn) << BigInt(this.shift)).toString(16)}`, segment_boundary_mask: `0x${(2n ** BigInt(this.segBits) - 1n).toString(16)}` };
      why.brk({ entry: i, rule: 'segment_boundary', kernel, values, message: `entry ${i} starts on a segment boundary ((dma_addr & mask) == 0)` });
      return;
    }
    const values = { max_segment_size: this.maxSeg, cur_len: curLen, length: s.length };
    why.brk({ entry: i, rule: 'max_segment_size', kernel, values, message: `max_segment_size ${this.maxSeg} − cur_len ${curLen} < length ${s.length}` });
  }

  /**
   * Everything between this list and one segment, on a fresh session (docs/explain.md). A
   * segment ends before entry i when any of __finalise_sg's tests fails there, so every test
   * is looked at for every entry, not only the first that failed:
   * - s_iova_off != 0 (entry_offset) and a previous entry that ends inside a granule
   *   (previous_partial) depend on the buffer alone: no device parameter removes them;
   * - a boundary pad (iommu_dma_map_sg) or an entry whose IOVA lies on a boundary
   *   (segment_boundary) goes away with a mask whose window holds the whole list: the
   *   allocation is size-aligned (alloc_iova_fast), so it then lies inside one window with no
   *   pad and no entry after the first on a boundary, wherever it lands;
   * - max_len − cur_len ≥ s_length (unsigned int) depends on the lengths and max_segment_size
   *   alone once every entry joins; Σ length is enough unless it exceeds UINT_MAX, and then no
   *   unsigned int max_segment_size (nor sg_dma_len) holds the one segment.
   */
  private explainObstacles(why: SgExplainer, sg: readonly SgEntry[], pfn: number): void {
    const g = this.granule;
    const n = sg.length;
    const offsets: number[] = [];
    const partials: number[] = [];
    const boundary: number[] = [];
    let padded = 0; // Σ granule-padded lengths: the list's allocation without boundary pads
    for (let i = 0; i < n; i++) {
      const s = sg[i] as SgEntry;
      const off = modPow2(s.phys, g);
      const own = alignUp(s.length + off, g);
      padded += own;
      if (i === 0) continue;
      const p = sg[i - 1] as SgEntry;
      const pOff = modPow2(p.phys, g);
      if (off !== 0) offsets.push(i);
      if ((p.length + pOff) % g !== 0) partials.push(i);
      const grown = (this.sIovaLen[i - 1] as number) !== alignUp(p.length + pOff, g); // a pad was added to entry i − 1
      if (grown || !this.offBoundary(pfn + (this.entryOff[i] as number) / g)) boundary.push(i);
    }
    if (offsets.length > 0) {
      why.obstacle({ rule: 'entry_offset', entries: offsets, fix: null, message: `${offsets.length === 1 ? 'an entry starts' : 'entries start'} inside an IOMMU granule (s_iova_off != 0): a new segment whatever the device's limits` });
    }
    if (partials.length > 0) {
      why.obstacle({ rule: 'previous_partial', entries: partials, fix: null, message: `the entry before ${partials.length === 1 ? 'it ends' : 'each ends'} inside an IOMMU granule (s_length + s_iova_off < s_iova_len): cur_len is reset whatever the device's limits` });
    }
    if (boundary.length > 0) {
      let w = 1n;
      while (w < BigInt(padded)) w *= 2n;
      why.obstacle({ rule: 'segment_boundary', entries: boundary, fix: { segment_boundary_mask: w - 1n }, message: `the segment_boundary_mask 0x${(2n ** BigInt(this.segBits) - 1n).toString(16)} window (2^${this.segBits}) is smaller than the list's ${padded}-byte allocation: a ${w}-byte window holds it` });
    }
    const total = totalLength(sg);
    const tooLong = finaliseLengthBreaks(sg, this.maxSeg);
    if (tooLong.length === 0) return;
    if (total <= 0xffffffff) {
      why.obstacle({ rule: 'max_segment_size', entries: tooLong, fix: { max_segment_size: total }, message: `max_segment_size ${this.maxSeg} is less than the entries add up to: one segment needs Σ length = ${total}` });
    } else {
      why.obstacle({ rule: 'dma_length_limit', entries: finaliseLengthBreaks(sg, 0xffffffff), fix: null, message: `Σ length ${total} exceeds UINT_MAX: no max_segment_size (unsigned int) lets one segment hold it` });
    }
  }

  private explainFailure(why: SgExplainer, pages: number): void {
    const limitPfn = this.iova.limitPfn(this.dmaLimitPfn);
    why.fail({
      kernel: 'iommu_dma_alloc_iova',
      message: `no free range of ${this.allocatedPages(pages)} pfns (${pages} needed, rounded up below ${IOVA_ROUNDUP_BELOW}) at or below limit pfn 0x${limitPfn.toString(16)} (min of dma_mask and the aperture end, in ${this.granule}-byte granules)`,
      values: { pfns: pages, allocated_pfns: this.allocatedPages(pages), limit_pfn: `0x${limitPfn.toString(16)}`, start_pfn: `0x${this.startPfn.toString(16)}`, granule: this.granule },
    });
  }

  /** What alloc_iova_fast really takes for `pages`: the allocator's rule (linux-iova.ts). */
  allocatedPages(pages: number): number {
    return this.iova.allocatedPages(pages);
  }

  mapPage(phys: number, size: number, _dir: DmaDirection): MapResult | MapFailure {
    return mapContiguous(this, this.granule, phys, size, this.dmaLimitPfn, 'iommu_dma_alloc_iova');
  }

  mapCoherent(phys: number, size: number): MapResult | MapFailure {
    return mapContiguous(this, this.granule, phys, alignUp(size, this.pageSize), this.coherentLimitPfn, 'iommu_dma_alloc_iova');
  }

  unmap(m: Mapping): void {
    // iommu_dma_unmap_sg / __iommu_dma_unmap: from the first segment's start to the last
    // segment's end, widened to granules; that (unrounded) size picks the rcache class.
    const g = this.granule;
    const first = m.segments[0];
    const last = m.segments[m.segments.length - 1];
    if (!first || !last) return;
    const start = first.off;
    const end = last.off + (m.kind === 'map_sg' ? last.len : m.size);
    const iovaOff = modPow2(start, g);
    const pages = alignUp(end - start + iovaOff, g) / g;
    this.iova.freeIova(first.pfn + (start - iovaOff) / g, pages);
  }

  iovaBytes(m: Mapping): number {
    return m.allocs[0]?.bytes ?? 0;
  }

  flush(rcache: boolean, depotTrim = false): { flushed: number; rcacheFreed: number } {
    const flushed = this.iova.queuedFrees;
    this.iova.flushQueue();
    let rcacheFreed = depotTrim ? this.iova.trimDepot() : 0;
    if (rcache) {
      const r = this.iova.rangeCount;
      this.iova.flushRcache();
      rcacheFreed += r - this.iova.rangeCount;
    }
    return { flushed, rcacheFreed };
  }

  rangeCount(): number {
    return this.iova.rangeCount;
  }

  state(): StateRef {
    return stateRef(LinuxIommuDma.STATE, this);
  }

  allocatorMarks(): AllocatorMarks {
    return this.iova.marks();
  }
}

/** How a dma-iommu.c layout allocates granules: what mapContiguous needs of it. */
export interface GranuleAllocator {
  /** The first pfn of `pages` free granules at or below limitPfn, or 0 when there are none. */
  alloc(pages: number, limitPfn: number): number;
  /** The granules the allocator really holds for a request of `pages`. */
  allocatedPages(pages: number): number;
}

/**
 * __iommu_dma_map (v4.4's iommu_dma_map_page does the same): one physically contiguous buffer
 * in one allocation of whole granules, the buffer's offset in its granule kept. `allocFn` names
 * the kernel function whose failure the message reports.
 */
export function mapContiguous(a: GranuleAllocator, g: number, phys: number, size: number, limitPfn: number, allocFn: string): MapResult | MapFailure {
  const iovaOff = modPow2(phys, g);
  const bytes = alignUp(size + iovaOff, g);
  const pfn = a.alloc(bytes / g, limitPfn);
  if (pfn === 0) return { errno: 'ENOMEM', message: `no IOVA space for ${bytes} bytes below the DMA mask (${allocFn})` };
  return {
    sg: [{ phys, length: size }],
    size,
    segments: [{ pfn, off: iovaOff, len: size }],
    allocs: [{ pfn, off: 0, bytes: a.allocatedPages(bytes / g) * g }],
    extents: [{ pfn, off: 0, phys: phys - iovaOff, bytes }],
    bounce: null,
  };
}

export function sumLengths(sg: readonly SgEntry[]): number {
  let t = 0;
  for (const s of sg) t += s.length;
  return t;
}

/**
 * The entries before which __finalise_sg's length test (max_len − cur_len ≥ s_length, unsigned
 * int) fails when every entry joins the one segment: it depends on the lengths and the limit only.
 */
export function finaliseLengthBreaks(sg: readonly SgEntry[], maxSeg: number): number[] {
  const out: number[] = [];
  let cur = (sg[0] as SgEntry).length;
  for (let i = 1; i < sg.length; i++) {
    const len = (sg[i] as SgEntry).length;
    if ((maxSeg - cur) >>> 0 >= len) cur = (cur + len) >>> 0;
    else {
      out.push(i);
      cur = len;
    }
  }
  return out;
}

