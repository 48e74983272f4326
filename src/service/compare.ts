// POST /v1/compare: one sequence of calls replayed under every map_sg layout and without an
// IOMMU, answered op by op side by side — the 2015 thread's argument, run on the caller's own
// scatterlists. The replay is replay.ts's (the trace format of test/vectors, `ref: i` naming
// the handle op i returned); this file only builds the four temporary sessions and lines up
// their answers.
//
// Invariants: the sessions made here never enter the session store (no id a client could use,
// no TTL, no share of DMAEMU_MAX_SESSIONS) and are dropped with the answer; every map_sg op
// carries an explanation unless it says `explain: false`.

import { resolveConfig } from '../core/config.js';
import type { Layout } from '../core/constants.js';
import { DmaemuError } from '../core/errors.js';
import { configRequest } from './config-wire.js';
import type { MemoryBudget } from '../core/memory-budget.js';
import { SILENT_OBSERVER } from '../core/observer.js';
import { LARGE_ANSWER, charged, checkCost, sliced, type RequestLimits } from './execute.js';
import { parseTraceOps, traceCost, traceSteps, type ParsedTraceOp, type TraceOpIn } from './replay.js';
import { Session, type SessionLimits } from './session.js';
import { COMPARE_COLUMNS, type CompareColumn } from '../../schemas/compare.js';
import type { CompareInput, CompareOut, SessionCreateInput } from '../../schemas/index.js';


/** The fields a difference is looked for in (the handle is a counter, not a result). */
const COMPARED = ['nents', 'segments', 'iova', 'iova_ranges', 'dma_address', 'dma_handle', 'bounced', 'error', 'debug', 'cache', 'bounced_bytes', 'data', 'fault', 'code', 'message'] as const;

/** The create body of one column: the caller's config with the layout (or the IOMMU) replaced. */
function columnConfig(base: SessionCreateInput, column: CompareColumn): SessionCreateInput {
  if (column === 'no-iommu') return { ...base, iommu: null };
  const layout: Layout = column;
  return { ...base, layout, iommu: base.iommu === null ? undefined : base.iommu };
}

/**
 * Checked as one request before any column runs (four times the trace's cost), charged to the
 * memory budget with the four sessions (each a session's footprint, their mappings as they are
 * made), run in slices; the sessions' shares go back with the answer.
 */
export async function compare(input: CompareInput, limits: SessionLimits & RequestLimits, budget: MemoryBudget, onLargeAnswer?: () => void): Promise<CompareOut> {
  const raw = compareOps(input);
  const ops = await parseCompareOps(raw);
  const base = input.session ?? {};
  const configs = COMPARE_COLUMNS.map((column) => columnConfig(base, column));
  const { sessions, answers } = await replayColumns(ops, configs, { limits, budget, what: 'this compare', onLargeAnswer });
  const columns: CompareOut['columns'] = COMPARE_COLUMNS.map((column, k) => {
    const s = sessions[k] as Session | DmaemuError;
    return s instanceof DmaemuError ? { column, config: null, error: s.toBody() } : { column, config: s.wireConfig };
  });
  const rows: CompareOut['ops'] = ops.map((p, i) => {
    const results: Record<string, unknown> = {};
    COMPARE_COLUMNS.forEach((c, k) => {
      results[c] = answers[k]?.[i] ?? null;
    });
    const differs = differing(COMPARE_COLUMNS.map((_, k) => answers[k]?.[i] ?? null));
    return { op: i, name: opName(p, raw, i), results: results as CompareOut['ops'][number]['results'], differs, same: differs.length === 0 };
  });
  return { columns, ops: rows };
}

/** The sequence a compare body gives: its ops, or its one scatterlist as a map_sg. */
export function compareOps(input: CompareInput): TraceOpIn[] {
  return input.ops ? input.ops : [{ op: 'map_sg', dir: input.dir ?? 'to_device', sg: input.sg ?? [] }];
}

/** Every op checked before anything runs (errors name ops.<i>.<field>); map_sg ops explained unless they say not to. */
export async function parseCompareOps(raw: readonly TraceOpIn[]): Promise<ParsedTraceOp[]> {
  // `expect` belongs to the layout a trace was recorded under: it is not checked here.
  const withExplain = raw.map(({ expect: _e, ...op }) => (op.op === 'map_sg' && !('explain' in op) ? { ...op, explain: true } : op));
  return sliced(parseTraceOps(withExplain, 'ops'));
}

export function opName(p: ParsedTraceOp, raw: readonly TraceOpIn[], i: number): string {
  return p.kind === 'batch' ? p.op.op : String(raw[i]?.op);
}

export interface ColumnBounds {
  limits: SessionLimits & RequestLimits;
  budget: MemoryBudget;
  /** Names the request in a refusal. */
  what: string;
  onLargeAnswer?: (() => void) | undefined;
}

/**
 * One temporary session per config (a config the core refuses is that column's error), the
 * sequence replayed in each. Checked as one request before any column runs (the trace's cost
 * times the columns that run), charged to the memory budget with the sessions (each a session's
 * footprint, their mappings as they are made), run in slices; the shares go back with the answer.
 */
export async function replayColumns(
  ops: readonly ParsedTraceOp[],
  configs: readonly SessionCreateInput[],
  b: ColumnBounds,
): Promise<{ sessions: (Session | DmaemuError)[]; answers: (unknown[] | null)[] }> {
  const sessions: (Session | DmaemuError)[] = configs.map((config, k) => {
    try {
      return new Session(`compare-${k}`, resolveConfig(configRequest(config)), b.limits, SILENT_OBSERVER, b.budget);
    } catch (err) {
      if (!(err instanceof DmaemuError) || err.code === 'DMAEMU_INTERNAL') throw err;
      return err;
    }
  });
  const live = sessions.filter((s): s is Session => s instanceof Session);
  const one = traceCost(ops, live[0]?.costUnit ?? { granule: 4096, pageSize: 4096, memoryLimit: 0 });
  const cost = { work: one.work * live.length, bytes: one.bytes * live.length };
  checkCost(cost, b.limits, `${b.what} (${live.length} columns)`);
  if (cost.bytes >= LARGE_ANSWER) b.onLargeAnswer?.();
  try {
    for (const s of live) s.chargeCreation();
    return await charged(b.budget, cost.bytes, async () => {
      const answers: (unknown[] | null)[] = [];
      for (const s of sessions) {
        answers.push(s instanceof DmaemuError ? null : (await sliced(traceSteps(s, ops, s.costUnit, { answers: true, calls: false }))).answers);
      }
      return { sessions, answers };
    });
  } finally {
    for (const s of live) s.releaseBudget();
  }
}

/** The fields whose values are not the same in every column that ran (debug compared by check and message). */
export function differing(answers: readonly unknown[]): string[] {
  const present = answers.filter((a): a is Record<string, unknown> => typeof a === 'object' && a !== null);
  const out: string[] = [];
  for (const f of COMPARED) {
    const vals = present.map((a) => JSON.stringify(f === 'debug' ? normaliseDebug(a.debug) : (a[f] ?? null)));
    if (vals.some((v) => v !== vals[0])) out.push(f);
  }
  const verdicts = present.map((a) => JSON.stringify((a.explain as { verdict?: unknown } | undefined)?.verdict ?? null));
  if (verdicts.some((v) => v !== verdicts[0])) out.push('explain.verdict');
  return out;
}

function normaliseDebug(d: unknown): unknown {
  if (!Array.isArray(d)) return [];
  return d.map((f: { check?: unknown; message?: unknown }) => ({ check: f.check, message: f.message }));
}
