// Replay: the calls of a session run again, through the call table the routes are made from
// (calls.ts). Two inputs: a journal record (restore after a restart: the decoded body exactly
// as the route handed it to the core) and a trace op (a /batch op in the vector format of
// test/vectors, possibly edited or written by hand, replayed under any layout; its handles are
// `ref`s to the op that returned them). Batch ops run as a batch of one, so /batch's dispatch is
// the only one; the calls /batch has no op for (the memory calls) run from their own entry.
//
// Invariant: replaying a session's journal into a fresh Session of the same config gives the
// same answers in the same order (the emulator is deterministic) — restore checks it.

import { isDeepStrictEqual } from 'node:util';
import { DmaemuError } from '../core/errors.js';
import { CALL_TABLE, TRACE_CALLS, type CallTarget, type Cost, type CostUnit } from './calls.js';
import type { CallName, CallRecord } from './store/op-store.js';
import { BatchOp } from '../../schemas/index.js';
import type { BatchInput, BatchOpInput, ErrorBodyOut } from '../../schemas/index.js';

/** The error body a call answers when it throws (an unexpected exception is the 500 the route would send). */
export function errorBodyOf(err: unknown): ErrorBodyOut {
  if (err instanceof DmaemuError) return err.toBody();
  return new DmaemuError('DMAEMU_INTERNAL', 'internal error (logged on the server)').toBody();
}

/** Runs a call; its answer or the error body it threw. */
export function runCall(s: CallTarget, op: CallName, body: unknown, query: unknown): { out: unknown } | { err: ErrorBodyOut; thrown: unknown } {
  try {
    return { out: CALL_TABLE[op].run(s, body, query ?? {}) };
  } catch (err) {
    return { err: errorBodyOf(err), thrown: err };
  }
}

/** Replays one journal record; true when the answer is the one the log holds. */
export function replayRecord(s: CallTarget, rec: CallRecord): boolean {
  const r = runCall(s, rec.op, rec.in, rec.q);
  if ('out' in r) return rec.err === undefined && sameJson(r.out, rec.out);
  return rec.err !== undefined && rec.err.code === r.err.code && rec.err.message === r.err.message;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

// ---- traces -----------------------------------------------------------------------------------

export interface TraceOpIn {
  op: string;
  ref?: number | undefined;
  expect?: Record<string, unknown> | undefined;
  [k: string]: unknown;
}

/** A trace op checked and decoded: either a /batch op (handle possibly {ref}) or a memory call. */
export type ParsedTraceOp = { kind: 'batch'; op: BatchOpInput; expect?: Record<string, unknown> | undefined } | { kind: 'memory'; call: CallName; body: unknown; expect?: Record<string, unknown> | undefined };

/** How deep a trace op's `expect` may nest (an answer nests 4 levels at most): deeper is refused before anything runs. */
export const MAX_EXPECT_DEPTH = 32;

/** The nesting depth of a JSON value, counted without recursion (a hostile `expect` may nest thousands of levels); stops past `max`. */
function depthOf(v: unknown, max: number): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[v, 1]];
  while (stack.length > 0) {
    const [x, d] = stack.pop() as [unknown, number];
    if (typeof x !== 'object' || x === null) continue;
    if (d > deepest) deepest = d;
    if (deepest > max) return deepest;
    for (const y of Object.values(x)) stack.push([y, d + 1]);
  }
  return deepest;
}

/**
 * Validates every op before anything runs; the error names `<prefix>.<i>.<field>`. A generator
 * (each step yields the op's scatterlist length + 1, the work zod just did), so a long trace is
 * checked in slices (execute.ts `sliced`).
 */
export function* parseTraceOps(ops: readonly TraceOpIn[], prefix: string): Generator<number, ParsedTraceOp[]> {
  const parsed: ParsedTraceOp[] = [];
  for (let i = 0; i < ops.length; i++) {
    const raw = ops[i] as TraceOpIn;
    parsed.push(parseOne(raw, `${prefix}.${i}`));
    yield 1 + (Array.isArray(raw.sg) ? raw.sg.length : 0);
  }
  return parsed;
}

function parseOne(raw: TraceOpIn, where: string): ParsedTraceOp {
  const { expect, ref, ...rest } = raw;
  const fail = (issues: readonly { path: readonly PropertyKey[]; message: string }[]): never => {
    const first = issues[0];
    const path = first ? first.path.map(String).join('.') : '';
    throw new DmaemuError('DMAEMU_INVALID_ARGUMENT', first?.message ?? 'invalid op', path ? `${where}.${path}` : where);
  };
  if (expect !== undefined && depthOf(expect, MAX_EXPECT_DEPTH) > MAX_EXPECT_DEPTH) {
    throw new DmaemuError('DMAEMU_INVALID_ARGUMENT', `nests deeper than ${MAX_EXPECT_DEPTH} levels (no answer does)`, `${where}.expect`);
  }
  const spec = TRACE_CALLS.get(raw.op);
  if (spec && spec.opcode === null) {
    // A call /batch has no op for (the memory calls): checked by its own body schema.
    if (ref !== undefined) throw new DmaemuError('DMAEMU_INVALID_ARGUMENT', `${raw.op} takes no handle`, `${where}.ref`);
    const { op: _, ...body } = rest;
    const r = spec.body.safeParse(body);
    if (!r.success) return fail(r.error.issues);
    return { kind: 'memory', call: spec.name, body: r.data, expect };
  }
  const r = BatchOp.safeParse(ref === undefined ? rest : { ...rest, handle: { ref } });
  if (!r.success) return fail(r.error.issues);
  return { kind: 'batch', op: r.data, expect };
}

export interface Mismatch {
  op: number;
  field: string;
  expected: unknown;
  got: unknown;
}

export interface TraceReplay {
  /** What each op answered, as JSON values (when asked to keep them: compare). */
  answers: unknown[];
  mismatches: Mismatch[];
  /** The calls made, as journal records would hold them (so a rebuilt session is journaled like any other), when asked to keep them. */
  calls: { op: CallName; in: unknown; out?: unknown; err?: ErrorBodyOut }[];
}

/** What replaying `ops` will take (execute.ts checks it before any op runs). */
export function traceCost(ops: readonly ParsedTraceOp[], unit: CostUnit): Cost {
  let work = 0;
  let bytes = 0;
  for (const p of ops) {
    const c = p.kind === 'memory' ? CALL_TABLE[p.call].cost(p.body, {}, unit) : CALL_TABLE.batch.cost({ ops: [p.op] }, {}, unit);
    work += c.work;
    bytes += c.bytes;
  }
  return { work, bytes };
}

/**
 * Runs a parsed trace against `s`, one step per op (each yields the work it did: execute.ts
 * slices on it); every field each op's `expect` lists is compared with the answer. Only what a
 * later op may need is kept of each answer (its handle, for `ref`).
 */
export function* traceSteps(s: CallTarget, ops: readonly ParsedTraceOp[], unit: CostUnit, keep: { answers: boolean; calls: boolean }): Generator<number, TraceReplay> {
  const answers: unknown[] = [];
  const handles: (number | null)[] = [];
  const mismatches: Mismatch[] = [];
  const calls: TraceReplay['calls'] = [];
  for (let i = 0; i < ops.length; i++) {
    const p = ops[i] as ParsedTraceOp;
    let answer: unknown;
    let work: number;
    if (p.kind === 'memory') {
      const r = runCall(s, p.call, p.body, undefined);
      answer = 'out' in r ? r.out : r.err;
      if (keep.calls) calls.push('out' in r ? { op: p.call, in: p.body, out: r.out } : { op: p.call, in: p.body, err: r.err });
      work = CALL_TABLE[p.call].cost(p.body, {}, unit).work;
    } else {
      // Refs name ops of the whole trace; each op runs as a batch of one with its handle resolved.
      const resolved = resolveRef(p.op, i, handles);
      const body: BatchInput = { ops: ['err' in resolved ? p.op : resolved.op] };
      work = CALL_TABLE.batch.cost(body, {}, unit).work;
      if ('err' in resolved) answer = resolved.err;
      else {
        const r = runCall(s, 'batch', body, undefined);
        answer = 'out' in r ? ((r.out as { results: unknown[] }).results[0] ?? null) : r.err;
        if (keep.calls) calls.push('out' in r ? { op: 'batch', in: body, out: r.out } : { op: 'batch', in: body, err: r.err });
      }
    }
    const json = JSON.parse(JSON.stringify(answer ?? null)) as unknown;
    const h = (json as { handle?: unknown } | null)?.handle;
    handles.push(typeof h === 'number' ? h : null);
    if (keep.answers) answers.push(json);
    mismatches.push(...compare(i, p.expect, json));
    yield work;
  }
  return { answers, mismatches, calls };
}

function resolveRef(op: BatchOpInput, i: number, handles: readonly (number | null)[]): { op: BatchOpInput } | { err: ErrorBodyOut } {
  if (!('handle' in op) || typeof op.handle === 'number') return { op };
  const ref = op.handle.ref;
  const field = `trace.ops.${i}.ref`;
  if (ref >= i) return { err: new DmaemuError('DMAEMU_INVALID_ARGUMENT', `ref ${ref} must name an earlier op`, field).toBody() };
  const h = handles[ref];
  if (typeof h !== 'number') return { err: new DmaemuError('DMAEMU_INVALID_ARGUMENT', `op ${ref} returned no handle`, field).toBody() };
  return { op: { ...op, handle: h } as BatchOpInput };
}

function compare(i: number, expect: Record<string, unknown> | undefined, got: unknown): Mismatch[] {
  const out: Mismatch[] = [];
  const g = (typeof got === 'object' && got !== null ? got : {}) as Record<string, unknown>;
  const exp = expect ?? {};
  for (const [field, expected] of Object.entries(exp)) {
    const value = g[field] ?? null;
    if (!isDeepStrictEqual(expected ?? null, value)) out.push({ op: i, field, expected, got: value });
  }
  // An answer that is an error where the trace expected none is a mismatch even if `expect` is silent about `code`.
  if (typeof g.code === 'string' && typeof g.statusCode === 'number' && !('code' in exp)) out.push({ op: i, field: 'code', expected: null, got: g.code });
  return out;
}
