// One session's share of the process-wide memory budget (memory-budget.ts): what it was charged
// for being created, for each live mapping (by its scatterlist entries), for its derived state
// (RAM and cache chunks, kept findings, faults, handle-table pages), and what the service holds
// for it outside its state (the memory-only trace buffer).
//
// It sits with the DMA device, not the HTTP facade, because charges and refunds follow the
// mapping table's adds and removes, including a layout's stray rule keeping or dropping a
// mapping's share mid-unmap; the device applies them where they happen.
//
// Invariants: `charged` = creation + Σ mappingCost over held mappings + `derived`; the budget's
// `used` holds exactly charged + held for this session; releaseAll brings all three to 0.

import { FOOTPRINT, type MemoryBudget } from './memory-budget.js';
import { describe, field, num } from './state/codec.js';

/** The budget charge of a live mapping of `entries` scatterlist entries (memory-budget.ts FOOTPRINT). */
export function mappingCost(entries: number): number {
  return FOOTPRINT.mapping + FOOTPRINT.sgEntry * (entries - 1);
}

export class BudgetShare {
  /**
   * Saved state: what the session's state is charged, and the derived part of it. Not `held`
   * (bytes the service holds outside the state). The process-wide budget is recounted from the
   * sessions after a restore (MemoryBudget.resync).
   */
  static readonly STATE = describe<BudgetShare>('budget-share', 1, [
    field('charged', num, (o) => o.charged, (o, v) => (o.charged = v)),
    field('derived', num, (o) => o.derived, (o, v) => (o.derived = v)),
  ]);

  private charged = 0;
  /** The part of `charged` that is derived state: see settle. */
  private derived = 0;
  /** Bytes held for the session outside its state (hold); not part of its summary, which describes state. */
  private held = 0;

  constructor(readonly budget: MemoryBudget) {}

  /** What the session's state holds (its summary's memory_budget_bytes). */
  get chargedBytes(): number {
    return this.charged;
  }

  /** Everything this session holds of the budget. */
  get totalBytes(): number {
    return this.charged + this.held;
  }

  /** Throws DMAEMU_MEMORY_BUDGET unless `bytes` more fit. */
  check(bytes: number): void {
    this.budget.check(bytes);
  }

  /** A new session's fixed footprint (throws DMAEMU_MEMORY_BUDGET). */
  chargeCreation(): void {
    this.budget.charge(FOOTPRINT.session);
    this.charged += FOOTPRINT.session;
  }

  /** A mapping now held (check ran before it was made). */
  addMapping(entries: number): void {
    const cost = mappingCost(entries);
    this.budget.add(cost);
    this.charged += cost;
  }

  refundMapping(entries: number): void {
    const cost = mappingCost(entries);
    this.budget.release(cost);
    this.charged -= cost;
  }

  /**
   * Charged when the budget has room (false, nothing charged, otherwise: keeping a trace never
   * refuses a call), given back when negative.
   */
  hold(bytes: number): boolean {
    if (bytes > 0 && this.budget.used + bytes > this.budget.limit) return false;
    this.budget.add(bytes);
    this.held += bytes;
    return true;
  }

  /** Gives the whole share back (the session is deleted, expired or dropped); idempotent. */
  releaseAll(): void {
    this.budget.release(this.charged + this.held);
    this.charged = 0;
    this.held = 0;
    this.derived = 0;
  }

  /**
   * Charges the derived state as it now stands (`now` bytes): what a call produced that could
   * not be refused beforehand is charged after the fact, as its answer leaves.
   */
  settle(now: number): void {
    const d = now - this.derived;
    if (d !== 0) {
      this.derived = now;
      this.charged += d;
      this.budget.add(d);
    }
  }
}
