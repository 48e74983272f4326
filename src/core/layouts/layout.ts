// What one layout is, whole: the defaults Linux gives its devices, what it refuses at probe
// time, the DMA-API operations it builds, the cache maintenance its arch code does and the unit
// its IOVAs count in. Each layout file exports one LayoutSpec; registry.ts maps names to them,
// and nothing else asks which layout a session runs (a new layout is one file and one line).
//
// Without an IOMMU a session runs dma-direct whatever its layout: dma-direct.ts exports the
// DmaBackend half (ops, maintenance, units); the layout still supplies the defaults, because
// dma_get_seg_boundary's default is the kernel version's, not the IOMMU's.

import type { KernelVersion, Layout } from '../constants.js';
import type { DmaOps } from '../mapping.js';
import type { Bus, SessionConfig } from '../session-config.js';

/** The IOMMU settings a layout's probe-time checks see (already resolved with defaults). */
export interface IommuProbe {
  pageSize: number;
  coherentDmaMask: bigint;
  apertureStart: bigint;
  apertureEnd: bigint;
  /** log2 of the IOMMU granule */
  shift: number;
}

/** What runs a session's DMA calls: a layout over an IOMMU, or dma-direct without one. */
export interface DmaBackend {
  /** The DMA-API operations for this config (config.iommu is non-null for a layout). */
  createOps(config: SessionConfig): DmaOps;
  /**
   * arch_sync_dma_for_device cleans whatever the direction (today's arm64 dcache_clean_poc,
   * and dma-direct); false: DMA_FROM_DEVICE invalidates instead (arm64 v4.4 __dma_map_area,
   * arch/arm __dma_page_cpu_to_dev).
   */
  readonly forDeviceAlwaysCleans: boolean;
  /** log2 of the unit a mapping's (pfn, off) addresses count pfn in: 2^shift · pfn + off. */
  addressShift(config: SessionConfig): number;
}

/** dma_parms as the driver left it (undefined: never set, the bus default stands). */
export interface StoredDmaParms {
  maxSegmentSize: number | undefined;
  segmentBoundaryMask: bigint | undefined;
}

/** What dma_get_max_seg_size and dma_get_seg_boundary return for it. */
export interface DmaParms {
  maxSegmentSize: number;
  segmentBoundaryMask: bigint;
}

export interface LayoutSpec extends DmaBackend {
  readonly name: Layout;
  /**
   * dma_get_max_seg_size and dma_get_seg_boundary of the layout's kernel over what the driver
   * stored in dma_parms (undefined: nothing, the bus default stands; 0 is read as that kernel
   * reads it). `kernel` is the session's version for layout linux, null for the others.
   */
  readDmaParms(stored: StoredDmaParms, bus: Bus, kernel: KernelVersion | null): DmaParms;
  /** null: the layout has no kernel axis (a request naming one is refused). */
  readonly defaultKernel: KernelVersion | null;
  /** The aperture end when the request gives none. */
  readonly defaultApertureEnd: bigint;
  /**
   * Probe-time refusals, each throwing invalid(field, …): checkAperture as soon as the aperture
   * is known (arch/arm's arm_iommu_create_mapping), checkDomain once the reserved regions are
   * too (dma-iommu.c's iommu_dma_init_domain). Two hooks because the kernels check at those two
   * moments, and a request wrong in both ways is answered with the first error met.
   */
  checkAperture(probe: IommuProbe): void;
  checkDomain(probe: IommuProbe): void;
}

/** 0xffffffff: the 32-bit boundary older kernels (and every PCI device) default to. */
export const BOUNDARY_32 = 0xffffffffn;
/** ULONG_MAX on a 64-bit kernel. */
export const BOUNDARY_64 = (1n << 64n) - 1n;
