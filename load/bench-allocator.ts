// npm run bench:allocator — the `linux` IOVA allocator (src/iova/linux-iova.ts) against the
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
// on the walk pattern; ns_per_op_100k = fast, walk pattern).
import { pathToFileURL } from 'node:url';
import type { LinuxIovaAllocator, LinuxIovaConfig } from '../src/iova/iova-allocator.js';
import { createLinuxIova } from '../src/iova/linux-iova.js';
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
  ops: number;
}

export interface BenchOptions {
  sizes: number[];
  /** Wall-clock time each fast measurement runs for. */
  fastMs: number;
  /** Budget for one model cell, fill included; over it the cell is skipped. */
  modelBudgetMs: number;
  /** Minimum timed model ops for a cell to count, and how long the model runs past that. */
  modelMinOps: number;
  modelMs: number;
  log: (line: string) => void;
}

class OverBudget extends Error {}

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

function measure(
  a: LinuxIovaAllocator,
  pattern: Pattern,
  top: number,
  untilMs: number,
  minOps: number,
  maxOps: number,
  deadline: number,
): { ns: number; ops: number } {
  // One untimed op puts the allocator in its steady state (rcache loaded, cached_node placed).
  if (pattern === 'steady') steadyOp(a);
  else top = walkOp(a, top);
  gc();
  const t0 = now();
  let ops = 0;
  let t = t0;
  while (ops < maxOps && (ops < minOps || t - t0 < untilMs)) {
    for (let k = 0; k < 16 && ops < maxOps; k++, ops++) {
      if (pattern === 'steady') steadyOp(a);
      else top = walkOp(a, top);
    }
    t = now();
    if (t > deadline) throw new OverBudget();
  }
  return { ns: ((t - t0) * 1e6) / ops, ops };
}

export function runAllocatorBench(opts: BenchOptions): BenchCell[] {
  const cells: BenchCell[] = [];
  for (const pattern of ['steady', 'walk'] as const) {
    for (const live of opts.sizes) {
      for (const impl of ['fast', 'model'] as const) {
        gc();
        const start = now();
        const deadline = impl === 'model' ? start + opts.modelBudgetMs : Infinity;
        try {
          const a = fresh(impl);
          const check = deadlineCheck(deadline);
          const top = pattern === 'steady' ? (fillSteady(a, live, check), 0) : fillWalk(a, live, check);
          const r =
            impl === 'fast'
              ? measure(a, pattern, top, opts.fastMs, 1000, Infinity, deadline)
              : measure(a, pattern, top, opts.modelMs, opts.modelMinOps, Infinity, deadline);
          cells.push({ pattern, impl, live, nsPerOp: r.ns, ops: r.ops });
        } catch (e) {
          if (!(e instanceof OverBudget)) throw e;
          cells.push({ pattern, impl, live, nsPerOp: null, ops: 0 });
        }
        const c = cells[cells.length - 1] as BenchCell;
        opts.log(`# ${pattern} ${impl} live=${live}: ${fmtNs(c.nsPerOp)} (${c.ops} ops, ${((now() - start) / 1000).toFixed(1)} s with fill)`);
      }
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

export function cellNs(cells: BenchCell[], pattern: Pattern, impl: Impl, live: number): number | null {
  return cells.find((c) => c.pattern === pattern && c.impl === impl && c.live === live)?.nsPerOp ?? null;
}

/** The table and the machine-read last line. */
export function report(cells: BenchCell[], sizes: number[]): string[] {
  const lines: string[] = [];
  const head = ['pattern', 'live', 'fast', 'model (kernel walk)', 'speedup'];
  const rows: string[][] = [];
  for (const pattern of ['steady', 'walk'] as const) {
    for (const live of sizes) {
      const f = cellNs(cells, pattern, 'fast', live);
      const m = cellNs(cells, pattern, 'model', live);
      rows.push([pattern, label(live), fmtNs(f), fmtNs(m), f !== null && m !== null ? `${(m / f).toFixed(1)}x` : '-']);
    }
  }
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const fmt = (r: string[]): string => r.map((c, i) => c.padEnd(width[i] as number)).join('  ');
  lines.push(fmt(head), width.map((w) => '-'.repeat(w)).join('  '), ...rows.map(fmt));
  const lo = sizes[0] as number;
  const mid = sizes[Math.min(1, sizes.length - 1)] as number;
  const hi = sizes[sizes.length - 1] as number;
  const fastMid = cellNs(cells, 'walk', 'fast', mid);
  const modelMid = cellNs(cells, 'walk', 'model', mid);
  const fastLo = cellNs(cells, 'walk', 'fast', lo);
  const fastHi = cellNs(cells, 'walk', 'fast', hi);
  const num = (x: number | null, digits: number): string => (x === null ? 'NaN' : x.toFixed(digits));
  const speedup = fastMid !== null && modelMid !== null ? modelMid / fastMid : null;
  const growth = fastLo !== null && fastHi !== null ? fastHi / fastLo : null;
  lines.push(
    `allocator: speedup_walk_pattern_100k=${num(speedup, 1)} growth_1m_vs_1k=${num(growth, 2)} ns_per_op_100k=${num(fastMid, 0)}`,
  );
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
