// The session configuration across the wire: the create body as the core's request, and the
// resolved config as the answer's `config` (hex strings for every address).

import type { ConfigRequest, SessionConfig } from '../core/config.js';
import { hex } from '../core/hex.js';
import type { SessionConfigOut, SessionCreateInput } from '../../schemas/index.js';

/**
 * The parsed body already is a request (zod turned addresses into bigint, and the fields are
 * the kernel's snake_case names either way); this is where the two types are held together, so a
 * schema change that the core cannot take fails to compile here.
 */
export function configRequest(body: SessionCreateInput): ConfigRequest {
  return body;
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
      forcedac: c.iommu.forcedac,
      enforce_read: c.iommu.enforceRead,
    },
    layout: c.layout,
    kernel: c.kernel,
    page_size: c.pageSize,
    swiotlb: { size: c.swiotlbSize, force: c.swiotlbForce, start: hex(c.swiotlbStart), index: c.swiotlbIndex },
    memory_limit: c.memoryLimit,
  };
}
