// Replays a recording of the real kernel (conformance/: dmaemu_probe.ko on Linux 6.12 with an
// emulated Intel IOMMU) through dmaemu and lists every answer that differs. A recording is
// JSON lines, one per DMA-API call, grouped by device; every device starts on a fresh IOMMU
// domain, so each becomes one session configured from its "device" line.
//
// The phys addresses are the ones the kernel's pages had: replay hands dmaemu the same ones,
// so the IOVAs and segments must come back identical, address for address.

import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { AllocCoherentBody, FlushBody, FreeCoherentBody, MapPageBody, MapSgBody, UnmapBody } from '../../schemas/dma.js';
import { SessionCreateBody } from '../../schemas/session.js';
import { SessionStore } from '../../src/service/session-store.js';
import { readDmaEvents } from '../../src/service/ftrace.js';
import type { Session } from '../../src/service/session.js';
import type { DmaDevice } from '../../src/core/dma-device.js';
import { IOVA_OPS, iovaExpected, isIovaCall, replayIovaCall, type IovaAnswer, type IovaCallLine } from './kernel-iova.js';

export type Seg = [string, number];

export interface DeviceLine {
  dev: number;
  op: 'device';
  seq: string;
  pci: string;
  kernel: string;
  defaults: { dma_mask: string; max_segment_size: number; segment_boundary_mask: string };
  config: { dma_mask: string; coherent_dma_mask: string; max_segment_size: number; segment_boundary_mask: string };
  /** the IOMMU domain (absent without one: intel_iommu=off, then `swiotlb` says what dma-direct has) */
  aperture?: [string, string];
  force_aperture?: boolean;
  pgsize_bitmap?: string;
  /** dma-direct's bounce pool (dev->dma_io_tlb_mem's default pool), recorded without an IOMMU */
  swiotlb?: { start: string; end: string; nslabs: number; nareas: number; force: boolean };
  /** [start, end, enum iommu_resv_type] */
  resv: [string, string, number][];
  /** what dma_parms held before the getters read it (recorded since the edge-value sequences) */
  dma_parms?: { max_segment_size: number; segment_boundary_mask: string };
  /** host bridge memory windows as bus addresses [start, end] */
  windows: [string, string][];
  dma_ranges: boolean;
}

export type CallLine =
  | { dev: number; op: 'map_sg'; id: number; sg: Seg[]; nents: number; segs: Seg[] }
  | { dev: number; op: 'map_page'; id: number; phys: string; size: number; addr: string; error: boolean }
  | { dev: number; op: 'alloc_coherent'; id: number; size: number; addr: string; error: boolean }
  | { dev: number; op: 'unmap' | 'free_coherent'; id: number }
  /** the module slept: delayed work ran (the rcache depot trim) */
  | { dev: number; op: 'sleep'; id?: undefined; ms: number }
  | IovaCallLine;

export type Op = 'map_sg' | 'map_page' | 'unmap' | 'alloc_coherent' | 'free_coherent' | 'flush';

export interface DeviceRecording {
  device: DeviceLine;
  calls: CallLine[];
}

/** enum iommu_resv_type: IOMMU_RESV_SW_MSI is the one dma-iommu does not reserve. */
const IOMMU_RESV_SW_MSI = 4;
const DMA_MAPPING_ERROR = '0xffffffffffffffff';

/** Reads a recording (.jsonl or .jsonl.gz; lines may carry the console's "DMAEMU " prefix). */
export function loadRecording(path: string): DeviceRecording[] {
  const raw = readFileSync(path);
  const text = path.endsWith('.gz') ? gunzipSync(raw).toString('utf8') : raw.toString('utf8');
  return parseRecording(text);
}

export function parseRecording(text: string): DeviceRecording[] {
  const byDev = new Map<number, DeviceRecording>();
  for (const line of text.split('\n')) {
    const at = line.indexOf('{');
    if (at < 0) continue;
    const rec = JSON.parse(line.slice(at)) as { op: string; dev?: number };
    if (rec.dev === undefined || rec.op === 'end') continue;
    if (rec.op !== 'device' && !OPS.includes(rec.op)) throw new Error(`unknown op ${rec.op} in the recording`);
    if (rec.op === 'device') {
      byDev.set(rec.dev, { device: rec as DeviceLine, calls: [] });
      continue;
    }
    const d = byDev.get(rec.dev);
    if (!d) throw new Error(`call on device ${rec.dev} before its device line`);
    d.calls.push(rec as CallLine);
  }
  return [...byDev.values()];
}

/** The lowest set bit of pgsize_bitmap: the IOVA granule iommu_dma_init_domain uses. */
export function granuleOf(pgsizeBitmap: string): number {
  const b = BigInt(pgsizeBitmap);
  return Number(b & -b);
}

/**
 * The POST /v1/sessions body for the device's domain: dma-iommu's `linux` layout on a PCI
 * device with the mask and dma_parms the device ended up with, the domain's aperture and
 * granule, and as reserved ranges what iova_reserve_iommu_regions reserves: the host bridge's
 * memory windows (iova_reserve_pci_windows) and every reserved region but SW_MSI.
 */
/** The kernel axis of a recorded release: "7.3.4+deb13-amd64" → "7.3". */
export function kernelOf(d: DeviceLine): string {
  return d.kernel.split('.').slice(0, 2).join('.');
}

/**
 * The session body of a recorded device. Without an IOMMU the swiotlb pool is the boot's one,
 * shared by every device: `swiotlbIndex` is where the devices before this one left its search.
 */
export function sessionBody(d: DeviceLine, swiotlbIndex = 0): Record<string, unknown> {
  if (d.dma_ranges) throw new Error(`${d.seq}: the host bridge has dma_ranges; replay does not model their gaps yet`);
  const reserved = [
    ...d.windows.map(([start, end]) => ({ start, end })),
    ...d.resv.filter((r) => r[2] !== IOMMU_RESV_SW_MSI).map(([start, end]) => ({ start, end })),
  ];
  const device = {
      bus: 'pci',
      // what the device stored (dmaemu must read 0 as the kernel does), else what the getters read
      dma_mask: d.config.dma_mask,
      coherent_dma_mask: d.config.coherent_dma_mask,
      max_segment_size: d.dma_parms?.max_segment_size ?? d.config.max_segment_size,
      segment_boundary_mask: d.dma_parms?.segment_boundary_mask ?? d.config.segment_boundary_mask,
      // x86 is cache-coherent: no cache maintenance, which the recording has none of either
      coherent: true,
  };
  const base = { layout: 'linux', kernel: kernelOf(d), device };
  if (d.swiotlb) {
    // no IOMMU: dma-direct with the pool where this boot put it (one area, 2 KiB slots)
    if (d.swiotlb.nareas !== 1) throw new Error(`${d.seq}: ${d.swiotlb.nareas} swiotlb areas; dmaemu models one`);
    return { ...base, iommu: null, swiotlb: { start: d.swiotlb.start, size: d.swiotlb.nslabs * 2048, force: d.swiotlb.force, index: swiotlbIndex } };
  }
  if (!d.aperture || !d.pgsize_bitmap) throw new Error(`${d.seq}: the device line has neither an IOMMU domain nor a swiotlb pool`);
  return {
    ...base,
    iommu: {
      granule: granuleOf(d.pgsize_bitmap),
      aperture: { start: d.aperture[0], end: d.aperture[1] },
      reserved,
      strict: true,
    },
  };
}

/** What one call answered, in the recording's terms. */
export type Answer = { kind: 'sg'; nents: number; segs: Seg[] } | { kind: 'page'; addr: string } | { kind: 'unmap' } | IovaAnswer;

const OPS: readonly string[] = ['map_sg', 'map_page', 'unmap', 'alloc_coherent', 'free_coherent', 'sleep', ...IOVA_OPS];

export function expected(c: Exclude<CallLine, IovaCallLine>): Answer {
  if (c.op === 'map_sg') return { kind: 'sg', nents: c.nents, segs: c.segs };
  if (c.op === 'map_page' || c.op === 'alloc_coherent') return { kind: 'page', addr: c.error ? DMA_MAPPING_ERROR : c.addr };
  return { kind: 'unmap' };
}

/** The wire body of a call; `handles` maps the recording's ids to dmaemu handles. */
export function requestOf(c: Exclude<CallLine, IovaCallLine>, handles: ReadonlyMap<number, number>): { op: Op; body: Record<string, unknown> } {
  if (c.op === 'map_sg') return { op: 'map_sg', body: { dir: 'to_device', sg: c.sg.map(([phys, length]) => ({ phys, length })) } };
  if (c.op === 'map_page') return { op: 'map_page', body: { dir: 'to_device', phys: c.phys, size: c.size } };
  if (c.op === 'alloc_coherent') return { op: 'alloc_coherent', body: { size: c.size } };
  // Time passed in the guest (IOVA_DEPOT_DELAY is 100 ms): the depot trim has run to the end.
  if (c.op === 'sleep') return { op: 'flush', body: { depot_trim: true } };
  const handle = handles.get(c.id);
  if (handle === undefined) throw new Error(`${c.op} of id ${c.id}, which dmaemu never mapped`);
  return { op: c.op, body: { handle } };
}

/** The answer a dmaemu map/unmap body gave, and its handle when it mapped something. */
export function answerOf(op: Op, out: Record<string, unknown>): { answer: Answer; handle: number | null } {
  const handle = typeof out.handle === 'number' ? out.handle : null;
  if (op === 'map_sg') {
    const segs = (out.segments as { dma_address: string; dma_length: number }[]).map((s): Seg => [s.dma_address, s.dma_length]);
    return { answer: { kind: 'sg', nents: out.nents as number, segs }, handle };
  }
  if (op === 'map_page') return { answer: { kind: 'page', addr: out.dma_address as string }, handle };
  if (op === 'alloc_coherent') return { answer: { kind: 'page', addr: out.dma_handle as string }, handle };
  return { answer: { kind: 'unmap' }, handle };
}

/** BigInt-normalised comparison: "0x0fff" and "0xfff" are the same address. */
function sameAddr(a: string, b: string): boolean {
  return BigInt(a) === BigInt(b);
}

export function sameAnswer(want: Answer, got: Answer): boolean {
  if (want.kind !== got.kind) return false;
  if (want.kind === 'sg' && got.kind === 'sg') {
    return (
      want.nents === got.nents &&
      want.segs.length === got.segs.length &&
      want.segs.every((s, i) => {
        const g = got.segs[i];
        return g !== undefined && sameAddr(s[0], g[0]) && s[1] === g[1];
      })
    );
  }
  if (want.kind === 'page' && got.kind === 'page') return sameAddr(want.addr, got.addr);
  return true;
}

export interface Mismatch {
  seq: string;
  call: number;
  op: string;
  id: number;
  want: Answer;
  got: Answer;
}

/**
 * One device's calls through `call` (core or HTTP), with every differing answer. The IOVA-API
 * calls go to `dev` (the core's DMA device: they have no REST routes yet).
 */
export async function replayDevice(
  rec: DeviceRecording,
  call: (op: Op, body: Record<string, unknown>) => Promise<Record<string, unknown>> | Record<string, unknown>,
  dev?: DmaDevice,
): Promise<{ ops: number; mismatches: Mismatch[] }> {
  const handles = new Map<number, number>();
  const iovaStates = new Map<number, number>();
  const mismatches: Mismatch[] = [];
  let ops = 0;
  for (const [i, c] of rec.calls.entries()) {
    if (isIovaCall(c)) {
      if (!dev) throw new Error(`${rec.device.seq}: the IOVA API replays through the core only`);
      const got = replayIovaCall(dev, c, iovaStates);
      if (got === 'skipped') continue;
      ops++;
      const want = iovaExpected(c);
      if (want && got && want.text !== got.text) mismatches.push({ seq: rec.device.seq, call: i, op: c.op, id: c.id, want, got });
      continue;
    }
    // An unmap of a call dmaemu failed (but the kernel did not) has nothing to undo: the
    // map's mismatch is already reported.
    const release = c.op === 'unmap' || c.op === 'free_coherent';
    if (release && !handles.has(c.id)) continue;
    const req = requestOf(c, handles);
    const { answer, handle } = answerOf(req.op, await call(req.op, req.body));
    if (c.op === 'sleep') continue; // not a DMA-API call: nothing to compare
    if (handle !== null && !release) handles.set(c.id, handle);
    if (release) handles.delete(c.id);
    // without an IOMMU a coherent buffer's address is the page the kernel's buddy allocator
    // chose: replayed (its free too), not compared
    if (c.op === 'alloc_coherent' && rec.device.swiotlb) continue;
    ops++;
    const want = expected(c);
    if (!sameAnswer(want, answer)) mismatches.push({ seq: rec.device.seq, call: i, op: c.op, id: c.id, want, got: answer });
  }
  return { ops, mismatches };
}

/** Every device of a recording through the core, each on a fresh session; `each` hears every device's count. */
export async function replayCore(
  recs: readonly DeviceRecording[],
  each: (seq: string, ops: number, mismatches: number) => void = () => {},
): Promise<{ ops: number; mismatches: Mismatch[] }> {
  let ops = 0;
  const mismatches: Mismatch[] = [];
  let poolIndex = 0; // the boot's one swiotlb pool, as the devices before left it
  for (const r of recs) {
    const s = coreSession(r.device, poolIndex);
    const res = await replayDevice(r, coreCall(s), s.device);
    poolIndex = s.device.swiotlbIndex() ?? poolIndex;
    ops += res.ops;
    mismatches.push(...res.mismatches);
    each(r.device.seq, res.ops, res.mismatches.length);
  }
  return { ops, mismatches };
}

/** The summary line the issue asks for. */
export function conformanceLine(ops: number, mismatches: number, kernel = 'linux 6.12 intel-iommu'): string {
  return `conformance: ${ops} ops, ${mismatches} mismatches (${kernel})`;
}

/** One dma_map_sg / dma_map_page / dma_alloc event of the kernel's `dma` tracepoints. */
export interface TraceMap {
  pci: string;
  op: 'map_sg' | 'map_page' | 'alloc_coherent';
  /** empty for dma_alloc, which traces the CPU's virtual address instead */
  phys: bigint[];
  segs: [bigint, number][];
}

/**
 * The raw trace (tracefs `trace` of events/dma) down to its map events, in order, read by the
 * service's own ftrace reader (src/service/ftrace.ts), so the import and this check agree.
 */
export function parseTrace(text: string): TraceMap[] {
  const out: TraceMap[] = [];
  for (const e of readDmaEvents(text)) {
    if (e.kind === 'map_sg') out.push({ pci: e.device, op: 'map_sg', phys: e.phys, segs: e.dma.map((a, i): [bigint, number] => [a, e.sizes[i] ?? 0]) });
    else if (e.kind === 'map_single') out.push({ pci: e.device, op: 'map_page', phys: [e.phys], segs: [[e.dma, e.size]] });
    else if (e.kind === 'alloc') out.push({ pci: e.device, op: 'alloc_coherent', phys: [], segs: [[e.dma, e.size]] });
  }
  return out;
}

/**
 * Where the module's printed lines and the kernel's own tracepoints disagree: every map the
 * recording holds (but a failed map_sg or dma_alloc_coherent, which 6.12 does not trace) must
 * be the next trace event of that device, with the same phys, addresses and lengths.
 */
export function traceDisagreements(recs: readonly DeviceRecording[], trace: readonly TraceMap[]): string[] {
  const byPci = new Map<string, TraceMap[]>();
  for (const e of trace) {
    // 7.3 also traces a failed dma_alloc_coherent (dma_addr 0, never an IOVA dma-iommu hands out)
    if (e.op === 'alloc_coherent' && e.segs[0]?.[0] === 0n) continue;
    const l = byPci.get(e.pci) ?? [];
    l.push(e);
    byPci.set(e.pci, l);
  }
  const out: string[] = [];
  for (const r of recs) {
    const events = byPci.get(r.device.pci) ?? [];
    let k = 0;
    for (const c of r.calls) {
      // a failed dma_alloc_coherent is not traced either
      if (isIovaCall(c) || c.op === 'unmap' || c.op === 'free_coherent' || c.op === 'sleep' || (c.op === 'map_sg' && c.nents === 0) || (c.op === 'alloc_coherent' && c.error)) continue;
      const e = events[k++];
      const where = `${r.device.seq} id ${c.id}`;
      if (!e || e.op !== c.op) {
        out.push(`${where}: trace has ${e ? e.op : 'no event'}`);
        continue;
      }
      const phys = c.op === 'map_sg' ? c.sg.map((s) => BigInt(s[0])) : c.op === 'map_page' ? [BigInt(c.phys)] : [];
      const segs: [bigint, number][] = c.op === 'map_sg' ? c.segs.map((s) => [BigInt(s[0]), s[1]]) : [[BigInt(c.addr), c.size]];
      const same =
        phys.length === e.phys.length &&
        phys.every((p, i) => p === e.phys[i]) &&
        segs.length === e.segs.length &&
        segs.every((s, i) => s[0] === e.segs[i]?.[0] && s[1] === e.segs[i]?.[1]);
      if (!same) out.push(`${where}: printed and traced results differ`);
    }
    if (k !== events.length) out.push(`${r.device.seq}: ${events.length - k} traced maps the recording lacks`);
  }
  return out;
}

/** A call on a core Session from a wire body, parsed by the same schemas the REST layer uses. */
export function coreCall(s: Session): (op: Op, body: Record<string, unknown>) => Record<string, unknown> {
  return (op, body) => {
    if (op === 'map_sg') return { ...s.mapSg(MapSgBody.parse(body)) };
    if (op === 'map_page') return { ...s.mapPage(MapPageBody.parse(body)) };
    if (op === 'alloc_coherent') return { ...s.allocCoherent(AllocCoherentBody.parse(body)) };
    if (op === 'free_coherent') return { ...s.freeCoherent(FreeCoherentBody.parse(body)) };
    if (op === 'flush') return { ...s.flush(FlushBody.parse(body)) };
    return { ...s.unmap(UnmapBody.parse(body)) };
  };
}

/** One session per device, as a fresh store would create it from the device's session body. */
export function coreSession(d: DeviceLine, swiotlbIndex = 0): Session {
  return new SessionStore().create(SessionCreateBody.parse(sessionBody(d, swiotlbIndex)));
}
