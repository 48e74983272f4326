// npm run bench:allocator — the `linux` IOVA allocator (src/core/iova/linux-iova.ts) against the
// literal kernel walk (test/model/linux-iova-model.ts), at 1k, 100k and 1M live ranges, on:
//  (a) steady: 4-pfn alloc/free pairs under a 48-bit limit above a dense pack of 1-pfn ranges;
//      after the first pair every alloc is an rcache hit. One op = one alloc + its free.
//  (b) walk (FAST'15): n live ranges of 33 pfns, each in its own 64-pfn-aligned slot, so every
//      hole is 31 pfns; a 64-pfn request (no rcache above 32 pfns) fits none of them, and with
//      cached_node at the top the kernel visits every live range before placing it below the
//      pack. One op = free and re-allocate a 64-pfn range at the top of the space (which puts
//      cached_node back there), then the walking 64-pfn alloc, then its free.
// The model runs only while it fits its time budget; where it doesn't, the table says
// "skipped (budget)" — nothing is extrapolated. The last line is machine-read:
//   allocator: speedup_walk_pattern_100k=<x> growth_1m_vs_1k=<y> ns_per_op_100k=<z>
// (speedup = model ÷ fast ns/op on the walk pattern at 100k; growth = fast ns/op at 1M ÷ at 1k
// on the walk pattern; ns_per_op_100k = fast, walk pattern; all wall-clock). A fast cell runs
// 9 slices, interleaved across the three sizes, and reports its median slice; a model cell is
// one slice (its ops are long). Each cell also
// records this process's CPU time per op (process.cpuUsage: user + system), which the other
// jobs on a shared box steal far less of; the table shows it and a `# cpu:` line gives the same
// three figures from it, just above the last line.
import { pathToFileURL } from 'node:url';
import type { LinuxIovaAllocator, LinuxIovaConfig } from '../src/core/iova/iova-allocator.js';
import { createLinuxIova } from '../src/core/iova/linux-iova.js';
import { createLinuxIovaModel } from '../test/model/linux-iova-model.js';

const SHIFT = 12;
const LIMIT = 2 ** (48 - SHIFT) - 1; // DMA_BIT_MASK(48) >> 12
const CFG: LinuxIovaConfig = { shift: SHIFT, startPfn: 1, apertureEndPfn: LIMIT, pci: false, strict: true };
const WALK_SLOT = 64; // request size and pack slot
const WALK_LIVE = 33; // 33 pfns in each 64-pfn aligned slot: holes of 31

export type Pattern = 'steady' | 'walk';
export type Impl = 'fast' | 'model';

export interface BenchCell {
  pattern: Pattern;
  impl: Impl;
  live: number;
  /** ns per op, or null when skipped for the time budget. */
  nsPerOp: number | null;
  /** CPU ns per op (process.cpuUsage, user + system), or null when skipped. */
  cpuNsPerOp: number | null;
  ops: number;
}

export interface BenchOptions {
  sizes: number[];
  /** Wall-clock time each fast measurement runs for, split into FAST_SLICES slices. */
  fastMs: number;
  /** Budget for one model cell, fill included; over it the cell is skipped. */
  modelBudgetMs: number;
  /** Minimum timed model ops for a cell to count, and how long the model runs past that. */
  modelMinOps: number;
  modelMs: number;
  log: (line: string) => void;
}

class OverBudget extends Error {}

/** A fast cell is timed in this many slices (interleaved across sizes); it reports the median. */
const FAST_SLICES = 9;

function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

function fresh(impl: Impl): LinuxIovaAllocator {
  return impl === 'fast' ? createLinuxIova(CFG) : createLinuxIovaModel(CFG);
}

/** Throws OverBudget once the deadline has passed (checked every 1024 calls). */
function deadlineCheck(deadline: number): (i: number) => void {
  return (i) => {
    if ((i & 1023) === 0 && now() > deadline) throw new OverBudget();
  };
}

function must(pfn: number, what: string): number {
  if (pfn === 0) throw new Error(`bench: ${what} failed`);
  return pfn;
}

/** A dense pack of `live` 1-pfn ranges just below the limit. */
function fillSteady(a: LinuxIovaAllocator, live: number, check: (i: number) => void): void {
  for (let i = 0; i < live; i++) {
    check(i);
    must(a.allocIova(1, LIMIT), 'steady fill');
  }
}

/** One 64-pfn range at the top of the space, then `live - 1` 33-pfn ranges in 64-pfn slots below it. */
function fillWalk(a: LinuxIovaAllocator, live: number, check: (i: number) => void): number {
  const top = must(a.allocIova(WALK_SLOT, LIMIT), 'walk top');
  for (let i = 1; i < live; i++) {
    check(i);
    must(a.allocIova(WALK_LIVE, LIMIT), 'walk fill');
  }
  return top;
}

function steadyOp(a: LinuxIovaAllocator): void {
  const pfn = a.allocIova(4, LIMIT);
  a.freeIova(pfn, 4);
}

/** Re-arms cached_node at the top, then the alloc that walks every live range, then its free. */
function walkOp(a: LinuxIovaAllocator, top: number): number {
  a.freeIova(top, WALK_SLOT); // __cached_rbnode_delete_update: cached_node → the anchor
  const t = a.allocIova(WALK_SLOT, LIMIT); // from the anchor: straight back to the top slot
  const pfn = must(a.allocIova(WALK_SLOT, LIMIT), 'walk op'); // from the top, down through the pack
  a.freeIova(pfn, WALK_SLOT);
  return t;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** One allocator under measurement: its walk anchor and the per-slice figures so far. */
interface Subject {
  a: LinuxIovaAllocator;
  top: number;
  wall: number[];
  cpu: number[];
  ops: number;
}

/** Fills an allocator for the pattern and puts it in its steady state (one untimed op). */
function prepare(impl: Impl, pattern: Pattern, live: number, deadline: number): Subject {
  const a = fresh(impl);
  const check = deadlineCheck(deadline);
  let top = pattern === 'steady' ? (fillSteady(a, live, check), 0) : fillWalk(a, live, check);
  // One untimed op puts the allocator in its steady state (rcache loaded, cached_node placed).
  if (pattern === 'steady') steadyOp(a);
  else top = walkOp(a, top);
  return { a, top, wall: [], cpu: [], ops: 0 };
}

/** Times one slice of at least `untilMs` and `minOps` ops; records wall and CPU ns/op. */
function slice(x: Subject, pattern: Pattern, untilMs: number, minOps: number, deadline: number): void {
  const c0 = process.cpuUsage();
  const t0 = now();
  let ops = 0;
  let t = t0;
  while (ops < minOps || t - t0 < untilMs) {
    for (let k = 0; k < 16; k++, ops++) {
      if (pattern === 'steady') steadyOp(x.a);
      else x.top = walkOp(x.a, x.top);
    }
    t = now();
    if (t > deadline) throw new OverBudget();
  }
  const c = process.cpuUsage(c0);
  x.wall.push(((t - t0) * 1e6) / ops);
  x.cpu.push(((c.user + c.system) * 1e3) / ops);
  x.ops += ops;
}

export function runAllocatorBench(opts: BenchOptions): BenchCell[] {
  const cells: BenchCell[] = [];
  const logCell = (c: BenchCell, secs: number, what: string): void =>
    opts.log(`# ${c.pattern} ${c.impl} live=${c.live}: ${fmtNs(c.nsPerOp)}, cpu ${fmtNs(c.cpuNsPerOp)} (${c.ops} ops, ${secs.toFixed(1)} s ${what})`);
  for (const pattern of ['steady', 'walk'] as const) {
    // Fast: every size filled first, then FAST_SLICES rounds of one slice per size, each size
    // reporting its median slice. Interleaving keeps a slow spell of the shared box (other jobs)
    // from landing on one size only, which would bend the growth ratio either way.
    const t0 = now();
    gc();
    const subjects = opts.sizes.map((live) => prepare('fast', pattern, live, Infinity));
    gc();
    for (let s = 0; s < FAST_SLICES; s++) {
      for (const x of subjects) slice(x, pattern, opts.fastMs / FAST_SLICES, 1000, Infinity);
    }
    opts.sizes.forEach((live, i) => {
      const x = subjects[i] as Subject;
      const c: BenchCell = { pattern, impl: 'fast', live, nsPerOp: median(x.wall), cpuNsPerOp: median(x.cpu), ops: x.ops };
      cells.push(c);
      logCell(c, (now() - t0) / 1000, 'for all sizes, fills included');
    });
    subjects.length = 0;
    // Model: one size at a time inside its budget, one slice (its ops are long).
    for (const live of opts.sizes) {
      gc();
      const start = now();
      const deadline = start + opts.modelBudgetMs;
      let c: BenchCell;
      try {
        const x = prepare('model', pattern, live, deadline);
        gc();
        slice(x, pattern, opts.modelMs, opts.modelMinOps, deadline);
        c = { pattern, impl: 'model', live, nsPerOp: x.wall[0] as number, cpuNsPerOp: x.cpu[0] as number, ops: x.ops };
      } catch (e) {
        if (!(e instanceof OverBudget)) throw e;
        c = { pattern, impl: 'model', live, nsPerOp: null, cpuNsPerOp: null, ops: 0 };
      }
      cells.push(c);
      logCell(c, (now() - start) / 1000, 'with fill');
    }
  }
  return cells;
}

function fmtNs(ns: number | null): string {
  if (ns === null) return 'skipped (budget)';
  return ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms/op` : `${ns.toFixed(0)} ns/op`;
}

function label(live: number): string {
  return live >= 1e6 ? `${live / 1e6}M` : live >= 1e3 ? `${live / 1e3}k` : String(live);
}

export function cellNs(cells: BenchCell[], pattern: Pattern, impl: Impl, live: number, cpu = false): number | null {
  const c = cells.find((x) => x.pattern === pattern && x.impl === impl && x.live === live);
  return (cpu ? c?.cpuNsPerOp : c?.nsPerOp) ?? null;
}

/** The table and the machine-read last line. */
export function report(cells: BenchCell[], sizes: number[]): string[] {
  const lines: string[] = [];
  const head = ['pattern', 'live', 'fast', 'fast cpu', 'model (kernel walk)', 'model cpu', 'speedup'];
  const rows: string[][] = [];
  for (const pattern of ['steady', 'walk'] as const) {
    for (const live of sizes) {
      const f = cellNs(cells, pattern, 'fast', live);
      const m = cellNs(cells, pattern, 'model', live);
      const fc = cellNs(cells, pattern, 'fast', live, true);
      const mc = cellNs(cells, pattern, 'model', live, true);
      rows.push([pattern, label(live), fmtNs(f), fmtNs(fc), fmtNs(m), fmtNs(mc), f !== null && m !== null ? `${(m / f).toFixed(1)}x` : '-']);
    }
  }
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const fmt = (r: string[]): string => r.map((c, i) => c.padEnd(width[i] as number)).join('  ');
  lines.push(fmt(head), width.map((w) => '-'.repeat(w)).join('  '), ...rows.map(fmt));
  const lo = sizes[0] as number;
  const mid = sizes[Math.min(1, sizes.length - 1)] as number;
  const hi = sizes[sizes.length - 1] as number;
  const num = (x: number | null, digits: number): string => (x === null ? 'NaN' : x.toFixed(digits));
  const figures = (cpu: boolean): string => {
    const fastMid = cellNs(cells, 'walk', 'fast', mid, cpu);
    const modelMid = cellNs(cells, 'walk', 'model', mid, cpu);
    const fastLo = cellNs(cells, 'walk', 'fast', lo, cpu);
    const fastHi = cellNs(cells, 'walk', 'fast', hi, cpu);
    const speedup = fastMid !== null && modelMid !== null ? modelMid / fastMid : null;
    const growth = fastLo !== null && fastHi !== null ? fastHi / fastLo : null;
    return `speedup_walk_pattern_100k=${num(speedup, 1)} growth_1m_vs_1k=${num(growth, 2)} ns_per_op_100k=${num(fastMid, 0)}`;
  };
  lines.push(`# cpu: ${figures(true)}`, `allocator: ${figures(false)}`);
  return lines;
}

function main(): void {
  const smoke = process.env.BENCH_SMOKE === '1';
  const sizes = smoke ? [100, 1000, 3000] : [1_000, 100_000, 1_000_000];
  const opts: BenchOptions = smoke
    ? { sizes, fastMs: 20, modelBudgetMs: 5_000, modelMinOps: 5, modelMs: 20, log: (l) => console.log(l) }
    : { sizes, fastMs: 2_000, modelBudgetMs: 30_000, modelMinOps: 20, modelMs: 1_000, log: (l) => console.log(l) };
  const t0 = now();
  const cells = runAllocatorBench(opts);
  const lines = report(cells, sizes);
  console.log(`# total ${((now() - t0) / 1000).toFixed(1)} s; node ${process.version}`);
  for (const l of lines) console.log(l);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
