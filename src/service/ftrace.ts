// Bring your own trace: the kernel's dma tracepoints (include/trace/events/dma.h, v6.12 and
// later) as `trace-cmd report`, tracefs `trace` or `trace_pipe` print them, turned into dmaemu
// traces (src/service/trace.ts's format, POST /v1/sessions {trace}), one per device.
//
// Reading: a line is `TASK-PID [CPU] [FLAGS] TIMESTAMP: EVENT: PAYLOAD` (an optional `(TGID)`
// after the pid); blank lines, `#` comments and trace-cmd's headers are skipped; any other
// line is an error naming its number. Events outside `dma_*` are counted, not read. A dma
// event's payload is its TP_printk: the device name, then `key=value` fields (hex addresses
// without 0x, decimal sizes, `{0x…,…}` arrays), in any of the formats the kernel has printed:
//  - v6.12: dma_map_page / dma_unmap_page, dma_map_resource / dma_unmap_resource, dma_alloc /
//    dma_free with phys_addr= and no dir=, dma_map_sg with dma_addrs/sizes/phys_addrs only;
//  - later (and 6.12 stable): dma_map_sg with nents=a/b ents=c/d and [TRUNCATED], dma_alloc /
//    dma_free with dir= and virt_addr=, dma_map_sg_err, dma_alloc_pages, dma_*_sgt;
//  - v6.18 on: dma_map_phys / dma_unmap_phys instead of dma_map_page / dma_unmap_page (the
//    MMIO attribute replaces dma_map_resource).
//
// Turning events into ops: each device gets its own op list; a map op remembers its index,
// and the unmap, sync or free that names its DMA address (or, for a scatterlist, its physical
// addresses) refers to it with `ref`. The kernel's own answer becomes the op's `expect`.
// Anything a dmaemu op cannot say is listed in `unexpressed` with its line and why, never
// dropped: a dma_map_sg whose entries were merged (the event has each entry's phys but only
// each *segment's* length), a truncated list, MMIO mappings, page and sgt allocations, a
// release of something mapped before the trace began.
//
// Invariants: lines are read in one pass without splitting the text; the parse yields to the
// event loop whenever it has run for SLICE_MS, so a large text never blocks other requests
// for long; at most `maxEvents` dma events are read (an error names the limit).

import { invalid } from '../core/errors.js';

/** How long one parse slice may run before it yields to the event loop. */
export const SLICE_MS = 10;
export const DEFAULT_MAX_IMPORT_EVENTS = 100_000;
/** Largest text/plain trace POST /v1/import/ftrace takes (JSON bodies stay under DMAEMU_BODY_LIMIT). */
export const DEFAULT_IMPORT_BODY_LIMIT = 64 * 1024 * 1024;

export interface ImportLimits {
  /** DMAEMU_IMPORT_BODY_LIMIT: bytes of a text/plain trace. */
  bodyLimit: number;
  /** DMAEMU_MAX_IMPORT_EVENTS: dma events one import reads. */
  maxEvents: number;
}

export function importLimitsFromEnv(env: NodeJS.ProcessEnv = process.env): ImportLimits {
  const read = (name: string, dflt: number, min: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return dflt;
    const v = Number(raw);
    if (!Number.isSafeInteger(v) || v < min) throw new Error(`${name} must be an integer ≥ ${min}, got ${JSON.stringify(raw)}`);
    return v;
  };
  return { bodyLimit: read('DMAEMU_IMPORT_BODY_LIMIT', DEFAULT_IMPORT_BODY_LIMIT, 1024), maxEvents: read('DMAEMU_MAX_IMPORT_EVENTS', DEFAULT_MAX_IMPORT_EVENTS, 1) };
}
const DMA_MAPPING_ERROR = (1n << 64n) - 1n;
/** drivers/iommu/iova.c IOVA_DEPOT_DELAY: msecs_to_jiffies(100). */
const IOVA_DEPOT_DELAY_S = 0.1;
const PHYS_LIMIT = 2n ** 52n;

type Dir = 'to_device' | 'from_device' | 'bidirectional';
const DIRS: Record<string, Dir | 'none'> = { TO_DEVICE: 'to_device', FROM_DEVICE: 'from_device', BIDIRECTIONAL: 'bidirectional', NONE: 'none' };

interface Base {
  line: number;
  event: string;
  device: string;
  attrs: string[];
}

/** One dma event, as read from its TP_printk. */
export type DmaEvent =
  | (Base & { kind: 'map_single'; dir: Dir | 'none'; dma: bigint; size: number; phys: bigint })
  | (Base & { kind: 'unmap_single'; dir: Dir | 'none'; dma: bigint; size: number })
  | (Base & { kind: 'map_sg'; dir: Dir | 'none'; phys: bigint[]; dma: bigint[]; sizes: number[]; nents: number; ents: number; truncated: boolean })
  | (Base & { kind: 'unmap_sg'; dir: Dir | 'none'; phys: bigint[] })
  | (Base & { kind: 'alloc'; dma: bigint; size: number; failed: boolean })
  | (Base & { kind: 'free'; dma: bigint; size: number })
  | (Base & { kind: 'sync_single'; target: 'cpu' | 'device'; dir: Dir | 'none'; dma: bigint; size: number })
  | (Base & { kind: 'sync_sg'; target: 'cpu' | 'device'; dir: Dir | 'none'; dma: bigint[]; sizes: number[] })
  | (Base & { kind: 'other'; why: string });

// TASK-PID [(TGID)] [CPU] [FLAGS] TIMESTAMP: EVENT: PAYLOAD
const LINE = /^\s*(.*?)-(\d+)\s+(?:\(\s*[\d-]+\)\s+)?\[(\d+)\]\s+(?:(\S+)\s+)?(\d+(?:\.\d+)?):\s+([A-Za-z0-9_]+):\s?(.*)$/;
/** trace-cmd report's headers, and what trace_pipe prints when events were lost. */
const HEADER = /^(version = \d+|cpus=\d+|CPU:?\s*\d+ is empty|CPU \d+ data recorded at offset|\s*#|\s*$|##### CPU \d+ buffer started ####|\s*\[LOST \d+ EVENTS\])/;

class Fields {
  readonly map = new Map<string, string>();
  readonly flags: string[] = [];
  constructor(
    readonly line: number,
    readonly event: string,
    tokens: readonly string[],
    from: number,
  ) {
    for (let i = from; i < tokens.length; i++) {
      const t = tokens[i] as string;
      if (t === '') continue;
      const eq = t.indexOf('=');
      if (eq < 0) this.flags.push(t);
      else this.map.set(t.slice(0, eq), t.slice(eq + 1));
    }
  }

  private bad(what: string): never {
    throw invalid('text', `line ${this.line}: ${this.event}: ${what}`);
  }

  has(k: string): boolean {
    return this.map.has(k);
  }

  raw(k: string): string {
    const v = this.map.get(k);
    if (v === undefined) this.bad(`no ${k}= field`);
    return v;
  }

  /** %llx: hex digits without 0x. */
  hex(k: string): bigint {
    const v = this.raw(k);
    if (!/^(0x)?[0-9a-fA-F]{1,16}$/.test(v)) this.bad(`${k}=${v} is not a hex address`);
    return BigInt(v.startsWith('0x') ? v : `0x${v}`);
  }

  /** %zu / %d */
  dec(k: string): number {
    const v = this.raw(k);
    if (!/^\d{1,15}$/.test(v)) this.bad(`${k}=${v} is not a decimal size`);
    return Number(v);
  }

  /** __print_array: `{0x1,0x2}` (hex with 0x), `{}` when empty. */
  array(k: string): bigint[] {
    const v = this.raw(k);
    if (!v.startsWith('{') || !v.endsWith('}')) this.bad(`${k}=${v} is not an {…} array`);
    const inner = v.slice(1, -1);
    if (inner === '') return [];
    return inner.split(',').map((x) => {
      if (!/^0x[0-9a-fA-F]{1,16}$/.test(x)) this.bad(`${k} holds ${x}, not a 0x hex value`);
      return BigInt(x);
    });
  }

  dir(): Dir | 'none' {
    const v = this.raw('dir');
    const d = DIRS[v];
    if (!d) this.bad(`dir=${v} is not TO_DEVICE, FROM_DEVICE, BIDIRECTIONAL or NONE`);
    return d;
  }

  attrs(): string[] {
    const v = this.map.get('attrs');
    return v ? v.split('|') : [];
  }

  /** `nents=a/b`: the traced count and the real one. */
  counts(k: string): [number, number] {
    const v = this.raw(k);
    const m = /^(\d+)\/(\d+)$/.exec(v);
    if (!m) this.bad(`${k}=${v} is not traced/full`);
    return [Number(m[1]), Number(m[2])];
  }
}

/** The event of one dma_* line; `payload` is what follows "EVENT: ". */
export function readDmaEvent(event: string, payload: string, line: number): DmaEvent {
  const tokens = payload.split(' ');
  let t0 = 0;
  while (t0 < tokens.length && tokens[t0] === '') t0++;
  const device = tokens[t0] ?? '';
  if (device === '' || device.includes('=')) throw invalid('text', `line ${line}: ${event}: no device name before the fields`);
  const f = new Fields(line, event, tokens, t0 + 1);
  const attrs = f.attrs();
  switch (event) {
    case 'dma_map_page':
    case 'dma_map_phys':
    case 'dma_map_resource':
      return { line, event, device, attrs, kind: 'map_single', dir: f.dir(), dma: f.hex('dma_addr'), size: f.dec('size'), phys: f.hex('phys_addr') };
    case 'dma_unmap_page':
    case 'dma_unmap_phys':
    case 'dma_unmap_resource':
      return { line, event, device, attrs, kind: 'unmap_single', dir: f.dir(), dma: f.hex('dma_addr'), size: f.dec('size') };
    case 'dma_map_sg': {
      const phys = f.array('phys_addrs');
      const dma = f.array('dma_addrs');
      const sizes = f.array('sizes').map(Number);
      if (dma.length !== sizes.length) throw invalid('text', `line ${line}: ${event}: ${dma.length} dma_addrs but ${sizes.length} sizes`);
      // Since the [TRUNCATED] fix: nents=traced/full ents=traced/full.
      const [tn, nents] = f.has('nents') ? f.counts('nents') : [phys.length, phys.length];
      const [te, ents] = f.has('ents') ? f.counts('ents') : [dma.length, dma.length];
      if (tn !== phys.length || te !== dma.length) throw invalid('text', `line ${line}: ${event}: nents/ents say ${tn}/${te} traced, the arrays hold ${phys.length}/${dma.length}`);
      return { line, event, device, attrs, kind: 'map_sg', dir: f.dir(), phys, dma, sizes, nents, ents, truncated: f.flags.includes('[TRUNCATED]') || nents !== tn || ents !== te };
    }
    case 'dma_unmap_sg':
      return { line, event, device, attrs, kind: 'unmap_sg', dir: f.dir(), phys: f.array('phys_addrs') };
    case 'dma_alloc': {
      // v6.12: phys_addr=; later: virt_addr=%p, and dma_addr 0 when the allocation failed.
      const virt = f.map.get('virt_addr');
      const failed = virt !== undefined && /^(0+|\(null\))$/.test(virt);
      return { line, event, device, attrs, kind: 'alloc', dma: f.hex('dma_addr'), size: f.dec('size'), failed };
    }
    case 'dma_free':
      return { line, event, device, attrs, kind: 'free', dma: f.hex('dma_addr'), size: f.dec('size') };
    case 'dma_sync_single_for_cpu':
    case 'dma_sync_single_for_device':
      return { line, event, device, attrs, kind: 'sync_single', target: event.endsWith('cpu') ? 'cpu' : 'device', dir: f.dir(), dma: f.hex('dma_addr'), size: f.dec('size') };
    case 'dma_sync_sg_for_cpu':
    case 'dma_sync_sg_for_device': {
      const dma = f.array('dma_addrs');
      const sizes = f.array('sizes').map(Number);
      return { line, event, device, attrs, kind: 'sync_sg', target: event.endsWith('cpu') ? 'cpu' : 'device', dir: f.dir(), dma, sizes };
    }
    case 'dma_map_sg_err':
      return { line, event, device, attrs, kind: 'other', why: 'a failed dma_map_sg: the event gives the entries\' phys addresses but not their lengths' };
    case 'dma_alloc_pages':
    case 'dma_free_pages':
      return { line, event, device, attrs, kind: 'other', why: 'dma_alloc_pages / dma_free_pages (non-coherent pages) have no dmaemu call' };
    case 'dma_alloc_sgt':
    case 'dma_alloc_sgt_err':
    case 'dma_free_sgt':
      return { line, event, device, attrs, kind: 'other', why: 'dma_alloc_noncontiguous (an sg_table allocation) has no dmaemu call' };
    default:
      return { line, event, device, attrs, kind: 'other', why: `${event} is not a DMA-API event dmaemu knows` };
  }
}

/** A line's event name and payload; null for headers and comments; an error for anything else. */
export function readLine(text: string, line: number): { event: string; payload: string; ts: number | undefined } | null {
  if (HEADER.test(text)) return null;
  const m = LINE.exec(text);
  if (!m) throw invalid('text', `line ${line}: not an ftrace event line (TASK-PID [CPU] FLAGS TIMESTAMP: EVENT: fields): ${JSON.stringify(text.slice(0, 120))}`);
  // Seconds.microseconds (the default `local` clock); a counter clock prints no dot: no time then.
  const ts = m[5]?.includes('.') ? Number(m[5]) : undefined;
  return { event: m[6] ?? '', payload: m[7] ?? '', ts };
}

/** Every dma event of a (small) text, in order: the synchronous reader the tests' replay uses. */
export function readDmaEvents(text: string): DmaEvent[] {
  const out: DmaEvent[] = [];
  let n = 0;
  forEachLine(text, 0, (l) => {
    n++;
    const r = readLine(l, n);
    if (r?.event.startsWith('dma_')) out.push(readDmaEvent(r.event, r.payload, n));
    return true;
  });
  return out;
}

/** Calls `each` on the lines of text from offset `at` until it returns false; the offset reached. */
function forEachLine(text: string, at: number, each: (line: string) => boolean): number {
  let i = at;
  while (i < text.length) {
    let j = text.indexOf('\n', i);
    if (j < 0) j = text.length;
    const l = text.charCodeAt(j - 1) === 13 ? text.slice(i, j - 1) : text.slice(i, j);
    i = j + 1;
    if (!each(l)) break;
  }
  return i;
}

// ---- events → dmaemu traces ---------------------------------------------------------------------

export interface ImportOptions {
  /** The POST /v1/sessions body every device starts from (layout, device limits, iommu). */
  session?: Record<string, unknown> | undefined;
  /** Per device name: its own body instead of `session`. */
  devices?: Record<string, Record<string, unknown>> | undefined;
  /** Only this device. */
  device?: string | undefined;
  /** Put the kernel's answers in each op's `expect` (default true). */
  expect?: boolean | undefined;
  maxEvents?: number | undefined;
}

export interface Unexpressed {
  line: number;
  device: string;
  event: string;
  reason: string;
}

export interface ImportedDevice {
  device: string;
  events: number;
  /** What the trace itself showed about the device, and what the session took from it. */
  inferred: { bus: 'pci' | 'platform'; iommu: boolean; dma_offset?: string; reason: string };
  trace: { name: string; rule: string; session: Record<string, unknown>; ops: Record<string, unknown>[] };
}

export interface ImportResult {
  devices: ImportedDevice[];
  unexpressed: Unexpressed[];
  /** Lines read, dma events read, events of other subsystems skipped. */
  lines: number;
  dma_events: number;
  other_events: number;
}

interface Live {
  ref: number;
  dma: bigint;
  size: number;
}

interface LiveSg {
  ref: number;
  phys: bigint[];
  firstDma: bigint;
}

/** One device's ops as they are built. */
class DeviceTrace {
  readonly ops: Record<string, unknown>[] = [];
  events = 0;
  readonly singles = new Map<bigint, Live>();
  readonly coherent = new Map<bigint, Live>();
  readonly sgs: LiveSg[] = [];
  /** Maps that could not be expressed, by DMA address (singles) or phys list (sg): the line that made them. */
  readonly lost = new Map<string, number>();
  /** dma − phys of every translated address seen; a single value means no IOMMU (dma-direct). */
  readonly offsets = new Set<bigint>();
  lastTs: number | undefined;
  constructor(readonly name: string) {}
}

const hx = (v: bigint): string => `0x${v.toString(16)}`;
const PCI_NAME = /^[0-9a-f]{4,}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/i;

/** Turns events into per-device op lists; `add` takes them in trace order. */
export class FtraceImporter {
  private readonly byDevice = new Map<string, DeviceTrace>();
  readonly unexpressed: Unexpressed[] = [];
  private readonly expect: boolean;
  dmaEvents = 0;
  otherEvents = 0;
  lines = 0;

  constructor(private readonly opts: ImportOptions = {}) {
    this.expect = opts.expect !== false;
  }

  private skip(e: DmaEvent, reason: string, d?: DeviceTrace): void {
    this.unexpressed.push({ line: e.line, device: e.device, event: e.event, reason });
    // A map that is not imported: its release is not either, and says which line it was.
    if (d && e.kind === 'map_single') d.lost.set(`d${e.dma}`, e.line);
    if (d && e.kind === 'map_sg') d.lost.set(`p${e.phys.join(',')}`, e.line);
    if (d && e.kind === 'alloc') d.lost.set(`c${e.dma}`, e.line);
  }

  /** Why a release has no live map to refer to. */
  private orphan(d: DeviceTrace, key: string, what: string): string {
    const at = d.lost.get(key);
    if (at === undefined) return `${what} was never imported: mapped before the trace began`;
    d.lost.delete(key);
    return `its map (line ${at}) could not be expressed, so neither can this`;
  }

  /** One event, at `ts` seconds when the trace's clock gives them. */
  add(e: DmaEvent, ts?: number): void {
    if (this.opts.device !== undefined && e.device !== this.opts.device) return;
    let d = this.byDevice.get(e.device);
    if (!d) {
      d = new DeviceTrace(e.device);
      this.byDevice.set(e.device, d);
    }
    d.events++;
    // IOVA_DEPOT_DELAY (100 ms) passed without a call: the rcache depot's delayed trim
    // (iova_depot_work_func) had time to run. dmaemu's time stands still until told so.
    if (ts !== undefined && d.lastTs !== undefined && ts - d.lastTs >= IOVA_DEPOT_DELAY_S) d.ops.push({ op: 'flush', depot_trim: true });
    if (ts !== undefined) d.lastTs = ts;
    if (e.kind === 'other') return this.skip(e, e.why);
    if ('dir' in e && e.dir === 'none') return this.skip(e, 'DMA_NONE: dmaemu refuses a mapping without a direction, as dma-debug does', d);
    const skipSync: { skip_cpu_sync?: true } = e.attrs.includes('SKIP_CPU_SYNC') ? { skip_cpu_sync: true } : {};
    switch (e.kind) {
      case 'map_single': {
        if (e.event === 'dma_map_resource' || e.attrs.includes('MMIO')) return this.skip(e, 'an MMIO mapping (dma_map_resource / DMA_ATTR_MMIO): dmaemu maps RAM only', d);
        if (e.size < 1 || e.size > 0xffffffff) return this.skip(e, `size ${e.size} is not a dmaemu map_page size (1 … 2^32 − 1)`, d);
        if (e.phys >= PHYS_LIMIT) return this.skip(e, `phys ${hx(e.phys)} is above dmaemu's 2^52 physical space`, d);
        const ref = d.ops.length;
        const op: Record<string, unknown> = { op: 'map_page', phys: hx(e.phys), size: e.size, dir: e.dir, ...skipSync };
        if (this.expect) op.expect = { dma_address: hx(e.dma) };
        d.ops.push(op);
        if (e.dma !== DMA_MAPPING_ERROR) {
          d.singles.set(e.dma, { ref, dma: e.dma, size: e.size });
          d.offsets.add(e.dma - e.phys);
        }
        return;
      }
      case 'unmap_single': {
        if (e.event === 'dma_unmap_resource' || e.attrs.includes('MMIO')) return this.skip(e, 'an MMIO unmapping: dmaemu maps RAM only');
        const m = d.singles.get(e.dma);
        if (!m) return this.skip(e, this.orphan(d, `d${e.dma}`, `dma_addr ${hx(e.dma)}`));
        d.singles.delete(e.dma);
        d.ops.push({ op: 'unmap', ref: m.ref, size: e.size, dir: e.dir, ...skipSync });
        return;
      }
      case 'map_sg':
        return this.mapSg(d, e, skipSync);
      case 'unmap_sg': {
        const k = d.sgs.findIndex((s) => s.phys.length === e.phys.length && s.phys.every((p, i) => p === e.phys[i]));
        if (k < 0) return this.skip(e, this.orphan(d, `p${e.phys.join(',')}`, 'this scatterlist'));
        const m = d.sgs[k] as LiveSg;
        d.sgs.splice(k, 1);
        d.ops.push({ op: 'unmap', ref: m.ref, dir: e.dir, nents: e.phys.length, ...skipSync });
        return;
      }
      case 'alloc': {
        if (e.size < 1 || e.size > 2 ** 32) return this.skip(e, `size ${e.size} is not a dmaemu alloc_coherent size (1 … 2^32)`, d);
        const ref = d.ops.length;
        const op: Record<string, unknown> = { op: 'alloc_coherent', size: e.size };
        if (this.expect && !e.failed) op.expect = { dma_handle: hx(e.dma) };
        d.ops.push(op);
        if (!e.failed) d.coherent.set(e.dma, { ref, dma: e.dma, size: e.size });
        return;
      }
      case 'free': {
        const m = d.coherent.get(e.dma);
        if (!m) return this.skip(e, this.orphan(d, `c${e.dma}`, `dma_addr ${hx(e.dma)}`));
        d.coherent.delete(e.dma);
        d.ops.push({ op: 'free_coherent', ref: m.ref });
        return;
      }
      case 'sync_single': {
        const m = containing(d.singles, e.dma, e.size);
        if (!m) return this.skip(e, `no imported map_page holds dma_addr ${hx(e.dma)} + ${e.size}`);
        d.ops.push({ op: 'sync', ref: m.ref, for: e.target, offset: Number(e.dma - m.dma), size: e.size, dir: e.dir });
        return;
      }
      case 'sync_sg': {
        const first = e.dma[0];
        const m = first === undefined ? undefined : d.sgs.find((s) => s.firstDma === first);
        if (!m) return this.skip(e, 'no imported dma_map_sg whose first segment is at these dma_addrs is live');
        d.ops.push({ op: 'sync', ref: m.ref, for: e.target, nents: e.dma.length, dir: e.dir });
        return;
      }
    }
  }

  /**
   * dma_map_sg prints each entry's phys but each *segment's* dma address and length. When
   * ents = nents nothing was merged, so segment i is entry i and its length is the entry's.
   * Otherwise the entries' lengths are rebuilt from __finalise_sg's merge rules when only one
   * scatterlist fits them (rebuildMerged), and listed as unexpressed when several do.
   */
  private mapSg(d: DeviceTrace, e: Extract<DmaEvent, { kind: 'map_sg' }>, skipSync: { skip_cpu_sync?: true }): void {
    if (e.truncated) return this.skip(e, `the event lists only the first ${e.phys.length} of ${e.nents} entries ([TRUNCATED] above 128)`, d);
    let lengths: number[] = e.sizes;
    let firsts: number[] = e.phys.map((_, i) => i); // the entry each segment starts with
    if (e.ents !== e.nents) {
      const g = this.granuleOf(d.name);
      const r = rebuildMerged(e.phys, e.dma, e.sizes, g);
      if (typeof r === 'string') return this.skip(e, `${e.nents} entries were merged into ${e.ents} segments and ${r} (the event gives each segment's length, not each entry's; granule ${g})`, d);
      lengths = r.lengths;
      firsts = r.firsts;
    }
    const bad = e.phys.findIndex((p, i) => p >= PHYS_LIMIT || (lengths[i] ?? 0) < 1);
    if (bad >= 0) return this.skip(e, `entry ${bad} (phys ${hx(e.phys[bad] ?? 0n)}, ${lengths[bad] ?? 0} bytes) is not a dmaemu sg entry`, d);
    const ref = d.ops.length;
    const op: Record<string, unknown> = { op: 'map_sg', dir: e.dir, sg: e.phys.map((p, i) => ({ phys: hx(p), length: lengths[i] })), ...skipSync };
    if (this.expect) op.expect = { nents: e.ents, segments: e.dma.map((a, i) => ({ dma_address: hx(a), dma_length: e.sizes[i] })) };
    d.ops.push(op);
    d.sgs.push({ ref, phys: e.phys, firstDma: e.dma[0] ?? 0n });
    e.dma.forEach((a, s) => d.offsets.add(a - (e.phys[firsts[s] ?? 0] ?? 0n)));
  }

  /** The IOMMU granule the options give this device (the merge rules work in it), else 4 KiB. */
  private granuleOf(name: string): number {
    const body = this.opts.devices?.[name] ?? this.opts.session;
    const g = (body?.iommu as { granule?: unknown } | null | undefined)?.granule;
    return typeof g === 'number' ? g : 4096;
  }

  result(): ImportResult {
    const devices = [...this.byDevice.values()].map((d) => this.device(d));
    return { devices, unexpressed: this.unexpressed, lines: this.lines, dma_events: this.dmaEvents, other_events: this.otherEvents };
  }

  /** The session body: the options' (per device, else common), with what the trace showed filled in where they are silent. */
  private device(d: DeviceTrace): ImportedDevice {
    const bus = PCI_NAME.test(d.name) ? 'pci' : 'platform';
    const direct = d.offsets.size === 1;
    const offset = direct ? ([...d.offsets][0] ?? 0n) : 0n;
    const reason = `${bus === 'pci' ? 'a PCI name (domain:bus:dev.fn)' : 'not a PCI name'}; ${
      d.offsets.size === 0 ? 'no mapped address seen, so an IOMMU is assumed' : direct ? `every dma_addr is phys ${offset === 0n ? '' : `+ ${hx(offset)} `}(dma-direct, no IOMMU)` : 'dma_addr ≠ phys + one offset (translated by an IOMMU)'
    }`;
    const inferred: ImportedDevice['inferred'] = { bus, iommu: !direct, reason };
    if (direct && offset !== 0n) inferred.dma_offset = hx(offset);
    const given = this.opts.devices?.[d.name] ?? this.opts.session ?? {};
    const device = { ...((given.device as Record<string, unknown> | undefined) ?? {}) };
    device.bus ??= bus;
    if (direct && offset > 0n) device.dma_offset ??= hx(offset);
    const session: Record<string, unknown> = { ...given, device };
    if (direct && !('iommu' in given)) session.iommu = null;
    return {
      device: d.name,
      events: d.events,
      inferred,
      trace: {
        name: `ftrace ${d.name}`,
        rule: 'imported from the kernel\'s dma tracepoints: every op as the kernel traced it, its answer as expect',
        session,
        ops: d.ops,
      },
    };
  }
}

/**
 * The entries' lengths of a merged dma_map_sg, when __finalise_sg's rules leave one choice:
 * segment s holds consecutive entries (a group); the group's first entry has the segment's
 * offset within its granule; every later entry starts on a granule (s_iova_off == 0) and every
 * entry but the last ends on one (else cur_len is reset); the lengths add up to the segment's.
 * With q entries, a first offset `off` and total T, the q − 1 non-last entries take at least
 * g − off, g, …, g bytes, and the last at least 1: that is the only choice exactly when
 * T + off ≤ q·g (any more and a granule could sit in more than one entry). Grouping and
 * lengths are counted together (a DP over entries and segments, stopped at two); the answer
 * is given only when there is exactly one.
 */
export function rebuildMerged(phys: readonly bigint[], dma: readonly bigint[], sizes: readonly number[], g: number): { lengths: number[]; firsts: number[] } | string {
  const n = phys.length;
  const m = dma.length;
  const G = BigInt(g);
  const off = phys.map((p) => Number(p % G));
  /** How many length choices group [i, j) has as segment s (0, 1 or 2 = several). */
  const choices = (i: number, j: number, s: number): number => {
    if (off[i] !== Number((dma[s] ?? 0n) % G)) return 0;
    for (let k = i + 1; k < j; k++) if (off[k] !== 0) return 0;
    const q = j - i;
    const T = sizes[s] ?? 0;
    const min = q === 1 ? 1 : g - (off[i] ?? 0) + (q - 2) * g + 1;
    if (T < min) return 0;
    return q === 1 || T + (off[i] ?? 0) <= q * g ? 1 : 2;
  };
  // ways[s][i]: the ways entries i.. can make segments s.. (capped at 2).
  const ways: number[][] = Array.from({ length: m + 1 }, () => new Array<number>(n + 1).fill(0));
  (ways[m] as number[])[n] = 1;
  for (let s = m - 1; s >= 0; s--) {
    for (let i = n - 1; i >= 0; i--) {
      let w = 0;
      for (let j = i + 1; j <= n && w < 2; j++) {
        const rest = (ways[s + 1] as number[])[j] ?? 0;
        if (rest > 0) w += choices(i, j, s) * rest;
      }
      (ways[s] as number[])[i] = Math.min(w, 2);
    }
  }
  const total = (ways[0] as number[])[0] ?? 0;
  if (total === 0) return 'no scatterlist fits the merge rules';
  if (total > 1) return 'more than one scatterlist fits them';
  const lengths: number[] = [];
  const firsts: number[] = [];
  let i = 0;
  for (let s = 0; s < m; s++) {
    let j = i + 1;
    while (j < n && !(choices(i, j, s) === 1 && ((ways[s + 1] as number[])[j] ?? 0) === 1)) j++;
    firsts.push(i);
    let left = sizes[s] ?? 0;
    for (let k = i; k < j - 1; k++) {
      const len = g - (off[k] ?? 0);
      lengths.push(len);
      left -= len;
    }
    lengths.push(left);
    i = j;
  }
  return { lengths, firsts };
}

function containing(m: ReadonlyMap<bigint, Live>, dma: bigint, size: number): Live | undefined {
  const exact = m.get(dma);
  if (exact && size <= exact.size) return exact;
  for (const l of m.values()) if (dma >= l.dma && dma + BigInt(size) <= l.dma + BigInt(l.size)) return l;
  return undefined;
}

/**
 * The whole import: reads `text`, yielding to the event loop every SLICE_MS, and answers the
 * traces and what they could not express. Errors name the line.
 */
export async function importFtrace(text: string, opts: ImportOptions = {}): Promise<ImportResult> {
  const max = opts.maxEvents ?? DEFAULT_MAX_IMPORT_EVENTS;
  const imp = new FtraceImporter(opts);
  let at = 0;
  let n = 0;
  while (at < text.length) {
    const start = performance.now();
    let k = 0;
    at = forEachLine(text, at, (l) => {
      n++;
      const r = readLine(l, n);
      if (r) {
        if (r.event.startsWith('dma_')) {
          imp.dmaEvents++;
          if (imp.dmaEvents > max) throw invalid('text', `more than ${max} dma events (DMAEMU_MAX_IMPORT_EVENTS); split the trace or record fewer`);
          imp.add(readDmaEvent(r.event, r.payload, n), r.ts);
        } else imp.otherEvents++;
      }
      // Look at the clock every 256 lines: often enough to stay well inside a slice.
      return (++k & 255) !== 0 || performance.now() - start < SLICE_MS;
    });
    if (at < text.length) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  imp.lines = n;
  return imp.result();
}
