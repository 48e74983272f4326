// Layout `linux-4.4`: drivers/iommu/dma-iommu.c as first merged (v4.4), the code the 2015
// thread argues about (semantics §4).
//
// map_sg pads each entry (after the first) so that it starts naturally aligned to its own
// size rounded up to a power of two — "over-allocating a little" — and never concatenates:
// every input entry is its own output segment. v4.4's __finalise_sg adds the entry's offset
// *within the CPU page* (s->offset) to its IOVA, not the offset within the IOVA granule; the
// two differ only when page_size > granule, and then v4.4 hands out a wrong address. Fixed
// upstream in v4.6 ("iommu/dma: Use correct offset in map_sg"); kept here because this layout
// is v4.4. Unmap frees whatever range holds the first segment's address.
//
// The stray rule lives here alone (V44Unmap, this layout's StrayRule): with page_size >
// granule that address can lie in a neighbour's range, and v4.4 then unmaps and frees the
// neighbour's range (its owner keeps a handle to nothing) and leaves the unmapped buffer's own
// IOVA mapped and allocated, a "stray". Invariants: a mapping is in `strays` at most once, and
// never with iovaGone set; a range is freed at most once, so each stray or live mapping loses
// its IOVA at most once.

import { invalid } from '../errors.js';
import { hex } from '../hex.js';
import type { SessionConfig } from '../session-config.js';
import type { AllocatorMarks } from '../iova/iova-allocator.js';
import { createIova44, type FastIova44 } from '../iova/iova44.js';
import { alignUp, roundupPowOfTwo } from '../iova/pfn-math.js';
import type { DmaDirection } from '../constants.js';
import type { DmaOps, DmaSegment, Extent, MapFailure, MapResult, Mapping, SgEntry, StrayRule, StrayUnmap } from '../mapping.js';
import { mapContiguous, sumLengths } from './linux.js';
import type { SgExplainer } from '../explain.js';
import { BOUNDARY_32, type LayoutSpec } from './layout.js';
import { MAPPING_CODEC } from '../mapping.js';
import { describe, listIn, part, stateRef, type StateRef } from '../state/codec.js';
import { DEFAULT_MAX_SEGMENT_SIZE } from './kernels.js';

/** v4.4: the 32-bit segment boundary default, and iommu_dma_init_domain's range check. */
export const LINUX_4_4_LAYOUT: LayoutSpec = {
  name: 'linux-4.4',
  // v4.4's getters: a 0 reads as SZ_64K / 32 bits ("dma-mapping: tidy up dma_parms default
  // handling", Robin Murphy, merged for v4.4); ULONG_MAX came in v5.10.
  readDmaParms: (stored) => ({
    maxSegmentSize: stored.maxSegmentSize || DEFAULT_MAX_SEGMENT_SIZE,
    segmentBoundaryMask: stored.segmentBoundaryMask || BOUNDARY_32,
  }),
  defaultKernel: null,
  defaultApertureEnd: (1n << 48n) - 1n,
  checkAperture: () => undefined,
  checkDomain: (p) => {
    const start = p.apertureStart >> BigInt(p.shift);
    const end32 = (p.coherentDmaMask < p.apertureEnd ? p.coherentDmaMask : p.apertureEnd) >> BigInt(p.shift);
    if (end32 < (start > 1n ? start : 1n)) {
      throw invalid('iommu.aperture', 'specified DMA range outside IOMMU capability (iommu_dma_init_domain)');
    }
  },
  createOps: (config) => new Linux44IommuDma(config),
  forDeviceAlwaysCleans: false,
  addressShift: (config) => config.iommu?.shift ?? 0,
};

const sLenOf = (s: SgEntry, g: number): number => alignUp(s.length + (s.phys % g), g);

export class Linux44IommuDma implements DmaOps {
  /** Saved state: the allocator and the strays (unmapped mappings whose range v4.4 left allocated), oldest first. */
  static readonly STATE = describe<Linux44IommuDma>('linux-4.4-iommu-dma', 1, [
    part('iova', (o) => o.iova.state()),
    listIn('strays', MAPPING_CODEC, (o) => (o.strayRule as V44Unmap).strays),
  ]);

  readonly shift: number;
  private readonly granule: number;
  private readonly pageSize: number;
  private readonly iova: FastIova44;
  private readonly startPfn: number;
  private readonly dmaLimitPfn: number;
  private readonly coherentLimitPfn: number;

  constructor(cfg: SessionConfig) {
    const iommu = cfg.iommu;
    if (!iommu) throw new TypeError('Linux44IommuDma needs an IOMMU');
    this.shift = iommu.shift;
    this.granule = iommu.granule;
    this.pageSize = cfg.pageSize;
    const sh = BigInt(iommu.shift);
    const startPfn = Number(iommu.apertureStart >> sh);
    this.startPfn = startPfn > 1 ? startPfn : 1;
    const end32 = cfg.coherentDmaMask < iommu.apertureEnd ? cfg.coherentDmaMask : iommu.apertureEnd;
    this.dmaLimitPfn = Number(cfg.dmaMask >> sh);
    this.coherentLimitPfn = Number(cfg.coherentDmaMask >> sh);
    this.iova = createIova44({
      pageShift: cfg.pageShift,
      shift: iommu.shift,
      startPfn: this.startPfn,
      dma32BitPfn: Number(end32 >> sh),
      apertureEndPfn: Number(iommu.apertureEnd >> sh),
    });
    for (const r of iommu.reserved) this.iova.reserve(Number(r.start >> sh), Number(r.end >> sh));
  }

  readonly strayRule: StrayRule = new V44Unmap(this);

  alloc(pages: number, limitPfn: number): number {
    if (limitPfn < this.startPfn) return 0;
    return this.iova.allocIova(pages, limitPfn);
  }

  /** v4.4 allocates every size as its power of two (no rcache size classes). */
  allocatedPages(pages: number): number {
    return this.iova.allocatedPages(pages);
  }

  mapSg(sg: readonly SgEntry[], _dir: DmaDirection, why?: SgExplainer): MapResult | MapFailure {
    const g = this.granule;
    const n = sg.length;
    const entryOff = new Array<number>(n);
    const sIovaLen = new Array<number>(n);
    let iovaLen = 0;
    for (let i = 0; i < n; i++) {
      const s = sg[i] as SgEntry;
      const sLen = alignUp(s.length + (s.phys % g), g);
      if (i > 0) {
        const p = roundupPowOfTwo(sLen);
        const pad = (p - (iovaLen % p)) % p; // (p − iova_len) & (p − 1)
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
      if (why) {
        const limit = `0x${this.dmaLimitPfn.toString(16)}`;
        why.fail({
          kernel: '__alloc_iova',
          message: `no free range of ${pages} pfns (${iovaLen} bytes, entries padded to their power-of-two alignment) at or below limit pfn ${limit} (dma_mask in ${g}-byte granules)`,
          values: { pfns: pages, limit_pfn: limit, start_pfn: `0x${this.startPfn.toString(16)}`, granule: g },
        });
      }
      return { errno: 'ENOMEM', message: `no IOVA space for ${iovaLen} bytes below the DMA mask (__alloc_iova)` };
    }
    const segments: DmaSegment[] = [];
    const extents: Extent[] = [];
    for (let i = 0; i < n; i++) {
      const s = sg[i] as SgEntry;
      const off = entryOff[i] as number;
      segments.push({ pfn, off: off + (s.phys % this.pageSize), len: s.length });
      if (why && i > 0) {
        const p = sg[i - 1] as SgEntry;
        const pad = off - (entryOff[i - 1] as number) - alignUp(p.length + (p.phys % g), g);
        const values = { pad, alignment: roundupPowOfTwo(sLenOf(s, g)) };
        why.brk({ entry: i, rule: 'v4.4_never_merges', kernel: '__finalise_sg (v4.4)', values, message: `v4.4 never concatenates: entry ${i} is its own segment, placed after ${pad} bytes of padding so it starts aligned to ${values.alignment}` });
      }
      extents.push({ pfn, off, phys: s.phys - (s.phys % g), bytes: sIovaLen[i] as number });
    }
    why?.everyBreakStands();
    return {
      sg,
      size: sumLengths(sg),
      segments,
      allocs: [{ pfn, off: 0, bytes: this.allocatedPages(pages) * g }],
      extents,
      bounce: null,
    };
  }

  /** v4.4 iommu_dma_map_page: today's __iommu_dma_map, with v4.4's allocator. */
  mapPage(phys: number, size: number, _dir: DmaDirection): MapResult | MapFailure {
    return mapContiguous(this, this.granule, phys, size, this.dmaLimitPfn, '__alloc_iova');
  }

  mapCoherent(phys: number, size: number): MapResult | MapFailure {
    return mapContiguous(this, this.granule, phys, alignUp(size, this.pageSize), this.coherentLimitPfn, '__alloc_iova');
  }

  /** DmaOps.unmap, for callers that ignore the stray rule (the DMA device goes through strayRule). */
  unmap(m: Mapping): void {
    this.freeHandleRange(m);
  }

  /** v4.4 __iommu_dma_unmap: find_iova(the handle's pfn), iommu_unmap and free *that* range; its first pfn, or -1. */
  freeHandleRange(m: Mapping): number {
    const first = m.segments[0];
    if (!first) return -1;
    return this.iova.freeIova(first.pfn + Math.floor(first.off / this.granule));
  }

  /** Bytes of one granule: the unit the freed range's address is printed in. */
  get granuleBytes(): number {
    return this.granule;
  }

  iovaBytes(m: Mapping): number {
    return m.allocs[0]?.bytes ?? 0;
  }

  flush(): { flushed: number; rcacheFreed: number } {
    return { flushed: 0, rcacheFreed: 0 }; // v4.4 had neither a flush queue nor an rcache
  }

  rangeCount(): number {
    return this.iova.rangeCount;
  }

  state(): StateRef {
    return stateRef(Linux44IommuDma.STATE, this);
  }

  allocatorMarks(): AllocatorMarks {
    return this.iova.marks();
  }
}

/** v4.4's unmap and its strays (see the top of this file). */
class V44Unmap implements StrayRule {
  readonly strays: Mapping[] = [];

  constructor(private readonly dma: Linux44IommuDma) {}

  unmap(m: Mapping, live: Iterable<Mapping>): StrayUnmap | null {
    const freed = this.dma.freeHandleRange(m);
    if (!m.iovaGone && freed === m.allocs[0]?.pfn) return null;
    const kept = !m.iovaGone;
    if (kept) this.strays.push(m);
    // The range's owner: a live mapping still holding it, else a stray (which then leaves the ledger).
    let gone: Mapping | null = null;
    for (const x of live) if (!x.iovaGone && x.allocs[0]?.pfn === freed) gone = x;
    let dropped: Mapping | null = null;
    const k = this.strays.findIndex((x) => x !== m && x.allocs[0]?.pfn === freed);
    if (!gone && k >= 0) {
      dropped = this.strays.splice(k, 1)[0] ?? null;
      gone = dropped;
    }
    if (gone) gone.iovaGone = true;
    return { kept, gone, dropped, finding: freedOther(m, gone?.handle ?? null, freed < 0 ? null : hex(freed * this.dma.granuleBytes)) };
  }
}

/** Not a debug.c check: what v4.4's offset bug does to the allocator, made visible. */
function freedOther(m: Mapping, owner: number | null, freed: string | null): StrayUnmap['finding'] {
  const whose = freed === null ? 'no range (WARN_ON(!iova) in __iommu_dma_unmap)' : owner === null ? `the range at ${freed}` : `the range at ${freed} of handle ${owner}`;
  return {
    check: 'unmap_freed_other',
    message: `linux-4.4 __iommu_dma_unmap freed ${whose}, not handle ${m.handle}'s own: its IOVA stays mapped and allocated (v4.4 put the CPU-page offset in sg_dma_address; fixed in v4.6)`,
  };
}
