// Every endpoint of API.md through app.inject: its happy path with values worked by hand from
// the Linux rules (docs/linux-semantics.md), and every documented error code.
// The client in helpers/http.ts also checks, on every response, that addresses are lowercase
// hex, that no JSON number reaches 2^53, and that errors have Fastify's shape without stacks.
//
// Default session (API.md, semantics §2): platform device, 32-bit masks, max_segment_size
// 64 KiB, boundary mask all ones, 4 KiB pages and IOMMU granule, layout `linux`, strict.
// A fresh `linux` domain allocates top-down from the 32-bit limit: n pfns (rounded up to a
// power of two, aligned to it) land at pfn 0x100000 − n, so 1 pfn → 0xfffff000,
// 2 → 0xffffe000, 4 → 0xffffc000.

import t, { type Test } from 'tap';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/service/app.js';
import { ERROR_CODES } from '../src/core/errors.js';
import { FOOTPRINT } from '../src/core/memory-budget.js';
import { DEFAULT_STORE_LIMITS, SessionStore } from '../src/service/session-store.js';
import { asText, client, type Client, type Obj } from './helpers/http.js';

const DMA_MAPPING_ERROR = '0xffffffffffffffff';
/** API.md's example scatterlist: 3584 bytes at offset 0x200, then 8 KiB page-aligned. */
const API_SG = [
  { phys: '0x80001200', length: 3584 },
  { phys: '0x90000000', length: 8192 },
];

const seenCodes = new Set<string>();
let app: FastifyInstance;
let c: Client;

t.before(async () => {
  app = await buildApp({ logLevel: 'silent' });
  // A route that breaks an invariant the way a bug would, to see what a client gets back.
  app.get('/test-only/throws', async () => {
    throw new Error('secret internal detail at /srv/dmaemu/src/service/session.ts:42:7');
  });
  await app.ready();
  c = client(app, { seenCodes });
});
t.teardown(async () => app.close());

/** A fresh app with some limits lowered; closed when the test ends. */
async function appWith(t: Test, opts: Parameters<typeof buildApp>[0]): Promise<Client> {
  const a = await buildApp({ logLevel: 'silent', ...opts });
  t.teardown(() => a.close());
  return client(a, { seenCodes });
}

function expectError(t: Test, r: { status: number; body: Obj }, status: number, code: keyof typeof ERROR_CODES, field?: string): void {
  t.equal(r.status, status, `HTTP ${status}`);
  t.equal(r.body.code, code, code);
  if (field !== undefined) t.match(asText(r.body.message), field, `message names ${field}`);
}

// ---- sessions -----------------------------------------------------------------------------

t.test('POST /v1/sessions {} → 201 with the defaults Linux gives a device without dma_parms (semantics §2)', async (t) => {
  const r = await c.post('/v1/sessions', {});
  t.equal(r.status, 201);
  const cfg = r.body.config as Obj;
  t.match(cfg, {
    device: {
      bus: 'platform',
      dma_mask: '0xffffffff',
      coherent_dma_mask: '0xffffffff',
      max_segment_size: 65536,
      segment_boundary_mask: DMA_MAPPING_ERROR,
      coherent: false,
    },
    iommu: { granule: 4096, strict: true },
    layout: 'linux',
    page_size: 4096,
    swiotlb: { size: 64 * 1024 * 1024, force: false },
  });
});

t.test(
  'POST /v1/sessions without any body is the same as {} (every field is optional)',
  async (t) => {
    const r = await c.request('POST', '/v1/sessions');
    t.equal(r.status, 201);
    t.equal((r.body.config as Obj | undefined)?.layout, 'linux');
  },
);

t.test('layout linux-4.4 defaults segment_boundary_mask to 0xffffffff (the default before 2020)', async (t) => {
  const s = await c.session({ layout: 'linux-4.4' });
  t.equal((s.config.device as Obj).segment_boundary_mask, '0xffffffff');
});

t.test('hex input in any case and safe integers are accepted; output is lowercase hex, exact past 2^53', async (t) => {
  const s = await c.session({ device: { dma_mask: '0xFFFFFFFFFFFFFFFF', coherent_dma_mask: 68719476735 } });
  const dev = s.config.device as Obj;
  t.equal(dev.dma_mask, '0xffffffffffffffff', '64-bit mask round-trips as a string');
  t.equal(dev.coherent_dma_mask, '0xfffffffff', 'safe integer 2^36−1 comes back as hex');
  const m = await c.post(`${s.url}/map_page`, { phys: '0X9000ABC0', size: 64, dir: 'to_device' });
  t.equal(m.status, 200);
  const rows = (await c.get(`${s.url}/mappings`)).body.mappings as Obj[];
  t.same(rows[0]?.phys, ['0x9000abc0']);
  const n = await c.post(`${s.url}/map_page`, { phys: 0x9000abc0, size: 64, dir: 'to_device' });
  t.equal(n.status, 200, 'the same address as a number is accepted');
});

t.test('an IOVA above 2^53 travels as an exact hex string (64-bit mask, 64-bit aperture)', async (t) => {
  // limit pfn = 2^64−1 >> 12 = 0xfffffffffffff; one pfn at the very top → 0xfffffffffffff000.
  const s = await c.session({ device: { dma_mask: '0xffffffffffffffff' }, iommu: { aperture: { start: '0x0', end: '0xffffffffffffffff' } } });
  const r = await c.post(`${s.url}/map_page`, { phys: '0x80000000', size: 4096, dir: 'to_device' });
  t.equal(r.body.dma_address, '0xfffffffffffff000');
});

t.test('session ids carry at least 128 random bits (≥ 22 base64url chars) and never repeat', async (t) => {
  const ids = new Set<string>();
  for (let i = 0; i < 32; i++) {
    const s = await c.session();
    t.match(s.id, /^[A-Za-z0-9_-]{22,}$/, 'base64url, ≥ 22 chars');
    ids.add(s.id);
    await c.del(s.url);
  }
  t.equal(ids.size, 32, 'all distinct');
});

t.test('GET /v1/sessions/:id summarises config, live mappings and counters', async (t) => {
  const s = await c.session();
  let r = await c.get(s.url);
  t.equal(r.status, 200);
  t.match(r.body, { id: s.id, live_mappings: 0, live_coherent: 0, iova_bytes_in_use: 0, config: { layout: 'linux' } });
  await c.post(`${s.url}/map_sg`, { dir: 'to_device', sg: API_SG });
  await c.post(`${s.url}/alloc_coherent`, { size: 4096 });
  r = await c.get(s.url);
  t.match(r.body, { live_mappings: 1, live_coherent: 1, counters: { map_sg: 1, alloc_coherent: 1 } });
  t.ok((r.body.iova_bytes_in_use as number) > 0, 'IOVA space is in use');
});

t.test('DELETE /v1/sessions/:id → 200 with a leak report of what was still live; the id is then gone', async (t) => {
  const s = await c.session();
  const m = await c.post(`${s.url}/map_sg`, { dir: 'to_device', sg: API_SG });
  const a = await c.post(`${s.url}/alloc_coherent`, { size: 4096 });
  const r = await c.del(s.url);
  t.equal(r.status, 200);
  t.match(r.body, { id: s.id, leaked_mappings: 1, leaked_coherent: 1 });
  const leaks = r.body.leaks as Obj[];
  t.same(leaks.map((l) => l.handle).sort(), [m.body.handle, a.body.handle].sort());
  t.match(leaks.find((l) => l.kind === 'map_sg'), { dir: 'to_device', size: 3584 + 8192, dma_address: '0xffffc200' });
  t.ok((r.body.debug as Obj[]).some((d) => /pending DMA allocations/.test(asText(d.message))), 'dma-debug reports the leak in its words');
  expectError(t, await c.get(s.url), 404, 'DMAEMU_SESSION_NOT_FOUND');
  expectError(t, await c.del(s.url), 404, 'DMAEMU_SESSION_NOT_FOUND');
});

t.test("sessions share nothing: one session cannot see or free another's handles", async (t) => {
  const a = await c.session();
  const b = await c.session();
  await c.post(`${a.url}/map_page`, { phys: '0x80000000', size: 4096, dir: 'to_device' });
  const a2 = await c.post(`${a.url}/map_page`, { phys: '0x80001000', size: 4096, dir: 'to_device' });
  t.equal(a2.body.handle, 2);
  const bm = await c.post(`${b.url}/map_page`, { phys: '0x80000000', size: 4096, dir: 'to_device' });
  t.match(bm.body, { handle: 1, dma_address: '0xfffff000' }, "B's fresh domain allocates as if A did not exist");
  expectError(t, await c.post(`${b.url}/unmap`, { handle: 2 }), 404, 'DMAEMU_HANDLE_NOT_FOUND');
  expectError(t, await c.post(`${b.url}/sync`, { handle: 2, for: 'cpu' }), 404, 'DMAEMU_HANDLE_NOT_FOUND');
  t.same(((await c.get(`${a.url}/mappings`)).body.mappings as Obj[]).map((r) => r.handle), [1, 2], "A's mappings are untouched");
  t.ok(((await c.get(`${b.url}/debug`)).body.debug as Obj[]).length > 0, "B's misuse is in B's dma-debug log");
  t.same((await c.get(`${a.url}/debug`)).body.debug, [], "and not in A's");
});

t.test('an idle session expires after the TTL: 404 afterwards (over HTTP, TTL 200 ms)', async (t) => {
  const c2 = await appWith(t, { limits: { ttlMs: 200 } });
  const s = await c2.session();
  await new Promise((r) => setTimeout(r, 600));
  expectError(t, await c2.get(s.url), 404, 'DMAEMU_SESSION_NOT_FOUND');
  t.equal((await c2.get('/healthz')).body.sessions, 0, 'the sweep dropped it');
});

t.test('TTL counts idle time from the last call: idle exactly ttl survives, ttl+1 expires (injected clock)', async (t) => {
  let now = 1_000_000;
  const store = new SessionStore({ ...DEFAULT_STORE_LIMITS, ttlMs: 1000 }, () => now);
  const s = store.create({});
  now += 1000;
  t.equal(store.get(s.id), s, 'idle exactly ttlMs: still live');
  now += 1000; // idle ttl again since the get above refreshed it
  t.equal(store.get(s.id), s, 'each call refreshes lastUsed');
  now += 1001;
  t.throws(() => store.get(s.id), { code: 'DMAEMU_SESSION_NOT_FOUND' });
  const s2 = store.create({});
  now += 1001;
  t.equal(store.sweep(), 1, 'the sweep drops an idle session without a request');
  t.equal(store.size, 0);
  t.throws(() => store.get(s2.id), { code: 'DMAEMU_SESSION_NOT_FOUND' });
});

// ---- DMA operations: happy paths ------------------------------------------------------------

t.test("map_sg of API.md's example merges into one segment at 0xffffc200 (semantics §3)", async (t) => {
  // Entry 0: iova_off 0x200, 3584+0x200 = one granule; entry 1: two granules, starts on a
  // granule and 3584+8192 ≤ 65536, so it is concatenated. 3 pfns → 4 → pfn 0xffffc.
  const s = await c.session();
  const r = await c.post(`${s.url}/map_sg`, { dir: 'to_device', sg: API_SG });
  t.equal(r.status, 200);
  t.match(r.body, { handle: 1, nents: 1, segments: [{ dma_address: '0xffffc200', dma_length: 11776 }], iova: { start: '0xffffc000', size: 16384 } });
  t.equal((r.body.segments as Obj[]).length, r.body.nents, 'segments has exactly nents entries');
  t.notOk('pages' in r.body, 'no page rows unless asked');
  t.notOk('error' in r.body, 'no error object on success');
});

t.test('map_sg?pages=true lists one IOVA→phys row per granule mapped', async (t) => {
  const s = await c.session();
  const r = await c.post(`${s.url}/map_sg`, { dir: 'to_device', sg: API_SG }, { query: 'pages=true' });
  t.same(r.body.pages, [
    { iova: '0xffffc000', phys: '0x80001000' },
    { iova: '0xffffd000', phys: '0x90000000' },
    { iova: '0xffffe000', phys: '0x90001000' },
  ]);
});

t.test('map_page: handle = iova + iova_off, the allocation padded to granules (semantics §6)', async (t) => {
  // 0x200 + 4096 bytes need 2 granules → pfn 0xffffe; dma_address 0xffffe000 + 0x200.
  const s = await c.session();
  const r = await c.post(`${s.url}/map_page`, { phys: '0x80001200', size: 4096, dir: 'from_device' });
  t.match(r.body, { handle: 1, dma_address: '0xffffe200', iova: { start: '0xffffe000', size: 8192 } });
  const rows = (await c.get(`${s.url}/mappings`)).body.mappings as Obj[];
  t.match(rows, [{ handle: 1, kind: 'map_page', dir: 'from_device', size: 4096, segments: [{ dma_address: '0xffffe200', dma_length: 4096 }] }]);
});

t.test('unmap frees a map_sg or map_page handle and reports its IOVA range; a second unmap is 404', async (t) => {
  const s = await c.session();
  const sg = await c.post(`${s.url}/map_sg`, { dir: 'to_device', sg: API_SG });
  const pg = await c.post(`${s.url}/map_page`, { phys: '0x80000000', size: 4096, dir: 'to_device' });
  const u1 = await c.post(`${s.url}/unmap`, { handle: sg.body.handle, dir: 'to_device', nents: 2 });
  t.equal(u1.status, 200);
  t.same({ handle: u1.body.handle, iova: u1.body.iova }, { handle: sg.body.handle, iova: sg.body.iova });
  t.notOk('debug' in u1.body, 'matching dir and nents: dma-debug has nothing to say');
  const u2 = await c.post(`${s.url}/unmap`, { handle: pg.body.handle });
  t.same(u2.body.iova, pg.body.iova);
  t.same((await c.get(`${s.url}/mappings`)).body.mappings, [], 'no live mappings left');
  expectError(t, await c.post(`${s.url}/unmap`, { handle: sg.body.handle }), 404, 'DMAEMU_HANDLE_NOT_FOUND');
});

t.test('unmap with a different direction is done, and dma-debug reports it on the response and in /debug', async (t) => {
  const s = await c.session();
  const m = await c.post(`${s.url}/map_page`, { phys: '0x80000000', size: 4096, dir: 'to_device' });
  const u = await c.post(`${s.url}/unmap`, { handle: m.body.handle, dir: 'from_device' });
  t.equal(u.status, 200);
  const findings = u.body.debug as Obj[];
  t.ok(findings.some((f) => /different direction/.test(asText(f.message))), 'check_unmap: "frees DMA memory with different direction"');
  const all = (await c.get(`${s.url}/debug`)).body.debug as Obj[];
  t.ok(all.some((f) => /different direction/.test(asText(f.message)) && f.handle === m.body.handle), 'collected at GET /debug');
});

t.test('sync: for_device of TO_DEVICE cleans, for_cpu of FROM_DEVICE invalidates; coherent devices need nothing (§6, §8)', async (t) => {
  const s = await c.session();
  const tx = await c.post(`${s.url}/map_page`, { phys: '0x80000000', size: 4096, dir: 'to_device' });
  const rx = await c.post(`${s.url}/map_page`, { phys: '0x81000000', size: 4096, dir: 'from_device' });
  t.match((await c.post(`${s.url}/sync`, { handle: tx.body.handle, for: 'device' })).body, { handle: tx.body.handle, cache: 'clean', bounced_bytes: 0 });
  t.match((await c.post(`${s.url}/sync`, { handle: rx.body.handle, for: 'cpu', offset: 0, size: 4096 })).body, { cache: 'invalidate', bounced_bytes: 0 });
  const coh = await c.session({ device: { coherent: true } });
  const m = await c.post(`${coh.url}/map_page`, { phys: '0x80000000', size: 4096, dir: 'to_device' });
  t.match((await c.post(`${coh.url}/sync`, { handle: m.body.handle, for: 'device' })).body, { cache: 'none' });
});

t.test('alloc_coherent maps zeroed pages against coherent_dma_mask; free_coherent releases them', async (t) => {
  // 8 KiB → 2 pages; 2 pfns top-down under the 32-bit coherent mask → 0xffffe000.
  const s = await c.session();
  const a = await c.post(`${s.url}/alloc_coherent`, { size: 8192 });
  t.match(a.body, { handle: 1, dma_handle: '0xffffe000', size: 8192 });
  const phys = a.body.phys as string[];
  t.equal(phys.length, 2, 'one physical page per 4 KiB');
  for (const p of phys) t.equal(BigInt(p) % 4096n, 0n, `${p} is page-aligned`);
  const read = await c.post(`${s.url}/device/read`, { dma_address: '0xffffe000', length: 8 });
  t.equal(read.body.data, Buffer.alloc(8).toString('base64'), 'the device reads zeros');
  t.same((await c.post(`${s.url}/free_coherent`, { handle: 1 })).body, { handle: 1 });
  expectError(t, await c.post(`${s.url}/free_coherent`, { handle: 1 }), 404, 'DMAEMU_HANDLE_NOT_FOUND');
});

t.test('unmap of a coherent buffer is refused (400 naming handle) and dma-debug records "wrong function"', async (t) => {
  const s = await c.session();
  await c.post(`${s.url}/alloc_coherent`, { size: 4096 });
  expectError(t, await c.post(`${s.url}/unmap`, { handle: 1 }), 400, 'DMAEMU_INVALID_ARGUMENT', 'handle');
  const findings = (await c.get(`${s.url}/debug`)).body.debug as Obj[];
  t.match(findings, [{ handle: 1, message: /wrong function/ }]);
  t.equal((await c.post(`${s.url}/free_coherent`, { handle: 1 })).status, 200, 'the buffer was kept intact and frees normally');
});

t.test(
  'a dma-debug finding rides on the response that triggered it, never on a later call',
  async (t) => {
    const s = await c.session();
    await c.post(`${s.url}/alloc_coherent`, { size: 4096 });
    await c.post(`${s.url}/unmap`, { handle: 1 }); // 400, with a finding in /debug
    await c.post(`${s.url}/unmap`, { handle: 77 }); // 404, with a finding in /debug
    t.equal(((await c.get(`${s.url}/debug`)).body.debug as Obj[]).length, 2, 'both are collected');
    t.same((await c.post(`${s.url}/free_coherent`, { handle: 1 })).body, { handle: 1 }, 'free_coherent itself found nothing');
  },
);

t.test('flush drains the non-strict flush queue, and with rcache:true the rcache magazines (semantics §5)', async (t) => {
  const s = await c.session({ iommu: { strict: false } });
  const m = await c.post(`${s.url}/map_page`, { phys: '0x80000000', size: 4096, dir: 'to_device' });
  await c.post(`${s.url}/unmap`, { handle: m.body.handle });
  // Non-strict: the unmap only queued the IOVA. Flushing frees it through free_iova_fast,
  // which parks a 1-pfn range in the order-0 rcache; rcache:true returns it to the tree.
  t.same((await c.post(`${s.url}/flush`, {})).body, { flushed: 1, rcache_freed: 0 });
  t.same((await c.post(`${s.url}/flush`, { rcache: true })).body, { flushed: 0, rcache_freed: 1 });
  t.same((await c.post(`${s.url}/flush`, { rcache: true })).body, { flushed: 0, rcache_freed: 0 }, 'nothing left');
});

t.test('batch runs ops in order; {"ref": i} is the handle op i returned', async (t) => {
  const s = await c.session();
  const r = await c.post(`${s.url}/batch`, {
    ops: [
      { op: 'map_sg', dir: 'to_device', sg: API_SG },
      { op: 'map_page', phys: '0x80000000', size: 4096, dir: 'from_device' },
      { op: 'sync', handle: { ref: 1 }, for: 'cpu' },
      { op: 'unmap', handle: { ref: 0 } },
      { op: 'alloc_coherent', size: 4096 },
      { op: 'free_coherent', handle: { ref: 4 } },
      { op: 'flush' },
    ],
  });
  t.equal(r.status, 200);
  const res = r.body.results as Obj[];
  t.equal(res.length, 7, 'one result per op');
  t.match(res[0], { handle: 1, nents: 1, segments: [{ dma_address: '0xffffc200', dma_length: 11776 }] });
  // map_sg holds pfns 0xffffc..0xfffff; next fit continues below it → pfn 0xffffb.
  t.match(res[1], { handle: 2, dma_address: '0xffffb000' });
  t.match(res[2], { handle: 2, cache: 'invalidate' });
  t.match(res[3], { handle: 1, iova: { start: '0xffffc000' } });
  t.match(res[5], { handle: res[4]?.handle });
  t.match(res[6], { flushed: 0 });
  t.same(((await c.get(`${s.url}/mappings`)).body.mappings as Obj[]).map((m) => m.handle), [2], 'only the map_page is live');
});

t.test("a failing op in a batch answers with its error body; the others still run", async (t) => {
  const s = await c.session();
  const r = await c.post(`${s.url}/batch`, {
    ops: [
      { op: 'map_page', phys: '0x80000000', size: 4096, dir: 'to_device' },
      { op: 'unmap', handle: 999 },
      { op: 'unmap', handle: { ref: 3 } },
      { op: 'unmap', handle: { ref: 0 } },
    ],
  });
  const res = r.body.results as Obj[];
  t.match(res[1], { statusCode: 404, code: 'DMAEMU_HANDLE_NOT_FOUND' });
  t.match(res[2], { statusCode: 400, code: 'DMAEMU_INVALID_ARGUMENT', message: /ops\.2\.handle\.ref/ }, 'a ref must name an earlier op');
  t.match(res[3], { handle: 1 });
});

t.test('cpu/write then cpu/read round-trips; the device sees it once map_page cleaned the cache', async (t) => {
  const s = await c.session();
  const data = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]).toString('base64');
  t.same((await c.post(`${s.url}/cpu/write`, { phys: '0x80000000', data })).body, { written: 8 });
  t.equal((await c.post(`${s.url}/cpu/read`, { phys: '0x80000000', length: 8 })).body.data, data);
  const m = await c.post(`${s.url}/map_page`, { phys: '0x80000000', size: 4096, dir: 'to_device' });
  const d = await c.post(`${s.url}/device/read`, { dma_address: m.body.dma_address, length: 8 });
  t.equal(d.body.data, data, 'dma_map_page did for_device: the CPU cache was cleaned to memory');
});

t.test('a non-coherent CPU reads stale lines after a device write until sync for_cpu invalidates (§8)', async (t) => {
  const s = await c.session();
  const before = Buffer.from('aaaa').toString('base64');
  const after = Buffer.from('bbbb').toString('base64');
  await c.post(`${s.url}/cpu/write`, { phys: '0x80000000', data: before });
  const m = await c.post(`${s.url}/map_page`, { phys: '0x80000000', size: 4096, dir: 'from_device' });
  t.same((await c.post(`${s.url}/device/write`, { dma_address: m.body.dma_address, data: after })).body, { written: 4 });
  const stale = await c.post(`${s.url}/cpu/read`, { phys: '0x80000000', length: 4 });
  t.equal(stale.body.data, before, 'the cached line is stale');
  t.ok((stale.body.debug as Obj[] | undefined)?.length, 'dma-debug flags a CPU access to a buffer the device owns');
  await c.post(`${s.url}/sync`, { handle: m.body.handle, for: 'cpu' });
  t.equal((await c.post(`${s.url}/cpu/read`, { phys: '0x80000000', length: 4 })).body.data, after);
});

t.test('device accesses fault on an unmapped IOVA and on a write to a DMA_TO_DEVICE mapping; /faults lists them', async (t) => {
  const s = await c.session();
  const r = await c.post(`${s.url}/device/read`, { dma_address: '0x1000', length: 4 });
  t.equal(r.status, 200, 'a fault is the device’s result, not an HTTP error');
  t.match(r.body, { fault: { dma_address: '0x1000', access: 'read', length: 4 } });
  t.notOk('data' in r.body);
  const m = await c.post(`${s.url}/map_page`, { phys: '0x80000000', size: 4096, dir: 'to_device' });
  const w = await c.post(`${s.url}/device/write`, { dma_address: m.body.dma_address, data: 'AAAA' });
  t.match(w.body, { fault: { dma_address: '0xfffff000', access: 'write' } });
  const faults = (await c.get(`${s.url}/faults`)).body.faults as Obj[];
  t.match(faults, [{ access: 'read', dma_address: '0x1000' }, { access: 'write', dma_address: '0xfffff000' }]);
});

t.test('tables answer with empty lists on a fresh session', async (t) => {
  const s = await c.session();
  t.same((await c.get(`${s.url}/mappings`)).body, { mappings: [], next: null }, 'an empty page, and no next page');
  t.same((await c.get(`${s.url}/debug`)).body, { debug: [] });
  t.same((await c.get(`${s.url}/faults`)).body, { faults: [] });
});

t.test('service endpoints: /healthz, /openapi.json, /docs, /metrics', async (t) => {
  const h = await c.get('/healthz');
  t.equal(h.body.status, 'ok');
  t.equal(typeof h.body.sessions, 'number');
  const o = await c.get('/openapi.json');
  t.equal(o.body.openapi, '3.1.0');
  const d = await c.get('/docs');
  t.equal(d.status, 200);
  t.match(String(d.headers['content-type']), /text\/html/);
  const m = await c.get('/metrics');
  t.equal(m.status, 200);
  t.match(String(m.headers['content-type']), /text\/plain/);
  t.match(m.text, /^dmaemu_sessions_live \d+$/m);
});

// ---- kernel-level failures: 200 with the kernel's result and an error object ----------------

t.test('IOVA space exhausted: map_sg → nents 0, map_page/alloc_coherent → DMA_MAPPING_ERROR, errno ENOMEM, nothing leaked', async (t) => {
  // Aperture [0x1000, 0x1fff] holds exactly one pfn; every call below needs two.
  const s = await c.session({ iommu: { aperture: { start: '0x1000', end: '0x1fff' } } });
  const sg = await c.post(`${s.url}/map_sg`, { dir: 'to_device', sg: [{ phys: '0x80000000', length: 8192 }] });
  t.equal(sg.status, 200);
  t.match(sg.body, { handle: null, nents: 0, segments: [], error: { errno: 'ENOMEM', message: String } });
  const pg = await c.post(`${s.url}/map_page`, { phys: '0x80000000', size: 8192, dir: 'to_device' });
  t.match(pg.body, { handle: null, dma_address: DMA_MAPPING_ERROR, error: { errno: 'ENOMEM' } });
  const co = await c.post(`${s.url}/alloc_coherent`, { size: 8192 });
  t.match(co.body, { handle: null, dma_handle: DMA_MAPPING_ERROR, error: { errno: 'ENOMEM' } });
  t.same((await c.get(`${s.url}/mappings`)).body.mappings, []);
  const one = await c.post(`${s.url}/map_page`, { phys: '0x80000000', size: 4096, dir: 'to_device' });
  t.equal(one.body.dma_address, '0x1000', 'the single pfn is still free: the failures held nothing');
});

t.test('dma-direct: no merging, phys = dma address; a buffer swiotlb cannot bounce fails (EIO for map_sg)', async (t) => {
  const s = await c.session({ iommu: null });
  const ok = await c.post(`${s.url}/map_sg`, {
    dir: 'to_device',
    sg: [
      { phys: '0x80000000', length: 4096 },
      { phys: '0x80001000', length: 4096 },
    ],
  });
  t.match(ok.body, { nents: 2, segments: [{ dma_address: '0x80000000', dma_length: 4096 }, { dma_address: '0x80001000', dma_length: 4096 }], iova: null });
  const bounced = await c.post(`${s.url}/map_page`, { phys: '0x100000000', size: 4096, dir: 'to_device' });
  t.equal(bounced.body.bounced, true, 'above the 32-bit mask: bounced through swiotlb');
  t.ok(BigInt(bounced.body.dma_address as string) < 2n ** 32n, 'the bounce slot is below 4 GiB');
  // 320 KiB above the mask: more than one swiotlb mapping can hold (128 slots of 2 KiB).
  const big = await c.post(`${s.url}/map_sg`, { dir: 'to_device', sg: [{ phys: '0x100000000', length: 0x50000 }] });
  t.match(big.body, { nents: 0, segments: [], error: { errno: 'EIO' } });
  const bigPage = await c.post(`${s.url}/map_page`, { phys: '0x100000000', size: 0x50000, dir: 'to_device' });
  t.match(bigPage.body, { dma_address: DMA_MAPPING_ERROR, error: { errno: String } });
});

// ---- 400: validation names the field; unknown fields and prototype keys are refused ---------

t.test('400 DMAEMU_INVALID_ARGUMENT names the offending field', async (t) => {
  const s = await c.session();
  const u = s.url;
  const cases: [string, string, unknown, string?][] = [
    ['map_sg: phys not hex', `${u}/map_sg`, { dir: 'to_device', sg: [{ phys: 'zz', length: 1 }] }, 'body.sg.0.phys'],
    ['map_sg: zero length', `${u}/map_sg`, { dir: 'to_device', sg: [{ phys: 0, length: 1 }, { phys: 0, length: 0 }] }, 'body.sg.1.length'],
    ['map_sg: unknown direction', `${u}/map_sg`, { dir: 'sideways', sg: [{ phys: 0, length: 1 }] }, 'body.dir'],
    ['map_sg: missing dir', `${u}/map_sg`, { sg: [{ phys: 0, length: 1 }] }, 'body.dir'],
    ['map_sg: empty list', `${u}/map_sg`, { dir: 'to_device', sg: [] }, 'body.sg'],
    ['map_sg: unknown top-level field', `${u}/map_sg`, { dir: 'to_device', sg: [{ phys: 0, length: 1 }], extra: 1 }, 'body.extra'],
    ['map_sg: unknown field in an entry', `${u}/map_sg`, { dir: 'to_device', sg: [{ phys: 0, length: 1, offset: 0 }] }, 'body.sg.0.offset'],
    ['map_sg: DMA_NONE', `${u}/map_sg`, { dir: 'none', sg: [{ phys: 0, length: 1 }] }, 'dir'],
    ['map_page: phys a number past 2^53', `${u}/map_page`, { phys: 2 ** 53, size: 1, dir: 'to_device' }, 'body.phys'],
    ['map_page: size not an integer', `${u}/map_page`, { phys: 0, size: 1.5, dir: 'to_device' }, 'body.size'],
    ['unmap: handle as a string', `${u}/unmap`, { handle: '7' }, 'body.handle'],
    ['sync: for neither cpu nor device', `${u}/sync`, { handle: 1, for: 'gpu' }, 'body.for'],
    ['alloc_coherent: size 0', `${u}/alloc_coherent`, { size: 0 }, 'body.size'],
    ['free_coherent: missing handle', `${u}/free_coherent`, {}, 'body.handle'],
    ['flush: rcache not boolean', `${u}/flush`, { rcache: 'yes' }, 'body.rcache'],
    ['batch: no ops', `${u}/batch`, { ops: [] }, 'body.ops'],
    ['batch: unknown op', `${u}/batch`, { ops: [{ op: 'frobnicate' }] }, 'body.ops.0.op'],
    ['cpu/write: data not base64', `${u}/cpu/write`, { phys: 0, data: '***' }, 'body.data'],
    ['cpu/read: length 0', `${u}/cpu/read`, { phys: 0, length: 0 }, 'body.length'],
    ['device/write: address not hex', `${u}/device/write`, { dma_address: 'nothex', data: 'AAAA' }, 'body.dma_address'],
    ['device/write: address over 64 bits', `${u}/device/write`, { dma_address: '0x10000000000000000', data: 'AAAA' }, 'body.dma_address'],
    ['device/read: missing length', `${u}/device/read`, { dma_address: '0x0' }, 'body.length'],
    ['session: dma_mask not hex', '/v1/sessions', { device: { dma_mask: 'zz' } }, 'body.device.dma_mask'],
    ['session: unknown device field', '/v1/sessions', { device: { foo: 1 } }, 'body.device.foo'],
    ['session: unknown layout', '/v1/sessions', { layout: 'windows' }, 'body.layout'],
    ['session: granule not 4/16/64 KiB', '/v1/sessions', { iommu: { granule: 8192 } }, 'body.iommu.granule'],
    ['session: boundary mask not 2^n − 1 (§2)', '/v1/sessions', { device: { segment_boundary_mask: '0x1234' } }, 'segment_boundary_mask'],
  ];
  for (const [name, url, body, field] of cases) {
    const r = await c.post(url, body);
    t.test(name, async (t) => expectError(t, r, 400, 'DMAEMU_INVALID_ARGUMENT', field));
  }
  const q = await c.post(`${u}/map_sg`, { dir: 'to_device', sg: [{ phys: 0, length: 1 }] }, { query: 'pages=maybe' });
  expectError(t, q, 400, 'DMAEMU_INVALID_ARGUMENT', 'querystring.pages');
  const uq = await c.post(`${u}/map_sg`, { dir: 'to_device', sg: [{ phys: 0, length: 1 }] }, { query: 'verbose=1' });
  expectError(t, uq, 400, 'DMAEMU_INVALID_ARGUMENT', 'querystring.verbose');
  t.same((await c.get(`${u}/mappings`)).body.mappings, [], 'no refused call mapped anything');
});

t.test('400 DMAEMU_MALFORMED_BODY for a body that is not JSON', async (t) => {
  const s = await c.session();
  const r = await c.post(`${s.url}/map_sg`, undefined, { raw: '{"dir": "to_device", "sg": [', headers: { 'content-type': 'application/json' } });
  expectError(t, r, 400, 'DMAEMU_MALFORMED_BODY');
});

t.test('__proto__ and constructor keys are refused and never pollute Object.prototype', async (t) => {
  const s = await c.session();
  const json = { 'content-type': 'application/json' };
  const bodies: [string, string][] = [
    [`${s.url}/map_sg`, '{"dir":"to_device","sg":[{"phys":0,"length":1}],"__proto__":{"polluted":"yes"}}'],
    [`${s.url}/map_sg`, '{"dir":"to_device","sg":[{"phys":0,"length":1,"__proto__":{"polluted":"yes"}}]}'],
    [`${s.url}/map_sg`, '{"dir":"to_device","sg":[{"phys":0,"length":1}],"constructor":{"prototype":{"polluted":"yes"}}}'],
    [`${s.url}/batch`, '{"ops":[{"op":"flush","__proto__":{"polluted":"yes"}}]}'],
    ['/v1/sessions', '{"device":{"__proto__":{"polluted":"yes"}}}'],
    ['/v1/sessions', '{"device":{"constructor":{"prototype":{"polluted":"yes"}}}}'],
  ];
  for (const [url, raw] of bodies) {
    const r = await c.post(url, undefined, { raw, headers: json });
    t.equal(r.status, 400, `${raw} → 400`);
    t.match(r.body.code, /^DMAEMU_(MALFORMED_BODY|INVALID_ARGUMENT)$/);
  }
  const plain = await c.post(`${s.url}/map_sg`, undefined, { raw: '{"dir":"to_device","sg":[{"phys":0,"length":1}],"constructor":{"x":1}}', headers: json });
  expectError(t, plain, 400, 'DMAEMU_INVALID_ARGUMENT', 'body.constructor');
  const q = await c.post(`${s.url}/map_sg`, { dir: 'to_device', sg: [{ phys: 0, length: 1 }] }, { query: '__proto__[polluted]=yes&constructor[prototype][polluted]=yes' });
  t.equal(q.status, 400, 'prototype keys in the query string are unknown fields');
  t.equal(({} as Record<string, unknown>).polluted, undefined, '({}).polluted is undefined');
  t.notOk(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted'));
});

// ---- 404, 413, 415, 429, 500 -----------------------------------------------------------------

t.test('404 DMAEMU_SESSION_NOT_FOUND on every session-scoped endpoint for an unknown id', async (t) => {
  const u = '/v1/sessions/AAAAAAAAAAAAAAAAAAAAAA';
  const posts: [string, unknown][] = [
    ['map_sg', { dir: 'to_device', sg: [{ phys: 0, length: 1 }] }],
    ['map_page', { phys: 0, size: 1, dir: 'to_device' }],
    ['unmap', { handle: 1 }],
    ['sync', { handle: 1, for: 'cpu' }],
    ['alloc_coherent', { size: 4096 }],
    ['free_coherent', { handle: 1 }],
    ['flush', {}],
    ['batch', { ops: [{ op: 'flush' }] }],
    ['cpu/write', { phys: 0, data: 'AAAA' }],
    ['cpu/read', { phys: 0, length: 1 }],
    ['device/write', { dma_address: 0, data: 'AAAA' }],
    ['device/read', { dma_address: 0, length: 1 }],
  ];
  for (const [path, body] of posts) expectError(t, await c.post(`${u}/${path}`, body), 404, 'DMAEMU_SESSION_NOT_FOUND');
  for (const path of ['', '/mappings', '/debug', '/faults']) expectError(t, await c.get(`${u}${path}`), 404, 'DMAEMU_SESSION_NOT_FOUND');
  expectError(t, await c.del(u), 404, 'DMAEMU_SESSION_NOT_FOUND');
});

t.test('404 DMAEMU_HANDLE_NOT_FOUND for a handle never returned (unmap, sync, free_coherent)', async (t) => {
  const s = await c.session();
  expectError(t, await c.post(`${s.url}/unmap`, { handle: 42 }), 404, 'DMAEMU_HANDLE_NOT_FOUND');
  expectError(t, await c.post(`${s.url}/sync`, { handle: 42, for: 'device' }), 404, 'DMAEMU_HANDLE_NOT_FOUND');
  expectError(t, await c.post(`${s.url}/free_coherent`, { handle: 42 }), 404, 'DMAEMU_HANDLE_NOT_FOUND');
});

t.test('404 DMAEMU_ROUTE_NOT_FOUND for an unknown path or method', async (t) => {
  expectError(t, await c.get('/v2/sessions'), 404, 'DMAEMU_ROUTE_NOT_FOUND');
  const s = await c.session();
  expectError(t, await c.get(`${s.url}/map_sg`), 404, 'DMAEMU_ROUTE_NOT_FOUND');
});

t.test('413 DMAEMU_BODY_TOO_LARGE when the body exceeds bodyLimit', async (t) => {
  const c2 = await appWith(t, { bodyLimit: 1024 });
  const s = await c2.session();
  const sg = Array.from({ length: 64 }, (_, i) => ({ phys: i * 4096, length: 4096 }));
  t.ok(JSON.stringify({ dir: 'to_device', sg }).length > 1024, 'the body is over 1 KiB');
  expectError(t, await c2.post(`${s.url}/map_sg`, { dir: 'to_device', sg }), 413, 'DMAEMU_BODY_TOO_LARGE');
  t.equal((await c2.post(`${s.url}/map_sg`, { dir: 'to_device', sg: sg.slice(0, 4) })).status, 200, 'a small body still passes');
});

t.test('415 DMAEMU_UNSUPPORTED_MEDIA_TYPE for a body that is not application/json', async (t) => {
  const s = await c.session();
  for (const type of ['application/xml', 'application/x-www-form-urlencoded']) {
    const r = await c.post(`${s.url}/flush`, undefined, { raw: 'rcache=true', headers: { 'content-type': type } });
    t.test(type, async (t) => expectError(t, r, 415, 'DMAEMU_UNSUPPORTED_MEDIA_TYPE'));
  }
});

t.test(
  '415 DMAEMU_UNSUPPORTED_MEDIA_TYPE for a text/plain body',
  async (t) => {
    const s = await c.session();
    const r = await c.post(`${s.url}/flush`, undefined, { raw: '{"rcache":true}', headers: { 'content-type': 'text/plain' } });
    expectError(t, r, 415, 'DMAEMU_UNSUPPORTED_MEDIA_TYPE');
  },
);

t.test('429 for each limit: sessions, mappings, sg entries, batch ops, memory', async (t) => {
  const c2 = await appWith(t, { limits: { maxSessions: 2, maxMappings: 2, maxSgEntries: 3, maxBatchOps: 2, memoryLimit: 8192 } });
  const s = await c2.session();
  const other = await c2.session();
  expectError(t, await c2.post('/v1/sessions', {}), 429, 'DMAEMU_TOO_MANY_SESSIONS');
  await c2.del(other.url);

  const sg = (n: number) => Array.from({ length: n }, (_, i) => ({ phys: 0x80000000 + i * 0x10000, length: 4096 }));
  t.equal((await c2.post(`${s.url}/map_sg`, { dir: 'to_device', sg: sg(3) })).status, 200, '3 entries: at the limit');
  expectError(t, await c2.post(`${s.url}/map_sg`, { dir: 'to_device', sg: sg(4) }), 429, 'DMAEMU_TOO_MANY_SG_ENTRIES');

  t.equal((await c2.post(`${s.url}/alloc_coherent`, { size: 4096 })).status, 200, 'second live mapping: at the limit');
  expectError(t, await c2.post(`${s.url}/map_page`, { phys: 0, size: 1, dir: 'to_device' }), 429, 'DMAEMU_TOO_MANY_MAPPINGS');
  expectError(t, await c2.post(`${s.url}/alloc_coherent`, { size: 4096 }), 429, 'DMAEMU_TOO_MANY_MAPPINGS');
  await c2.post(`${s.url}/unmap`, { handle: 1 });
  t.equal((await c2.post(`${s.url}/map_page`, { phys: 0, size: 1, dir: 'to_device' })).status, 200, 'room again after an unmap');

  t.equal((await c2.post(`${s.url}/batch`, { ops: [{ op: 'flush' }, { op: 'flush' }] })).status, 200, '2 ops: at the limit');
  expectError(t, await c2.post(`${s.url}/batch`, { ops: [{ op: 'flush' }, { op: 'flush' }, { op: 'flush' }] }), 429, 'DMAEMU_TOO_MANY_BATCH_OPS');

  // memory_limit 8192: two 4 KiB chunks of emulated RAM; a write into a third chunk is refused
  // before any effect. A coherent device: CPU stores go straight to RAM.
  const m = await c2.session({ device: { coherent: true } });
  expectError(t, await c2.post('/v1/sessions', {}), 429, 'DMAEMU_TOO_MANY_SESSIONS');
  const kb = Buffer.alloc(1000, 0xab).toString('base64');
  t.equal((await c2.post(`${m.url}/cpu/write`, { phys: '0x10000000', data: kb })).status, 200, 'first chunk');
  t.equal((await c2.post(`${m.url}/cpu/write`, { phys: '0x20000000', data: kb })).status, 200, 'second chunk: at the limit');
  expectError(t, await c2.post(`${m.url}/cpu/write`, { phys: '0x30000000', data: kb }), 429, 'DMAEMU_MEMORY_LIMIT');
  t.equal((await c2.get(m.url)).body.memory_bytes_touched, 8192, 'the refused write touched nothing');
});

t.test('413 before any effect: estimated work over DMAEMU_MAX_REQUEST_COST, estimated answer over DMAEMU_MAX_RESPONSE_BYTES', async (t) => {
  const c2 = await appWith(t, { limits: { maxRequestCost: 10, maxResponseBytes: 5000 } });
  const s = await c2.session();
  const sg = (n: number) => Array.from({ length: n }, (_, i) => ({ phys: 0x80000000 + i * 0x10000, length: 4096 }));
  // Work = 1 (the op) + 1 per entry: 9 entries cost 10 (at the limit), 10 cost 11.
  t.equal((await c2.post(`${s.url}/map_sg`, { dir: 'to_device', sg: sg(9) })).status, 200, '9 entries: 10 units, at the limit');
  expectError(t, await c2.post(`${s.url}/map_sg`, { dir: 'to_device', sg: sg(10) }), 413, 'DMAEMU_REQUEST_TOO_COSTLY', 'DMAEMU_MAX_REQUEST_COST=10');
  t.equal((await c2.get(s.url)).body.live_mappings, 1, 'the refused map_sg mapped nothing');
  // A read answers base64: 4 characters per 3 bytes, plus 200 for the fixed fields.
  // 3000 bytes → 200 + 4000 = 4200 ≤ 5000; 4096 bytes → 200 + 4 × 1366 = 5664 > 5000.
  t.equal((await c2.post(`${s.url}/cpu/read`, { phys: '0x0', length: 3000 })).status, 200, '~4200 bytes of answer fit');
  expectError(t, await c2.post(`${s.url}/cpu/read`, { phys: '0x0', length: 4096 }), 413, 'DMAEMU_RESPONSE_TOO_LARGE', 'DMAEMU_MAX_RESPONSE_BYTES=5000');
});

t.test('?pages=true over DMAEMU_MAX_PAGE_ROWS is refused (400 naming pages); the same call without it maps', async (t) => {
  const c2 = await appWith(t, { limits: { maxPageRows: 2 } });
  const s = await c2.session();
  const body = { dir: 'to_device', sg: API_SG }; // 3 granules → 3 rows
  expectError(t, await c2.post(`${s.url}/map_sg`, body, { query: 'pages=true' }), 400, 'DMAEMU_INVALID_ARGUMENT', 'pages');
  t.same((await c2.get(`${s.url}/mappings`)).body.mappings, [], 'nothing was mapped');
  t.equal((await c2.post(`${s.url}/map_sg`, body)).body.nents, 1);
});

t.test(
  'a page-aligned 4 KiB write touches exactly one 4 KiB chunk: two of them fit memory_limit 8192',
  async (t) => {
    const c2 = await appWith(t, { limits: { memoryLimit: 8192 } });
    const m = await c2.session({ device: { coherent: true } });
    const page = Buffer.alloc(4096, 0xab).toString('base64');
    t.equal((await c2.post(`${m.url}/cpu/write`, { phys: '0x10000000', data: page })).status, 200);
    t.equal((await c2.post(`${m.url}/cpu/write`, { phys: '0x20000000', data: page })).status, 200);
  },
);

t.test(
  'memory_limit also bounds a non-coherent session, whose CPU accesses fill cache lines',
  async (t) => {
    const c2 = await appWith(t, { limits: { memoryLimit: 8192 } });
    const m = await c2.session();
    const page = Buffer.alloc(4096, 0xab).toString('base64');
    await c2.post(`${m.url}/cpu/write`, { phys: '0x10000000', data: page });
    await c2.post(`${m.url}/cpu/write`, { phys: '0x20000000', data: page });
    expectError(t, await c2.post(`${m.url}/cpu/write`, { phys: '0x30000000', data: page }), 429, 'DMAEMU_MEMORY_LIMIT');
    expectError(t, await c2.post(`${m.url}/cpu/read`, { phys: '0x40000000', length: 1 << 20 }), 429, 'DMAEMU_MEMORY_LIMIT');
  },
);

t.test('507 DMAEMU_MEMORY_BUDGET: work past the process-wide budget is refused before it maps, the session still answers', async (t) => {
  // Room for one session (its fixed cost), the handle-table page its first handle opens, and two
  // one-entry mappings plus half of a third: the third map_page must be refused.
  const limit = FOOTPRINT.session + FOOTPRINT.handlePage + 2.5 * FOOTPRINT.mapping;
  const cb = await appWith(t, { limits: { memoryBudget: limit } });
  const s = await cb.session({ layout: 'linux' });
  const page = { phys: '0x80000000', size: 4096, dir: 'to_device' };
  t.equal((await cb.post(`${s.url}/map_page`, page)).body.dma_address, '0xfffff000', 'first map: the top pfn below 4 GiB');
  t.equal((await cb.post(`${s.url}/map_page`, page)).body.dma_address, '0xffffe000', 'second map: the next pfn down');
  const r = await cb.post(`${s.url}/map_page`, page);
  expectError(t, r, 507, 'DMAEMU_MEMORY_BUDGET', 'DMAEMU_MEMORY_BUDGET');
  t.equal((await cb.get(s.url)).body.live_mappings, 2, 'the refused call mapped nothing');
  t.equal((await cb.post(`${s.url}/unmap`, { handle: 2 })).status, 200, 'the session still answers');
  t.equal((await cb.post(`${s.url}/map_page`, page)).body.dma_address, '0xffffe000', 'the freed room (and pfn, via the rcache) is used again');
});

t.test('500 DMAEMU_INTERNAL hides the exception: generic message, no stack, no internals', async (t) => {
  const r = await c.get('/test-only/throws');
  expectError(t, r, 500, 'DMAEMU_INTERNAL');
  t.notMatch(r.text, /secret|session\.ts|\/srv\//);
});

t.test('409 DMAEMU_TRACE_UNAVAILABLE: a compacted session has no trace from its creation', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dmaemu-endpoints-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ca = await appWith(t, { dataDir: dir, journal: { compactMinBytes: 1024, compactRatio: 1 } });
  const s = await ca.session({ layout: 'linux' });
  for (let i = 0; i < 40; i++) await ca.post(`${s.url}/map_page`, { phys: '0x80000000', size: 4096, dir: 'to_device' });
  expectError(t, await ca.get(`${s.url}/trace`), 409, 'DMAEMU_TRACE_UNAVAILABLE');
});

t.test('503 DMAEMU_PERSISTENCE_FAILED: a log write that fails (ENOSPC) stops that session, not the service', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dmaemu-endpoints-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ca = await appWith(t, { dataDir: dir, journal: { compactMinBytes: 1024, compactRatio: 1 } });
  const s = await ca.session({ layout: 'linux' });
  // The next compaction writes its new log here: /dev/full answers every write with ENOSPC.
  symlinkSync('/dev/full', join(dir, 'sessions', `${s.id}.oplog.compacting`));
  let r = await ca.post(`${s.url}/map_page`, { phys: '0x80000000', size: 4096, dir: 'to_device' });
  for (let i = 0; i < 100 && r.status === 200; i++) r = await ca.post(`${s.url}/map_page`, { phys: '0x80000000', size: 4096, dir: 'to_device' });
  expectError(t, r, 503, 'DMAEMU_PERSISTENCE_FAILED');
  expectError(t, await ca.post(`${s.url}/flush`, {}), 503, 'DMAEMU_PERSISTENCE_FAILED');
  const other = await ca.session({ layout: 'linux' });
  t.equal((await ca.post(`${other.url}/flush`, {})).status, 200, 'another session still works');
});

t.test('/ui refusals keep their status: 416 for a Range past the end, 412 for an If-Match that fails (RFC 9110; test/ui-static.test.ts has the rest)', async (t) => {
  expectError(t, await c.get('/ui', { headers: { range: 'bytes=99999999-' } }), 416, 'DMAEMU_RANGE_NOT_SATISFIABLE', 'headers.range');
  expectError(t, await c.get('/ui', { headers: { 'if-match': '"nope"' } }), 412, 'DMAEMU_PRECONDITION_FAILED', 'headers.if-match');
});

t.test('every documented error code was produced by some request above', async (t) => {
  t.same(
    Object.keys(ERROR_CODES).filter((code) => !seenCodes.has(code)),
    [],
    'codes never seen',
  );
});
