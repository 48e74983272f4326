// Traces (issue 12, item 4): GET /v1/sessions/{id}/trace exports a session in the vector
// format; POST /v1/sessions { trace } rebuilds it and reports every answer that differs from
// the op's `expect`. Checked: a mixed workload's trace replays with zero mismatches into a
// session that is observably the same; the trace of that rebuilt session is the same trace;
// editing the layout reports the ops Linux answers differently; every file of test/vectors
// replays with zero mismatches; bad traces are refused before anything is created.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../src/service/app.js';
import { client, type Obj } from './helpers/http.js';
import { loadVectors } from './helpers/vectors.js';
import { observe, readRegion, runWorkload } from './helpers/workload.js';

const app = await buildApp({ logLevel: 'silent' });
t.teardown(() => app.close());
const c = client(app);

t.test('a trace replays with zero mismatches into the same session, and exports the same trace again', async (t) => {
  for (const config of [{ layout: 'linux' }, { layout: 'arm-legacy' }, { iommu: null, swiotlb: { force: true } }]) {
    const s = await c.session(config);
    await runWorkload(c, s.url, 7, 120);
    const trace = await c.get(`${s.url}/trace`);
    t.equal(trace.status, 200);
    const ops = trace.body.ops as Obj[];
    t.ok(ops.length >= 120, `${ops.length} ops (batches flattened)`);
    t.ok(ops.some((o) => typeof o.ref === 'number'), 'handles are refs to the op that returned them');
    t.ok(ops.some((o) => o.op === 'cpu_write') && ops.some((o) => o.op === 'device_read'), 'memory calls are in it');
    const r = await c.post('/v1/sessions', { trace: trace.body });
    t.equal(r.status, 201, JSON.stringify(config));
    t.same(r.body.replay, { ops: ops.length, mismatches: [] }, 'zero mismatches');
    const url = `/v1/sessions/${r.body.id as string}`;
    const strip = (o: Obj): Obj => ({ ...o, summary: { ...(o.summary as Obj), id: null } });
    t.same(strip(await observe(c, url)), strip(await observe(c, s.url)), 'summary, mappings, findings and faults are the original’s');
    t.same(await readRegion(c, url), await readRegion(c, s.url), 'and so are the bytes');
    // readRegion added the same calls to both: their traces are still each other's.
    const again = (await c.get(`${url}/trace`)).body;
    const mine = (await c.get(`${s.url}/trace`)).body;
    t.same(again.ops, mine.ops, 'the rebuilt session exports the same ops with the same answers');
  }
});

t.test('the same trace under another layout reports where Linux answers differently', async (t) => {
  const s = await c.session({ layout: 'linux', device: { dma_mask: '0xffffffff' }, iommu: { strict: true } });
  const sg = ['0x81000000', '0x83000000', '0x82000000', '0x84000000'].map((phys) => ({ phys, length: 4096 }));
  await c.post(`${s.url}/map_sg`, { dir: 'to_device', sg });
  const trace = (await c.get(`${s.url}/trace`)).body;
  const edited = { ...trace, session: { ...(trace.session as Obj), layout: 'linux-4.4' } };
  const r = await c.post('/v1/sessions', { trace: edited });
  t.equal(r.status, 201);
  const mismatches = (r.body.replay as Obj).mismatches as Obj[];
  // linux concatenates the four pages into one 16 KiB segment; linux-4.4 gives four (semantics §3, §4;
  // the linux-merge-default and linux-4.4-no-merge vectors).
  t.same(
    mismatches.find((m) => m.field === 'nents'),
    { op: 0, field: 'nents', expected: 1, got: 4 },
  );
  t.ok(mismatches.some((m) => m.field === 'segments'), 'the segments differ too');
  t.notOk(mismatches.some((m) => m.field === 'iova'), 'the IOVA allocation is the same 16 KiB at 0xffffc000 under both');
});

for (const v of loadVectors()) {
  t.test(`vector ${v.file} POSTed as a trace replays with zero mismatches [${v.rule}]`, async (t) => {
    const r = await c.post('/v1/sessions', { trace: { name: v.name, rule: v.rule, session: v.session, ops: v.ops } });
    t.equal(r.status, 201);
    t.same(r.body.replay, { ops: v.ops.length, mismatches: [] });
  });
}

t.test('a bad trace is refused with a 400 naming the field, before any session exists', async (t) => {
  const before = (await c.get('/healthz')).body.sessions;
  const bad = await c.post('/v1/sessions', { trace: { session: { layout: 'linux' }, ops: [{ op: 'map_page', phys: '0x1000', size: 4096, dir: 'to_device' }, { op: 'map_sg', dir: 'to_device', sg: [{ phys: 'nope', length: 1 }] }] } });
  t.equal(bad.status, 400);
  t.match(bad.body.message, /^trace\.ops\.1\.sg\.0\.phys/);
  const both = await c.post('/v1/sessions', { layout: 'linux', trace: { ops: [] } });
  t.equal(both.status, 400);
  t.match(both.body.message, /^trace: a trace carries its own session config; drop layout/);
  const op = await c.post('/v1/sessions', { trace: { ops: [{ op: 'mmap' }] } });
  t.equal(op.status, 400);
  t.match(op.body.message, /trace\.ops\.0\.op/);
  t.equal((await c.get('/healthz')).body.sessions, before, 'no session was created');
});

t.test('a ref to an op that returned no handle is that op’s mismatch, not a crash', async (t) => {
  // dma_mask 0xfff: no IOVA fits a 64 KiB map, so op 0 fails (handle null) and op 1 has nothing to unmap.
  const r = await c.post('/v1/sessions', {
    trace: {
      session: { device: { dma_mask: '0xfff' } },
      ops: [{ op: 'map_page', phys: '0x10000', size: 65536, dir: 'to_device', expect: { handle: 1 } }, { op: 'unmap', ref: 0, expect: { handle: 1 } }],
    },
  });
  t.equal(r.status, 201);
  const ms = (r.body.replay as Obj).mismatches as Obj[];
  t.same(ms.map((m) => [m.op, m.field]), [[0, 'handle'], [1, 'handle'], [1, 'code']]);
});

t.test('a compacted session has no trace: 409 DMAEMU_TRACE_UNAVAILABLE', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dmaemu-trace-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const a = await buildApp({ logLevel: 'silent', dataDir: dir, journal: { compactMinBytes: 1024, compactRatio: 1 } });
  t.teardown(() => a.close());
  const ca = client(a);
  const s = await ca.session({ layout: 'linux' });
  t.equal((await ca.get(`${s.url}/trace`)).status, 200, 'a fresh session has a trace');
  await runWorkload(ca, s.url, 3, 60);
  const r = await ca.get(`${s.url}/trace`);
  t.equal(r.status, 409);
  t.equal(r.body.code, 'DMAEMU_TRACE_UNAVAILABLE');
  t.match(r.body.message, /first \d+ calls were folded into a snapshot/);
});
