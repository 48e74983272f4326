// The two-step IOVA API (drivers/iommu/dma-iommu.c, Linux 6.16+): dma_iova_try_alloc hands the
// caller ONE contiguous IOVA range for pages it links one by one (dma_iova_link), whatever
// max_segment_size and segment_boundary_mask say; dma_iova_sync, dma_iova_unlink,
// dma_iova_destroy and dma_iova_free finish it. The range comes from the same allocator as
// dma_map_page (iommu_dma_alloc_iova against dma_get_mask, SAC-first on PCI), so the two share
// the domain's state. Each call is one method taking a plain body-like request.
//
// Rules, each from 7.3's dma-iommu.c and its recording (sequences iova-*, docs/conformance.md):
// - try_alloc zeroes the state first, so a failed try leaves it all zero; it says false with no
//   IOMMU, for size 0 (WARN_ON_ONCE), and when the allocator has no room. The range keeps the
//   buffer's offset within the granule (state.addr = iova + iova_offset(phys)) and the state
//   holds the unaligned size; the allocation is iova_align(size + offset).
// - link: a phys off the granule only at offset 0 (else -EIO, WARN_ON_ONCE(iova_start_pad &&
//   offset > 0)); the IOVA it maps, state.addr + offset − iova_offset(phys), must sit on a
//   granule (else iommu_map refuses: -ENXIO on 7.3); it maps iova_align(size + pad) bytes.
//   Over granules already linked it is refused (-EADDRINUSE on 7.3). Nothing checks the range
//   against the allocation: it links (a dma-debug finding here, an extension).
// - unlink/destroy unmap iova_align(size + pad) from state.addr + offset rounded down; what was
//   not linked trips WARN_ON(unmapped != size) (a finding). destroy(mapped_len) frees what the
//   version's rule says (kernels.ts IovaApiRules.destroyFrees), through the flush queue on a
//   non-strict domain; destroy(0) and free give the whole range back at once.
//
// Invariants: a state's `linked` intervals are disjoint, sorted and hold at most
// MAX_LINK_RUNS runs; a live state holds its allocation until destroy or free removes it.

import { DmaemuError, invalid } from './errors.js';
import type { DmaDirection } from './constants.js';
import type { DmaDebug } from './dma-debug.js';
import type { IovaApiRules } from './layouts/kernels.js';
import { alignUp, modPow2 } from './iova/pfn-math.js';
import type { IovaDomain } from './mapping.js';

export type { IovaDomain } from './mapping.js';

/** dma_iova_try_alloc(dev, state, phys, size): phys only places the range's offset. */
export interface IovaTryAllocRequest {
  phys: number;
  size: number;
}

/** dma_iova_link(dev, state, phys, offset, size, dir, attrs). */
export interface IovaLinkRequest {
  state: number;
  phys: number;
  offset: number;
  size: number;
  dir: DmaDirection;
}

/** dma_iova_sync(dev, state, offset, size). */
export interface IovaSyncRequest {
  state: number;
  offset: number;
  size: number;
}

/** dma_iova_unlink(dev, state, offset, size, dir, attrs). */
export interface IovaUnlinkRequest {
  state: number;
  offset: number;
  size: number;
  dir: DmaDirection;
}

/** dma_iova_destroy(dev, state, mapped_len, dir, attrs). */
export interface IovaDestroyRequest {
  state: number;
  mapped_len: number;
  dir: DmaDirection;
}

/** dma_iova_free(dev, state). */
export interface IovaFreeRequest {
  state: number;
}

export type IovaRefusal = 'no_iommu' | 'size_zero' | 'exhausted';

/** What try_alloc answered; `state` names the range for the other calls (null when false). */
export interface IovaTryAllocResult {
  ok: boolean;
  state: number | null;
  /** state->addr: the range's start plus the buffer's offset in its granule (0 when false) */
  addr: bigint;
  /** dma_iova_size(state): the size as asked, unaligned (0 when false) */
  size: number;
  reason: IovaRefusal | null;
  message: string | null;
}

/** dma_iova_link's and dma_iova_sync's int: 0, or the negative errno. */
export interface IovaCallResult {
  ret: number;
  errno: 'EIO' | 'ENXIO' | 'EADDRINUSE' | null;
  message: string | null;
}

interface IovaState {
  handle: number;
  /** first granule of the allocation */
  pfn: number;
  /** iova_offset(phys) at try_alloc */
  pad: number;
  /** the size as asked */
  size: number;
  /** granules the allocation holds: iova_align(size + pad) / granule */
  pages: number;
  /** linked granules, as sorted disjoint [start, end) runs of absolute pfns */
  linked: [number, number][];
}

/** Runs of linked granules one state may hold: a bound on its memory (each link adds at most one). */
export const MAX_LINK_RUNS = 4096;

const OK: IovaCallResult = { ret: 0, errno: null, message: null };
const EIO = -5;
const ENXIO = -6;
const EADDRINUSE = -98;

export class IovaApi {
  private readonly states = new Map<number, IovaState>();
  private nextHandle = 1;

  /** `domain` null: no IOMMU (dma-direct), where try_alloc always says false. */
  constructor(
    private readonly domain: IovaDomain | null,
    private readonly rules: IovaApiRules,
    private readonly debug: DmaDebug,
  ) {}

  /** Live states (each holds IOVA until destroy or free). */
  get size(): number {
    return this.states.size;
  }

  tryAlloc(req: IovaTryAllocRequest): IovaTryAllocResult {
    // memset(state, 0, sizeof(*state)) comes first: every false leaves the state all zero
    const d = this.domain;
    if (!d) return refusal('no_iommu', 'the device does not use dma-iommu (use_dma_iommu is false): use the regular DMA API');
    if (req.size === 0) {
      this.debug.layoutFinding('iova_try_alloc_size_zero', 0, 'dma_iova_try_alloc with size 0 (WARN_ON_ONCE(!size))');
      return refusal('size_zero', 'size 0: WARN_ON_ONCE(!size), no IOVA allocated');
    }
    const pad = modPow2(req.phys, d.granule);
    const pages = alignUp(req.size + pad, d.granule) / d.granule;
    const pfn = d.allocIova(pages);
    if (pfn === 0) return refusal('exhausted', `no IOVA space for ${pages * d.granule} bytes below the DMA mask (iommu_dma_alloc_iova)`);
    const handle = this.nextHandle++;
    this.states.set(handle, { handle, pfn, pad, size: req.size, pages, linked: [] });
    return { ok: true, state: handle, addr: this.addrOf(pfn, pad), size: req.size, reason: null, message: null };
  }

  link(req: IovaLinkRequest): IovaCallResult {
    const s = this.state(req.state, 'link');
    const g = this.granuleOf();
    const pad = modPow2(req.phys, g);
    if (pad !== 0 && req.offset > 0) {
      return { ret: EIO, errno: 'EIO', message: `phys is ${pad} bytes into a granule and offset ${req.offset} > 0: only the first link may start off a granule (WARN_ON_ONCE(iova_start_pad && offset > 0))` };
    }
    // the IOVA mapped: state->addr + offset - iova_start_pad, in bytes from the range's granule
    const rel = s.pad + req.offset - pad;
    if (modPow2(rel, g) !== 0) {
      return { ret: ENXIO, errno: 'ENXIO', message: `the IOVA state.addr + ${req.offset} − ${pad} is ${modPow2(rel, g)} bytes into a granule: iommu_map refuses it (every link but the first starts on the merge boundary)` };
    }
    const first = s.pfn + rel / g;
    const n = alignUp(req.size + pad, g) / g;
    if (first < s.pfn || first + n > s.pfn + s.pages) {
      this.debug.layoutFinding('iova_link_outside_state', s.handle, `dma_iova_link maps granules ${hexPfn(first, this.shiftOf())}+${n} outside the state's allocation of ${s.pages} granules: nothing in the kernel checks it`);
    }
    if (overlaps(s.linked, first, first + n)) {
      // the page table already maps a granule: iommu_map refuses (-EADDRINUSE on 7.3, recorded)
      return { ret: EADDRINUSE, errno: 'EADDRINUSE', message: `granules of state.addr + ${req.offset} are already linked: iommu_map refuses to map over them` };
    }
    addRun(s.linked, first, first + n);
    if (s.linked.length > MAX_LINK_RUNS) {
      removeRun(s.linked, first, first + n);
      throw new DmaemuError('DMAEMU_TOO_MANY_SG_ENTRIES', `an IOVA state may hold at most ${MAX_LINK_RUNS} separate linked runs`, 'offset');
    }
    return OK;
  }

  /** dma_iova_sync: iommu_sync_map over the range (the IOTLB; no cache maintenance). */
  sync(req: IovaSyncRequest): IovaCallResult {
    this.state(req.state, 'sync');
    return OK;
  }

  unlink(req: IovaUnlinkRequest): void {
    const s = this.state(req.state, 'unlink');
    this.unmap(s, req.offset, req.size, 'dma_iova_unlink');
  }

  destroy(req: IovaDestroyRequest): void {
    const s = this.state(req.state, 'destroy');
    const d = this.domain as IovaDomain; // a state exists only where try_alloc had a domain
    if (req.mapped_len === 0) {
      // "the first call to dma_iova_link() failed and there is nothing to unlink": dma_iova_free
      this.free({ state: req.state });
      return;
    }
    const [first, n] = this.unmap(s, 0, req.mapped_len, 'dma_iova_destroy');
    if (s.linked.length > 0) {
      this.debug.layoutFinding('iova_destroy_linked_left', s.handle, `dma_iova_destroy(mapped_len ${req.mapped_len}) leaves granules linked beyond it: the range from the start to mapped_len must be the only linked IOVA in the state`);
    }
    this.states.delete(s.handle);
    if (this.rules.destroyFrees === 'allocation') d.freeIova(s.pfn, s.pages, true);
    else d.freeIova(first, n, true);
  }

  free(req: IovaFreeRequest): void {
    const s = this.state(req.state, 'free');
    const d = this.domain as IovaDomain;
    if (s.linked.length > 0) {
      this.debug.layoutFinding('iova_free_linked', s.handle, 'dma_iova_free with ranges still linked: all regions must be unlinked with dma_iova_unlink first');
    }
    this.states.delete(s.handle);
    d.freeIova(s.pfn, s.pages, false);
  }

  /** At close: every live state is a leak (reported once). */
  reportLeaks(): number {
    const first = this.states.values().next();
    if (!first.done) {
      this.debug.layoutFinding('iova_state_leak', first.value.handle, `${this.states.size} IOVA state(s) neither destroyed nor freed, holding IOVA`);
    }
    return this.states.size;
  }

  // ---- internals ----------------------------------------------------------------------

  /** __iommu_dma_iova_unlink's unmap: [first, first + n) granules, and any that were not linked reported. */
  private unmap(s: IovaState, offset: number, size: number, fn: string): [number, number] {
    const g = this.granuleOf();
    const rel = s.pad + offset;
    const pad = modPow2(rel, g);
    const first = s.pfn + (rel - pad) / g;
    const n = alignUp(size + pad, g) / g;
    if (linkedCount(s.linked, first, first + n) !== n) {
      this.debug.layoutFinding('iova_unlink_unlinked', s.handle, `${fn} of granules that are not linked (offset ${offset}, size ${size}): WARN_ON(unmapped != size)`);
    }
    removeRun(s.linked, first, first + n);
    return [first, n];
  }

  private state(handle: number, call: string): IovaState {
    const s = this.states.get(handle);
    if (!s) {
      this.debug.layoutFinding('iova_state_unknown', handle, `dma_iova_${call} on a state that dma_iova_try_alloc never returned, or that is already destroyed or freed`);
      throw new DmaemuError('DMAEMU_HANDLE_NOT_FOUND', `IOVA state ${handle} is not live (never allocated, or already destroyed/freed)`, 'state');
    }
    return s;
  }

  private granuleOf(): number {
    return (this.domain as IovaDomain).granule;
  }

  private shiftOf(): number {
    return (this.domain as IovaDomain).shift;
  }

  private addrOf(pfn: number, pad: number): bigint {
    return (BigInt(pfn) << BigInt(this.shiftOf())) + BigInt(pad);
  }
}

/** A false try: the state all zero, and why. */
function refusal(reason: IovaRefusal, message: string): IovaTryAllocResult {
  return { ok: false, state: null, addr: 0n, size: 0, reason, message };
}

/** The version or layout has no IOVA API: the call would not link (a 400 naming the field). */
export function noIovaApi(field: string, what: string): DmaemuError {
  return invalid(field, `${what} has no dma_iova_* calls (the IOVA API came in Linux 6.16)`);
}

function hexPfn(pfn: number, shift: number): string {
  return `0x${(BigInt(pfn) << BigInt(shift)).toString(16)}`;
}

function overlaps(runs: readonly [number, number][], lo: number, hi: number): boolean {
  return runs.some(([a, b]) => a < hi && lo < b);
}

function linkedCount(runs: readonly [number, number][], lo: number, hi: number): number {
  let n = 0;
  for (const [a, b] of runs) n += Math.max(0, Math.min(b, hi) - Math.max(a, lo));
  return n;
}

/** Adds [lo, hi) to sorted disjoint runs, merging what touches it. */
function addRun(runs: [number, number][], lo: number, hi: number): void {
  let i = 0;
  while (i < runs.length && (runs[i] as [number, number])[1] < lo) i++;
  let j = i;
  let a = lo;
  let b = hi;
  while (j < runs.length && (runs[j] as [number, number])[0] <= hi) {
    const r = runs[j] as [number, number];
    a = Math.min(a, r[0]);
    b = Math.max(b, r[1]);
    j++;
  }
  runs.splice(i, j - i, [a, b]);
}

/** Removes [lo, hi) from sorted disjoint runs (a run may split in two). */
function removeRun(runs: [number, number][], lo: number, hi: number): void {
  const out: [number, number][] = [];
  for (const [a, b] of runs) {
    if (b <= lo || a >= hi) out.push([a, b]);
    else {
      if (a < lo) out.push([a, lo]);
      if (b > hi) out.push([hi, b]);
    }
  }
  runs.splice(0, runs.length, ...out);
}
