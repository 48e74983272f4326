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
import { parseTraceOps, replayTrace, type TraceOpIn } from './replay.js';
import { DEFAULT_SESSION_LIMITS, Session, type SessionLimits } from './session.js';
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

export function compare(input: CompareInput, limits: SessionLimits = DEFAULT_SESSION_LIMITS): CompareOut {
  const raw: TraceOpIn[] = input.ops ? input.ops : [{ op: 'map_sg', dir: input.dir ?? 'to_device', sg: input.sg }];
  // `expect` belongs to the layout a trace was recorded under: it is not checked here.
  const withExplain = raw.map(({ expect: _e, ...op }) => (op.op === 'map_sg' && !('explain' in op) ? { ...op, explain: true } : op));
  const ops = parseTraceOps(withExplain, 'ops'); // every op checked before anything runs: errors name ops.<i>.<field>
  const base = input.session ?? {};
  const columns: CompareOut['columns'] = [];
  const answers: (unknown[] | null)[] = [];
  for (const column of COMPARE_COLUMNS) {
    let s: Session;
    try {
      s = new Session(`compare-${column}`, resolveConfig(configRequest(columnConfig(base, column))), limits);
    } catch (err) {
      if (!(err instanceof DmaemuError) || err.code === 'DMAEMU_INTERNAL') throw err;
      columns.push({ column, config: null, error: err.toBody() });
      answers.push(null);
      continue;
    }
    columns.push({ column, config: s.wireConfig });
    answers.push(replayTrace(s, ops).answers);
  }
  const rows: CompareOut['ops'] = ops.map((p, i) => {
    const results: Record<string, unknown> = {};
    COMPARE_COLUMNS.forEach((c, k) => {
      results[c] = answers[k]?.[i] ?? null;
    });
    const differs = differing(COMPARE_COLUMNS.map((_, k) => answers[k]?.[i] ?? null));
    return { op: i, name: p.kind === 'batch' ? p.op.op : String(raw[i]?.op), results: results as CompareOut['ops'][number]['results'], differs, same: differs.length === 0 };
  });
  return { columns, ops: rows };
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
