// Importing the kernel's dma tracepoints (src/service/ftrace.ts, docs/ftrace.md): the raw
// excerpt of the 6.12 recording (test/kernel-recordings/ftrace/, the lines exactly as the
// kernel printed them, CRLF and all) and one line of each later format written by hand from
// include/trace/events/dma.h, against golden files worked by hand; merged scatterlists rebuilt
// from __finalise_sg's rules; malformed lines named by number; the whole 6.12 recording
// imported and replayed; and POST /v1/import/ftrace with its limits.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import t from 'tap';
import { SessionCreateBody } from '../schemas/session.js';
import { buildApp } from '../src/service/app.js';
import { importFtrace, rebuildMerged, type ImportResult } from '../src/service/ftrace.js';
import { parseTraceOps, traceSteps, type TraceOpIn } from '../src/service/replay.js';
import { sliced } from '../src/service/execute.js';
import { SessionStore } from '../src/service/session-store.js';
import { client, type Obj } from './helpers/http.js';
import { loadRecording, sessionBody } from './helpers/kernel-replay.js';

const dir = new URL('./kernel-recordings/', import.meta.url);
const fixture = (name: string): string => readFileSync(new URL(`ftrace/${name}`, dir), 'utf8');
const golden = (name: string): unknown => JSON.parse(fixture(name)) as unknown;

async function errorOf(text: string): Promise<string> {
  try {
    await importFtrace(text);
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
}

t.test('6.12 recording excerpt, device 0000:00:03.0: dma_map_sg with ents = nents is the scatterlist itself, dma_unmap_sg refers to the map with the same phys_addrs (golden)', async (t) => {
  // Line 13: nents=3/3 ents=3/3: nothing merged, so segment i is entry i and its sizes[i] is
  // the entry's length: 0x10000, 0x4000, 0x10000 at phys 0x4430000, 0x2cb8000, 0x4440000. Each
  // later dma_unmap_sg names its map by the same phys list: line 15 → op 0, line 17 → op 1
  // (line 14), line 18 → op 3 (line 16), line 20 → op 6 (line 19). Nothing traced says the
  // device's limits: only its PCI name (bus pci) and dma_addr ≠ phys (an IOMMU).
  const r = await importFtrace(fixture('linux-6.12-excerpt.trace'));
  const d = r.devices.find((x) => x.device === '0000:00:03.0');
  t.same(d, golden('linux-6.12-excerpt.0000-00-03.0.golden.json'));
});

t.test('6.12 recording excerpt: the counts, and merged lists that more than one scatterlist fits are listed with their line, as are their unmaps', async (t) => {
  // 12 header lines + 8 (00:03.0) + 8 (00:04.0) + 40 (00:05.0) + 200 (00:14.0) event lines.
  const r = await importFtrace(fixture('linux-6.12-excerpt.trace'));
  t.same([r.lines, r.dma_events, r.other_events], [268, 256, 0]);
  // 00:04.0 (lines 21–28): the thread list as ONE 0x24000 segment from 3 entries. With a first
  // offset of 0 the two first entries need ≥ 0x1000 each and could hold 0x1000·k: 0x24000 >
  // 3·0x1000, so many lists fit. Maps at 21, 22, 24, 27; their unmaps at 23, 25, 26, 28.
  const d4 = r.unexpressed.filter((u) => u.device === '0000:00:04.0');
  t.same(
    d4.map((u) => [u.line, u.event]),
    [[21, 'dma_map_sg'], [22, 'dma_map_sg'], [23, 'dma_unmap_sg'], [24, 'dma_map_sg'], [25, 'dma_unmap_sg'], [26, 'dma_unmap_sg'], [27, 'dma_map_sg'], [28, 'dma_unmap_sg']],
  );
  t.match(d4[0]?.reason, /^3 entries were merged into 1 segments and more than one scatterlist fits them/);
  t.equal(d4[2]?.reason, 'its map (line 21) could not be expressed, so neither can this');
  t.equal(r.devices.find((x) => x.device === '0000:00:04.0')?.trace.ops.length, 0);
  // 00:14.0: every dma_alloc has its dma_free, every map its unmap: all 200 events expressed.
  const d14 = r.devices.find((x) => x.device === '0000:00:14.0');
  t.equal(d14?.trace.ops.length, 200);
  t.equal(r.unexpressed.filter((u) => u.device === '0000:00:14.0').length, 0);
  // line 245 … : the first dma_alloc: size 4096 at dma 0xfffff000 (dir=BIDIRECTIONAL virt_addr=… as 6.12-stable prints it).
  t.same(d14?.trace.ops[0], { op: 'alloc_coherent', size: 4096, expect: { dma_handle: '0xfffff000' } });
  t.same(d14?.trace.ops[1], { op: 'map_page', phys: '0x2278000', size: 4096, dir: 'to_device', expect: { dma_address: '0xffffe000' } });
});

t.test('7.x formats (dma_map_phys, [TRUNCATED], dir/virt_addr on dma_alloc, syncs, MMIO, trace-cmd report layout): golden', async (t) => {
  // 0000:01:00.0: line 7 dma_map_phys 4096 at phys 0x12340000 → dma 0xfffff000 (op 0); line 8
  // syncs 256 bytes at 0xfffff800, inside op 0 at offset 0x800 = 2048; line 9 unmaps it with
  // SKIP_CPU_SYNC; line 10 dma_map_sg, 2/2 entries, nothing merged (op 3); line 11 syncs the
  // list whose first segment is 0xffffe000 (op 3), nents 2; line 12 unmaps it; line 13
  // dma_alloc 8192 at 0xffff0000 (op 6), freed at line 14.
  // fe100000.dma: dma_addr = phys (0x80000000): dma-direct, so iommu null; line 16 is MMIO,
  // line 17 truncated (128 of 130), line 18 a failed map_sg, line 19 dma_alloc_pages: listed;
  // line 20 unmaps op 0. Line 21 (sched_switch) is another subsystem's: counted, not read.
  t.same(await importFtrace(fixture('linux-7.x-formats.trace')), golden('linux-7.x-formats.golden.json'));
});

t.test('7.x: the imported traces replay: the IOMMU device under linux, the dma-direct one without an IOMMU', async (t) => {
  const r = await importFtrace(fixture('linux-7.x-formats.trace'), { expect: false });
  for (const d of r.devices) {
    const s = new SessionStore().create(SessionCreateBody.parse(d.trace.session));
    const rep = await sliced(traceSteps(s, await sliced(parseTraceOps(d.trace.ops as TraceOpIn[], 'ops')), s.costUnit, { answers: true, calls: false }));
    t.equal(rep.answers.filter((a) => typeof a === 'object' && a !== null && 'code' in a).length, 0, `${d.device}: no op refused`);
  }
});

t.test('rebuildMerged: __finalise_sg merges only entries that start on a granule after one that ends on one, so a merged list is rebuilt when one choice remains', async (t) => {
  const B = (xs: number[]) => xs.map(BigInt);
  // Recorded (00:05.0): 4 entries, 3 segments at offsets 0, 0x800, 0. Entry 2 (0x2bcc800)
  // starts 0x800 into a granule, so it starts a segment: segment 1 (0xffff2800). Entry 3 is
  // segment 2. Segment 0 = entries 0, 1, 0x2000 bytes: entry 0 must end on a granule (≥ 0x1000)
  // and entry 1 hold ≥ 1: 0x2000 ≤ 2·0x1000, so 0x1000 + 0x1000.
  t.same(rebuildMerged(B([0x40c2000, 0x40c1000, 0x2bcc800, 0x40c0000]), B([0xffff0000, 0xffff2800, 0xffff4000]), [0x2000, 0x1000, 0x1000], 4096), { lengths: [0x1000, 0x1000, 0x1000, 0x1000], firsts: [0, 2, 3] });
  // Recorded: 3 entries, one segment 0x1600 at offset 0xe00: entry 0 = 0x1000 − 0xe00 = 0x200,
  // entry 1 = 0x1000, entry 2 = 0x1600 − 0x1200 = 0x400 (0x1600 + 0xe00 = 0x2400 ≤ 3·0x1000).
  t.same(rebuildMerged(B([0x40c5e00, 0x40c4000, 0x40c3000]), B([0xffff8e00]), [0x1600], 4096), { lengths: [0x200, 0x1000, 0x400], firsts: [0] });
  // Recorded: 0x40befff (offset 0xfff), 0x40bd000, 0x40bcfff (offset 0xfff) in segments of 2 and
  // 1 byte: entry 2 has an offset, so it is segment 1 (1 byte); entry 0 ends on a granule with
  // 1 byte, entry 1 takes the other 1.
  t.same(rebuildMerged(B([0x40befff, 0x40bd000, 0x40bcfff]), B([0xfff7cfff, 0xfff7efff]), [2, 1], 4096), { lengths: [1, 1, 1], firsts: [0, 2] });
  // The thread list as one 0x24000 segment: 0x1000·k + … for many k: no answer.
  t.equal(rebuildMerged(B([0x4430000, 0x2cb8000, 0x4440000]), B([0xfffc0000]), [0x24000], 4096), 'more than one scatterlist fits them');
  // An entry inside a granule cannot join a segment: 2 entries, the second at offset 0x10, one segment.
  t.equal(rebuildMerged(B([0x1000, 0x2010]), B([0xfffff000]), [0x1010], 4096), 'no scatterlist fits the merge rules');
});

t.test('malformed input: the error names the line and what is wrong with it', async (t) => {
  const ok = '  app-1 [000] .....  1.000000: dma_map_page: 0000:00:02.0 dir=TO_DEVICE dma_addr=fffff000 size=4096 phys_addr=1000 attrs=';
  t.equal(await errorOf(`# tracer: nop\n${ok}\nthis is not a trace line\n`), 'text: line 3: not an ftrace event line (TASK-PID [CPU] FLAGS TIMESTAMP: EVENT: fields): "this is not a trace line"');
  t.equal(await errorOf(`${ok}\n${ok.replace(' size=4096', '')}\n`), 'text: line 2: dma_map_page: no size= field');
  t.equal(await errorOf(ok.replace('dma_addr=fffff000', 'dma_addr=zz')), 'text: line 1: dma_map_page: dma_addr=zz is not a hex address');
  t.equal(await errorOf(ok.replace('dir=TO_DEVICE', 'dir=SIDEWAYS')), 'text: line 1: dma_map_page: dir=SIDEWAYS is not TO_DEVICE, FROM_DEVICE, BIDIRECTIONAL or NONE');
  t.equal(await errorOf(ok.replace('0000:00:02.0 ', '')), 'text: line 1: dma_map_page: no device name before the fields');
  const sg = '  app-1 [000] .....  1.000000: dma_map_sg: 0000:00:02.0 dir=TO_DEVICE nents=3/3 ents=1/1 dma_addrs={0x1000} sizes={0x1000} phys_addrs={0x1000,0x2000} attrs=';
  t.equal(await errorOf(sg), 'text: line 1: dma_map_sg: nents/ents say 3/1 traced, the arrays hold 2/1');
  t.equal(await errorOf(sg.replace('sizes={0x1000}', 'sizes={0x1000,0x1}')), 'text: line 1: dma_map_sg: 1 dma_addrs but 2 sizes');
  t.equal(await errorOf(sg.replace('phys_addrs={0x1000,0x2000}', 'phys_addrs={0x1000,2000,0x3000}')), 'text: line 1: dma_map_sg: phys_addrs holds 2000, not a 0x hex value');
  t.equal(await errorOf(`${ok}\n`.repeat(3)), 'no error', 'the good line alone is fine');
});

t.test('limits: more dma events than maxEvents is an error naming DMAEMU_MAX_IMPORT_EVENTS', async (t) => {
  const ok = '  app-1 [000] .....  1.000000: dma_sync_single_for_cpu: 0000:00:02.0 dir=TO_DEVICE dma_addr=fffff000 size=64\n';
  await t.rejects(importFtrace(ok.repeat(6), { maxEvents: 5 }), { message: 'text: more than 5 dma events (DMAEMU_MAX_IMPORT_EVENTS); split the trace or record fewer' });
});

t.test('a large import yields to the event loop between slices (SLICE_MS) instead of holding it', async (t) => {
  const text = fixture('linux-6.12-excerpt.trace').repeat(200); // 53 600 lines
  let ticks = 0;
  const tick = (): void => {
    ticks++;
    if (!done) setImmediate(tick);
  };
  let done = false;
  setImmediate(tick);
  await importFtrace(text, { maxEvents: 1e6 });
  done = true;
  t.ok(ticks > 1, `other callbacks ran during the import (${ticks})`);
});

t.test('the whole 6.12 recording: every imported scatterlist is the one the module mapped, and every fully expressed device replays with no mismatch', async (t) => {
  const text = gunzipSync(readFileSync(new URL('linux-6.12-intel-iommu.trace.gz', dir))).toString('utf8');
  const recs = loadRecording(new URL('linux-6.12-intel-iommu.jsonl.gz', dir).pathname);
  // Each device's limits are not in the trace: take them from the module's device lines.
  const r: ImportResult = await importFtrace(text, { devices: Object.fromEntries(recs.map((x) => [x.device.pci, sessionBody(x.device)])) });
  let lists = 0;
  let rebuilt = 0;
  const wrong: string[] = [];
  for (const rec of recs) {
    const want = rec.calls.filter((c) => c.op === 'map_sg' && c.nents > 0) as { sg: [string, number][]; nents: number }[];
    const got = (r.devices.find((d) => d.device === rec.device.pci)?.trace.ops ?? []).filter((o) => o.op === 'map_sg') as { sg: { phys: string; length: number }[] }[];
    let k = 0;
    for (const g of got) {
      // The next recorded list with the same phys addresses (skipped ones were not imported).
      while (k < want.length && !((want[k]?.sg.length ?? 0) === g.sg.length && want[k]?.sg.every((e, i) => BigInt(e[0]) === BigInt(g.sg[i]?.phys ?? -1)))) k++;
      const w = want[k++];
      if (!w || !g.sg.every((e, i) => e.length === w.sg[i]?.[1])) wrong.push(`${rec.device.seq}: imported list ${lists}`);
      if (w && w.nents !== w.sg.length) rebuilt++;
      lists++;
    }
  }
  t.same(wrong, [], 'every imported list has the lengths the module mapped');
  t.comment(`${lists} imported scatterlists equal the module's (${rebuilt} rebuilt from merged segments); ${r.unexpressed.length} events not expressed`);
  t.ok(rebuilt > 0, 'some merged lists were rebuilt');
  const lossy = new Set(r.unexpressed.map((u) => u.device));
  t.same(new Set(r.unexpressed.map((u) => u.event)), new Set(['dma_map_sg', 'dma_unmap_sg']), 'only ambiguous merged lists (and their unmaps) are left out');
  let clean = 0;
  for (const d of r.devices) {
    if (lossy.has(d.device)) continue;
    const s = new SessionStore().create(SessionCreateBody.parse(d.trace.session));
    const rep = await sliced(traceSteps(s, await sliced(parseTraceOps(d.trace.ops as TraceOpIn[], 'ops')), s.costUnit, { answers: true, calls: false }));
    t.same(rep.mismatches, [], `${d.device}: ${d.trace.ops.length} ops replay as the kernel answered`);
    clean++;
  }
  // 00:03.0, 0b, 0c, 0d, 0e, 12, 13, 14 and 15 map no list that more than one scatterlist fits
  // (15 with two 1 s sleeps: the depot trim the import puts where 100 ms passed); 00:16.0
  // (thread-max-seg-zero, issue 24) maps the thread's {64k, 16k, 64k} with max_segment_size 0,
  // read as 64 KiB: every entry is its own segment (nents = ents), so nothing is ambiguous.
  const cleanDevices = r.devices.filter((d) => !lossy.has(d.device)).map((d) => d.device.slice('0000:00:'.length));
  t.same(cleanDevices, ['03.0', '0b.0', '0c.0', '0d.0', '0e.0', '12.0', '13.0', '14.0', '15.0', '16.0'], 'ten of the 22 devices fully expressed');
  t.equal(clean, cleanDevices.length);
});

t.test('POST /v1/import/ftrace', async (t) => {
  const app = await buildApp({ logLevel: 'silent', dataDir: null, importLimits: { bodyLimit: 4096, maxEvents: 50 } });
  t.teardown(() => app.close());
  const c = client(app);
  const seven = fixture('linux-7.x-formats.trace');

  t.test('JSON {text}: the same answer as the reader (golden)', async (t) => {
    const r = await c.post('/v1/import/ftrace', { text: seven });
    t.equal(r.status, 200);
    t.same(r.body, golden('linux-7.x-formats.golden.json'));
  });

  t.test('JSON options: session, devices, device', async (t) => {
    const r = await c.post('/v1/import/ftrace', { text: seven, device: 'fe100000.dma', session: { layout: 'linux-4.4', device: { dma_mask: '0xffffffffff' } } });
    t.equal(r.status, 200);
    const devs = r.body.devices as Obj[];
    t.same(devs.map((d) => d.device), ['fe100000.dma']);
    // The options' device fields are kept as written; the bus and iommu: null come from the trace.
    t.same((devs[0]?.trace as Obj).session, { layout: 'linux-4.4', device: { dma_mask: '0xffffffffff', bus: 'platform' }, iommu: null });
    const bad = await c.post('/v1/import/ftrace', { text: seven, session: { device: { segment_boundary_mask: 'zz' } } });
    t.equal(bad.status, 400);
    t.match(bad.body.message, /session\.device\.segment_boundary_mask/);
  });

  t.test('text/plain: the trace itself, device in the query', async (t) => {
    const r = await app.inject({ method: 'POST', url: '/v1/import/ftrace?device=0000:01:00.0&expect=false', headers: { 'content-type': 'text/plain' }, payload: seven.split('\n').slice(0, 14).join('\n') });
    t.equal(r.statusCode, 200);
    const body = r.json<{ devices: { device: string; trace: { ops: Obj[] } }[] }>();
    t.same(body.devices.map((d) => d.device), ['0000:01:00.0']);
    t.equal(body.devices[0]?.trace.ops[0]?.expect, undefined, 'expect=false leaves the answers out');
  });

  t.test('a line that is not an ftrace event: 400 naming it', async (t) => {
    const r = await c.post('/v1/import/ftrace', { text: 'cpus=1\nnonsense here\n' });
    t.equal(r.status, 400);
    t.equal(r.body.code, 'DMAEMU_INVALID_ARGUMENT');
    t.match(r.body.message, /^text: line 2: not an ftrace event line/);
  });

  t.test('over DMAEMU_IMPORT_BODY_LIMIT (text/plain): 413 naming it; over DMAEMU_MAX_IMPORT_EVENTS: 400 naming it', async (t) => {
    const big = await app.inject({ method: 'POST', url: '/v1/import/ftrace', headers: { 'content-type': 'text/plain' }, payload: seven.repeat(3) });
    t.equal(big.statusCode, 413);
    t.same(big.json(), { statusCode: 413, error: 'Payload Too Large', code: 'DMAEMU_BODY_TOO_LARGE', message: 'the trace is over DMAEMU_IMPORT_BODY_LIMIT (4096 bytes)' });
    const line = '  app-1 [000] .....  1.000000: dma_sync_single_for_cpu: 0000:00:02.0 dir=TO_DEVICE dma_addr=fffff000 size=64\n';
    const many = await c.post('/v1/import/ftrace', { text: line.repeat(51) });
    t.equal(many.status, 400);
    t.equal(many.body.message, 'text: more than 50 dma events (DMAEMU_MAX_IMPORT_EVENTS); split the trace or record fewer');
  });

  t.test('POST /v1/compare {ftrace, vary}: one device\'s traced calls under each max_segment_size, side by side, differences marked', async (t) => {
    const excerpt = fixture('linux-6.12-excerpt.trace');
    const r = await c.post('/v1/compare', { ftrace: { text: excerpt, device: '0000:00:03.0' }, vary: { max_segment_size: [65536, 4294967295] } });
    t.equal(r.status, 200);
    t.same(r.body.imported, { device: '0000:00:03.0', unexpressed: [] });
    const varied = r.body.varied as Obj;
    t.equal(varied.layout, 'linux');
    t.same((varied.columns as Obj[]).map((col) => col.set), [{ max_segment_size: 65536 }, { max_segment_size: 4294967295 }]);
    const first = (varied.ops as Obj[])[0] as Obj;
    const [narrow, wide] = first.results as Obj[];
    // 65536: __finalise_sg stops at 65536 − 65536 < 16384 and 65536 − 16384 < 65536: the three
    // segments the kernel traced. UINT_MAX: one segment of 65536 + 16384 + 65536 = 147456 at the
    // allocation's start, 36 pfns aligned to 64 below 0x100000 → 0xfffc0000.
    t.same(narrow?.segments, [{ dma_address: '0xfffc0000', dma_length: 65536 }, { dma_address: '0xfffd0000', dma_length: 16384 }, { dma_address: '0xfffd4000', dma_length: 65536 }]);
    t.same(wide?.segments, [{ dma_address: '0xfffc0000', dma_length: 147456 }]);
    t.same(first.differs, ['nents', 'segments', 'explain.verdict']);
    t.equal(((varied.ops as Obj[])[2] as Obj).same, true, 'the unmaps answer alike');
    // The layout columns are compare's own: linux gives the kernel's answer.
    const row = (r.body.ops as Obj[])[0] as Obj;
    t.same(((row.results as Obj).linux as Obj).segments, narrow?.segments);
  });

  t.test('POST /v1/compare: several devices without ftrace.device, an unparseable line, too many variants: 400s naming the field', async (t) => {
    const excerpt = fixture('linux-6.12-excerpt.trace');
    const several = await c.post('/v1/compare', { ftrace: { text: excerpt } });
    t.equal(several.status, 400);
    t.equal(several.body.message, 'ftrace.device: the text holds 4 devices (0000:00:03.0, 0000:00:04.0, 0000:00:05.0, 0000:00:14.0): name one');
    const bad = await c.post('/v1/compare', { ftrace: { text: 'cpus=1\nzzz\n' } });
    t.equal(bad.status, 400);
    t.match(bad.body.message, /^ftrace\.text: line 2: not an ftrace event line/);
    const many = await c.post('/v1/compare', { sg: [{ phys: '0x1000', length: 4096 }], vary: { max_segment_size: [1, 2, 3, 4, 5], dma_mask: ['0xffffffff', '0xffffffffff', '0xffffffffffff', '0xffffffffffffffff'] } });
    t.equal(many.status, 400);
    t.match(many.body.message, /vary.*20 combinations, more than 16/);
    const both = await c.post('/v1/compare', { sg: [{ phys: '0x1000', length: 4096 }], ftrace: { text: excerpt } });
    t.equal(both.status, 400);
  });

  t.test('text/plain stays refused (415) everywhere else', async (t) => {
    const r = await app.inject({ method: 'POST', url: '/v1/sessions', headers: { 'content-type': 'text/plain' }, payload: '{}' });
    t.equal(r.statusCode, 415);
  });

  t.test('an imported trace rebuilds a session through POST /v1/sessions {trace}, every answer as the kernel traced it', async (t) => {
    const excerpt = fixture('linux-6.12-excerpt.trace').split('\n').slice(0, 20).join('\n'); // header + 00:03.0
    const imp = await c.post('/v1/import/ftrace', { text: excerpt });
    t.equal(imp.status, 200);
    const trace = ((imp.body.devices as Obj[])[0] as Obj).trace as Obj;
    const s = await c.post('/v1/sessions', { trace });
    t.equal(s.status, 201);
    t.same(s.body.replay, { ops: 8, mismatches: [] });
  });
});

t.test('POST /v1/import/ftrace charges the text and its answer to the memory budget while it runs: 507 when they do not fit, nothing left charged after', async (t) => {
  const excerpt = fixture('linux-6.12-excerpt.trace');
  const text = excerpt.repeat(Math.ceil((600 * 1024) / excerpt.length)); // ≥ 600 KiB: over execute.ts's 64 KiB charge floor
  // charged() holds twice the estimate (the text as objects, the answer as JSON): 1.2 MiB.
  const small = await buildApp({ logLevel: 'silent', dataDir: null, limits: { memoryBudget: 1024 * 1024 } });
  t.teardown(() => small.close());
  const r = await small.inject({ method: 'POST', url: '/v1/import/ftrace', headers: { 'content-type': 'text/plain' }, payload: text });
  t.equal(r.statusCode, 507);
  t.equal(r.json<Obj>().code, 'DMAEMU_MEMORY_BUDGET');
  t.equal(small.store.budget.used, 0, 'the refused import left nothing charged');
  const big = await buildApp({ logLevel: 'silent', dataDir: null, limits: { memoryBudget: 4 * 1024 * 1024 } });
  t.teardown(() => big.close());
  const ok = await big.inject({ method: 'POST', url: '/v1/import/ftrace', headers: { 'content-type': 'text/plain' }, payload: text });
  t.equal(ok.statusCode, 200, 'the same text fits a 4 MiB budget');
  t.equal(big.store.budget.used, 0, 'and its charge went back with the answer');
});
