// /batch: ops run in order against one session; `{ "ref": i }` stands for the handle op i
// returned. Each op's result is what the single call would answer, or its error body — one
// failing op does not stop the others (a harness sees exactly which step went wrong).

import { DmaemuError, invalid } from '../core/errors.js';
import type {
  AllocCoherentInput,
  AllocCoherentOut,
  BatchInput,
  BatchOpInput,
  BatchOut,
  FlushInput,
  FlushOut,
  FreeCoherentInput,
  FreeCoherentOut,
  MapPageInput,
  MapPageOut,
  MapSgInput,
  MapSgOut,
  SyncInput,
  SyncOut,
  UnmapInput,
  UnmapOut,
} from '../../schemas/index.js';

type Result = BatchOut['results'][number];
type HandleOrRef = number | { ref: number };

/** The single calls a batch is made of (a Session; named here so session.ts and this file do not import each other). */
export interface BatchTarget {
  mapSg(input: MapSgInput, withPages?: boolean, explain?: boolean): MapSgOut;
  mapPage(input: MapPageInput, withPages?: boolean): MapPageOut;
  unmap(input: UnmapInput): UnmapOut;
  sync(input: SyncInput): SyncOut;
  allocCoherent(input: AllocCoherentInput): AllocCoherentOut;
  freeCoherent(input: FreeCoherentInput): FreeCoherentOut;
  flush(input: FlushInput): FlushOut;
}

export function runBatch(session: BatchTarget, input: BatchInput): BatchOut {
  const results: Result[] = [];
  for (let k = 0; k < input.ops.length; k++) {
    const op = input.ops[k] as BatchOpInput;
    try {
      results.push(runOne(session, op, k, results));
    } catch (err) {
      if (!(err instanceof DmaemuError) || err.code === 'DMAEMU_INTERNAL') throw err;
      results.push(err.toBody());
    }
  }
  return { results };
}

function resolve(h: HandleOrRef, k: number, results: readonly Result[]): number {
  if (typeof h === 'number') return h;
  const field = `ops.${k}.handle.ref`;
  if (h.ref >= k) throw invalid(field, `ref ${h.ref} must name an earlier op of this batch`);
  const r = results[h.ref] as { handle?: unknown };
  if (typeof r.handle !== 'number') throw invalid(field, `op ${h.ref} returned no handle`);
  return r.handle;
}

function runOne(s: BatchTarget, op: BatchOpInput, k: number, results: readonly Result[]): Result {
  switch (op.op) {
    case 'map_sg': {
      const { op: _, pages, explain, ...body } = op;
      return s.mapSg(body, pages === true, explain === true);
    }
    case 'map_page': {
      const { op: _, pages, ...body } = op;
      return s.mapPage(body, pages === true);
    }
    case 'unmap':
      return s.unmap({ ...op, handle: resolve(op.handle, k, results) });
    case 'sync':
      return s.sync({ ...op, handle: resolve(op.handle, k, results) });
    case 'alloc_coherent':
      return s.allocCoherent(op);
    case 'free_coherent':
      return s.freeCoherent({ handle: resolve(op.handle, k, results) });
    case 'flush':
      return s.flush(op);
  }
}
