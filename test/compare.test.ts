// POST /v1/compare over HTTP (app.inject): the 2015 thread's {64k, 16k, 64k} list under every
// layout and without an IOMMU, side by side, worked by hand from semantics §3, §4 and §7 (the
// README's table); a trace with `ref`; the differences marked; malformed bodies answered with a
// 400 naming the field; and nothing left in the session store.
import t from 'tap';
import { buildApp } from '../src/service/app.js';
import { client, type Obj } from './helpers/http.js';

const THREAD = [
  { phys: '0x90000000', length: 65536 },
  { phys: '0x91000000', length: 16384 },
  { phys: '0x92000000', length: 65536 },
];

type Row = { op: number; name: string; results: Record<string, Obj | null>; differs: string[]; same: boolean };
const segs = (a: Obj | null | undefined) => ((a?.segments ?? []) as Obj[]).map((s) => [s.dma_address, s.dma_length]);

t.test('compare', async (t) => {
  const app = await buildApp({ logLevel: 'silent' });
  t.teardown(() => app.close());
  const c = client(app);

  t.test('the thread list, default device: four columns worked from §3, §4, §7', async (t) => {
    const r = await c.post('/v1/compare', { sg: THREAD });
    t.equal(r.status, 200);
    t.same((r.body.columns as Obj[]).map((col) => col.column), ['linux', 'linux-4.4', 'arm-legacy', 'no-iommu']);
    const row = (r.body.ops as Row[])[0] as Row;
    t.equal(row.name, 'map_sg');
    const { linux, 'linux-4.4': v44, 'arm-legacy': armL, 'no-iommu': none } = row.results;
    // linux: 36 pfns, aligned to 64 below 0x100000 − 36 → 0xfffc0; laid back to back; split by
    // max_segment_size 65536 at entries 1 and 2.
    t.same(segs(linux), [['0xfffc0000', 65536], ['0xfffd0000', 16384], ['0xfffd4000', 65536]]);
    t.same(linux?.iova, { start: '0xfffc0000', size: 147456 });
    // linux-4.4: entry 2 padded to a 64 KiB boundary (0x14000 → 0x20000), 48 pfns → 64.
    t.same(segs(v44), [['0xfffc0000', 65536], ['0xfffd0000', 16384], ['0xfffe0000', 65536]]);
    t.same(v44?.iova, { start: '0xfffc0000', size: 262144 });
    // arm-legacy: three chunks, each its own allocation from the bitmap at aperture 0; the third
    // (64 KiB, order 4) aligned to 64 KiB past 0x14000 → 0x20000.
    t.same(segs(armL), [['0x0', 65536], ['0x10000', 16384], ['0x20000', 65536]]);
    t.same(armL?.iova_ranges, [{ start: '0x0', size: 65536 }, { start: '0x10000', size: 16384 }, { start: '0x20000', size: 65536 }]);
    // No IOMMU: dma_address = phys, never merged.
    t.same(segs(none), [['0x90000000', 65536], ['0x91000000', 16384], ['0x92000000', 65536]]);
    t.equal(none?.iova, null);
    // nents is 3 everywhere, so it is not marked; addresses and verdicts are.
    t.notOk(row.differs.includes('nents'));
    t.ok(row.differs.includes('segments'));
    t.ok(row.differs.includes('iova'));
    t.ok(row.differs.includes('explain.verdict'));
    t.equal(row.same, false);
    t.equal((linux?.explain as Obj).verdict, 'one contiguous IOVA range, not one segment (3 segments); max_segment_size ≥ 147456 would give one segment');
    t.equal((v44?.explain as Obj).verdict, 'not one contiguous IOVA range, not one segment (3 segments); no device parameter would give one segment (entries 1, 2: v4.4_never_merges)');
  });

  t.test('the thread list with max_segment_size UINT_MAX: linux and arm-legacy give one segment, the others three; nents marked', async (t) => {
    const r = await c.post('/v1/compare', { session: { device: { max_segment_size: 4294967295 } }, sg: THREAD });
    const row = (r.body.ops as Row[])[0] as Row;
    t.same(segs(row.results.linux), [['0xfffc0000', 147456]]);
    // arm-legacy: 0x10000 + 0x4000 + 0x10000 ≤ UINT_MAX: one chunk of 0x24000 at 0.
    t.same(segs(row.results['arm-legacy']), [['0x0', 147456]]);
    t.equal(row.results['linux-4.4']?.nents, 3);
    t.equal(row.results['no-iommu']?.nents, 3);
    t.ok(row.differs.includes('nents'));
  });

  t.test('a trace: ref names the handle of an earlier op in each column; the unmap row marks the differing IOVA', async (t) => {
    const r = await c.post('/v1/compare', { ops: [{ op: 'map_sg', dir: 'to_device', sg: THREAD }, { op: 'unmap', ref: 0 }] });
    const rows = r.body.ops as Row[];
    t.same(rows.map((x) => x.name), ['map_sg', 'unmap']);
    const unmapRow = rows[1] as Row;
    for (const col of ['linux', 'linux-4.4', 'arm-legacy', 'no-iommu']) t.equal(unmapRow.results[col]?.handle, 1, `${col} unmapped handle 1`);
    t.same(unmapRow.results['linux-4.4']?.iova, { start: '0xfffc0000', size: 262144 });
    t.same(unmapRow.differs, ['iova']);
  });

  t.test('an op every column answers alike is marked same', async (t) => {
    // flush: nothing queued anywhere (strict domains), every column answers {0, 0}.
    const r = await c.post('/v1/compare', { ops: [{ op: 'flush' }] });
    const row = (r.body.ops as Row[])[0] as Row;
    t.same(row.differs, []);
    t.equal(row.same, true);
  });

  t.test('a column whose config Linux refuses is reported, the others still run', async (t) => {
    // A 40-bit aperture: arm_iommu_create_mapping maps at most 4 GiB.
    const r = await c.post('/v1/compare', { session: { iommu: { aperture: { start: '0x0', end: '0xffffffffff' } } }, sg: THREAD });
    const cols = r.body.columns as Obj[];
    t.equal((cols[2]?.error as Obj).code, 'DMAEMU_INVALID_ARGUMENT');
    t.equal(cols[2]?.config, null);
    const row = (r.body.ops as Row[])[0] as Row;
    t.equal(row.results['arm-legacy'], null);
    t.equal(row.results.linux?.nents, 3);
  });

  t.test('malformed bodies are 400s naming the field', async (t) => {
    const bad = await c.post('/v1/compare', { sg: [{ phys: 'zz', length: 1 }] });
    t.equal(bad.status, 400);
    t.match(bad.body.message, /^body\.sg\.0\.phys/);
    const badOp = await c.post('/v1/compare', { ops: [{ op: 'map_sg', dir: 'to_device', sg: [{ phys: 'zz', length: 1 }] }] });
    t.equal(badOp.status, 400);
    t.match(badOp.body.message, /^ops\.0\.sg\.0\.phys/);
    const neither = await c.post('/v1/compare', {});
    t.equal(neither.status, 400);
    t.match(neither.body.message, /^body\.ops: give either ops/);
    const tooMany = await c.post('/v1/compare', { ops: Array.from({ length: 257 }, () => ({ op: 'flush' })) });
    t.equal(tooMany.status, 400);
    t.match(tooMany.body.message, /^body\.ops/);
    const unknown = await c.post('/v1/compare', { sg: THREAD, layout: 'linux' });
    t.equal(unknown.status, 400);
  });

  t.test('map_sg ?explain=true over HTTP: the explanation survives validation and serialization', async (t) => {
    const s = await c.session({});
    const r = await c.post(`${s.url}/map_sg`, { dir: 'to_device', sg: THREAD }, { query: 'explain=true' });
    const why = r.body.explain as Obj;
    t.same(((why.breaks as Obj[])[0] as Obj).values, { max_segment_size: 65536, cur_len: 65536, length: 16384 });
    t.same(why.would_merge_with, { max_segment_size: 147456 });
    const plain = await c.post(`${s.url}/map_sg`, { dir: 'to_device', sg: THREAD });
    t.equal(plain.body.explain, undefined, 'absent unless asked');
    const bad = await c.post(`${s.url}/map_sg`, { dir: 'to_device', sg: THREAD }, { query: 'explain=yes' });
    t.equal(bad.status, 400);
    t.match(bad.body.message, /explain/);
  });

  t.test('the sessions a compare uses are temporary: the store holds none afterwards', async (t) => {
    const before = app.store.size;
    await c.post('/v1/compare', { sg: THREAD });
    t.equal(app.store.size, before);
  });
});
