// The kernel versions layout `linux` emulates: what each one does differently, in one entry per
// version. Nothing else asks which version a session runs; it asks the entry (config.ts reads
// the device's dma_parms through it, the IOVA API asks it whether the calls exist and what
// dma_iova_destroy frees).
//
// Every entry is a kernel dmaemu was held against on a real boot (conformance/, docs/
// conformance.md); a difference is only written here once a recording or the version's own
// source showed it, and each has a rule test naming the version (test/kernel-versions.test.ts).

import { KERNELS, type KernelVersion } from '../constants.js';
import type { Bus } from '../session-config.js';
import { BOUNDARY_32, BOUNDARY_64, type DmaParms, type StoredDmaParms } from './layout.js';

/** The two-step IOVA API (dma_iova_try_alloc …, v6.16+) where a version has it. */
export interface IovaApiRules {
  /**
   * What dma_iova_destroy(mapped_len) gives back to the allocator: 'allocation', the whole
   * range dma_iova_try_alloc took, whatever mapped_len says (7.3, recorded); 'linked', only the
   * granules mapped_len covers (the series as posted for 6.16).
   */
  readonly destroyFrees: 'allocation' | 'linked';
}

export interface KernelSpec {
  readonly name: KernelVersion;
  /** dma_get_max_seg_size / dma_get_seg_boundary over what dma_parms holds. */
  readDmaParms(stored: StoredDmaParms, bus: Bus): DmaParms;
  /** null: the version has no IOVA API (the calls are refused, naming the version). */
  readonly iovaApi: IovaApiRules | null;
}

/** SZ_64K: dma_get_max_seg_size without dma_parms, or with max_segment_size 0. */
export const DEFAULT_MAX_SEGMENT_SIZE = 65536;

/**
 * The getters since v5.10: `dma_parms && dma_parms->max_segment_size ? it : SZ_64K` (a 0 reads
 * as the default since v4.4's "dma-mapping: tidy up dma_parms default handling") and
 * `dma_parms && dma_parms->segment_boundary_mask ? it : ULONG_MAX` (ULONG_MAX since v5.10). A
 * PCI device always has dma_parms and pci_device_add stores 0xffffffff as its boundary; a 0 the
 * driver stores there reads as ULONG_MAX, not as the PCI default. Read from 6.12's and 7.3's
 * include/linux/dma-mapping.h and recorded on both (sequences thread-max-seg-zero,
 * offsets-boundary-zero, mixed-64-zeros).
 */
function gettersSince510(stored: StoredDmaParms, bus: Bus): DmaParms {
  const seg = stored.maxSegmentSize;
  const bnd = stored.segmentBoundaryMask;
  return {
    maxSegmentSize: seg === undefined || seg === 0 ? DEFAULT_MAX_SEGMENT_SIZE : seg,
    segmentBoundaryMask: bnd === undefined ? (bus === 'pci' ? BOUNDARY_32 : BOUNDARY_64) : bnd === 0n ? BOUNDARY_64 : bnd,
  };
}

const KERNEL_SPECS: Readonly<Record<KernelVersion, KernelSpec>> = {
  // Debian's 6.12 (bookworm-security): no IOVA API (it came in 6.16).
  '6.12': { name: '6.12', readDmaParms: gettersSince510, iovaApi: null },
  // Debian's 7.3 (trixie-backports): the IOVA API, whose destroy frees the whole allocation
  // (sequence iova-destroy-32: a 64 KiB range destroyed with 16 KiB linked comes back whole to
  // the next 64 KiB try_alloc, from the 16-pfn rcache class).
  '7.3': { name: '7.3', readDmaParms: gettersSince510, iovaApi: { destroyFrees: 'allocation' } },
};

/** The default version: the newest recorded. */
export const NEWEST_KERNEL: KernelVersion = KERNELS[KERNELS.length - 1] as KernelVersion;

export function kernelSpec(v: KernelVersion): KernelSpec {
  return KERNEL_SPECS[v];
}
