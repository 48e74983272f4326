// Core objects as wire shapes (schemas/): a mapping's segments, IOVA and page rows, a table
// row, a leak row, a coherent buffer's pages. Formatting only; what the numbers mean is the
// core's. Addresses are (pfn, off) pairs scaled by the session's shift (DmaDevice.shift).
//
// Invariant: a mapping's first IOVA is formatted once and cached on it (Mapping.iovaHex), as it
// is answered up to four times (map, table rows, unmap) and hex formatting was the largest cost
// of a map/unmap pair.

import { dmaAddress } from '../core/dma-device.js';
import { DMA_MAPPING_ERROR_HEX, hex, hexAddr } from '../core/hex.js';
import type { Mapping } from '../core/mapping.js';
import type { Fault, MemoryAccess } from '../core/memory/device-view.js';
import type { FaultsOut, MappingRowOut, MemoryOut } from '../../schemas/index.js';

type SegmentOut = { dma_address: string; dma_length: number };
type RangeOut = { start: string; size: number };

/** The first allocation's start, formatted once per mapping. */
function iovaHex(m: Mapping, shift: number): string {
  const a = m.allocs[0];
  if (!a) return DMA_MAPPING_ERROR_HEX;
  return (m.iovaHex ??= hexAddr(a.pfn, shift, a.off));
}

/** The mapping's DMA address (its first segment's), DMA_MAPPING_ERROR for none. */
export function firstAddress(m: Mapping, shift: number): string {
  return dmaAddress(m.segments[0], shift);
}

export function segmentsOut(m: Mapping, shift: number): SegmentOut[] {
  const out = new Array<SegmentOut>(m.segments.length);
  const a = m.allocs[0];
  for (let i = 0; i < m.segments.length; i++) {
    const s = m.segments[i] as Mapping['segments'][number];
    const addr = a && s.pfn === a.pfn && s.off === a.off ? iovaHex(m, shift) : hexAddr(s.pfn, shift, s.off);
    out[i] = { dma_address: addr, dma_length: s.len };
  }
  return out;
}

export function iovaOut(m: Mapping, shift: number): RangeOut | null {
  const a = m.allocs[0];
  return a ? { start: iovaHex(m, shift), size: a.bytes } : null;
}

export function iovaRangesOut(m: Mapping, shift: number): RangeOut[] {
  const out = new Array<RangeOut>(m.allocs.length);
  for (let i = 0; i < m.allocs.length; i++) {
    const a = m.allocs[i] as Mapping['allocs'][number];
    out[i] = { start: i === 0 ? iovaHex(m, shift) : hexAddr(a.pfn, shift, a.off), size: a.bytes };
  }
  return out;
}

/** One row per IOMMU granule mapped (`granule`: the page size without an IOMMU), in IOVA order. */
export function pageRows(m: Mapping, shift: number, granule: number): { iova: string; phys: string }[] {
  const rows: { iova: string; phys: string }[] = [];
  for (const e of m.extents) {
    for (let k = 0; k < e.bytes; k += granule) rows.push({ iova: hexAddr(e.pfn, shift, e.off + k), phys: hex(e.phys + k) });
  }
  return rows;
}

export function mappingRow(m: Mapping, shift: number): MappingRowOut {
  return {
    handle: m.handle,
    kind: m.kind,
    dir: m.dir,
    nents: m.sg.length,
    segments: segmentsOut(m, shift),
    iova: iovaOut(m, shift),
    iova_ranges: iovaRangesOut(m, shift),
    size: m.size,
    phys: m.sg.map((s) => hex(s.phys)),
  };
}

export function leakRow(m: Mapping, shift: number): { handle: number; kind: Mapping['kind']; dir: Mapping['dir']; size: number; dma_address: string } {
  return { handle: m.handle, kind: m.kind, dir: m.dir, size: m.size, dma_address: firstAddress(m, shift) };
}

/** A coherent buffer's pages (`size` bytes rounded up to pages, contiguous from its first entry). */
export function coherentPages(m: Mapping, size: number, pageSize: number): string[] {
  const phys = m.sg[0]?.phys ?? 0;
  const bytes = Math.ceil(size / pageSize) * pageSize;
  const pages: string[] = [];
  for (let p = 0; p < bytes; p += pageSize) pages.push(hex(phys + p));
  return pages;
}

type FaultOut = FaultsOut['faults'][number];

export function faultOut(f: Fault): FaultOut {
  return { seq: f.seq, dma_address: hex(f.dma_address), access: f.access, reason: f.reason, length: f.length };
}

/** A CPU or device access as the wire answers it: bytes as base64, the fault's address in hex. */
export function memoryOut(a: MemoryAccess): MemoryOut {
  const out: MemoryOut = {};
  if (a.data) out.data = Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).toString('base64');
  if (a.written !== undefined) out.written = a.written;
  if (a.fault) out.fault = faultOut(a.fault);
  return out;
}
