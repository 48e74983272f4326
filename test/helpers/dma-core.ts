// Core-level test helpers: sessions and DMA-API calls built from wire-shaped bodies, parsed by
// the same zod schemas the REST layer uses, so tests exercise exactly what a request would.
import { SessionCreateBody } from '../../schemas/session.js';
import { AllocCoherentBody, FreeCoherentBody, MapPageBody, MapSgBody, SyncBody, UnmapBody } from '../../schemas/dma.js';
import { CpuReadBody, CpuWriteBody, DeviceReadBody, DeviceWriteBody } from '../../schemas/memory.js';
import type { MapPageOut, MapSgOut, MemoryOut } from '../../schemas/index.js';
import { SessionStore } from '../../src/service/session-store.js';
import type { Session } from '../../src/service/session.js';

export type Dir = 'to_device' | 'from_device' | 'bidirectional';

/** The device the property tests draw at random: a layout (or none: no IOMMU) and its limits. */
export interface RandomDevice {
  layout: 'linux' | 'linux-4.4' | 'arm-legacy' | 'none';
  pageSize: number;
  granule: number;
  dmaBits: number;
  maxSeg: number;
  boundaryBits: number;
}
export type Entry = { phys: number | string; length: number };

/** DMA_MAPPING_ERROR as the wire shows it. */
export const DMA_MAPPING_ERROR = '0xffffffffffffffff';

/** A session from a POST /v1/sessions body (each in its own store: tests make thousands). */
export function session(body: Record<string, unknown> = {}): Session {
  return new SessionStore().create(SessionCreateBody.parse(body));
}

/** Builds the session and returns the DmaemuError it throws (or undefined). */
export function sessionError(body: Record<string, unknown>): { code: string; field: string | undefined; message: string } | undefined {
  try {
    session(body);
  } catch (e) {
    // zod (schema) errors carry the field as an issue path; the core's DmaemuError as `field`.
    const err = e as { code?: string; field?: string; message: string; issues?: { path: PropertyKey[] }[] };
    if (err.issues) return { code: 'SCHEMA', field: err.issues[0]?.path.map(String).join('.'), message: err.message };
    return { code: err.code ?? 'UNKNOWN', field: err.field, message: err.message };
  }
  return undefined;
}

export function hx(n: number | bigint): string {
  return '0x' + n.toString(16);
}

export function mapSg(s: Session, sg: Entry[], dir: Dir = 'to_device', pages = false, skipCpuSync = false): MapSgOut {
  return s.mapSg(MapSgBody.parse({ dir, sg, ...(skipCpuSync ? { skip_cpu_sync: true } : {}) }), pages);
}

export function mapPage(s: Session, phys: number | string, size: number, dir: Dir = 'to_device', pages = false): MapPageOut {
  return s.mapPage(MapPageBody.parse({ phys, size, dir }), pages);
}

export function unmap(s: Session, handle: number, extra: Record<string, unknown> = {}) {
  return s.unmap(UnmapBody.parse({ handle, ...extra }));
}

export function sync(s: Session, handle: number, target: 'cpu' | 'device', extra: Record<string, unknown> = {}) {
  return s.sync(SyncBody.parse({ handle, for: target, ...extra }));
}

export function allocCoherent(s: Session, size: number) {
  return s.allocCoherent(AllocCoherentBody.parse({ size }));
}

export function freeCoherent(s: Session, handle: number) {
  return s.freeCoherent(FreeCoherentBody.parse({ handle }));
}

export function cpuWrite(s: Session, phys: number, data: Uint8Array): MemoryOut {
  return s.cpuWrite(CpuWriteBody.parse({ phys, data: Buffer.from(data).toString('base64') }));
}

export function cpuRead(s: Session, phys: number, length: number): Uint8Array {
  const r = s.cpuRead(CpuReadBody.parse({ phys, length }));
  return new Uint8Array(Buffer.from(r.data ?? '', 'base64'));
}

export function deviceWrite(s: Session, dmaAddress: string | bigint, data: Uint8Array): MemoryOut {
  return s.deviceWrite(DeviceWriteBody.parse({ dma_address: typeof dmaAddress === 'bigint' ? hx(dmaAddress) : dmaAddress, data: Buffer.from(data).toString('base64') }));
}

/** What the device reads, and the fault if there was one. */
export function deviceRead(s: Session, dmaAddress: string | bigint, length: number): { data: Uint8Array | undefined; out: MemoryOut } {
  const out = s.deviceRead(DeviceReadBody.parse({ dma_address: typeof dmaAddress === 'bigint' ? hx(dmaAddress) : dmaAddress, length }));
  return { data: out.data === undefined ? undefined : new Uint8Array(Buffer.from(out.data, 'base64')), out };
}

/** A recognisable byte pattern. */
export function pattern(length: number, seed: number): Uint8Array {
  const b = new Uint8Array(length);
  for (let i = 0; i < length; i++) b[i] = (seed * 31 + i * 7 + 1) & 0xff;
  return b;
}

/** Segments as compact [address, length] pairs for t.same. */
export function segs(r: { segments: { dma_address: string; dma_length: number }[] }): [string, number][] {
  return r.segments.map((x) => [x.dma_address, x.dma_length]);
}

/** A 4 KiB-granule IOMMU over a 48-bit aperture, strict, platform device with a 32-bit mask. */
export const IOMMU_48 = { granule: 4096, aperture: { start: '0x0', end: '0xffffffffffff' }, strict: true };

/** §10's four scattered pages. */
export const FOUR_PAGES: Entry[] = [
  { phys: '0x81000000', length: 4096 },
  { phys: '0x83000000', length: 4096 },
  { phys: '0x82000000', length: 4096 },
  { phys: '0x84000000', length: 4096 },
];
