// Layout `arm-legacy`: arch/arm/mm/dma-mapping.c __iommu_map_sg / __map_sg_chunk (semantics §4),
// the code the 2015 thread compares against.
//
// Entries are gathered into chunks while they continue each other page-wise: a new chunk starts
// at an entry with a page offset, after a chunk that does not end on a page, or when the chunk
// would exceed max_segment_size (all in unsigned int arithmetic). Each chunk gets its OWN IOVA
// allocation from the bitmap allocator, so two chunks can land anywhere relative to each other.
// segment_boundary_mask and dma_mask are never consulted. Work is in CPU pages, not IOMMU
// granules: all addresses here are plain byte addresses (below 2^52).

import { invalid } from '../errors.js';
import type { SessionConfig } from '../session-config.js';
import { ArmIova } from '../iova/arm-iova.js';
import { alignUp } from '../iova/pfn-math.js';
import type { DmaDirection } from '../constants.js';
import type { DmaOps, DmaSegment, Extent, IovaAlloc, MapFailure, MapResult, Mapping, SgEntry } from '../mapping.js';
import { sumLengths } from './linux.js';
import { totalLength, type SgExplainer } from '../explain.js';
import { BOUNDARY_32, type LayoutSpec } from './layout.js';
import { describe, nested, stateRef, type StateRef } from '../state/codec.js';
import { DEFAULT_MAX_SEGMENT_SIZE } from './kernels.js';

/**
 * arch/arm: a 4 GiB mapping by default, arm_iommu_create_mapping's limits on its shape,
 * maintenance by direction (__dma_page_cpu_to_dev), and addresses in bytes of CPU pages.
 */
export const ARM_LEGACY_LAYOUT: LayoutSpec = {
  name: 'arm-legacy',
  // arch/arm of 2015, before v4.4's getters read a 0 as the default: a stored value is used as
  // it is (the boundary is never consulted here anyway).
  readDmaParms: (stored) => ({
    maxSegmentSize: stored.maxSegmentSize ?? DEFAULT_MAX_SEGMENT_SIZE,
    segmentBoundaryMask: stored.segmentBoundaryMask ?? BOUNDARY_32,
  }),
  defaultKernel: null,
  defaultApertureEnd: 0xffffffffn,
  checkAperture: ({ apertureStart, apertureEnd, pageSize }) => {
    if (apertureEnd - apertureStart + 1n > 1n << 32n) {
      throw invalid('iommu.aperture', 'arm-legacy maps at most 4 GiB (arm_iommu_create_mapping returns -ERANGE)');
    }
    if (apertureStart % BigInt(pageSize) !== 0n) throw invalid('iommu.aperture.start', 'arm-legacy needs a page-aligned base');
    if (apertureEnd >= 1n << 52n) throw invalid('iommu.aperture.end', 'arm-legacy mappings live below 2^52');
    if ((apertureEnd - apertureStart + 1n) % BigInt(pageSize) !== 0n) {
      throw invalid('iommu.aperture', 'arm-legacy needs a whole number of pages');
    }
  },
  checkDomain: () => undefined,
  createOps: (config) => new ArmLegacyIommuDma(config),
  forDeviceAlwaysCleans: false,
  // The extents are byte addresses counted in CPU pages, not IOMMU granules.
  addressShift: (config) => config.pageShift,
};

export class ArmLegacyIommuDma implements DmaOps {
  /** Saved state: the bitmap allocator. */
  static readonly STATE = describe<ArmLegacyIommuDma>('arm-legacy-iommu-dma', 1, [nested('iova', ArmIova.STATE, (o) => o.iova)]);

  readonly shift = 0;
  private readonly pageSize: number;
  private readonly maxSeg: number;
  private readonly iova: ArmIova;

  constructor(cfg: SessionConfig) {
    const iommu = cfg.iommu;
    if (!iommu) throw new TypeError('ArmLegacyIommuDma needs an IOMMU');
    this.pageSize = cfg.pageSize;
    this.maxSeg = cfg.maxSegmentSize;
    this.iova = new ArmIova({
      base: Number(iommu.apertureStart),
      size: Number(iommu.apertureEnd - iommu.apertureStart + 1n),
      pageShift: cfg.pageShift,
    });
  }

  mapSg(sg: readonly SgEntry[], _dir: DmaDirection, why?: SgExplainer): MapResult | MapFailure {
    const p = this.pageSize;
    const segments: DmaSegment[] = [];
    const allocs: IovaAlloc[] = [];
    const extents: Extent[] = [];
    const first = sg[0] as SgEntry;
    let start = 0;
    let offset = first.phys % p;
    let size = (offset + first.length) >>> 0;
    for (let i = 1; i <= sg.length; i++) {
      const s = sg[i];
      if (s) {
        const sOff = s.phys % p;
        if (!(sOff !== 0 || size % p !== 0 || (size + s.length) >>> 0 > this.maxSeg)) {
          size = (size + s.length) >>> 0;
          continue;
        }
        if (why) this.explainChunk(why, sg, i, size);
      }
      // __map_sg_chunk for entries start..i-1
      const bytes = alignUp(size, p);
      const iova = this.iova.allocIova(bytes);
      if (iova < 0) {
        if (why) {
          why.fail({
            kernel: '__alloc_iova (arch/arm bitmap)',
            message: `no free run of ${bytes / p} pages (${bytes} bytes, chunk ${allocs.length} starting at entry ${start}) in the mapping's bitmaps`,
            values: { chunk: allocs.length, first_entry: start, bytes, pages: bytes / p },
          });
        }
        for (const a of allocs) this.iova.freeIova(a.off, a.bytes);
        return { errno: 'ENOMEM', message: `no IOVA space for a ${bytes}-byte chunk (__alloc_iova)` };
      }
      allocs.push({ pfn: 0, off: iova, bytes });
      let at = iova;
      for (let k = start; at < iova + bytes && k < sg.length; k++) {
        const e = sg[k] as SgEntry;
        const len = alignUp((e.phys % p) + e.length, p);
        extents.push({ pfn: 0, off: at, phys: e.phys - (e.phys % p), bytes: len });
        at += len;
      }
      segments.push({ pfn: 0, off: iova + offset, len: size - offset });
      if (s) {
        start = i;
        size = offset = s.phys % p;
        size = (size + s.length) >>> 0;
      }
    }
    if (why && segments.length > 1) this.explainObstacles(why, sg);
    return { sg, size: sumLengths(sg), segments, allocs, extents, bounce: null };
  }

  /**
   * Everything between this list and one chunk, on a fresh mapping: each of __iommu_map_sg's
   * three tests at every entry, the chunk grown as the loosest limit would grow it. An entry with a page
   * offset, or a chunk so far that does not end on a page, starts a chunk whatever the limits;
   * chunk_size + length > max_segment_size (unsigned int) goes away at first offset + Σ length
   * (or UINT_MAX, which the unsigned sum never exceeds); and the one chunk must fit one bitmap
   * of the mapping, since __alloc_iova never spans two.
   */
  private explainObstacles(why: SgExplainer, sg: readonly SgEntry[]): void {
    const p = this.pageSize;
    const first = sg[0] as SgEntry;
    const offsets: number[] = [];
    const partial: number[] = [];
    const tooLong: number[] = [];
    // The chunk as max_segment_size UINT_MAX would grow it: only the two tests no limit changes
    // start a new one (and reset the size); where the device's own limit would, is noted.
    let size = ((first.phys % p) + first.length) >>> 0;
    for (let i = 1; i < sg.length; i++) {
      const s = sg[i] as SgEntry;
      const sOff = s.phys % p;
      if (sOff !== 0 || size % p !== 0) {
        (sOff !== 0 ? offsets : partial).push(i);
        size = (sOff + s.length) >>> 0;
        continue;
      }
      if ((size + s.length) >>> 0 > this.maxSeg) tooLong.push(i);
      size = (size + s.length) >>> 0;
    }
    if (offsets.length > 0) {
      why.obstacle({ rule: 'arm_new_chunk', condition: 'offset', entries: offsets, fix: null, message: 'an entry with a page offset (s->offset != 0) starts a chunk whatever the limits' });
    }
    if (partial.length > 0) {
      why.obstacle({ rule: 'arm_new_chunk', condition: 'chunk_not_page_multiple', entries: partial, fix: null, message: 'the entries before it do not end on a page: a new chunk whatever the limits' });
    }
    const whole = (first.phys % p) + totalLength(sg);
    if (tooLong.length > 0) {
      const need = whole <= 0xffffffff ? whole : 0xffffffff;
      why.obstacle({ rule: 'arm_new_chunk', condition: 'max_segment_size', entries: tooLong, fix: { max_segment_size: need }, message: `max_segment_size ${this.maxSeg} is less than the one chunk (first offset + Σ length = ${whole})` });
    }
    const bytes = alignUp(((first.phys % p) + totalLength(sg)) % 2 ** 32, p);
    if (offsets.length + partial.length === 0 && !this.iova.fitsOneBitmap(bytes)) {
      why.obstacle({ rule: 'iova_space', entries: [sg.length - 1], fix: null, message: `one chunk of ${bytes} bytes is larger than one bitmap of the mapping (${this.iova.bitmapBytes} bytes of IOVA): __alloc_iova never spans two` });
    }
  }

  /** Which of __iommu_map_sg's three tests closed the chunk before entry i (checked in its order). */
  private explainChunk(why: SgExplainer, sg: readonly SgEntry[], i: number, size: number): void {
    const p = this.pageSize;
    const s = sg[i] as SgEntry;
    const kernel = '__iommu_map_sg';
    const sOff = s.phys % p;
    if (sOff !== 0) {
      why.brk({ entry: i, rule: 'arm_new_chunk', condition: 'offset', kernel, values: { offset: sOff, page_size: p }, message: `new chunk: entry ${i} starts ${sOff} bytes into its page (s->offset != 0)` });
    } else if (size % p !== 0) {
      why.brk({ entry: i, rule: 'arm_new_chunk', condition: 'chunk_not_page_multiple', kernel, values: { chunk_size: size, page_size: p }, message: `new chunk: the chunk before entry ${i} is ${size} bytes, not a whole number of pages` });
    } else {
      const values = { chunk_size: size, length: s.length, max_segment_size: this.maxSeg };
      why.brk({ entry: i, rule: 'arm_new_chunk', condition: 'max_segment_size', kernel, values, message: `new chunk: chunk_size ${size} + length ${s.length} > max_segment_size ${this.maxSeg}` });
    }
  }

  mapPage(phys: number, size: number, _dir: DmaDirection): MapResult | MapFailure {
    return this.mapContiguous(phys, size);
  }

  mapCoherent(phys: number, size: number): MapResult | MapFailure {
    return this.mapContiguous(phys, alignUp(size, this.pageSize));
  }

  /** arm_coherent_iommu_map_page / __iommu_create_mapping */
  private mapContiguous(phys: number, size: number): MapResult | MapFailure {
    const p = this.pageSize;
    const offset = phys % p;
    const bytes = alignUp(size + offset, p);
    const iova = this.iova.allocIova(bytes);
    if (iova < 0) return { errno: 'ENOMEM', message: `no IOVA space for ${bytes} bytes (__alloc_iova)` };
    return {
      sg: [{ phys, length: size }],
      size,
      segments: [{ pfn: 0, off: iova + offset, len: size }],
      allocs: [{ pfn: 0, off: iova, bytes }],
      extents: [{ pfn: 0, off: iova, phys: phys - offset, bytes }],
      bounce: null,
    };
  }

  unmap(m: Mapping): void {
    // __iommu_remove_mapping per segment: page-align (in-page offset + length) from its page.
    const p = this.pageSize;
    for (const s of m.segments) {
      const inPage = s.off % p;
      const len = m.kind === 'map_sg' ? s.len : m.size;
      this.iova.freeIova(s.off - inPage, alignUp(inPage + len, p));
    }
  }

  iovaBytes(m: Mapping): number {
    let t = 0;
    for (const a of m.allocs) t += a.bytes;
    return t;
  }

  flush(): { flushed: number; rcacheFreed: number } {
    return { flushed: 0, rcacheFreed: 0 };
  }

  state(): StateRef {
    return stateRef(ArmLegacyIommuDma.STATE, this);
  }

  rangeCount(): number {
    return this.iova.snapshot().runs.length;
  }
}
