// The process-wide memory budget (issue 12): every session's footprint is charged to one
// MemoryBudget, and work that would take the total past the limit is refused, before it has any
// effect, with DMAEMU_MEMORY_BUDGET. One leaking harness then gets 507s; the process, the other
// sessions and the leaking session itself keep answering, and freeing gives the room back.
//
// What a session costs is estimated, not measured per call (measuring is a heap walk): each
// kind of state has a fixed cost per unit in FOOTPRINT, taken from RSS measurements
// (load/rss-mappings.ts; docs/memory-budget.md has the figures). The hot path pays one add and
// one compare per map and unmap.
//
// Invariants: `used` is the sum of what the live sessions hold (Session.budgetBytes), plus what a
// session not yet registered was charged at creation; `used` ≤ `limit` except (1) after a
// restore, which re-admits already-acknowledged work whatever it costs (`admitAll`), and (2) by
// what one call produces that cannot be refused beforehand (dma-debug findings, faults, bounce
// and cache-maintenance copies, a new handle-table page): the next call that needs room is
// refused until enough is freed.

import { totalmem } from 'node:os';
import { getHeapStatistics } from 'node:v8';
import { DmaemuError } from './errors.js';

/** Estimated bytes of RSS per unit of session state (x86-64 Node 20, measured by load/rss-mappings.ts). */
export const FOOTPRINT = {
  /** A fresh session: layout, IOVA allocator arrays, rcache magazines, caches, tables. */
  session: 256 * 1024,
  /**
   * A live mapping of one entry: the Mapping object and its sg/segments/allocs/extents arrays,
   * its handle-table slot, IOVA tree node and index slot (typed arrays grown by doubling), its
   * dma-debug cacheline entry and the IOMMU page-table entry a device access builds.
   */
  mapping: 1280,
  /** Each further scatterlist entry: its entry, segment, extent, bounce slot, page-table and cacheline entries. */
  sgEntry: 384,
  /** A 4 KiB chunk of emulated RAM: the Uint8Array, its ArrayBuffer and the Map entry. */
  ramChunk: 4096 + 256,
  /** A 4 KiB chunk of the CPU cache: data, line states, the chunk object and the Map entry. */
  cacheChunk: 4096 + 64 + 320,
  /** A handle-table page (4096 slots), kept while any handle in it is live. */
  handlePage: 4096 * 8 + 128,
  /** A kept dma-debug finding (its message string is most of it). */
  finding: 512,
  /** A logged IOMMU fault. */
  fault: 256,
} as const;

/** Share of the memory limit the budget may hand out; the rest is headroom (see defaultBudgetBytes). */
export const BUDGET_SHARE = 0.7;

export const BUDGET_ENV = 'DMAEMU_MEMORY_BUDGET';

/**
 * 70 % of the smaller of V8's heap limit and the machine's (or cgroup's) memory. The heap limit,
 * because most of a session's footprint lives on the V8 heap and hitting that limit is the
 * "JavaScript heap out of memory" crash the issue saw; the budget counts off-heap bytes (RAM and
 * cache chunks are typed arrays, in RSS but not under the heap limit) in the same total, so
 * heap use stays below 70 % of its limit whatever the mix, and RSS below the budget plus the
 * process's own baseline. The machine's memory, because a heap limit raised with
 * --max-old-space-size past physical memory would let the kernel's OOM killer act first. The
 * 30 % left is for what no session owns: GC headroom (a mark-compact needs room to work),
 * request bodies and answers in flight, and compaction snapshots.
 */
export function defaultBudgetBytes(): number {
  const heap = getHeapStatistics().heap_size_limit;
  const total = totalmem();
  const constrained = process.constrainedMemory?.() ?? 0; // a cgroup's limit, or 2^64 when none
  const machine = constrained > 0 && constrained < total ? constrained : total;
  return Math.floor(BUDGET_SHARE * Math.min(heap, machine));
}

/** DMAEMU_MEMORY_BUDGET in bytes, or the derived default; nonsense is refused at startup. */
export function budgetFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[BUDGET_ENV];
  if (raw === undefined || raw === '') return defaultBudgetBytes();
  const v = Number(raw);
  if (!Number.isSafeInteger(v) || v < 1) throw new Error(`${BUDGET_ENV} must be a positive integer (bytes), got ${JSON.stringify(raw)}`);
  return v;
}

export class MemoryBudget {
  /** Bytes charged by live sessions. */
  used = 0;
  /** Calls refused for want of room, since start (/metrics). */
  refusals = 0;
  private admitting = false;

  constructor(
    readonly limit: number,
    /** Where the limit came from, for messages: the env var, or how the default was derived. */
    readonly source = `${BUDGET_ENV}=${limit}`,
  ) {}

  /** Charges `bytes`, or throws DMAEMU_MEMORY_BUDGET having changed nothing. */
  charge(bytes: number): void {
    if (this.used + bytes > this.limit && !this.admitting && bytes > 0) this.refuse(bytes);
    this.used += bytes;
  }

  /** Throws DMAEMU_MEMORY_BUDGET unless `bytes` more would fit; charges nothing. */
  check(bytes: number): void {
    if (this.used + bytes > this.limit && !this.admitting && bytes > 0) this.refuse(bytes);
  }

  /** Charges what already happened (a finding, a bounce copy): it cannot be refused any more. */
  add(bytes: number): void {
    this.used += bytes;
  }

  release(bytes: number): void {
    this.used -= bytes;
  }

  /**
   * While true, nothing is refused: a restore replays work the service already acknowledged,
   * and refusing part of it would rebuild a session that never existed. Over the limit after
   * a restore, new work is refused until enough is freed.
   */
  admitAll(on: boolean): void {
    this.admitting = on;
  }

  /** Recomputes `used` from the sessions (after a restore, whose snapshots carry their own counts). */
  resync(sessions: Iterable<{ budgetBytes: number }>): void {
    let n = 0;
    for (const s of sessions) n += s.budgetBytes;
    this.used = n;
  }

  private refuse(bytes: number): never {
    this.refusals++;
    const mb = (b: number): string => (b / (1024 * 1024)).toFixed(1);
    throw new DmaemuError(
      'DMAEMU_MEMORY_BUDGET',
      `the service's memory budget (${this.source}, ${mb(this.limit)} MiB) cannot hold this call: ${mb(this.used)} MiB are in use by all sessions and it needs ~${bytes} bytes more; unmap, free or delete sessions first`,
    );
  }
}

/** Budget of sessions made without a store (unit tests, benchmarks): nothing is ever refused. */
export const UNLIMITED_BUDGET = new MemoryBudget(Infinity, 'unlimited');
