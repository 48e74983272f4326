// A session's configuration: the request resolved with Linux's defaults (semantics §2) and
// validated. Anything Linux would refuse at probe time is rejected here, naming the field.

import { invalid } from './errors.js';
import { hex } from './hex.js';
import type { SessionConfigOut, SessionCreateInput } from '../../schemas/index.js';
import { PHYS_LIMIT } from '../../schemas/common.js';
import type { Layout } from './constants.js';

export interface IommuConfig {
  granule: number;
  shift: number;
  apertureStart: bigint;
  apertureEnd: bigint;
  reserved: { start: bigint; end: bigint }[];
  strict: boolean;
  /** A missing IOMMU_READ faults device reads (false: stage-1 arm64 SMMU, reads always allowed). */
  enforceRead: boolean;
}

export interface SessionConfig {
  bus: 'platform' | 'pci';
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
  pageSize: number;
  pageShift: number;
  swiotlbSize: number;
  swiotlbForce: boolean;
  swiotlbStart: number;
  memoryLimit: number;
}

const U64 = (1n << 64n) - 1n;
const DEFAULT_MEMORY_LIMIT = 256 * 1024 * 1024;
/** Where the emulated swiotlb pool sits: low memory, below 4 GiB, as swiotlb_init places it. */
export const SWIOTLB_START = 0x08000000;

function bitsOfMask(mask: bigint): number {
  let n = 0;
  while (n < 64 && (mask >> BigInt(n)) & 1n) n++;
  return n;
}

export function resolveConfig(input: SessionCreateInput, defaults: { memoryLimit?: number } = {}): SessionConfig {
  const layout: Layout = input.layout ?? 'linux';
  const pageSize = input.page_size ?? 4096;
  const d = input.device ?? {};
  const dmaMask = d.dma_mask ?? 0xffffffffn;
  const coherentDmaMask = d.coherent_dma_mask ?? 0xffffffffn;
  if (dmaMask === 0n) throw invalid('device.dma_mask', 'a DMA mask of 0 addresses nothing');
  if (coherentDmaMask === 0n) throw invalid('device.coherent_dma_mask', 'a DMA mask of 0 addresses nothing');
  // dma_get_seg_boundary's default changed from 32 bits to ULONG_MAX in 2020 (v5.10); a PCI
  // device always has dma_parms, and pci_device_add sets its boundary to 0xffffffff.
  const bus = d.bus ?? 'platform';
  const segmentBoundaryMask = d.segment_boundary_mask ?? (layout === 'linux' && bus !== 'pci' ? U64 : 0xffffffffn);
  const segmentBoundaryBits = bitsOfMask(segmentBoundaryMask);
  if (segmentBoundaryMask !== (1n << BigInt(segmentBoundaryBits)) - 1n) {
    throw invalid('device.segment_boundary_mask', 'must be of the form 2^n − 1');
  }
  const dmaOffset = d.dma_offset ?? 0n;
  if (dmaOffset >= BigInt(PHYS_LIMIT)) throw invalid('device.dma_offset', 'must be below 2^52');

  let iommu: IommuConfig | null = null;
  if (input.iommu !== null) {
    const i = input.iommu ?? {};
    const granule = i.granule ?? 4096;
    if (granule > pageSize) throw invalid('iommu.granule', `the IOMMU granule (${granule}) must not exceed page_size (${pageSize})`);
    const apertureStart = i.aperture?.start ?? 0n;
    const apertureEnd = i.aperture?.end ?? (layout === 'arm-legacy' ? 0xffffffffn : (1n << 48n) - 1n);
    if (apertureStart > apertureEnd) throw invalid('iommu.aperture', 'start must not be above end');
    const shift = Math.log2(granule);
    if (apertureEnd >> BigInt(shift) < 1n) throw invalid('iommu.aperture.end', 'the aperture holds no allocatable granule (pfn 0 is never used)');
    if (layout === 'arm-legacy') {
      if (apertureEnd - apertureStart + 1n > 1n << 32n) {
        throw invalid('iommu.aperture', 'arm-legacy maps at most 4 GiB (arm_iommu_create_mapping returns -ERANGE)');
      }
      if (apertureStart % BigInt(pageSize) !== 0n) throw invalid('iommu.aperture.start', 'arm-legacy needs a page-aligned base');
      if (apertureEnd >= 1n << 52n) throw invalid('iommu.aperture.end', 'arm-legacy mappings live below 2^52');
      if ((apertureEnd - apertureStart + 1n) % BigInt(pageSize) !== 0n) {
        throw invalid('iommu.aperture', 'arm-legacy needs a whole number of pages');
      }
    }
    const reserved = (i.reserved ?? []).map((r, k) => {
      if (r.start > r.end) throw invalid(`iommu.reserved.${k}`, 'start must not be above end');
      return { start: r.start, end: r.end };
    });
    if (layout === 'linux-4.4') {
      const start = apertureStart >> BigInt(shift);
      const end32 = (coherentDmaMask < apertureEnd ? coherentDmaMask : apertureEnd) >> BigInt(shift);
      if (end32 < (start > 1n ? start : 1n)) {
        throw invalid('iommu.aperture', 'specified DMA range outside IOMMU capability (iommu_dma_init_domain)');
      }
    }
    iommu = { granule, shift, apertureStart, apertureEnd, reserved, strict: i.strict ?? true, enforceRead: i.enforce_read ?? true };
  }
  const swiotlbSize = input.swiotlb?.size ?? 64 * 1024 * 1024;
  if (swiotlbSize % 2048 !== 0) throw invalid('swiotlb.size', 'must be a multiple of the 2 KiB slot size');
  return {
    bus,
    dmaMask,
    coherentDmaMask,
    maxSegmentSize: d.max_segment_size ?? 65536,
    segmentBoundaryMask,
    segmentBoundaryBits,
    coherent: d.coherent ?? false,
    dmaOffset: Number(dmaOffset),
    iommu,
    layout,
    pageSize,
    pageShift: Math.log2(pageSize),
    swiotlbSize,
    swiotlbForce: input.swiotlb?.force ?? false,
    swiotlbStart: SWIOTLB_START,
    memoryLimit: input.memory_limit ?? defaults.memoryLimit ?? DEFAULT_MEMORY_LIMIT,
  };
}

export function configToWire(c: SessionConfig): SessionConfigOut {
  return {
    device: {
      bus: c.bus,
      dma_mask: hex(c.dmaMask),
      coherent_dma_mask: hex(c.coherentDmaMask),
      max_segment_size: c.maxSegmentSize,
      segment_boundary_mask: hex(c.segmentBoundaryMask),
      coherent: c.coherent,
      dma_offset: hex(c.dmaOffset),
    },
    iommu: c.iommu && {
      granule: c.iommu.granule,
      aperture: { start: hex(c.iommu.apertureStart), end: hex(c.iommu.apertureEnd) },
      reserved: c.iommu.reserved.map((r) => ({ start: hex(r.start), end: hex(r.end) })),
      strict: c.iommu.strict,
      enforce_read: c.iommu.enforceRead,
    },
    layout: c.layout,
    page_size: c.pageSize,
    swiotlb: { size: c.swiotlbSize, force: c.swiotlbForce, start: hex(c.swiotlbStart) },
    memory_limit: c.memoryLimit,
  };
}
