// Replay: the calls of a session run again, through the same Session methods the routes call.
// Two inputs: a journal record (restore after a restart: the decoded body exactly as the route
// handed it to the core) and a trace op (a /batch op in the vector format of test/vectors,
// possibly edited or written by hand, replayed under any layout; its handles are `ref`s to the
// op that returned them). Batch ops go through Session.batch, so /batch's dispatch is the only
// one; the memory calls, which /batch has no ops for, go straight to their methods.
//
// Invariant: replaying a session's journal into a fresh Session of the same config gives the
// same answers in the same order (the emulator is deterministic) — restore checks it.

import { isDeepStrictEqual } from 'node:util';
import type { z } from 'zod';
import { DmaemuError } from '../core/errors.js';
import type { Session } from './session.js';
import type { CallName, CallRecord } from './store/op-store.js';
import { BatchOp, CpuReadBody, CpuWriteBody, DeviceReadBody, DeviceWriteBody } from '../../schemas/index.js';
import type {
  AllocCoherentInput,
  BatchInput,
  BatchOpInput,
  CpuReadInput,
  CpuWriteInput,
  DeviceReadInput,
  DeviceWriteInput,
  ErrorBodyOut,
  FlushInput,
  FreeCoherentInput,
  MapPageInput,
  MapSgInput,
  SyncInput,
  UnmapInput,
} from '../../schemas/index.js';

type Pages = { pages?: boolean } | undefined;

/** Each session-scoped POST as its route calls the core (routes/dma.ts, routes/memory.ts). */
export const SESSION_CALLS: Record<CallName, (s: Session, body: unknown, query: unknown) => unknown> = {
  map_sg: (s, b, q) => s.mapSg(b as MapSgInput, (q as Pages)?.pages === true, (q as { explain?: boolean } | undefined)?.explain === true),
  map_page: (s, b, q) => s.mapPage(b as MapPageInput, (q as Pages)?.pages === true),
  unmap: (s, b) => s.unmap(b as UnmapInput),
  sync: (s, b) => s.sync(b as SyncInput),
  alloc_coherent: (s, b) => s.allocCoherent(b as AllocCoherentInput),
  free_coherent: (s, b) => s.freeCoherent(b as FreeCoherentInput),
  flush: (s, b) => s.flush(b as FlushInput),
  batch: (s, b) => s.batch(b as BatchInput),
  'cpu/write': (s, b) => s.cpuWrite(b as CpuWriteInput),
  'cpu/read': (s, b) => s.cpuRead(b as CpuReadInput),
  'device/write': (s, b) => s.deviceWrite(b as DeviceWriteInput),
  'device/read': (s, b) => s.deviceRead(b as DeviceReadInput),
};

/** The error body a call answers when it throws (an unexpected exception is the 500 the route would send). */
export function errorBodyOf(err: unknown): ErrorBodyOut {
  if (err instanceof DmaemuError) return err.toBody();
  return new DmaemuError('DMAEMU_INTERNAL', 'internal error (logged on the server)').toBody();
}

/** Runs a call; its answer or the error body it threw. */
export function runCall(s: Session, op: CallName, body: unknown, query: unknown): { out: unknown } | { err: ErrorBodyOut; thrown: unknown } {
  try {
    return { out: SESSION_CALLS[op](s, body, query) };
  } catch (err) {
    return { err: errorBodyOf(err), thrown: err };
  }
}

/** Replays one journal record; true when the answer is the one the log holds. */
export function replayRecord(s: Session, rec: CallRecord): boolean {
  const r = runCall(s, rec.op, rec.in, rec.q);
  if ('out' in r) return rec.err === undefined && sameJson(r.out, rec.out);
  return rec.err !== undefined && rec.err.code === r.err.code && rec.err.message === r.err.message;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

// ---- traces -----------------------------------------------------------------------------------

/** Trace op names of the memory calls (the /batch ops keep their own names). */
export const MEMORY_TRACE_OPS = { cpu_write: 'cpu/write', cpu_read: 'cpu/read', device_write: 'device/write', device_read: 'device/read' } as const;
type MemoryTraceOp = keyof typeof MEMORY_TRACE_OPS;
const MEMORY_BODIES: Record<MemoryTraceOp, z.ZodType> = { cpu_write: CpuWriteBody, cpu_read: CpuReadBody, device_write: DeviceWriteBody, device_read: DeviceReadBody };

export interface TraceOpIn {
  op: string;
  ref?: number | undefined;
  expect?: Record<string, unknown> | undefined;
  [k: string]: unknown;
}

/** A trace op checked and decoded: either a /batch op (handle possibly {ref}) or a memory call. */
export type ParsedTraceOp = { kind: 'batch'; op: BatchOpInput; expect?: Record<string, unknown> | undefined } | { kind: 'memory'; call: CallName; body: unknown; expect?: Record<string, unknown> | undefined };

/** Validates every op before anything runs; the error names `<prefix>.<i>.<field>`. */
export function parseTraceOps(ops: readonly TraceOpIn[], prefix: string): ParsedTraceOp[] {
  return ops.map((raw, i) => {
    const { expect, ref, ...rest } = raw;
    const where = `${prefix}.${i}`;
    const fail = (issues: readonly { path: readonly PropertyKey[]; message: string }[]): never => {
      const first = issues[0];
      const path = first ? first.path.map(String).join('.') : '';
      throw new DmaemuError('DMAEMU_INVALID_ARGUMENT', first?.message ?? 'invalid op', path ? `${where}.${path}` : where);
    };
    if (raw.op in MEMORY_TRACE_OPS) {
      if (ref !== undefined) throw new DmaemuError('DMAEMU_INVALID_ARGUMENT', `${raw.op} takes no handle`, `${where}.ref`);
      const { op: _, ...body } = rest;
      const r = MEMORY_BODIES[raw.op as MemoryTraceOp].safeParse(body);
      if (!r.success) return fail(r.error.issues);
      return { kind: 'memory', call: MEMORY_TRACE_OPS[raw.op as MemoryTraceOp], body: r.data, expect };
    }
    const r = BatchOp.safeParse(ref === undefined ? rest : { ...rest, handle: { ref } });
    if (!r.success) return fail(r.error.issues);
    return { kind: 'batch', op: r.data, expect };
  });
}

export interface Mismatch {
  op: number;
  field: string;
  expected: unknown;
  got: unknown;
}

export interface TraceReplay {
  /** What each op answered, as JSON values. */
  answers: unknown[];
  mismatches: Mismatch[];
  /** The calls made, as journal records would hold them (so a rebuilt session is journaled like any other). */
  calls: { op: CallName; in: unknown; out?: unknown; err?: ErrorBodyOut }[];
}

/** Runs a parsed trace against `s`; every field each op's `expect` lists is compared with the answer. */
export function replayTrace(s: Session, ops: readonly ParsedTraceOp[]): TraceReplay {
  const answers: unknown[] = [];
  const mismatches: Mismatch[] = [];
  const calls: TraceReplay['calls'] = [];
  ops.forEach((p, i) => {
    let answer: unknown;
    if (p.kind === 'memory') {
      const r = runCall(s, p.call, p.body, undefined);
      answer = 'out' in r ? r.out : r.err;
      calls.push('out' in r ? { op: p.call, in: p.body, out: r.out } : { op: p.call, in: p.body, err: r.err });
    } else {
      // Refs name ops of the whole trace; each op runs as a batch of one with its handle resolved.
      const resolved = resolveRef(p.op, i, answers);
      if ('err' in resolved) answer = resolved.err;
      else {
        const body: BatchInput = { ops: [resolved.op] };
        const r = runCall(s, 'batch', body, undefined);
        answer = 'out' in r ? ((r.out as { results: unknown[] }).results[0] ?? null) : r.err;
        calls.push('out' in r ? { op: 'batch', in: body, out: r.out } : { op: 'batch', in: body, err: r.err });
      }
    }
    const json = JSON.parse(JSON.stringify(answer ?? null)) as unknown;
    answers.push(json);
    mismatches.push(...compare(i, p.expect, json));
  });
  return { answers, mismatches, calls };
}

function resolveRef(op: BatchOpInput, i: number, answers: readonly unknown[]): { op: BatchOpInput } | { err: ErrorBodyOut } {
  if (!('handle' in op) || typeof op.handle === 'number') return { op };
  const ref = op.handle.ref;
  const field = `trace.ops.${i}.ref`;
  if (ref >= i) return { err: new DmaemuError('DMAEMU_INVALID_ARGUMENT', `ref ${ref} must name an earlier op`, field).toBody() };
  const h = (answers[ref] as { handle?: unknown } | null)?.handle;
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
