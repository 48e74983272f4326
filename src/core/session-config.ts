// The resolved configuration a session runs with (config.ts builds it; semantics §2). Types
// only, in their own file so the layouts can read a config without importing config.ts, which
// imports the layout registry for each layout's defaults and probe-time checks.
//
// Invariants (established by resolveConfig): segmentBoundaryMask = 2^segmentBoundaryBits − 1;
// iommu.shift = log2(iommu.granule) and granule ≤ pageSize; pageShift = log2(pageSize);
// apertureStart ≤ apertureEnd.

import type { KernelVersion, Layout } from './constants.js';

export interface IommuConfig {
  granule: number;
  shift: number;
  apertureStart: bigint;
  apertureEnd: bigint;
  reserved: { start: bigint; end: bigint }[];
  strict: boolean;
  /** iommu.forcedac: no SAC-first try for PCI devices (layout linux). */
  forcedac: boolean;
  /** A missing IOMMU_READ faults device reads (false: stage-1 arm64 SMMU, reads always allowed). */
  enforceRead: boolean;
}

export type Bus = 'platform' | 'pci';

export interface SessionConfig {
  bus: Bus;
  dmaMask: bigint;
  coherentDmaMask: bigint;
  maxSegmentSize: number;
  segmentBoundaryMask: bigint;
  /** n where segment_boundary_mask = 2^n − 1 */
  segmentBoundaryBits: number;
  coherent: boolean;
  dmaOffset: number;
  iommu: IommuConfig | null;
  layout: Layout;
  /** Layout linux: the kernel version whose rules apply (layouts/kernels.ts); null for the others. */
  kernel: KernelVersion | null;
  pageSize: number;
  pageShift: number;
  swiotlbSize: number;
  swiotlbForce: boolean;
  swiotlbStart: number;
  /** The slot the pool's first search starts at (a pool an earlier device of the boot used). */
  swiotlbIndex: number;
  memoryLimit: number;
}
