// The DMA calls, each one value: its route path (which is also its name in the journal), its
// trace name, its body / answer / query schemas (schemas/ stays their one definition), its
// binary /batch opcode, how it runs on a session, whether its answer hands out a handle, the
// HTTP statuses it can answer, its /metrics name and a cost estimate. The routes
// (routes/dma.ts, routes/memory.ts), /batch's dispatch (JSON and binary), trace import and
// export, restore's replay, compare and the OpenAPI statuses are all derived from CALL_TABLE,
// and every caller runs a call through execute.ts; test/call-table.test.ts fails when a call is
// missing from any of them. Adding a call: the core, then one entry here.
//
// Invariants: CALL_TABLE has exactly one entry per CallName (store/op-store.ts; the type
// `Record<CallName, …>` refuses a missing or extra one); binary opcodes are
// schemas/batch-binary.ts's `OP` and never move; `cost` reads only what validation produced
// and never runs anything.

import type { z } from 'zod';
import { DmaemuError, invalid } from '../core/errors.js';
import type { DmaCall } from '../core/observer.js';
import * as S from '../../schemas/index.js';
import type {
  AllocCoherentInput,
  AllocCoherentOut,
  BatchInput,
  BatchOpInput,
  BatchOut,
  CpuReadInput,
  CpuWriteInput,
  DeviceReadInput,
  DeviceWriteInput,
  FlushInput,
  FlushOut,
  FreeCoherentInput,
  FreeCoherentOut,
  MapPageInput,
  MapPageOut,
  MapSgInput,
  MapSgOut,
  MemoryOut,
  SyncInput,
  SyncOut,
  UnmapInput,
  UnmapOut,
} from '../../schemas/index.js';
import { OP } from '../../schemas/batch-binary.js';
import type { CallName } from './store/op-store.js';

/** What a call runs on: a Session (named here, not imported, so session.ts can use this table). */
export interface CallTarget {
  mapSg(input: MapSgInput, withPages?: boolean, explain?: boolean): MapSgOut;
  mapPage(input: MapPageInput, withPages?: boolean): MapPageOut;
  unmap(input: UnmapInput): UnmapOut;
  sync(input: SyncInput): SyncOut;
  allocCoherent(input: AllocCoherentInput): AllocCoherentOut;
  freeCoherent(input: FreeCoherentInput): FreeCoherentOut;
  flush(input: FlushInput): FlushOut;
  batch(input: BatchInput): BatchOut;
  cpuWrite(input: CpuWriteInput): MemoryOut;
  cpuRead(input: CpuReadInput): MemoryOut;
  deviceWrite(input: DeviceWriteInput): MemoryOut;
  deviceRead(input: DeviceReadInput): MemoryOut;
}

/**
 * What a call will take, estimated from its validated input alone: `work` in units of one op,
 * one scatterlist entry, one page row listed or one 4 KiB page of data touched (each a few
 * hundred nanoseconds to a few microseconds of CPU); `bytes`, an upper estimate of its JSON answer.
 */
export interface Cost {
  work: number;
  bytes: number;
}

/** The unit of `?pages=true` rows and of coherent pages: what the session maps with. */
export interface CostUnit {
  granule: number;
  pageSize: number;
  /** The session's RAM: an allocation larger than it fails (ENOMEM) before touching a page. */
  memoryLimit: number;
}

/** The decoded query string of a call (or the same fields of a /batch op). */
export interface CallQuery {
  pages?: boolean | undefined;
  explain?: boolean | undefined;
}

export interface CallSpec {
  /** The route path under /v1/sessions/{id}/ and the journal's name. */
  readonly name: CallName;
  /** The `op` of a trace (GET /trace, POST /v1/sessions with `trace`). */
  readonly trace: string;
  readonly tag: 'dma' | 'memory';
  readonly summary: string;
  readonly description?: string;
  readonly body: z.ZodType;
  readonly result: z.ZodType;
  readonly query?: z.ZodObject;
  /** Its record in binary /batch (OP.json: carried as a JSON record); null: not a /batch op. */
  readonly opcode: number | null;
  /** Its answer's `handle` is a new handle (a trace's `ref` may name it). */
  readonly makesHandle: boolean;
  /** HTTP error statuses it can answer (each is in the OpenAPI document). */
  readonly statuses: readonly ErrorStatus[];
  /** The `op` label of dmaemu_dma_calls_total; null: not a DMA-API call (memory accesses, /batch itself). */
  readonly metric: DmaCall | null;
  run(s: CallTarget, body: unknown, query: CallQuery): unknown;
  cost(body: unknown, query: CallQuery, unit: CostUnit): Cost;
}

export type ErrorStatus = 400 | 404 | 413 | 429 | 503 | 507;

/** Every session-scoped call: refused input, unknown session or handle, too large, over a limit, not durable. */
const BASE: readonly ErrorStatus[] = [400, 404, 413, 429, 503];
/** ... and those the memory budget can refuse (DMAEMU_MEMORY_BUDGET, 507). */
const BUDGETED: readonly ErrorStatus[] = [...BASE, 507];

// ---- cost estimates ---------------------------------------------------------------------------

/** Answer bytes of one segment plus one IOVA range, of one page row, of the fixed fields. */
const SEGMENT_BYTES = 100;
const EXPLAIN_BYTES = 100;
const ROW_BYTES = 48;
const FIXED_BYTES = 200;
/** No call's estimate is below this (a trace import keeps each call's input and answer): lets a request's op count be checked before it is parsed. */
export const MIN_ANSWER_BYTES = FIXED_BYTES;

/** Rows ?pages=true lists for [phys, phys+length): granules spanned (dma-device's checkPageRows). */
function rows(phys: number, length: number, granule: number): number {
  return Math.ceil(((phys % granule) + length) / granule);
}

function mapSgCost(b: MapSgInput, q: CallQuery, u: CostUnit): Cost {
  const n = b.sg.length;
  let work = 1 + n;
  let bytes = FIXED_BYTES + SEGMENT_BYTES * n;
  if (q.pages === true) {
    let r = 0;
    for (const e of b.sg) r += rows(e.phys, e.length, u.granule);
    work += r;
    bytes += ROW_BYTES * r;
  }
  if (q.explain === true) {
    work += n;
    bytes += EXPLAIN_BYTES * n;
  }
  return { work, bytes };
}

function mapPageCost(b: MapPageInput, q: CallQuery, u: CostUnit): Cost {
  if (q.pages !== true) return { work: 1, bytes: FIXED_BYTES };
  const r = rows(b.phys, b.size, u.granule);
  return { work: 1 + r, bytes: FIXED_BYTES + ROW_BYTES * r };
}

const PAGE = 4096;
/** A read answers its bytes in base64 (4 characters per 3 bytes). */
const readCost = (length: number): Cost => ({ work: 1 + Math.ceil(length / PAGE), bytes: FIXED_BYTES + 4 * Math.ceil(length / 3) });
/** A write's data arrives in base64; its answer is small. */
const writeCost = (data: string): Cost => ({ work: 1 + Math.ceil((data.length * 3) / 4 / PAGE), bytes: FIXED_BYTES });
const ONE: Cost = { work: 1, bytes: FIXED_BYTES };

// ---- the table --------------------------------------------------------------------------------

/** One entry with its own body / query types (checked here), stored type-erased in the table. */
function call<B, Q extends CallQuery>(spec: Omit<CallSpec, 'run' | 'cost'> & { run(s: CallTarget, body: B, query: Q): unknown; cost(body: B, query: Q, unit: CostUnit): Cost }): CallSpec {
  return spec;
}

/**
 * A memory access (routes/memory.ts): its trace name is its path with `_` for `/`; not a /batch
 * op, not a DMA-API call for /metrics; the budget may refuse the memory it creates (507).
 */
function memoryCall<B>(name: CallName, summary: string, body: z.ZodType, run: (s: CallTarget, body: B) => MemoryOut, cost: (body: B) => Cost): CallSpec {
  return call<B, CallQuery>({ name, trace: name.replace('/', '_'), tag: 'memory', summary, body, result: S.MemoryResult, opcode: null, makesHandle: false, statuses: BUDGETED, metric: null, run, cost });
}

export const CALL_TABLE: Record<CallName, CallSpec> = {
  map_sg: call<MapSgInput, CallQuery>({
    name: 'map_sg',
    trace: 'map_sg',
    tag: 'dma',
    summary: 'dma_map_sg: the segments the driver gets, and the IOVA behind them',
    description:
      'nents 0 with `error` when Linux fails the call. `?pages=true` also lists one IOVA→phys row per IOMMU granule; `?explain=true` adds `explain`: the rule behind each segment break and a verdict.',
    body: S.MapSgBody,
    result: S.MapSgResult,
    query: S.MapSgQuery,
    opcode: OP.map_sg,
    makesHandle: true,
    statuses: BUDGETED,
    metric: 'map_sg',
    run: (s, b, q) => s.mapSg(b, q.pages === true, q.explain === true),
    cost: mapSgCost,
  }),
  map_page: call<MapPageInput, CallQuery>({
    name: 'map_page',
    trace: 'map_page',
    tag: 'dma',
    summary: 'dma_map_page / dma_map_single',
    description: 'dma_address 0xffffffffffffffff (DMA_MAPPING_ERROR) with `error` when Linux fails the call.',
    body: S.MapPageBody,
    result: S.MapPageResult,
    query: S.PagesQuery,
    opcode: OP.map_page,
    makesHandle: true,
    statuses: BUDGETED,
    metric: 'map_page',
    run: (s, b, q) => s.mapPage(b, q.pages === true),
    cost: mapPageCost,
  }),
  unmap: call<UnmapInput, CallQuery>({
    name: 'unmap',
    trace: 'unmap',
    tag: 'dma',
    summary: 'dma_unmap_sg / dma_unmap_page of a handle',
    description: 'Optional dir, size, nents are checked against the mapping as dma-debug does.',
    body: S.UnmapBody,
    result: S.UnmapResult,
    opcode: OP.unmap,
    makesHandle: false,
    statuses: BASE,
    metric: 'unmap',
    run: (s, b) => s.unmap(b),
    cost: () => ONE,
  }),
  sync: call<SyncInput, CallQuery>({
    name: 'sync',
    trace: 'sync',
    tag: 'dma',
    summary: 'dma_sync_*_for_cpu / _for_device: cache maintenance and swiotlb copies',
    body: S.SyncBody,
    result: S.SyncResult,
    opcode: OP.sync,
    makesHandle: false,
    statuses: BUDGETED,
    metric: 'sync',
    run: (s, b) => s.sync(b),
    cost: () => ONE,
  }),
  alloc_coherent: call<AllocCoherentInput, CallQuery>({
    name: 'alloc_coherent',
    trace: 'alloc_coherent',
    tag: 'dma',
    summary: 'dma_alloc_coherent: zeroed pages mapped for the device',
    body: S.AllocCoherentBody,
    result: S.AllocCoherentResult,
    opcode: OP.json,
    makesHandle: true,
    statuses: BUDGETED,
    metric: 'alloc_coherent',
    run: (s, b) => s.allocCoherent(b),
    // `phys` lists every page: ~24 bytes each. A buffer larger than the session's RAM is
    // refused by the page allocator (ENOMEM, as Linux answers) before any page is touched.
    cost: (b, _q, u) => {
      const pages = b.size > u.memoryLimit ? 0 : Math.ceil(b.size / u.pageSize);
      return { work: 1 + pages, bytes: FIXED_BYTES + 24 * pages };
    },
  }),
  free_coherent: call<FreeCoherentInput, CallQuery>({
    name: 'free_coherent',
    trace: 'free_coherent',
    tag: 'dma',
    summary: 'dma_free_coherent',
    body: S.FreeCoherentBody,
    result: S.FreeCoherentResult,
    opcode: OP.json,
    makesHandle: false,
    statuses: BASE,
    metric: 'free_coherent',
    run: (s, b) => s.freeCoherent(b),
    cost: () => ONE,
  }),
  flush: call<FlushInput, CallQuery>({
    name: 'flush',
    trace: 'flush',
    tag: 'dma',
    summary: 'Drain the non-strict flush queue now (and with rcache:true, the rcache magazines)',
    body: S.FlushBody,
    result: S.FlushResult,
    opcode: OP.json,
    makesHandle: false,
    statuses: BASE,
    metric: 'flush',
    run: (s, b) => s.flush(b),
    cost: () => ONE,
  }),
  batch: call<BatchInput, CallQuery>({
    name: 'batch',
    trace: 'batch',
    tag: 'dma',
    summary: 'Several calls in order; {"ref": i} stands for the handle op i returned',
    body: S.BatchBody,
    result: S.BatchResult,
    opcode: null,
    makesHandle: false,
    statuses: BUDGETED,
    metric: null,
    run: (s, b) => s.batch(b),
    cost: (b, _q, u) => batchCost(b.ops, u),
  }),
  'cpu/write': memoryCall<CpuWriteInput>('cpu/write', "CPU stores (into its cache when the device isn't coherent)", S.CpuWriteBody, (s, b) => s.cpuWrite(b), (b) => writeCost(b.data)),
  'cpu/read': memoryCall<CpuReadInput>('cpu/read', 'CPU loads: what the CPU sees, stale lines included', S.CpuReadBody, (s, b) => s.cpuRead(b), (b) => readCost(b.length)),
  'device/write': memoryCall<DeviceWriteInput>(
    'device/write',
    'Device DMA write through the IOMMU (or swiotlb); a fault instead of data when Linux would fault',
    S.DeviceWriteBody,
    (s, b) => s.deviceWrite(b),
    (b) => writeCost(b.data),
  ),
  'device/read': memoryCall<DeviceReadInput>('device/read', 'Device DMA read through the IOMMU (or swiotlb)', S.DeviceReadBody, (s, b) => s.deviceRead(b), (b) => readCost(b.length)),
};

export const CALL_SPECS: readonly CallSpec[] = Object.values(CALL_TABLE);

/** The calls /batch holds as ops (schemas/batch.ts's BatchOp), by op name. */
export const BATCH_CALLS: ReadonlyMap<string, CallSpec> = new Map(CALL_SPECS.filter((c) => c.opcode !== null).map((c) => [c.name, c]));

/** Every call by its trace name. */
export const TRACE_CALLS: ReadonlyMap<string, CallSpec> = new Map(CALL_SPECS.filter((c) => c.name !== 'batch').map((c) => [c.trace, c]));

// ---- /batch ops -------------------------------------------------------------------------------

/** A /batch op as its call's body and query: `op` dropped, the query's fields (pages, explain) split off. */
export function splitOp(op: BatchOpInput): { spec: CallSpec; body: Record<string, unknown>; query: CallQuery } {
  const spec = BATCH_CALLS.get(op.op) as CallSpec;
  const queryKeys = QUERY_KEYS.get(spec.name);
  const body: Record<string, unknown> = {};
  const query: Record<string, unknown> = {};
  for (const k in op) {
    if (k === 'op') continue;
    const v = (op as Record<string, unknown>)[k];
    if (queryKeys?.has(k)) query[k] = v;
    else body[k] = v;
  }
  return { spec, body, query };
}

const QUERY_KEYS: ReadonlyMap<CallName, ReadonlySet<string>> = new Map(CALL_SPECS.map((c) => [c.name, new Set(c.query ? Object.keys(c.query.shape) : [])]));

/** DMAEMU_MAX_BATCH_OPS, checked before any op runs. */
export function checkBatchOps(n: number, max: number): void {
  if (n > max) throw new DmaemuError('DMAEMU_TOO_MANY_BATCH_OPS', `a batch may hold at most ${max} ops`, 'ops');
}

export function batchCost(ops: readonly BatchOpInput[], u: CostUnit): Cost {
  let work = 0;
  let bytes = 16;
  for (const op of ops) {
    const { spec, body, query } = splitOp(op);
    const c = spec.cost(body, query, u);
    work += c.work;
    bytes += c.bytes;
  }
  return { work, bytes };
}

type Result = BatchOut['results'][number];
type HandleOrRef = number | { ref: number };

/** `{ref: i}` → the handle op i returned (refs name earlier ops of the same batch). */
function resolve(h: HandleOrRef, k: number, results: readonly Result[]): number {
  if (typeof h === 'number') return h;
  const field = `ops.${k}.handle.ref`;
  if (h.ref >= k) throw invalid(field, `ref ${h.ref} must name an earlier op of this batch`);
  const r = results[h.ref] as { handle?: unknown };
  if (typeof r.handle !== 'number') throw invalid(field, `op ${h.ref} returned no handle`);
  return r.handle;
}

/**
 * /batch: ops run in order against one session; each op's result is what the single call would
 * answer, or its error body — one failing op does not stop the others (a harness sees exactly
 * which step went wrong). A generator, so one dispatch serves the whole run (runBatch) and the
 * sliced one (execute.ts), which yields to the event loop between ops: each `yield` is the
 * work the op just did.
 */
export function* batchSteps(s: CallTarget, input: BatchInput, unit: CostUnit | null): Generator<number, BatchOut> {
  const results: Result[] = [];
  for (let k = 0; k < input.ops.length; k++) {
    const { spec, body, query } = splitOp(input.ops[k] as BatchOpInput);
    try {
      if ('handle' in body) body.handle = resolve(body.handle as HandleOrRef, k, results);
      results.push(spec.run(s, body, query) as Result);
    } catch (err) {
      if (!(err instanceof DmaemuError) || err.code === 'DMAEMU_INTERNAL') throw err;
      results.push(err.toBody());
    }
    if (unit) yield spec.cost(body, query, unit).work;
  }
  return { results };
}

/** A whole batch in one go (Session.batch: tests, benchmarks, restore's replay). */
export function runBatch(s: CallTarget, input: BatchInput): BatchOut {
  const it = batchSteps(s, input, null);
  let r = it.next();
  while (!r.done) r = it.next();
  return r.value;
}
