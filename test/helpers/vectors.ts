// Loads the example vectors: every test/vectors/*.json, plus those of a directory named by
// DMAEMU_VECTORS_DIR (your own cases; a file of the same name wins). The maintainers' upstream
// folder of vectors is also read when it happens to sit beside the repository; a clone needs
// nothing but test/vectors/. Any *.json dropped in is run by the vector tests without code changes.

import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface VectorOp {
  op: string;
  ref?: number;
  expect?: Record<string, unknown>;
  [k: string]: unknown;
}

export interface Vector {
  file: string;
  name: string;
  rule: string;
  session: Record<string, unknown>;
  ops: VectorOp[];
}

const here = dirname(fileURLToPath(import.meta.url));
export const VECTOR_DIRS = [resolve(here, '../vectors'), resolve(here, '../../../shared/vectors'), ...(process.env.DMAEMU_VECTORS_DIR ? [process.env.DMAEMU_VECTORS_DIR] : [])];

export function loadVectors(): Vector[] {
  const byFile = new Map<string, Vector>();
  for (const dir of VECTOR_DIRS) {
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.json')).sort()) {
      const v = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Omit<Vector, 'file'>;
      byFile.set(f, { file: f, ...v });
    }
  }
  return [...byFile.values()];
}

/** A vector op as a /batch op: `ref: i` at the top level names the handle of op i. */
export function toBatchOp(op: VectorOp): Record<string, unknown> {
  const { expect: _e, ref, ...rest } = op;
  return ref === undefined ? rest : { ...rest, handle: { ref } };
}

/** An op's answer or a /mappings row, as JSON. */
export type Answer = Record<string, unknown>;

/** Which op's handle an op names: `ref: i` at the top level or `handle: {ref: i}` (the /batch form). */
function refOf(op: VectorOp): number | undefined {
  if (op.ref !== undefined) return op.ref;
  const h = op.handle;
  return typeof h === 'object' && h !== null && 'ref' in h && typeof h.ref === 'number' ? h.ref : undefined;
}

/** The handle an op acts on: a literal number, or the handle the op it refers to returned. */
function handleOf(op: VectorOp, answers: readonly (Answer | undefined)[]): unknown {
  const ref = refOf(op);
  return ref === undefined ? op.handle : answers[ref]?.handle;
}

/**
 * A vector op as one HTTP call on its own endpoint (`POST <session>/<op>`): the body without the
 * vector's own fields, `ref` resolved to the handle that op answered, compact `[phys, length]`
 * entries (accepted by /batch only) as `{phys, length}`, and `pages` / `explain` (body fields
 * in /batch) as the query parameters of the single call.
 */
export function toHttpCall(op: VectorOp, answers: readonly (Answer | undefined)[]): { path: string; body: Answer; query: string } {
  const { op: name, expect: _e, ref: _r, pages, explain, ...body } = op;
  if (refOf(op) !== undefined) {
    const handle = handleOf(op, answers);
    if (typeof handle !== 'number') throw new Error(`op ${String(refOf(op))} returned no handle to refer to`);
    body.handle = handle;
  }
  if (Array.isArray(body.sg)) body.sg = (body.sg as unknown[]).map((e) => (Array.isArray(e) ? { phys: e[0] as unknown, length: e[1] as unknown } : e));
  const query = [pages === true ? 'pages=true' : '', explain === true ? 'explain=true' : ''].filter(Boolean).join('&');
  return { path: name, body, query };
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
const show = (v: unknown): string => (v === undefined ? 'undefined' : JSON.stringify(v));

/** Every field an op's `expect` names that its answer does not match, as "op i (name) field: got …, want …". */
export function expectMismatches(ops: readonly VectorOp[], answers: readonly (Answer | undefined)[]): string[] {
  const out: string[] = [];
  ops.forEach((op, i) => {
    for (const [k, want] of Object.entries(op.expect ?? {})) {
      const got = answers[i]?.[k];
      if (!same(got, want)) out.push(`op ${i} (${op.op}) ${k}: got ${show(got)}, want ${show(want)}`);
    }
  });
  return out;
}

/** The mapping kind a map op leaves in /mappings. */
const KIND_OF: Readonly<Record<string, string>> = { map_sg: 'map_sg', map_page: 'map_page', alloc_coherent: 'coherent' };
/** The ops that end a mapping, whichever kind. */
const ENDS = new Set(['unmap', 'free_coherent']);

/**
 * What /mappings must list once the vector's ops have run: every handle a map op returned and no
 * later op unmapped or freed, each row of the kind its op made and repeating what that op answered
 * (map_sg: `segments`, `iova`, `iova_ranges`; map_page: its `dma_address` as the first segment's
 * and its `iova`; alloc_coherent: its `dma_handle` and `size`). Each difference names the op.
 */
export function liveRowMismatches(ops: readonly VectorOp[], answers: readonly (Answer | undefined)[], rows: readonly Answer[]): string[] {
  const live = new Map<unknown, number>();
  ops.forEach((op, i) => {
    const h = answers[i]?.handle;
    if (op.op in KIND_OF && typeof h === 'number') live.set(h, i);
    if (ENDS.has(op.op)) live.delete(handleOf(op, answers));
  });
  const out: string[] = [];
  const listed = new Set(rows.map((r) => r.handle));
  for (const [h, i] of live) if (!listed.has(h)) out.push(`op ${i} (${String(ops[i]?.op)}) handle ${show(h)}: still mapped but not listed in /mappings`);
  for (const row of rows) {
    const i = live.get(row.handle);
    if (i === undefined) {
      out.push(`/mappings row ${show(row.handle)}: no op left this handle mapped`);
      continue;
    }
    const op = ops[i]?.op ?? '';
    const a = answers[i] ?? {};
    const firstAddress = (row.segments as Answer[] | undefined)?.[0]?.dma_address;
    const pairs: [string, unknown, unknown][] = [['kind', row.kind, KIND_OF[op]]];
    if (op === 'map_sg') pairs.push(['segments', row.segments, a.segments], ['iova', row.iova, a.iova], ['iova_ranges', row.iova_ranges, a.iova_ranges]);
    if (op === 'map_page') pairs.push(['dma_address', firstAddress, a.dma_address], ['iova', row.iova, a.iova]);
    if (op === 'alloc_coherent') pairs.push(['dma_handle', firstAddress, a.dma_handle], ['size', row.size, a.size]);
    for (const [field, got, want] of pairs) {
      if (!same(got, want)) out.push(`op ${i} (${op}) ${field}: /mappings row ${show(row.handle)} has ${show(got)}, the op answered ${show(want)}`);
    }
  }
  return out;
}
