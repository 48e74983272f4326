// A session's configuration: the request resolved with Linux's defaults (semantics §2) and
// validated. Anything Linux would refuse at probe time is rejected here, naming the field (the
// wire's field path: the request's fields mirror the body's, and so do the errors). What a
// default or a check is for one layout comes from its spec (layouts/registry.ts).
//
// The request is core-typed (addresses already bigint); src/service/config-wire.ts turns the
// wire body into one and the resolved config back into the wire's shape.

import type { KernelVersion, Layout } from './constants.js';
import { invalid } from './errors.js';
import { layoutSpec } from './layouts/registry.js';
import type { Bus, IommuConfig, SessionConfig } from './session-config.js';

export type { Layout } from './constants.js';
export type { IommuConfig, SessionConfig } from './session-config.js';

interface RangeRequest {
  start: bigint;
  end: bigint;
}

/** What a session is created with: every field optional (Linux's default), `iommu: null` for none. */
export interface ConfigRequest {
  device?: {
    bus?: Bus | undefined;
    dma_mask?: bigint | undefined;
    coherent_dma_mask?: bigint | undefined;
    max_segment_size?: number | undefined;
    segment_boundary_mask?: bigint | undefined;
    coherent?: boolean | undefined;
    dma_offset?: bigint | undefined;
  } | undefined;
  iommu?: {
    granule?: number | undefined;
    aperture?: RangeRequest | undefined;
    reserved?: RangeRequest[] | undefined;
    strict?: boolean | undefined;
    forcedac?: boolean | undefined;
    enforce_read?: boolean | undefined;
  } | null | undefined;
  layout?: Layout | undefined;
  /** Layout linux only: the kernel version whose rules apply (default: the newest recorded). */
  kernel?: KernelVersion | undefined;
  page_size?: number | undefined;
  swiotlb?: { size?: number | undefined; force?: boolean | undefined; start?: bigint | undefined; index?: number | undefined } | undefined;
  memory_limit?: number | undefined;
}

const DEFAULT_MEMORY_LIMIT = 256 * 1024 * 1024;
/** Where the emulated swiotlb pool sits: low memory, below 4 GiB, as swiotlb_init places it. */
export const SWIOTLB_START = 0x08000000;
/** The emulated physical address space: 52 bits, arm64's largest. */
const PHYS_END = 2n ** 52n;

function bitsOfMask(mask: bigint): number {
  let n = 0;
  while (n < 64 && (mask >> BigInt(n)) & 1n) n++;
  return n;
}

export function resolveConfig(input: ConfigRequest, defaults: { memoryLimit?: number } = {}): SessionConfig {
  const layout: Layout = input.layout ?? 'linux';
  const spec = layoutSpec(layout);
  const pageSize = input.page_size ?? 4096;
  const d = input.device ?? {};
  const dmaMask = d.dma_mask ?? 0xffffffffn;
  const coherentDmaMask = d.coherent_dma_mask ?? 0xffffffffn;
  const bus = d.bus ?? 'platform';
  if (input.kernel !== undefined && spec.defaultKernel === null) {
    throw invalid('kernel', `layout ${layout} is one kernel of its own; the kernel axis belongs to layout linux`);
  }
  const kernel = input.kernel ?? spec.defaultKernel;
  // A mask of 0 is refused here, as the kernel refuses it without an IOMMU (dma_set_mask: -EIO).
  // Behind dma-iommu 6.12 and 7.3 accept it and then fail every map and allocation (seen on
  // both); dmaemu answers that device at creation instead (docs/conformance.md).
  if (dmaMask === 0n) throw invalid('device.dma_mask', 'a DMA mask of 0 addresses nothing');
  if (coherentDmaMask === 0n) throw invalid('device.coherent_dma_mask', 'a DMA mask of 0 addresses nothing');
  // dma_get_max_seg_size / dma_get_seg_boundary: what the driver stored, read as the kernel reads it
  const parms = spec.readDmaParms({ maxSegmentSize: d.max_segment_size, segmentBoundaryMask: d.segment_boundary_mask }, bus, kernel);
  const segmentBoundaryMask = parms.segmentBoundaryMask;
  const segmentBoundaryBits = bitsOfMask(segmentBoundaryMask);
  if (segmentBoundaryMask !== (1n << BigInt(segmentBoundaryBits)) - 1n) {
    throw invalid('device.segment_boundary_mask', 'must be of the form 2^n − 1');
  }
  const dmaOffset = d.dma_offset ?? 0n;
  if (dmaOffset >= PHYS_END) throw invalid('device.dma_offset', 'must be below 2^52');

  let iommu: IommuConfig | null = null;
  if (input.iommu !== null) {
    const i = input.iommu ?? {};
    const granule = i.granule ?? 4096;
    if (granule > pageSize) throw invalid('iommu.granule', `the IOMMU granule (${granule}) must not exceed page_size (${pageSize})`);
    const apertureStart = i.aperture?.start ?? 0n;
    const apertureEnd = i.aperture?.end ?? spec.defaultApertureEnd;
    if (apertureStart > apertureEnd) throw invalid('iommu.aperture', 'start must not be above end');
    const shift = Math.log2(granule);
    if (apertureEnd >> BigInt(shift) < 1n) throw invalid('iommu.aperture.end', 'the aperture holds no allocatable granule (pfn 0 is never used)');
    const probe = { pageSize, coherentDmaMask, apertureStart, apertureEnd, shift };
    spec.checkAperture(probe);
    const reserved = (i.reserved ?? []).map((r, k) => {
      if (r.start > r.end) throw invalid(`iommu.reserved.${k}`, 'start must not be above end');
      return { start: r.start, end: r.end };
    });
    spec.checkDomain(probe);
    // iommu.forcedac (v5.13+): dma-iommu's option, so layout linux's
    if (i.forcedac !== undefined && kernel === null) throw invalid('iommu.forcedac', `iommu.forcedac is dma-iommu's option since v5.13: layout linux only, not ${layout}`);
    iommu = { granule, shift, apertureStart, apertureEnd, reserved, strict: i.strict ?? true, forcedac: i.forcedac ?? false, enforceRead: i.enforce_read ?? true };
  }
  const swiotlbSize = input.swiotlb?.size ?? 64 * 1024 * 1024;
  if (swiotlbSize % 2048 !== 0) throw invalid('swiotlb.size', 'must be a multiple of the 2 KiB slot size');
  // where the boot placed the pool (swiotlb_init: memblock, low memory); the emulated coherent
  // pages lie below SWIOTLB_START, so the pool may not start below it
  const swiotlbStart = input.swiotlb?.start ?? BigInt(SWIOTLB_START);
  if (swiotlbStart < BigInt(SWIOTLB_START)) throw invalid('swiotlb.start', `must be at or above 0x${SWIOTLB_START.toString(16)} (the emulated coherent pages lie below it)`);
  if (swiotlbStart % 2048n !== 0n) throw invalid('swiotlb.start', 'must be a multiple of the 2 KiB slot size');
  if (swiotlbStart + BigInt(swiotlbSize) > PHYS_END) throw invalid('swiotlb.start', 'the pool must end below 2^52');
  const swiotlbIndex = input.swiotlb?.index ?? 0;
  if (swiotlbIndex >= swiotlbSize / 2048) throw invalid('swiotlb.index', `must be below the pool's ${swiotlbSize / 2048} slots`);
  return {
    bus,
    dmaMask,
    coherentDmaMask,
    maxSegmentSize: parms.maxSegmentSize,
    segmentBoundaryMask,
    segmentBoundaryBits,
    coherent: d.coherent ?? false,
    dmaOffset: Number(dmaOffset),
    iommu,
    layout,
    kernel,
    pageSize,
    pageShift: Math.log2(pageSize),
    swiotlbSize,
    swiotlbForce: input.swiotlb?.force ?? false,
    swiotlbStart: Number(swiotlbStart),
    swiotlbIndex,
    memoryLimit: input.memory_limit ?? defaults.memoryLimit ?? DEFAULT_MEMORY_LIMIT,
  };
}
