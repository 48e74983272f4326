// POST /v1/compare's two extensions around compare.ts (issue 25 item 3): `ftrace`, the kernel's
// dma events of one device as the sequence (imported as POST /v1/import/ftrace does, in its
// worker), and `vary`, the same sequence under each combination of some device parameters in
// the session's layout, side by side with the differing fields marked (compare.ts's rule).
//
// Invariants: as in compare.ts, every session here is temporary (never in the store); the
// layout columns are compare()'s own, untouched; `varied` only adds columns.

import { DmaemuError, invalid } from '../core/errors.js';
import { compare, compareOps, differing, opName, parseCompareOps, replayColumns, type ColumnBounds } from './compare.js';
import type { ImportResult } from './ftrace.js';
import { importInWorker } from './ftrace-pool.js';
import type { Session } from './session.js';
import { MAX_COMPARE_OPS } from '../../schemas/compare.js';
import { SessionCreateBody } from '../../schemas/session.js';
import { TraceOp } from '../../schemas/trace.js';
import type { CompareInput, CompareOut, SessionCreateInput } from '../../schemas/index.js';

type Vary = NonNullable<CompareInput['vary']>;
type Set = Record<string, number | string>;

/** Every combination of the varied values, in the order the lists give them. */
function combinations(vary: Vary): Set[] {
  let out: Set[] = [{}];
  for (const [k, values] of Object.entries(vary) as [string, (number | string)[] | undefined][]) {
    if (!values) continue;
    out = out.flatMap((c) => values.map((v) => ({ ...c, [k]: v })));
  }
  return out;
}

/** The session body with one variant's parameters in place (granule is the IOMMU's, the rest the device's). */
function variantBody(base: SessionCreateInput, set: Set): SessionCreateInput {
  const device: Record<string, unknown> = { ...base.device };
  let iommu = base.iommu;
  for (const [k, v] of Object.entries(set)) {
    if (k === 'granule') iommu = { ...(iommu ?? {}), granule: v as 4096 | 16384 | 65536 };
    else device[k] = typeof v === 'string' ? BigInt(v) : v;
  }
  return { ...base, device: device, iommu };
}

async function varied(input: CompareInput, vary: Vary, b: ColumnBounds): Promise<NonNullable<CompareOut['varied']>> {
  const base = input.session ?? {};
  const raw = compareOps(input);
  const ops = await parseCompareOps(raw);
  const sets = combinations(vary);
  const { sessions, answers } = await replayColumns(
    ops,
    sets.map((set) => variantBody(base, set)),
    { ...b, what: 'this compare\'s vary' },
  );
  const columns: NonNullable<CompareOut['varied']>['columns'] = sets.map((set, k) => {
    const s = sessions[k] as Session | DmaemuError;
    return s instanceof DmaemuError ? { set, config: null, error: s.toBody() } : { set, config: s.wireConfig };
  });
  const rows = ops.map((p, i) => {
    const results = answers.map((a) => (a?.[i] ?? null) as NonNullable<CompareOut['varied']>['ops'][number]['results'][number]);
    const differs = differing(answers.map((a) => a?.[i] ?? null));
    return { op: i, name: opName(p, raw, i), results, differs, same: differs.length === 0 };
  });
  const layout = base.iommu === null ? 'no-iommu' : (base.layout ?? 'linux');
  return { layout, columns, ops: rows };
}

/** `ftrace` → the one device's ops and session (its limits: `session` as the import's options). */
async function imported(input: CompareInput): Promise<{ input: CompareInput; imported: NonNullable<CompareOut['imported']> }> {
  const f = input.ftrace;
  if (!f) return { input, imported: { device: '', unexpressed: [] } };
  let r: ImportResult;
  try {
    const session = input.session ? sessionAsWritten(input.session) : undefined;
    const json = await importInWorker(f.text, { device: f.device, session, maxEvents: 100_000 });
    r = JSON.parse(json.toString('utf8')) as ImportResult;
  } catch (err) {
    if (err instanceof DmaemuError && err.field === 'text') throw new DmaemuError(err.code, err.message.slice('text: '.length), 'ftrace.text');
    throw err;
  }
  const d = r.devices[0];
  if (!d) throw invalid('ftrace', f.device ? `no dma event of device ${f.device} in the text` : 'no dma event in the text');
  if (r.devices.length > 1) throw invalid('ftrace.device', `the text holds ${r.devices.length} devices (${r.devices.map((x) => x.device).join(', ')}): name one`);
  if (d.trace.ops.length > MAX_COMPARE_OPS) throw invalid('ftrace', `device ${d.device} has ${d.trace.ops.length} ops, more than ${MAX_COMPARE_OPS}: compare a shorter trace`);
  if (d.trace.ops.length === 0) throw invalid('ftrace', `no event of device ${d.device} could be expressed (see POST /v1/import/ftrace's unexpressed)`);
  const { ftrace: _f, ...rest } = input;
  return { input: { ...rest, session: SessionCreateBody.parse(d.trace.session), ops: TraceOp.array().parse(d.trace.ops) }, imported: { device: d.device, unexpressed: r.unexpressed } };
}

/** A parsed session body back to its wire form (bigints as hex), for the import's options. */
function sessionAsWritten(v: unknown): Record<string, unknown> {
  return JSON.parse(JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `0x${x.toString(16)}` : x))) as Record<string, unknown>;
}

/**
 * POST /v1/compare: compare(), with `ftrace` imported first and `vary` answered beside it. The
 * varied columns are bounded like compare's own (their cost checked before any runs, their
 * sessions and answers charged to the budget, run in slices).
 */
export async function compareRequest(body: CompareInput, b: Omit<ColumnBounds, 'what'>): Promise<CompareOut> {
  const { input, imported: from } = body.ftrace ? await imported(body) : { input: body, imported: undefined };
  const out = await compare(input, b.limits, b.budget, b.onLargeAnswer);
  if (input.vary) out.varied = await varied(input, input.vary, { ...b, what: 'this compare' });
  if (from) out.imported = from;
  return out;
}
