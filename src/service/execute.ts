// The one way a DMA call runs, whoever asks (an HTTP route, /batch in JSON or binary, a trace
// imported into a new session, compare's columns): its cost is estimated from the validated
// input (calls.ts) and checked against the request limits before anything happens; the answer it
// will build is charged to the memory budget while the request lives; calls on one session run
// one after another in arrival order; long work runs in slices that give the event loop back
// between ops, so no request holds other tenants up for more than one slice; and a call on a
// live session is journaled as it runs (journal.ts), so the log's order is the order calls ran.
// Restore replays journal records through the same table (replay.ts), without limits: that work
// was acknowledged already, and it runs before the server listens.
//
// Invariants: nothing runs before its cost is checked and its answer charged; per session, a
// call starts only after the previous one has run and been appended to the log; the charge is
// released whatever happens.

import { setImmediate as tick } from 'node:timers/promises';
import { DmaemuError } from '../core/errors.js';
import type { MemoryBudget } from '../core/memory-budget.js';
import { batchSteps, checkBatchOps, type CallQuery, type CallSpec, type Cost } from './calls.js';
import { traceCost, traceSteps, type ParsedTraceOp, type TraceReplay } from './replay.js';
import type { Session } from './session.js';
import type { CallName } from './store/op-store.js';
import type { BatchInput } from '../../schemas/index.js';

/** What one request may cost (docs/api.md "Limits"). */
export interface RequestLimits {
  /** DMAEMU_MAX_REQUEST_COST: work units (calls.ts Cost.work) one request may take. */
  maxRequestCost: number;
  /** DMAEMU_MAX_RESPONSE_BYTES: estimated bytes of one answer (and of the answers a trace import keeps). */
  maxResponseBytes: number;
}

export const DEFAULT_REQUEST_LIMITS: RequestLimits = {
  // A 1024-op /batch of 1024-entry scatterlists, or a trace of a million small calls.
  maxRequestCost: 1 << 20,
  // A map_sg of 4096 entries with ?explain=true compared under four columns (~3 MiB) fits.
  maxResponseBytes: 4 << 20,
};

export const REQUEST_LIMIT_ENV = { maxRequestCost: 'DMAEMU_MAX_REQUEST_COST', maxResponseBytes: 'DMAEMU_MAX_RESPONSE_BYTES' } as const;

/** The journal as execute needs it (journal.ts's Journal; named here so the two do not import each other). */
export interface CallJournal {
  call<T>(s: Session, op: CallName, body: unknown, query: unknown, run: () => T): Promise<T>;
}

export interface ExecContext {
  /** null: the session is not live (a trace being imported, a compare column), nothing is logged. */
  journal: CallJournal | null;
  limits: RequestLimits;
  budget: MemoryBudget;
  /**
   * Turns an answer estimated at LARGE_ANSWER bytes or more into what is sent (the route: its
   * JSON, made in slices); runs before the session's next call may start, so a session's answers
   * are ready in the order its calls ran. Without it the answer is returned as it is.
   */
  large?: (out: unknown) => Promise<unknown>;
}

/**
 * From this estimate on, an answer is serialized as JSON.stringify would, in slices that yield
 * (json-slices.ts), rather than by the route's compiled schema serializer in one turn: on
 * answers of megabytes (page rows, compare's four columns) the compiled one took 120-240 ms for
 * 2.5 MB against JSON.stringify's 11-25 ms, and even those 11-25 ms (up to 180 ms on a loaded
 * machine) were a stall for every other tenant. The answer is the same JSON (built from the same
 * typed objects, which name no field their schema lacks: schemas/exact.ts), its keys possibly in
 * another order.
 */
export const LARGE_ANSWER = 256 * 1024;

/** Work run between two returns to the event loop (about one 4096-entry map_sg: a few ms). */
export const SLICE_WORK = 4096;
/**
 * Steps run between two returns to the event loop, whatever their work: each op also costs a
 * fixed part its units do not count (a trace op's zod check, its batch of one, its answer's JSON
 * copy: tens of microseconds), so 128 of them are a few milliseconds.
 */
export const SLICE_STEPS = 128;

/** Answers smaller than this are not charged: they fit the budget's headroom, and an unmap must never be refused for want of room. */
const CHARGE_FLOOR = 64 * 1024;

/** Refuses, before anything runs, a request whose estimate exceeds a limit; `what` names it in the message. */
export function checkCost(c: Cost, limits: RequestLimits, what: string): void {
  if (c.work > limits.maxRequestCost) {
    throw new DmaemuError(
      'DMAEMU_REQUEST_TOO_COSTLY',
      `${what} is estimated at ${c.work} work units (ops + scatterlist entries + page rows + 4 KiB pages touched); ${REQUEST_LIMIT_ENV.maxRequestCost}=${limits.maxRequestCost}: split it`,
    );
  }
  if (c.bytes > limits.maxResponseBytes) {
    throw new DmaemuError(
      'DMAEMU_RESPONSE_TOO_LARGE',
      `${what} would answer ~${c.bytes} bytes; ${REQUEST_LIMIT_ENV.maxResponseBytes}=${limits.maxResponseBytes}: ask for less (fewer ops, no ?pages, shorter reads)`,
    );
  }
}

/**
 * Charges the request's answer (built once as objects, once as JSON: twice the estimate) to the
 * memory budget for as long as `fn` runs; throws DMAEMU_MEMORY_BUDGET having run nothing.
 */
export async function charged<T>(budget: MemoryBudget, answerBytes: number, fn: () => Promise<T>): Promise<T> {
  const bytes = answerBytes >= CHARGE_FLOOR ? 2 * answerBytes : 0;
  budget.charge(bytes);
  try {
    return await fn();
  } finally {
    budget.release(bytes);
  }
}

/** Drives a generator of steps (each yields the work it did), returning to the event loop every SLICE_WORK units or SLICE_STEPS steps. */
export async function sliced<R>(steps: Generator<number, R>): Promise<R> {
  let work = 0;
  let n = 0;
  let r = steps.next();
  while (!r.done) {
    work += r.value;
    if (work >= SLICE_WORK || ++n >= SLICE_STEPS) {
      work = 0;
      n = 0;
      await tick();
    }
    r = steps.next();
  }
  return r.value;
}

// ---- one session, one call at a time ------------------------------------------------------------

/** The last call queued on each session: a new one waits for it. */
const tails = new WeakMap<object, Promise<void>>();

/**
 * Runs `fn` once every call queued before it on `key` has run; `fn` gets `release` to let the next
 * one start early (once its record is appended, before it is durable). With nothing queued, `fn`
 * starts in the caller's turn, as a call did before calls could yield.
 */
export async function inOrder<T>(key: object, fn: (release: () => void) => Promise<T>): Promise<T> {
  const prev = tails.get(key);
  let release = (): void => {};
  const mine = new Promise<void>((r) => (release = r));
  tails.set(key, mine);
  try {
    if (prev) await prev;
    return await fn(release);
  } finally {
    release();
    if (tails.get(key) === mine) tails.delete(key);
  }
}

/**
 * Runs call `spec` (a CALL_TABLE entry) on live session `s`: checked, charged, in order, sliced when long, journaled.
 * `query` is the route's decoded query string (undefined for a call without one): it is what the
 * log records.
 */
export async function execute(s: Session, spec: CallSpec, body: unknown, query: CallQuery | undefined, ctx: ExecContext): Promise<unknown> {
  const name = spec.name;
  const q = query ?? {};
  if (name === 'batch') checkBatchOps((body as BatchInput).ops.length, s.limits.maxBatchOps);
  const cost = spec.cost(body, q, s.costUnit);
  checkCost(cost, ctx.limits, `this ${name}`);
  const large = cost.bytes >= LARGE_ANSWER ? ctx.large : undefined;
  return charged(ctx.budget, cost.bytes, () =>
    inOrder(s, async (release) => {
      const long = name === 'batch' && (cost.work > SLICE_WORK || (body as BatchInput).ops.length > SLICE_STEPS);
      // A long batch runs in slices (other sessions' calls go between them), then is logged whole.
      let out: unknown;
      let thrown: { err: unknown } | null = null;
      if (long) {
        try {
          out = await sliced(batchSteps(s, body as BatchInput, s.costUnit));
        } catch (err) {
          thrown = { err };
        }
      }
      let ran = false;
      const run = (): unknown => {
        if (thrown) throw thrown.err;
        if (!long) out = spec.run(s, body, q);
        ran = true;
        return out;
      };
      if (!ctx.journal) {
        const answer = run();
        return large ? large(answer) : answer;
      }
      // journal.call runs `run` before its first await: once it returns, the record is appended.
      const pending = ctx.journal.call(s, name, body, query, run);
      if (!large || !ran) {
        release(); // the next call may run while this one becomes durable
        return pending;
      }
      pending.catch(() => undefined); // awaited below; not unhandled while the answer is being made
      const sent = await large(out);
      release();
      await pending;
      return sent;
    }),
  );
}

/**
 * A parsed trace run into `s`, a session no client can reach (a trace being imported, a
 * compare column): checked as one request, charged, sliced; nothing is logged here (the
 * importer logs the calls once the whole trace has run). `keep`: what the caller needs back.
 */
export async function executeTrace(
  s: Session,
  ops: readonly ParsedTraceOp[],
  ctx: Omit<ExecContext, 'journal'>,
  what: string,
  keep: { answers: boolean; calls: boolean } = { answers: false, calls: true },
): Promise<TraceReplay> {
  const cost = traceCost(ops, s.costUnit);
  checkCost(cost, ctx.limits, what);
  return charged(ctx.budget, cost.bytes, () => sliced(traceSteps(s, ops, s.costUnit, keep)));
}
