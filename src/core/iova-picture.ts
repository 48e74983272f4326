// The IOVA space of a session as a picture, computed: from the live mappings and the allocator's
// marks to spans in pixel columns, markers and hex axis ticks. No markup here: routes/iova-svg.ts
// draws what this returns, so the rules (scale, aggregation) are testable without a renderer.
//
// Invariants:
// - Work is O(live mappings + columns): every range is placed once, and the output has at most
//   one span per occupied pixel column per lane (a million 4 KiB mappings draw as a few hundred
//   rects). Below a pixel, a column shows the category that covers most of it; its span's
//   `counts` still name every category seen there.
// - Spans in a lane never overlap and cover whole columns; `start`/`end` are exact (hex from
//   pfn and offset, no doubles): the lowest start and highest end of the ranges drawn in the
//   span's columns, whatever their category (they may reach past the window when a range does).
// - The scale is monotonic, so left-to-right order is address order.

import type { SessionConfig } from './config.js';
import { hex, hexAddr } from './hex.js';
import type { AllocatorMarks, PfnRange } from './iova/iova-allocator.js';
import type { Mapping } from './mapping.js';

/** What Session.iovaState() hands over. */
export interface IovaState {
  mappings: Iterable<Mapping>;
  /** linux-4.4: unmapped handles whose IOVA the kernel left allocated (v4.4's offset bug). */
  strays: readonly Mapping[];
  /** The layout has a stray rule at all (so its legend names strays). */
  straysPossible: boolean;
  /** Granule shift of the addresses in the mappings (0 without an IOMMU: byte addresses). */
  shift: number;
  marks: AllocatorMarks | null;
}

export type Scale = 'log' | 'linear';

export interface PictureView {
  /** First address shown (default: the aperture's start, or 0 without an IOMMU). */
  start?: bigint | undefined;
  /** Last address shown, inclusive (default: the aperture's end, or dma_mask without an IOMMU). */
  end?: bigint | undefined;
  /** Pixel columns of the plot. */
  columns: number;
  scale: Scale;
}

export const LANES = {
  dir: ['to_device', 'from_device', 'bidirectional'],
  kind: ['map_sg', 'map_page', 'coherent'],
  allocator: ['reserved', 'rcache', 'flush_queue', 'stray'],
} as const;
export type Lane = keyof typeof LANES;
export type Category = (typeof LANES)[Lane][number];

export interface Span {
  lane: Lane;
  category: Category;
  /** First pixel column and number of columns. */
  x: number;
  w: number;
  start: string;
  /** Exclusive. */
  end: string;
  /** Ranges starting in the span's columns, per category seen there. */
  counts: Partial<Record<Category, number>>;
  /** Bytes of the ranges starting in the span's columns, all categories. */
  bytes: number;
}

export interface Panel {
  x: number;
  w: number;
  start: string;
  /** Exclusive. */
  end: string;
  scale: Scale;
}

export interface Marker {
  name: 'cached_node' | 'cached32_node' | '4GiB' | 'dma_mask';
  x: number;
  addr: string;
}

export interface Tick {
  x: number;
  label: string;
}

export interface Picture {
  columns: number;
  window: { start: string; end: string };
  scale: Scale;
  panels: Panel[];
  spans: Span[];
  markers: Marker[];
  ticks: Tick[];
  /** Live mappings, and those with a range inside the window. */
  mappings: number;
  drawn: number;
  /** The categories this session can draw (its legend): no rcache, flush queue or strays where its layout and domain have none, no allocator lane without an IOMMU. */
  legend: Category[];
}

/** What a session of this config and state can draw: its legend. */
export function legendOf(hasIommu: boolean, state: IovaState): Category[] {
  const allocator: Category[] = [];
  if (hasIommu) allocator.push('reserved');
  if (state.marks?.rcache) allocator.push('rcache');
  if (state.marks?.flushQueue) allocator.push('flush_queue');
  if (state.straysPossible) allocator.push('stray');
  return [...LANES.dir, ...LANES.kind, ...allocator];
}

const FOUR_GIB = 1n << 32n;
const U64_END = 1n << 64n;
/** Width of one tick-label character in columns (10 px monospace), and the gap between labels. */
export const TICK_CHAR = 6.2;
const TICK_PAD = 10;
/** Linear ticks: about this many columns apart. */
const TICK_STEP = 110;

/** One panel of the bar: [lo, top) on columns [x, x + w). */
interface PanelGeom {
  x: number;
  w: number;
  lo: bigint;
  top: bigint;
  loN: number;
  topN: number;
  /** log2(1 + half the panel / granule): the log scale's full half-width. */
  k: number;
  scale: Scale;
}

export function iovaPicture(config: SessionConfig, state: IovaState, view: PictureView): Picture {
  const iommu = config.iommu;
  const unit = iommu ? iommu.granule : config.pageSize;
  const ws = view.start ?? (iommu ? iommu.apertureStart : 0n);
  const we = view.end ?? (iommu ? iommu.apertureEnd : config.dmaMask);
  const wEnd = we + 1n; // exclusive
  const columns = view.columns;
  const panels = splitPanels(ws, wEnd, columns, view.scale, unit);
  const grid = new Grid(columns);
  const shift = state.shift;
  const g = 2 ** shift;

  // Each range as (pfn, off) → (pfn, off) exclusive in units of 2^shift, plus its double value.
  const place = (lane: Lane, cat: number, loPfn: number, loOff: number, hiPfn: number, hiOff: number, bytes: number): boolean => {
    const a = loPfn * g + loOff;
    const b = hiPfn * g + hiOff;
    let drawn = false;
    for (const p of panels) {
      const ca = a > p.loN ? a : p.loN;
      const cb = b < p.topN ? b : p.topN;
      if (!(ca < cb)) continue;
      const xa = toX(p, ca, unit);
      const xb = toX(p, cb, unit);
      grid.add(LANE_INDEX[lane], cat, xa, xb, a === ca, bytes, loPfn, loOff, hiPfn, hiOff, a, b);
      drawn = true;
    }
    return drawn;
  };

  let mappings = 0;
  let drawn = 0;
  for (const m of state.mappings) {
    mappings++;
    if (m.iovaGone) continue; // linux-4.4: another handle's unmap freed this one's range
    const dirCat = DIR_INDEX[m.dir] ?? 2;
    const kindCat = KIND_INDEX[m.kind];
    let drewDir = false;
    for (const r of rangesOf(m)) {
      const hiOff = r.off + r.bytes;
      if (place('dir', dirCat, r.pfn, r.off, r.pfn, hiOff, r.bytes)) drewDir = true;
      place('kind', kindCat, r.pfn, r.off, r.pfn, hiOff, r.bytes);
    }
    if (drewDir) drawn++;
  }
  for (const m of state.strays) {
    if (m.iovaGone) continue;
    for (const r of rangesOf(m)) place('allocator', 3, r.pfn, r.off, r.pfn, r.off + r.bytes, r.bytes);
  }
  if (iommu) {
    // Reserved regions are byte ranges in the config; the allocators reserve whole granules.
    const sh = BigInt(shift);
    const gm = (1n << sh) - 1n;
    for (const r of iommu.reserved) {
      const e = r.end + 1n;
      place('allocator', 0, Number(r.start >> sh), Number(r.start & gm), Number(e >> sh), Number(e & gm), Number(e - r.start));
    }
  }
  const marks = state.marks;
  if (marks) {
    const pfns = (cat: number, rs: PfnRange[]): void => {
      for (const r of rs) place('allocator', cat, r.lo, 0, r.hi + 1, 0, (r.hi + 1 - r.lo) * g);
    };
    pfns(1, marks.rcache ?? []);
    pfns(2, marks.flushQueue ?? []);
  }

  const markers: Marker[] = [];
  const mark = (name: Marker['name'], addr: bigint): void => {
    const x = xOfBig(panels, addr, unit);
    if (x !== null) markers.push({ name, x, addr: hex(addr) });
  };
  if (ws < FOUR_GIB && FOUR_GIB < wEnd) mark('4GiB', FOUR_GIB);
  const maskEnd = config.dmaMask + 1n;
  if (maskEnd !== FOUR_GIB && maskEnd < U64_END) mark('dma_mask', maskEnd);
  if (marks?.cached) mark('cached_node', BigInt(marks.cached.lo) << BigInt(shift));
  if (marks?.cached32) mark('cached32_node', BigInt(marks.cached32.lo) << BigInt(shift));

  return {
    columns,
    window: { start: hex(ws), end: hex(we) },
    scale: view.scale,
    panels: panels.map((p) => ({ x: p.x, w: p.w, start: hex(p.lo), end: hex(p.top), scale: p.scale })),
    spans: grid.spans(shift),
    markers,
    ticks: ticks(panels, unit, columns),
    mappings,
    drawn,
    legend: legendOf(iommu !== null, state),
  };
}

const LANE_INDEX: Record<Lane, number> = { dir: 0, kind: 1, allocator: 2 };
const LANE_NAMES: Lane[] = ['dir', 'kind', 'allocator'];
const DIR_INDEX: Partial<Record<Mapping['dir'], number>> = { to_device: 0, from_device: 1, bidirectional: 2 };
const KIND_INDEX: Record<Mapping['kind'], number> = { map_sg: 0, map_page: 1, coherent: 2 };
/** Categories per lane, at most (the grid's stride). */
const CATS = 4;

/** The IOVA a mapping holds: its allocations, or its DMA segments without an IOMMU. */
function rangesOf(m: Mapping): { pfn: number; off: number; bytes: number }[] {
  if (m.allocs.length > 0) return m.allocs;
  return m.segments.map((s) => ({ pfn: s.pfn, off: s.off, bytes: s.len }));
}

/**
 * The bar's panels. The log scale splits the window at 4 GiB (the 32-bit line, where SAC and
 * 32-bit masks allocate from) and gives each side half the columns; the linear scale is one
 * panel.
 */
function splitPanels(ws: bigint, wEnd: bigint, columns: number, scale: Scale, unit: number): PanelGeom[] {
  const geom = (x: number, w: number, lo: bigint, top: bigint): PanelGeom => {
    const loN = Number(lo);
    const topN = Number(top);
    return { x, w, lo, top, loN, topN, k: Math.log2(1 + (topN - loN) / 2 / unit), scale };
  };
  if (scale === 'log' && ws < FOUR_GIB && FOUR_GIB < wEnd) {
    const half = Math.floor(columns / 2);
    return [geom(0, half, ws, FOUR_GIB), geom(half, columns - half, FOUR_GIB, wEnd)];
  }
  return [geom(0, columns, ws, wEnd)];
}

/**
 * Column position of address `a` inside panel p (loN ≤ a ≤ topN). Log: both ends of a panel are
 * magnified, since allocators work from there (iova.c top-down from the limit, arm's bitmap
 * bottom-up from the base): the lower half of the columns is log2(1 + (a − lo)/granule), the
 * upper half mirrors it from the top, meeting at the panel's middle.
 */
function toX(p: PanelGeom, a: number, unit: number): number {
  const span = p.topN - p.loN;
  if (p.scale === 'linear' || !(p.k > 0)) return p.x + (p.w * (a - p.loN)) / span;
  const d0 = a - p.loN;
  const d1 = p.topN - a;
  const half = p.w / 2;
  if (d0 <= d1) return p.x + (half * Math.log2(1 + d0 / unit)) / p.k;
  return p.x + p.w - (half * Math.log2(1 + d1 / unit)) / p.k;
}

function xOfBig(panels: PanelGeom[], addr: bigint, unit: number): number | null {
  for (const p of panels) if (addr >= p.lo && addr <= p.top) return toX(p, Number(addr), unit);
  return null;
}

/**
 * Hex ticks: the panels' ends first, then (log) lo + 2^k and top − 2^k from the granule up, or
 * (linear) multiples of the power of two that leaves about TICK_STEP columns between ticks. A
 * candidate is kept when its label (centred; the bar's two ends align inwards) overlaps no kept
 * one.
 */
function ticks(panels: PanelGeom[], unit: number, columns: number): Tick[] {
  const cands: bigint[] = [];
  for (const p of panels) cands.push(p.lo, p.top);
  for (const p of panels) {
    const span = p.top - p.lo;
    if (p.scale === 'log') {
      for (let b = BigInt(unit); b * 2n <= span; b *= 2n) cands.push(p.top - b, p.lo + b);
    } else {
      const want = (span * BigInt(TICK_STEP)) / BigInt(Math.max(1, p.w));
      let step = 1n;
      while (step < want) step *= 2n;
      for (let a = ((p.lo + step - 1n) / step) * step; a < p.top && cands.length < 4096; a += step) cands.push(a);
    }
  }
  const kept: (Tick & { l: number; r: number })[] = [];
  for (const a of cands) {
    const x = xOfBig(panels, a, unit);
    if (x === null) continue;
    const label = hex(a);
    const w = label.length * TICK_CHAR;
    const l = x < w / 2 ? 0 : x > columns - w / 2 ? columns - w : x - w / 2;
    const r = l + w;
    if (kept.some((t) => l < t.r + TICK_PAD && t.l < r + TICK_PAD)) continue;
    kept.push({ x, label, l, r });
  }
  return kept.sort((p, q) => p.x - q.x).map(({ x, label }) => ({ x, label }));
}

/**
 * Per lane, per column, per category: pixel coverage (who wins the column), ranges and bytes
 * starting there; per lane and column: the exact lowest start / highest end (pfn, off) of the
 * ranges touching it, with their double values.
 */
class Grid {
  private readonly n: number;
  private readonly cover: Float64Array;
  private readonly count: Float64Array;
  private readonly bytes: Float64Array;
  private readonly loVal: Float64Array;
  private readonly loPfn: Float64Array;
  private readonly loOff: Float64Array;
  private readonly hiVal: Float64Array;
  private readonly hiPfn: Float64Array;
  private readonly hiOff: Float64Array;

  constructor(columns: number) {
    this.n = columns;
    const size = LANE_NAMES.length * columns * CATS;
    this.cover = new Float64Array(size);
    this.count = new Float64Array(size);
    this.bytes = new Float64Array(size);
    const cols = LANE_NAMES.length * columns;
    this.loVal = new Float64Array(cols).fill(Infinity);
    this.loPfn = new Float64Array(cols);
    this.loOff = new Float64Array(cols);
    this.hiVal = new Float64Array(cols).fill(-Infinity);
    this.hiPfn = new Float64Array(cols);
    this.hiOff = new Float64Array(cols);
  }

  add(lane: number, cat: number, xa: number, xb: number, startsHere: boolean, bytes: number, loPfn: number, loOff: number, hiPfn: number, hiOff: number, a: number, b: number): void {
    const last = this.n - 1;
    let c0 = Math.floor(xa);
    let c1 = Math.ceil(xb) - 1;
    if (c1 < c0) c1 = c0;
    if (c0 > last) c0 = last;
    if (c1 > last) c1 = last;
    if (c0 < 0) c0 = 0;
    for (let c = c0; c <= c1; c++) {
      const i = (lane * this.n + c) * CATS + cat;
      // Pixel coverage; a range thinner than a pixel still counts for what it covers.
      const lo = xa > c ? xa : c;
      const hi = xb < c + 1 ? xb : c + 1;
      this.cover[i] = (this.cover[i] as number) + (hi > lo ? hi - lo : 1e-9);
      const j = lane * this.n + c;
      if (a < (this.loVal[j] as number)) {
        this.loVal[j] = a;
        this.loPfn[j] = loPfn;
        this.loOff[j] = loOff;
      }
      if (b > (this.hiVal[j] as number)) {
        this.hiVal[j] = b;
        this.hiPfn[j] = hiPfn;
        this.hiOff[j] = hiOff;
      }
    }
    if (startsHere) {
      const i = (lane * this.n + c0) * CATS + cat;
      this.count[i] = (this.count[i] as number) + 1;
      this.bytes[i] = (this.bytes[i] as number) + bytes;
    }
  }

  /** Runs of columns won by the same category, one span each. */
  spans(shift: number): Span[] {
    const out: Span[] = [];
    for (let lane = 0; lane < LANE_NAMES.length; lane++) {
      const laneName = LANE_NAMES[lane] as Lane;
      const names = LANES[laneName] as readonly Category[];
      let run: { cat: number; x: number; lo: number; hi: number; counts: number[]; bytes: number } | null = null;
      const close = (endCol: number): void => {
        if (!run) return;
        const counts: Partial<Record<Category, number>> = {};
        run.counts.forEach((n, k) => {
          if (n > 0) counts[names[k] as Category] = n;
        });
        out.push({
          lane: laneName,
          category: names[run.cat] as Category,
          x: run.x,
          w: endCol - run.x,
          start: hexAddr(this.loPfn[run.lo] as number, shift, this.loOff[run.lo] as number),
          end: hexAddr(this.hiPfn[run.hi] as number, shift, this.hiOff[run.hi] as number),
          counts,
          bytes: run.bytes,
        });
        run = null;
      };
      for (let c = 0; c < this.n; c++) {
        const base = (lane * this.n + c) * CATS;
        let win = -1;
        for (let k = 0; k < names.length; k++) if ((this.cover[base + k] as number) > 0 && (win < 0 || (this.cover[base + k] as number) > (this.cover[base + win] as number))) win = k;
        if (win < 0) {
          close(c);
          continue;
        }
        if (run && run.cat !== win) close(c);
        const j: number = lane * this.n + c;
        if (!run) run = { cat: win, x: c, lo: j, hi: j, counts: new Array<number>(names.length).fill(0), bytes: 0 };
        if ((this.loVal[j] as number) < (this.loVal[run.lo] as number)) run.lo = j;
        if ((this.hiVal[j] as number) > (this.hiVal[run.hi] as number)) run.hi = j;
        for (let k = 0; k < names.length; k++) {
          run.counts[k] = (run.counts[k] as number) + (this.count[base + k] as number);
          run.bytes += this.bytes[base + k] as number;
        }
      }
      close(this.n);
    }
    return out;
  }
}
