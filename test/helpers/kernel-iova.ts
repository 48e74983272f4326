// The IOVA-API lines of a kernel recording (dmaemu_probe.c, Linux 6.16+: dma_iova_try_alloc,
// _link, _sync, _unlink, _destroy, _free) and their replay through the core's DMA device
// (src/core/iova-api.ts). The REST routes for these calls come with the call table; until then
// they replay at the core level only, and a device that uses them is not replayed over HTTP.
//
// A recording's IOVA ids are the module's own counter, separate from its mapping ids: they map
// to the core's state handles here, never through the mapping handles.

import type { DmaDevice } from '../../src/core/dma-device.js';

export type IovaCallLine =
  | { dev: number; op: 'iova_alloc'; id: number; phys: string; size: number; ok: boolean; addr: string; state_size: string; use_iova: boolean }
  | { dev: number; op: 'iova_link'; id: number; phys: string; offset: number; size: number; ret: number }
  | { dev: number; op: 'iova_sync'; id: number; offset: number; size: number; ret: number }
  | { dev: number; op: 'iova_unlink'; id: number; offset: number; size: number }
  | { dev: number; op: 'iova_destroy'; id: number; mapped_len: number }
  | { dev: number; op: 'iova_free'; id: number };

export const IOVA_OPS: readonly string[] = ['iova_alloc', 'iova_link', 'iova_sync', 'iova_unlink', 'iova_destroy', 'iova_free'];

export function isIovaCall(c: { op: string }): c is IovaCallLine {
  return IOVA_OPS.includes(c.op);
}

/** What one IOVA call answered, in the recording's terms (a mismatch prints it). */
export interface IovaAnswer {
  kind: 'iova';
  text: string;
}

/** The recorded answer: try_alloc's ok/addr/size (all zero when false), link's and sync's int. */
export function iovaExpected(c: IovaCallLine): IovaAnswer | null {
  if (c.op === 'iova_alloc') return { kind: 'iova', text: allocText(c.ok, BigInt(c.addr), BigInt(c.state_size)) };
  if (c.op === 'iova_link' || c.op === 'iova_sync') return { kind: 'iova', text: `ret ${c.ret}` };
  return null;
}

function allocText(ok: boolean, addr: bigint, size: bigint): string {
  return `${ok ? 'true' : 'false'} addr 0x${addr.toString(16)} size 0x${size.toString(16)}`;
}

/**
 * One IOVA call on the device: what it answered (null for the calls that return nothing), or
 * null with nothing done when the recorded state never existed for dmaemu (its try_alloc's
 * mismatch is already reported).
 */
export function replayIovaCall(dev: DmaDevice, c: IovaCallLine, states: Map<number, number>): IovaAnswer | null | 'skipped' {
  if (c.op === 'iova_alloc') {
    const r = dev.iovaTryAlloc({ phys: Number(BigInt(c.phys)), size: c.size });
    if (r.state !== null) states.set(c.id, r.state);
    return { kind: 'iova', text: allocText(r.ok, r.addr, BigInt(r.size)) };
  }
  const state = states.get(c.id);
  if (state === undefined) return 'skipped';
  const dir = 'to_device';
  switch (c.op) {
    case 'iova_link':
      return { kind: 'iova', text: `ret ${dev.iovaLink({ state, phys: Number(BigInt(c.phys)), offset: c.offset, size: c.size, dir }).ret}` };
    case 'iova_sync':
      return { kind: 'iova', text: `ret ${dev.iovaSync({ state, offset: c.offset, size: c.size }).ret}` };
    case 'iova_unlink':
      dev.iovaUnlink({ state, offset: c.offset, size: c.size, dir });
      return null;
    case 'iova_destroy':
      dev.iovaDestroy({ state, mapped_len: c.mapped_len, dir });
      states.delete(c.id);
      return null;
    case 'iova_free':
      dev.iovaFree({ state });
      states.delete(c.id);
      return null;
  }
}
