// No IOMMU: kernel/dma/direct.c with swiotlb bouncing (semantics §7). The device sees
// phys + dma_offset. A buffer the device cannot address under its mask (dma_capable), or any
// buffer when swiotlb is forced, is bounced through the pool; when that fails too the call
// fails like Linux's: DMA_MAPPING_ERROR, and map_sg returns -EIO after undoing what it mapped.
// map_sg never merges here: one output segment per entry.

import type { SessionConfig } from './session-config.js';
import type { DmaDirection } from './constants.js';
import { describe, nested, stateRef, type StateRef } from './state/codec.js';
import type { BounceSlot, DmaOps, DmaSegment, MapFailure, MapResult, Mapping, SgEntry } from './mapping.js';
import { sumLengths } from './layouts/linux.js';
import type { DmaBackend } from './layouts/layout.js';
import { IO_TLB_SEGSIZE, IO_TLB_SIZE, Swiotlb } from './swiotlb.js';
import type { SgExplainer } from './explain.js';

/** `iommu: null`, whatever the layout: dma-direct's ops, arm64's clean for the device, byte addresses. */
export const NO_IOMMU: DmaBackend = {
  createOps: (config) => new DmaDirect(config),
  forDeviceAlwaysCleans: true,
  addressShift: () => 0,
};

export class DmaDirect implements DmaOps {
  /** Saved state: the swiotlb pool (everything else is config). */
  static readonly STATE = describe<DmaDirect>('dma-direct', 1, [nested('swiotlb', Swiotlb.STATE, (o) => o.swiotlb)]);

  readonly shift = 0;
  readonly swiotlb: Swiotlb;
  private readonly dmaOffset: number;
  private readonly dmaLimit: number; // min(dma_mask, 2^53 − 1): every address here is below 2^53
  private readonly coherentLimit: number;
  private readonly force: boolean;
  private readonly pageSize: number;
  private readonly boundaryBits: number;
  private readonly boundaryMask: bigint;

  constructor(cfg: SessionConfig) {
    this.dmaOffset = cfg.dmaOffset;
    const cap = BigInt(Number.MAX_SAFE_INTEGER);
    this.dmaLimit = Number(cfg.dmaMask < cap ? cfg.dmaMask : cap);
    this.coherentLimit = Number(cfg.coherentDmaMask < cap ? cfg.coherentDmaMask : cap);
    this.force = cfg.swiotlbForce;
    this.pageSize = cfg.pageSize;
    this.boundaryBits = cfg.segmentBoundaryBits;
    this.boundaryMask = cfg.segmentBoundaryMask;
    this.swiotlb = new Swiotlb(cfg.swiotlbStart, cfg.swiotlbSize, cfg.swiotlbIndex);
  }

  /** dma_capable: the whole buffer lies under the mask. */
  private capable(dma: number, size: number, limit: number): boolean {
    return dma + size - 1 <= limit;
  }

  mapSg(sg: readonly SgEntry[], dir: DmaDirection, why?: SgExplainer): MapResult | MapFailure {
    const segments: DmaSegment[] = [];
    const bounce: (BounceSlot | null)[] = [];
    for (let i = 0; i < sg.length; i++) {
      const s = sg[i] as SgEntry;
      const r = this.mapOne(s.phys, s.length, dir);
      if (why) this.explainEntry(why, s, i, r);
      if (typeof r === 'string') {
        for (const b of bounce) if (b) this.swiotlb.release(b.index);
        return { errno: 'EIO', message: `entry at phys 0x${s.phys.toString(16)}: ${r} (dma_direct_map_sg)` };
      }
      segments.push(r.seg);
      bounce.push(r.slot);
    }
    why?.everyBreakStands();
    return { sg, size: sumLengths(sg), segments, allocs: [], extents: [], bounce: anyBounced(bounce) };
  }

  /** dma_direct_map_sg maps entry by entry: every entry after the first is its own segment. */
  private explainEntry(why: SgExplainer, s: SgEntry, i: number, r: { seg: DmaSegment; slot: BounceSlot | null } | string): void {
    const phys = `0x${s.phys.toString(16)}`;
    if (typeof r === 'string') {
      why.fail({ kernel: 'dma_direct_map_sg', message: `entry ${i} at phys ${phys}: ${r}`, values: { entry: i, phys, length: s.length } });
      return;
    }
    if (i === 0) return;
    if (r.slot) {
      const values = { phys, bounce: `0x${r.slot.tlbAddr.toString(16)}`, length: s.length };
      const cause = this.force ? 'swiotlb=force' : 'the buffer is not addressable under dma_mask (dma_capable)';
      why.brk({ entry: i, rule: 'swiotlb_bounce', kernel: 'swiotlb_map', values, message: `no IOMMU, and entry ${i} is bounced through swiotlb at ${values.bounce} (${cause}): its own segment` });
    } else {
      why.brk({ entry: i, rule: 'no_iommu', kernel: 'dma_direct_map_sg', values: { phys, length: s.length }, message: `no IOMMU: dma-direct never merges, entry ${i} is its own segment at phys + dma_offset` });
    }
  }

  mapPage(phys: number, size: number, dir: DmaDirection): MapResult | MapFailure {
    const r = this.mapOne(phys, size, dir);
    if (typeof r === 'string') return { errno: r.startsWith('swiotlb') ? 'ENOMEM' : 'EIO', message: `${r} (dma_direct_map_page)` };
    return {
      sg: [{ phys, length: size }],
      size,
      segments: [r.seg],
      allocs: [],
      extents: [],
      bounce: anyBounced([r.slot]),
    };
  }

  /** dma_direct_map_page: a segment, or why it failed. */
  private mapOne(phys: number, size: number, _dir: DmaDirection): { seg: DmaSegment; slot: BounceSlot | null } | string {
    const dma = phys + this.dmaOffset;
    if (!this.force && this.capable(dma, size, this.dmaLimit)) return { seg: { pfn: 0, off: dma, len: size }, slot: null };
    // swiotlb_map
    const tbl = Number(BigInt(this.swiotlb.start + this.dmaOffset) & this.boundaryMask);
    const index = this.swiotlb.alloc(size, this.pageSize, tbl, this.boundaryBits);
    if (index < 0) {
      return size > IO_TLB_SEGSIZE * IO_TLB_SIZE
        ? `swiotlb: ${size} bytes exceed the 256 KiB a bounce buffer can hold`
        : 'swiotlb buffer is full';
    }
    const tlbAddr = this.swiotlb.addr(index);
    const tlbDma = tlbAddr + this.dmaOffset;
    if (!this.capable(tlbDma, size, this.dmaLimit)) {
      this.swiotlb.release(index);
      return 'swiotlb addr beyond the DMA mask';
    }
    return { seg: { pfn: 0, off: tlbDma, len: size }, slot: { index, tlbAddr } };
  }

  mapCoherent(phys: number, size: number): MapResult | MapFailure {
    const dma = phys + this.dmaOffset;
    if (!this.capable(dma, size, this.coherentLimit)) {
      return { errno: 'ENOMEM', message: 'no memory the device can address under coherent_dma_mask (dma_direct_alloc)' };
    }
    return { sg: [{ phys, length: size }], size, segments: [{ pfn: 0, off: dma, len: size }], allocs: [], extents: [], bounce: null };
  }

  unmap(m: Mapping): void {
    if (m.bounce) for (const b of m.bounce) if (b) this.swiotlb.release(b.index);
  }

  iovaBytes(): number {
    return 0;
  }

  flush(): { flushed: number; rcacheFreed: number } {
    return { flushed: 0, rcacheFreed: 0 };
  }

  state(): StateRef {
    return stateRef(DmaDirect.STATE, this);
  }

  rangeCount(): number {
    return 0;
  }

  swiotlbIndex(): number {
    return this.swiotlb.nextIndex;
  }
}

function anyBounced(b: (BounceSlot | null)[]): (BounceSlot | null)[] | null {
  for (const x of b) if (x) return b;
  return null;
}
