// The call table (src/service/calls.ts) is the one list of DMA calls: every other list of them —
// the journal's names, the routes and their OpenAPI statuses, /batch's JSON ops and binary
// opcodes, the trace op names, the metrics labels — must hold exactly its calls. A call added to
// the table and forgotten in one of them (or the reverse) fails here, naming where.

import t from 'tap';
import { buildApp } from '../src/service/app.js';
import { CALL_SPECS, CALL_TABLE, type CallSpec } from '../src/service/calls.js';
import { CALLS, type CallName } from '../src/service/store/op-store.js';
import { DMA_CALLS } from '../src/core/observer.js';
import { BatchOp, TraceOp } from '../schemas/index.js';
import { OP } from '../schemas/batch-binary.js';
import { client } from './helpers/http.js';

const names = (specs: readonly CallSpec[]): string[] => specs.map((c) => c.name).sort();

t.test('the table has one entry per journaled call name (store/op-store.ts CALLS), keyed by its own name', async (t) => {
  t.same(Object.keys(CALL_TABLE).sort(), [...CALLS].sort());
  for (const [key, spec] of Object.entries(CALL_TABLE)) t.equal(spec.name, key, `${key}: name matches its key`);
});

t.test('every call is a route, and /openapi.json lists 200 and each status the call can answer', async (t) => {
  const app = await buildApp({ logLevel: 'silent', dataDir: null });
  t.teardown(() => app.close());
  const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, { post?: { responses: Record<string, unknown>; tags: string[] } }> }>();
  for (const spec of CALL_SPECS) {
    const op = doc.paths[`/v1/sessions/{id}/${spec.name}`]?.post;
    if (!op) {
      t.fail(`${spec.name}: no POST route in /openapi.json`);
      continue;
    }
    t.same(Object.keys(op.responses).sort(), ['200', ...spec.statuses.map(String)].sort(), `${spec.name}: its statuses`);
    t.same(op.tags, [spec.tag], `${spec.name}: tag ${spec.tag}`);
  }
  // The memory budget refuses maps, coherent allocations and memory that grows (issue 22: map_page's 507 was missing).
  for (const name of ['map_sg', 'map_page', 'alloc_coherent', 'batch', 'cpu/write'] as const) t.ok(CALL_TABLE[name].statuses.includes(507), `${name} may answer 507`);
});

t.test('/batch holds exactly the calls with an opcode; fixed binary records keep schemas/batch-binary.ts numbering', async (t) => {
  const batchOps = BatchOp.options.map((o) => o.shape.op.value).sort();
  t.same(batchOps, names(CALL_SPECS.filter((c) => c.opcode !== null)), 'BatchOp options = calls with an opcode');
  const fixed: Record<string, number> = { map_sg: OP.map_sg, map_page: OP.map_page, unmap: OP.unmap, sync: OP.sync };
  for (const spec of CALL_SPECS.filter((c) => c.opcode !== null)) t.equal(spec.opcode, fixed[spec.name] ?? OP.json, `${spec.name}: opcode`);
});

t.test('trace op names are the table\'s (schemas/trace.ts TraceOp), each call but /batch itself, which a trace flattens', async (t) => {
  const traceOps = [...TraceOp.shape.op.options].sort();
  t.same(traceOps, CALL_SPECS.filter((c) => c.name !== 'batch').map((c) => c.trace).sort());
  t.same(
    names(CALL_SPECS.filter((c) => c.makesHandle)),
    ['alloc_coherent', 'map_page', 'map_sg'],
    'dma_map_sg, dma_map_page and dma_alloc_coherent hand out handles (their answers carry `handle` a later op may `ref`)',
  );
});

t.test('metrics: the core observer\'s DMA_CALLS are the table\'s metric names, and each has a /metrics series', async (t) => {
  const metrics = CALL_SPECS.flatMap((c) => (c.metric ? [c.metric] : [])).sort();
  t.same(metrics, [...DMA_CALLS].sort());
  const app = await buildApp({ logLevel: 'silent', dataDir: null });
  t.teardown(() => app.close());
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  for (const m of metrics) t.match(text, `dmaemu_dma_calls_total{op="${m}",result="ok"}`, `${m} has a series`);
});

// One valid request per call (a Record over CallName: a new call does not compile without one).
// Handles: the session maps in this order, so map_sg → 1, map_page → 2, alloc_coherent → 3.
const REQUESTS: Record<CallName, { body: unknown; query?: string }> = {
  map_sg: { body: { dir: 'to_device', sg: [{ phys: '0x90000000', length: 4096 }] } },
  map_page: { body: { dir: 'from_device', phys: '0x91000000', size: 4096 }, query: 'pages=true' },
  alloc_coherent: { body: { size: 4096 } },
  sync: { body: { handle: 2, for: 'cpu' } },
  'cpu/write': { body: { phys: '0x90000000', data: 'AAEC' } },
  'cpu/read': { body: { phys: '0x90000000', length: 3 } },
  'device/write': { body: { dma_address: '0xfffff000', data: 'AAEC' } },
  'device/read': { body: { dma_address: '0xfffff000', length: 3 } },
  batch: { body: { ops: [{ op: 'flush' }] } },
  flush: { body: {} },
  unmap: { body: { handle: 1 } },
  free_coherent: { body: { handle: 3 } },
};

t.test('every call runs over HTTP, is journaled, and comes back in the trace under its trace name', async (t) => {
  const app = await buildApp({ logLevel: 'silent', dataDir: null });
  t.teardown(() => app.close());
  const c = client(app);
  const s = await c.session();
  for (const [name, r] of Object.entries(REQUESTS)) {
    const res = await c.post(`${s.url}/${name}`, r.body, r.query ? { query: r.query } : {});
    t.equal(res.status, 200, `${name} answers 200`);
  }
  const trace = (await c.get(`${s.url}/trace`)).body as { ops: { op: string }[] };
  const seen = new Set(trace.ops.map((o) => o.op));
  for (const spec of CALL_SPECS) {
    // /batch is flattened into its ops (here one flush).
    if (spec.name !== 'batch') t.ok(seen.has(spec.trace), `${spec.name} is in the trace as ${spec.trace}`);
  }
  t.equal(trace.ops.length, CALL_SPECS.length, 'one trace op per call made (the batch of one flush is one op)');
  // The trace rebuilds a session whose every answer is the one logged.
  const rebuilt = await c.post('/v1/sessions', { trace });
  t.equal(rebuilt.status, 201);
  t.same((rebuilt.body.replay as { mismatches: unknown[] }).mismatches, [], 'no mismatch');
});
