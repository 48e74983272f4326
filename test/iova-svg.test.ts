// GET /v1/sessions/{id}/iova.svg: the drawn ranges, read back from the SVG with a real XML
// parser (fast-xml-parser), against /mappings and against addresses worked by hand from the
// Linux rules; reserved, rcache and flush-queue ranges and the cached nodes; zoom and
// validation; and a million live mappings aggregated into a small picture.
import t from 'tap';
import { XMLParser } from 'fast-xml-parser';
import { buildApp } from '../src/service/app.js';
import { iovaPicture } from '../src/core/iova-picture.js';
import { LEFT, RIGHT, pictureToSvg } from '../src/service/iova-svg.js';
import { asText, client, type Obj } from './helpers/http.js';
import { session } from './helpers/dma-core.js';

interface Rect {
  lane: string;
  cat: string;
  start: string;
  end: string;
  count: number;
  x: number;
  w: number;
}
interface Svg {
  rects: Rect[];
  markers: { name: string; addr: string }[];
  ticks: string[];
  attrs: Record<string, string>;
}

const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', parseTagValue: false, isArray: (name) => ['g', 'rect', 'text', 'line', 'path', 'title'].includes(name) });

/** Every rect.span and g.marker in the document, wherever it is nested. */
function readSvg(text: string): Svg {
  const doc = parser.parse(text) as { svg?: Record<string, unknown> };
  if (!doc.svg) throw new Error('no <svg> root');
  const out: Svg = { rects: [], markers: [], ticks: [], attrs: {} };
  for (const [k, v] of Object.entries(doc.svg)) if (typeof v === 'string') out.attrs[k] = v;
  const walk = (node: unknown, tag: string): void => {
    if (Array.isArray(node)) {
      for (const n of node) walk(n, tag);
      return;
    }
    if (typeof node !== 'object' || node === null) return;
    const o = node as Record<string, unknown>;
    if (tag === 'rect' && o.class === 'span') {
      out.rects.push({
        lane: String(o['data-lane']),
        cat: String(o['data-cat']),
        start: String(o['data-start']),
        end: String(o['data-end']),
        count: Number(o['data-count']),
        x: Number(o.x),
        w: Number(o.width),
      });
    }
    if (tag === 'g' && o.class === 'marker') out.markers.push({ name: String(o['data-marker']), addr: String(o['data-addr']) });
    if (tag === 'text' && o.class === 'tick') out.ticks.push(String(o['#text']));
    for (const [k, v] of Object.entries(o)) walk(v, k);
  };
  walk(doc.svg, 'svg');
  return out;
}

const app = await buildApp({ logLevel: 'silent' });
t.teardown(() => app.close());
const c = client(app);

async function svgOf(url: string, query = ''): Promise<Svg> {
  const r = await c.get(`${url}/iova.svg`, query ? { query } : {});
  if (r.status !== 200) throw new Error(`iova.svg → ${r.status}: ${r.text}`);
  if (!String(r.headers['content-type']).startsWith('image/svg+xml')) throw new Error(`content-type ${String(r.headers['content-type'])}`);
  return readSvg(r.text);
}

const THREAD = [
  { phys: '0x90000000', length: 65536 },
  { phys: '0x91000000', length: 16384 },
  { phys: '0x92000000', length: 65536 },
];

/**
 * linux layout, defaults (32-bit dma_mask, 4 KiB granule, strict), worked by hand:
 *  1. map_page 4 KiB from_device: 1 pfn below the 32-bit limit → 0xfffff000; cached32 = 0xfffff.
 *  2. map_sg of the thread's list to_device: 144 KiB = 36 pfns (≥ 32: not rounded), aligned to
 *     64 pfns, from cached32 down: alignDown(0xfffff − 36, 0x40) = 0xfffc0 → 0xfffc0000 + 144 KiB.
 *  3. alloc_coherent 8 KiB: 2 pfns, aligned to 2, below cached32 = 0xfffc0 → 0xfffbe000.
 * cached32_node ends at pfn 0xfffbe; cached_node stays the anchor (nothing above 4 GiB).
 */
async function knownSession(): Promise<string> {
  const s = await c.session({});
  const p = await c.post(`${s.url}/map_page`, { phys: '0x80000000', size: 4096, dir: 'from_device' });
  t.equal(p.body.dma_address, '0xfffff000');
  const g = await c.post(`${s.url}/map_sg`, { dir: 'to_device', sg: THREAD });
  t.same(g.body.iova, { start: '0xfffc0000', size: 147456 });
  const k = await c.post(`${s.url}/alloc_coherent`, { size: 8192 });
  t.equal(k.body.dma_handle, '0xfffbe000');
  return s.url;
}

t.test('zoomed to 0xfff00000–0xffffffff at 1 KiB a column: each mapping drawn exactly where worked by hand', async (t) => {
  const url = await knownSession();
  // width 1128 = 1024 columns + LEFT + RIGHT; x = (address − 0xfff00000) / 1024.
  t.equal(LEFT + RIGHT + 1024, 1128);
  const svg = await svgOf(url, 'start=0xfff00000&end=0xffffffff&width=1128');
  t.equal(svg.attrs['data-scale'], 'linear', 'a zoom window defaults to the linear scale');
  const dir = svg.rects.filter((r) => r.lane === 'dir');
  t.same(dir, [
    { lane: 'dir', cat: 'bidirectional', start: '0xfffbe000', end: '0xfffc0000', count: 1, x: 0xbe000 / 1024, w: 8 },
    { lane: 'dir', cat: 'to_device', start: '0xfffc0000', end: '0xfffe4000', count: 1, x: 0xc0000 / 1024, w: 144 },
    { lane: 'dir', cat: 'from_device', start: '0xfffff000', end: '0x100000000', count: 1, x: 0xff000 / 1024, w: 4 },
  ]);
  t.same(
    svg.rects.filter((r) => r.lane === 'kind').map((r) => [r.cat, r.x, r.w]),
    [
      ['coherent', 760, 8],
      ['map_sg', 768, 144],
      ['map_page', 1020, 4],
    ],
  );
  t.same(svg.markers, [{ name: 'cached32_node', addr: '0xfffbe000' }], 'cached32_node at the last 32-bit allocation; no 4 GiB line inside the window');
  t.ok(svg.ticks.includes('0xfff00000') && svg.ticks.includes('0x100000000'), 'the axis is labelled in hex at both ends');
});

t.test('every range /mappings lists is drawn in its direction and kind (exact when zoomed, inside its span in the whole view)', async (t) => {
  const url = await knownSession();
  const rows = (await c.get(`${url}/mappings`)).body.mappings as Obj[];
  t.equal(rows.length, 3);
  // Zoomed to 1 KiB a column every boundary is a column boundary: start and end are exact. In
  // the whole log view the 8 KiB coherent buffer is under a pixel and shares a column with the
  // map_sg next to it, so a span may reach past one range (its data-start/end cover the column).
  for (const [query, exact] of [['start=0xfff00000&end=0xffffffff', true], ['', false]] as const) {
    const svg = await svgOf(url, query);
    for (const row of rows) {
      for (const r of row.iova_ranges as Obj[]) {
        const s = BigInt(r.start as string);
        const e = s + BigInt(r.size as number);
        const fits = (x: Rect): boolean => (exact ? BigInt(x.start) === s && BigInt(x.end) === e : BigInt(x.start) <= s && BigInt(x.end) >= e);
        const what = `${query || 'whole view'}: ${asText(row.kind)} 0x${s.toString(16)}–0x${e.toString(16)}`;
        t.ok(svg.rects.some((x) => x.lane === 'dir' && x.cat === row.dir && fits(x)), `${what} as ${asText(row.dir)}`);
        t.ok(svg.rects.some((x) => x.lane === 'kind' && x.cat === row.kind && fits(x)), `${what} as ${asText(row.kind)}`);
      }
    }
  }
});

t.test('default view: log scale, split at 4 GiB; a 4 KiB mapping at the top of 32 bits is visibly wide', async (t) => {
  const url = await knownSession();
  const svg = await svgOf(url, 'width=1200');
  t.equal(svg.attrs['data-scale'], 'log');
  t.equal(svg.attrs['data-window-end'], '0xffffffffffff', 'the whole 48-bit aperture');
  t.same(svg.markers.map((m) => m.name).sort(), ['4GiB', 'cached32_node']);
  // 1096 columns, the low panel [0, 4 GiB) takes 548; its upper half (274 columns) is
  // log2(1 + d/4096) / log2(1 + 2^31/4096) of the way down from 4 GiB, d the distance below it.
  // The page at 0xfffff000 has d ∈ [0, 4096]: x from 548 − 274·1/log2(524289) = 548 − 14.42
  // = 533.58 to 548, i.e. columns 533..547.
  const page = svg.rects.find((r) => r.lane === 'dir' && r.cat === 'from_device');
  t.match(page, { x: 533, w: 15, start: '0xfffff000', end: '0x100000000' });
  // The map_sg: d from 0x1c000 (28 pfns) to 0x40000 (64 pfns): 548 − 274·log2(65)/19 = 461.5
  // to 548 − 274·log2(29)/19 = 477.9, columns 461..477.
  const sg = svg.rects.find((r) => r.lane === 'dir' && r.cat === 'to_device');
  t.match(sg, { x: 461, w: 17 });
});

t.test('allocator lane: reserved regions, rcache-held and flush-queue ranges', async (t) => {
  // reserve_iova of [0x8000000, 0x80fffff] (whole granules): drawn as given.
  const r = await c.session({ iommu: { reserved: [{ start: '0x8000000', end: '0x80fffff' }] } });
  // Strict: unmap → free_iova_fast → the order-0 rcache keeps pfn 0xfffff (still in the tree).
  const h = (await c.post(`${r.url}/map_page`, { phys: '0x80000000', size: 4096, dir: 'to_device' })).body.handle;
  await c.post(`${r.url}/unmap`, { handle: h });
  const a = (await svgOf(r.url, 'start=0x0&end=0xffffffff&scale=log')).rects.filter((x) => x.lane === 'allocator');
  t.same(
    a.map((x) => [x.cat, x.start, x.end]),
    [
      ['reserved', '0x8000000', '0x8100000'],
      ['rcache', '0xfffff000', '0x100000000'],
    ],
  );
  // Non-strict: the free waits in the flush queue instead (queue_iova).
  const q = await c.session({ iommu: { strict: false } });
  const h2 = (await c.post(`${q.url}/map_page`, { phys: '0x80000000', size: 8192, dir: 'to_device' })).body.handle;
  await c.post(`${q.url}/unmap`, { handle: h2 });
  const b = (await svgOf(q.url, 'start=0xfff00000&end=0xffffffff')).rects.filter((x) => x.lane === 'allocator');
  // 2 pfns, size-aligned below the limit: 0xffffe000–0x100000000.
  t.same(b.map((x) => [x.cat, x.start, x.end]), [['flush_queue', '0xffffe000', '0x100000000']]);
  // After /flush the queue drains into the rcache (free_iova_fast).
  await c.post(`${q.url}/flush`, {});
  const after = (await svgOf(q.url, 'start=0xfff00000&end=0xffffffff')).rects.filter((x) => x.lane === 'allocator');
  t.same(after.map((x) => x.cat), ['rcache']);
});

t.test('linux-4.4: the range an unmap left allocated is drawn as a stray; the handle whose range it freed is not drawn', async (t) => {
  // page 64 KiB, granule 4 KiB (test/layout-rules.test.ts works the same case): A 0x80000000 →
  // pfn 0xfffff; B 0x80001000 → pfn 0xffffe, handle 0xffffe000 + the CPU-page offset 0x1000 =
  // 0xfffff000. Unmapping B frees the range holding pfn 0xfffff — A's — and leaves B's
  // [0xffffe000, 0xfffff000) allocated and mapped with no live handle.
  const s = await c.session({ layout: 'linux-4.4', page_size: 65536, device: { coherent: true }, iommu: { granule: 4096 } });
  const a = await c.post(`${s.url}/map_sg`, { dir: 'to_device', sg: [{ phys: '0x80000000', length: 4096 }] });
  const b = await c.post(`${s.url}/map_sg`, { dir: 'to_device', sg: [{ phys: '0x80001000', length: 4096 }] });
  t.same([a.body.iova, b.body.iova], [{ start: '0xfffff000', size: 4096 }, { start: '0xffffe000', size: 4096 }]);
  await c.post(`${s.url}/unmap`, { handle: b.body.handle });
  const svg = await svgOf(s.url, 'start=0xfff00000&end=0xffffffff');
  t.same(
    svg.rects.map((r) => [r.lane, r.cat, r.start, r.end]),
    [['allocator', 'stray', '0xffffe000', '0xfffff000']],
  );
  t.equal(svg.attrs['data-mappings'], '1', 'A is still a live handle');
  t.equal(svg.attrs['data-drawn'], '0', 'but it holds no IOVA any more');
});

t.test('arm-legacy and no-IOMMU sessions are drawn too', async (t) => {
  const arm = await c.session({ layout: 'arm-legacy' });
  await c.post(`${arm.url}/map_sg`, { dir: 'to_device', sg: THREAD });
  const a = await svgOf(arm.url);
  t.equal(a.attrs['data-window-end'], '0xffffffff', 'arm-legacy: a 4 GiB aperture');
  // 0x0 (64K) and 0x10000 (16K) touch: one to_device span; 0x20000 (64K) after a 48 KiB gap.
  t.same(
    a.rects.filter((r) => r.lane === 'dir').map((r) => [r.cat, r.start, r.end]),
    [
      ['to_device', '0x0', '0x14000'],
      ['to_device', '0x20000', '0x30000'],
    ],
  );
  const direct = await c.session({ iommu: null });
  await c.post(`${direct.url}/map_page`, { phys: '0x80000000', size: 4096, dir: 'from_device' });
  const d = await svgOf(direct.url);
  t.same(
    d.rects.filter((r) => r.lane === 'dir').map((r) => [r.cat, r.start, r.end]),
    [['from_device', '0x80000000', '0x80001000']],
    'dma-direct: the DMA address is the physical one',
  );
});

t.test('bad queries are a 400 naming the field; an unknown session a 404', async (t) => {
  const s = await c.session({});
  const cases: [string, RegExp][] = [
    ['start=0xzz', /^querystring\.start: /],
    ['end=0x10000000000000000', /^querystring\.end: /],
    ['start=0x2000&end=0x1000', /^querystring\.end: must not be below start/],
    ['width=100', /^querystring\.width: /],
    ['width=9000', /^querystring\.width: /],
    ['scale=cubic', /^querystring\.scale: /],
    ['zoom=2', /^querystring\.zoom: /],
  ];
  for (const [query, msg] of cases) {
    const r = await c.get(`${s.url}/iova.svg`, { query });
    t.equal(r.status, 400, query);
    t.match(r.body.message, msg, query);
  }
  t.equal((await c.get('/v1/sessions/nope/iova.svg')).status, 404);
});

t.test('a million live mappings: one span per occupied column at most, every mapping counted once, under 256 KiB', async (t) => {
  // Built through the core (an HTTP request per mapping would take minutes): 64-bit mask, so
  // the million 4 KiB pages (3.8 GiB of IOVA) go top-down below 2^48; directions alternate, so
  // neighbouring columns disagree and aggregation is what keeps the picture small.
  const s = session({ device: { dma_mask: '0xffffffffffffffff' } });
  const dirs = ['to_device', 'from_device', 'bidirectional'] as const;
  const N = 1_000_000;
  for (let i = 0; i < N; i++) {
    const r = s.mapPage({ phys: 0x80000000 + (i % 4096) * 4096, size: 4096, dir: dirs[i % 3] as (typeof dirs)[number] });
    if (r.handle === null) throw new Error(`map ${i} failed: ${JSON.stringify(r.error)}`);
  }
  const t0 = process.hrtime.bigint();
  const picture = iovaPicture(s.config, s.iovaState(), { columns: 1200 - LEFT - RIGHT, scale: 'log' });
  const text = pictureToSvg(picture, { title: 'a million', tooltip: 'a million', note: 'log' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  t.comment(`1M mappings: picture + SVG in ${ms.toFixed(0)} ms, ${text.length} bytes`);
  const svg = readSvg(text);
  t.ok(text.length < 256 * 1024, `${text.length} bytes < 256 KiB`);
  for (const lane of ['dir', 'kind']) {
    const rs = svg.rects.filter((r) => r.lane === lane);
    t.ok(rs.length <= 1200 - LEFT - RIGHT, `${lane}: ${rs.length} spans, at most one per column`);
    t.equal(rs.reduce((n, r) => n + r.count, 0), N, `${lane}: the spans' counts add up to every mapping`);
  }
  // Top-down and back to back from 2^48: 10^6 × 4 KiB = 0xf4240000 bytes, so the lowest page
  // starts at 0x1000000000000 − 0xf4240000 = 0xffff0bdc0000 and the highest ends at 2^48.
  const dir = svg.rects.filter((r) => r.lane === 'dir');
  t.equal(dir.reduce((m, r) => (BigInt(r.start) < BigInt(m) ? r.start : m), '0xffffffffffffffff'), '0xffff0bdc0000');
  t.equal(dir.reduce((m, r) => (BigInt(r.end) > BigInt(m) ? r.end : m), '0x0'), '0x1000000000000');
});

t.test('the legend lists only what the session can draw: its layout and domain decide', async (t) => {
  const app = await buildApp({ logLevel: 'silent' });
  t.teardown(() => app.close());
  const c = client(app);
  const legendOf = async (config: Obj): Promise<string[]> => {
    const s = await c.session(config);
    const r = await app.inject({ method: 'GET', url: `${s.url}/iova.svg?width=2000` });
    const texts = [...r.body.matchAll(/<g class="legend"[^]*?<\/g>/g)][0]?.[0].matchAll(/<text[^>]*>([^<]*)<\/text>/g) ?? [];
    return [...texts].map((m) => m[1] ?? '');
  };
  const mapped = ['to device', 'from device', 'bidirectional', 'map sg', 'map page', 'coherent'];
  // iova.c: the rcache exists in today's allocator only (added in v4.7); the flush queue only in a
  // non-strict domain (iommu_dma_free_iova → queue_iova); v4.4's stray ranges only in v4.4.
  t.same(await legendOf({ layout: 'linux' }), [...mapped, 'reserved', 'rcache']);
  t.same(await legendOf({ layout: 'linux', iommu: { strict: false } }), [...mapped, 'reserved', 'rcache', 'flush queue']);
  t.same(await legendOf({ layout: 'linux-4.4' }), [...mapped, 'reserved', 'stray (v4.4 unmap left it)']);
  t.same(await legendOf({ layout: 'arm-legacy' }), [...mapped, 'reserved']);
  t.same(await legendOf({ layout: 'linux', iommu: null }), mapped, 'no IOMMU: no allocator lane to explain');
});
