// One scenario per classic driver bug, over HTTP (app.inject), as a harness would drive it
// (issue 6). Each shows the symptom a real board shows — stale CPU data, the device reading old
// data, an IOMMU fault, a dma-debug finding in the kernel's words, a leak — and then that the
// correct sequence of calls makes it go away. Rules: docs/linux-semantics.md §6
// (map/unmap/sync maintenance, swiotlb copies), §7 (swiotlb), §8 (caches, IOMMU faults),
// §9 (dma-debug checks, kernel/dma/debug.c).
//
// Default session unless a test says otherwise: non-coherent platform device, layout `linux`,
// 4 KiB IOMMU granule, fresh domain, 32-bit dma_mask. A fresh `linux` domain hands out IOVA
// top-down from the 32-bit limit, so the first one-page map_page lands at pfn 0xfffff:
// dma_address 0xfffff000 (semantics §5/§6).
//
// The bytes: the CPU fills the buffer with OLD (0x11 …) before the transfer, the device
// writes NEW (0xee …). Untouched emulated RAM reads as zeros, so neither can be mistaken for
// "nothing happened".

import t, { type Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/service/app.js';
import { client, type Client, type Obj } from './helpers/http.js';

const BUF = '0x81000000';
const LEN = 0x1000;
/** The first IOVA a fresh 32-bit `linux` domain gives a one-granule mapping (pfn 0xfffff). */
const FIRST_IOVA = '0xfffff000';
const fill = (byte: number, n = LEN): string => Buffer.alloc(n, byte).toString('base64');
const OLD = fill(0x11);
const NEW = fill(0xee);

let app: FastifyInstance;
let c: Client;

t.before(async () => {
  app = await buildApp({ logLevel: 'warn' });
  await app.ready();
  c = client(app);
});
t.teardown(async () => app.close());

interface Finding {
  seq: number;
  check: string;
  message: string;
  handle: number | null;
}

/** A session with every default but `config`; its URL and a POST shortcut that insists on `status`. */
async function board(config: unknown = {}) {
  const s = await c.session(config);
  const post = async (op: string, body: unknown, status = 200): Promise<Obj> => {
    const r = await c.post(`${s.url}/${op}`, body);
    if (r.status !== status) throw new Error(`POST ${op} ${JSON.stringify(body)} → ${r.status} (wanted ${status}): ${r.text}`);
    return r.body;
  };
  const get = async (table: string): Promise<Obj> => (await c.get(`${s.url}/${table}`)).body;
  return {
    ...s,
    post,
    cpuWrite: (phys: string, data: string) => post('cpu/write', { phys, data }),
    cpuRead: async (phys: string, length = LEN) => (await post('cpu/read', { phys, length })).data,
    deviceWrite: (dma_address: string, data: string) => post('device/write', { dma_address, data }),
    deviceRead: (dma_address: string, length = LEN) => post('device/read', { dma_address, length }),
    mapPage: async (phys: string, size: number, dir: string) => {
      const r = await post('map_page', { phys, size, dir });
      return { handle: r.handle as number, dma_address: r.dma_address as string, body: r };
    },
    debug: async () => (await get('debug')).debug as unknown as Finding[],
    faults: async () => (await get('faults')).faults as Obj[],
    summary: async () => (await c.get(s.url)).body,
  };
}

const checks = (body: Obj): string[] => ((body.debug ?? []) as unknown as Finding[]).map((f) => f.check);
const messages = (body: Obj): string[] => ((body.debug ?? []) as unknown as Finding[]).map((f) => f.message);

function noFindings(t: Test, body: Obj, what: string): void {
  t.equal(body.debug, undefined, `${what}: no dma-debug finding on the answer`);
}

// ---- (a) ----------------------------------------------------------------------------------

t.test('(a) missing sync_for_cpu after DMA_FROM_DEVICE → the CPU reads stale cache lines (§8: only for_cpu of FROM_DEVICE invalidates)', async (t) => {
  t.test('the bug: CPU wrote the buffer before the transfer, reads it after without a sync', async (t) => {
    const s = await board();
    await s.cpuWrite(BUF, OLD); // the lines are now in the CPU cache, dirty
    const m = await s.mapPage(BUF, LEN, 'from_device'); // arm64 today: for_device cleans, lines stay
    t.equal(m.dma_address, FIRST_IOVA);
    t.same(await s.deviceWrite(m.dma_address, NEW), { written: LEN }, 'the device wrote RAM through the IOMMU');
    const r = await s.post('cpu/read', { phys: BUF, length: LEN });
    t.equal(r.data, OLD, 'symptom: the CPU still sees its cached OLD bytes, not what the device wrote');
    // The fix: sync_for_cpu (FROM_DEVICE) invalidates the lines; the next read misses and fetches RAM.
    const sy = await s.post('sync', { handle: m.handle, for: 'cpu' });
    t.equal(sy.cache, 'invalidate', 'arch_sync_dma_for_cpu(FROM_DEVICE) invalidates');
    t.equal(await s.cpuRead(BUF), NEW, 'after sync_for_cpu the CPU reads the device\'s bytes');
  });

  t.test('the bug with a CPU read (clean lines) instead of a write', async (t) => {
    const s = await board();
    // An earlier transfer leaves OLD in RAM without the CPU ever caching it.
    const first = await s.mapPage(BUF, LEN, 'from_device');
    await s.deviceWrite(first.dma_address, OLD);
    await s.post('unmap', { handle: first.handle });
    t.equal(await s.cpuRead(BUF), OLD, 'the CPU reads it: its lines are now cached, clean');
    const m = await s.mapPage(BUF, LEN, 'from_device');
    await s.deviceWrite(m.dma_address, NEW);
    t.equal((await s.post('cpu/read', { phys: BUF, length: LEN })).data, OLD, 'symptom: stale even though the lines were never dirty');
    await s.post('unmap', { handle: m.handle });
    t.equal(await s.cpuRead(BUF), NEW, 'unmap does the for_cpu sync: fresh bytes');
  });

  t.test('the correct sequence: unmap before reading → the new bytes, and no finding anywhere', async (t) => {
    const s = await board();
    await s.cpuWrite(BUF, OLD);
    const m = await s.mapPage(BUF, LEN, 'from_device');
    await s.deviceWrite(m.dma_address, NEW);
    const u = await s.post('unmap', { handle: m.handle });
    noFindings(t, u, 'unmap');
    const r = await s.post('cpu/read', { phys: BUF, length: LEN });
    t.equal(r.data, NEW);
    noFindings(t, r, 'cpu/read after unmap');
    t.same(await s.debug(), [], '/debug is empty');
  });
});

// ---- (b) ----------------------------------------------------------------------------------

t.test('(b) missing sync_for_device when reusing a TO_DEVICE buffer → the device reads the old data (§8: for_device of TO_DEVICE cleans)', async (t) => {
  const s = await board();
  await s.cpuWrite(BUF, OLD);
  const m = await s.mapPage(BUF, LEN, 'to_device'); // map cleans: RAM holds OLD
  t.equal((await s.deviceRead(m.dma_address)).data, OLD, 'first transfer: the device reads OLD');
  const back = await s.post('sync', { handle: m.handle, for: 'cpu' }); // the CPU takes the buffer back
  t.equal(back.cache, 'none', 'for_cpu of TO_DEVICE needs no maintenance');
  noFindings(t, await s.cpuWrite(BUF, NEW), 'CPU refill after sync_for_cpu'); // NEW sits in dirty lines
  // The bug: the driver kicks the device again without sync_for_device.
  t.equal((await s.deviceRead(m.dma_address)).data, OLD, 'symptom: the device reads the previous contents from RAM');
  // The fix.
  const sy = await s.post('sync', { handle: m.handle, for: 'device' });
  t.equal(sy.cache, 'clean', 'arch_sync_dma_for_device(TO_DEVICE) cleans');
  noFindings(t, sy, 'sync for_device');
  t.equal((await s.deviceRead(m.dma_address)).data, NEW, 'after sync_for_device the device reads the new data');
  noFindings(t, await s.post('unmap', { handle: m.handle }), 'unmap');
  t.same(await s.debug(), [], 'the correct calls draw no finding');
});

// ---- (c) ----------------------------------------------------------------------------------

t.test('(c) CPU writes a buffer the device owns (after map, no sync_for_cpu) → finding cpu_access_device_owned (§9), and the device never sees the write (§8)', async (t) => {
  const s = await board();
  await s.cpuWrite(BUF, OLD);
  const m = await s.mapPage(BUF, LEN, 'to_device');
  const w = await s.cpuWrite(BUF, NEW);
  t.equal(w.written, LEN);
  t.same(checks(w), ['cpu_access_device_owned'], 'the finding rides on the cpu/write answer');
  const f = (w.debug as unknown as Finding[])[0];
  t.equal(f?.handle, m.handle);
  t.match(f?.message, /^DMA-API: cpu write at 0x81000000 touches a buffer the device owns \[mapped with DMA_TO_DEVICE\]/);
  t.same((await s.debug()).map((x) => [x.check, x.handle]), [['cpu_access_device_owned', m.handle]], 'and is kept at /debug');
  t.equal((await s.deviceRead(m.dma_address)).data, OLD, 'symptom: the write sits in the cache; the device reads OLD');

  // The correct sequence: take the buffer back, write, give it to the device.
  const ok = await board();
  await ok.cpuWrite(BUF, OLD);
  const m2 = await ok.mapPage(BUF, LEN, 'to_device');
  await ok.post('sync', { handle: m2.handle, for: 'cpu' });
  noFindings(t, await ok.cpuWrite(BUF, NEW), 'cpu/write between sync_for_cpu and sync_for_device');
  await ok.post('sync', { handle: m2.handle, for: 'device' });
  t.equal((await ok.deviceRead(m2.dma_address)).data, NEW);
  t.same(await ok.debug(), []);
});

// ---- (d) ----------------------------------------------------------------------------------

t.test('(d) the device writes a DMA_TO_DEVICE mapping → IOMMU permission fault, listed and counted; a bidirectional mapping accepts it (§8)', async (t) => {
  const s = await board();
  await s.cpuWrite(BUF, OLD);
  const m = await s.mapPage(BUF, LEN, 'to_device');
  const w = await s.deviceWrite(m.dma_address, NEW);
  t.equal(w.written, undefined, 'nothing written');
  const fault = w.fault as Obj;
  t.match(fault, { dma_address: FIRST_IOVA, access: 'write', length: LEN });
  t.match(fault.reason, /read-only mapping/);
  t.match(fault.reason, /permission/);
  const listed = await s.faults();
  t.equal(listed.length, 1, 'listed at /faults');
  t.same(listed[0], fault, 'the same fault');
  t.equal(((await s.summary()).counters as Obj).device_faults, 1, 'session counters.device_faults');
  await s.post('unmap', { handle: m.handle });
  t.equal(await s.cpuRead(BUF), OLD, 'the IOMMU blocked the write: memory unchanged');

  // The fix: map it in the direction the device really uses.
  const bi = await s.mapPage(BUF, LEN, 'bidirectional');
  t.same(await s.deviceWrite(bi.dma_address, NEW), { written: LEN }, 'no fault');
  await s.post('unmap', { handle: bi.handle });
  t.equal(await s.cpuRead(BUF), NEW, 'the device\'s bytes, after unmap\'s for_cpu');
  t.equal((await s.faults()).length, 1, 'no new fault');
  t.equal(((await s.summary()).counters as Obj).device_faults, 1, 'counter unchanged');
});

// ---- (e) ----------------------------------------------------------------------------------

t.test('(e) use after unmap: the device reads an unmapped IOVA → translation fault "unmapped IOVA" (§8)', async (t) => {
  const s = await board();
  await s.cpuWrite(BUF, OLD);
  const m = await s.mapPage(BUF, LEN, 'to_device');
  t.equal((await s.deviceRead(m.dma_address)).data, OLD, 'correct: the device reads while the buffer is mapped');
  await s.post('unmap', { handle: m.handle });
  const r = await s.deviceRead(m.dma_address);
  t.equal(r.data, undefined, 'symptom: no data');
  t.match(r.fault, { dma_address: FIRST_IOVA, access: 'read', reason: /unmapped IOVA/ });
  t.match(await s.faults(), [{ dma_address: FIRST_IOVA, reason: /unmapped IOVA/ }], 'listed at /faults');
  t.equal(((await s.summary()).counters as Obj).device_faults, 1);
});

// ---- (f) ----------------------------------------------------------------------------------

t.test('(f) unmap with a different size / direction / nents → check_unmap findings in the kernel\'s words; the right unmap draws none (§9)', async (t) => {
  const s = await board();
  const a = await s.mapPage(BUF, LEN, 'to_device');
  const ua = await s.post('unmap', { handle: a.handle, size: 0x800 });
  t.same(checks(ua), ['unmap_size']);
  t.match(messages(ua)[0], /^DMA-API: device driver frees DMA memory with different size \[device address=0x[0-9a-f]+\] \[map size=4096 bytes\] \[unmap size=2048 bytes\]$/);

  const b = await s.mapPage(BUF, LEN, 'to_device');
  const ub = await s.post('unmap', { handle: b.handle, dir: 'from_device' });
  t.same(checks(ub), ['unmap_direction']);
  t.match(
    messages(ub)[0],
    /^DMA-API: device driver frees DMA memory with different direction \[device address=0x[0-9a-f]+\] \[size=4096 bytes\] \[mapped with DMA_TO_DEVICE\] \[unmapped with DMA_FROM_DEVICE\]$/,
  );

  // Two physically separate pages merge into one IOVA segment (nents 1), but dma_unmap_sg takes
  // the nents given to dma_map_sg (2): dma-debug compares against that.
  const sg = [
    { phys: BUF, length: LEN },
    { phys: '0x81010000', length: LEN },
  ];
  const g = await s.post('map_sg', { dir: 'to_device', sg });
  t.equal(g.nents, 1, 'the two pages merged');
  const ug = await s.post('unmap', { handle: g.handle, nents: 1 });
  t.same(checks(ug), ['unmap_nents']);
  t.match(messages(ug)[0], /^DMA-API: device driver frees DMA sg list with different entry count \[map count=2\] \[unmap count=1\]$/);

  t.same((await s.debug()).map((f) => f.check), ['unmap_size', 'unmap_direction', 'unmap_nents'], 'all three kept at /debug, in order');
  t.same((await s.summary()).live_mappings, 0, 'each wrong unmap still unmapped (the kernel only warns)');

  // The fix: unmap with exactly what was mapped.
  const a2 = await s.mapPage(BUF, LEN, 'to_device');
  noFindings(t, await s.post('unmap', { handle: a2.handle, size: LEN, dir: 'to_device' }), 'map_page unmapped with its size and dir');
  const g2 = await s.post('map_sg', { dir: 'to_device', sg });
  noFindings(t, await s.post('unmap', { handle: g2.handle, nents: 2, dir: 'to_device', size: 2 * LEN }), 'map_sg unmapped with the nents passed to map_sg');
  t.equal((await s.debug()).length, 3, 'no new finding at /debug');
});

// ---- (g) ----------------------------------------------------------------------------------

t.test('(g) double unmap → 404 DMAEMU_HANDLE_NOT_FOUND and "frees DMA memory it has not allocated" at /debug (§9)', async (t) => {
  const s = await board();
  const m = await s.mapPage(BUF, LEN, 'from_device');
  noFindings(t, await s.post('unmap', { handle: m.handle }), 'the first unmap is correct');
  const r = await c.post(`${s.url}/unmap`, { handle: m.handle });
  t.equal(r.status, 404);
  t.equal(r.body.code, 'DMAEMU_HANDLE_NOT_FOUND');
  const d = await s.debug();
  t.equal(d.length, 1);
  t.equal(d[0]?.check, 'unmap_unknown');
  t.equal(d[0]?.handle, m.handle);
  t.match(d[0]?.message, /^DMA-API: device driver tries to free DMA memory it has not allocated\b/);
  // The error answer carried the finding to /debug only; the next good call does not inherit it.
  const m2 = await s.mapPage(BUF, LEN, 'from_device');
  noFindings(t, m2.body, 'the next map_page');
  noFindings(t, await s.post('unmap', { handle: m2.handle }), 'a single unmap');
  t.equal((await s.debug()).length, 1);
});

// ---- (h) ----------------------------------------------------------------------------------

t.test('(h) free_coherent of a streaming handle / unmap of a coherent handle → 400 and "frees DMA memory with wrong function" (§9)', async (t) => {
  const s = await board();
  const m = await s.mapPage(BUF, LEN, 'to_device');
  const coh = await s.post('alloc_coherent', { size: LEN });
  const r1 = await c.post(`${s.url}/free_coherent`, { handle: m.handle });
  t.equal(r1.status, 400);
  t.equal(r1.body.code, 'DMAEMU_INVALID_ARGUMENT');
  const r2 = await c.post(`${s.url}/unmap`, { handle: coh.handle });
  t.equal(r2.status, 400);
  t.equal(r2.body.code, 'DMAEMU_INVALID_ARGUMENT');
  const d = await s.debug();
  t.same(d.map((f) => [f.check, f.handle]), [
    ['free_wrong_function', m.handle],
    ['unmap_wrong_function', coh.handle],
  ]);
  t.match(d[0]?.message, /^DMA-API: device driver frees DMA memory with wrong function .*\[mapped as single\] \[unmapped as coherent\]$/);
  t.match(d[1]?.message, /^DMA-API: device driver frees DMA memory with wrong function .*\[mapped as coherent\] \[unmapped as single\]$/);
  const sum = await s.summary();
  t.same([sum.live_mappings, sum.live_coherent], [1, 1], 'both refused: nothing was torn down');

  // The fix: each with its own function.
  noFindings(t, await s.post('unmap', { handle: m.handle }), 'unmap of the streaming handle');
  noFindings(t, await s.post('free_coherent', { handle: coh.handle }), 'free_coherent of the coherent handle');
  t.equal((await s.debug()).length, 2, 'no new finding');
  const after = await s.summary();
  t.same([after.live_mappings, after.live_coherent], [0, 0]);
});

// ---- (i) ----------------------------------------------------------------------------------

t.test('(i) sync in the wrong direction → "syncs DMA memory with different direction", and the CPU stays stale (§6, §8, §9)', async (t) => {
  const s = await board();
  await s.cpuWrite(BUF, OLD);
  const m = await s.mapPage(BUF, LEN, 'from_device');
  await s.deviceWrite(m.dma_address, NEW);
  const bad = await s.post('sync', { handle: m.handle, for: 'cpu', dir: 'to_device' });
  t.same(checks(bad), ['sync_direction']);
  t.match(
    messages(bad)[0],
    /^DMA-API: device driver syncs DMA memory with different direction \[device address=0x[0-9a-f]+\] \[size=4096 bytes\] \[mapped with DMA_FROM_DEVICE\] \[synced with DMA_TO_DEVICE\]$/,
  );
  t.equal(bad.cache, 'none', 'for_cpu of TO_DEVICE does no maintenance…');
  t.equal(await s.cpuRead(BUF), OLD, '…so the symptom stays: stale bytes');
  // The fix.
  const ok = await s.post('sync', { handle: m.handle, for: 'cpu', dir: 'from_device' });
  noFindings(t, ok, 'sync with the mapping\'s direction');
  t.equal(ok.cache, 'invalidate');
  t.equal(await s.cpuRead(BUF), NEW);
  t.same((await s.debug()).map((f) => f.check), ['sync_direction']);
});

t.test('(i) sync beyond the mapping → "syncs DMA memory outside allocated range"; a sync inside draws none (§9)', async (t) => {
  const s = await board();
  const m = await s.mapPage(BUF, LEN, 'from_device');
  const bad = await s.post('sync', { handle: m.handle, for: 'cpu', offset: LEN - 64, size: 128 });
  t.same(checks(bad), ['sync_range']);
  t.match(messages(bad)[0], /^DMA-API: device driver syncs DMA memory outside allocated range \[device address=0x[0-9a-f]+\] \[allocation size=4096 bytes\] \[sync offset\+size=4160\]$/);
  noFindings(t, await s.post('sync', { handle: m.handle, for: 'cpu', offset: LEN - 128, size: 128 }), 'the last 128 bytes: inside');
  noFindings(t, await s.post('unmap', { handle: m.handle }), 'unmap');
  t.same((await s.debug()).map((f) => f.check), ['sync_range']);
});

// ---- (j) ----------------------------------------------------------------------------------

t.test('(j) leak: DELETE the session with a live mapping → the leak report lists it, with "pending DMA allocations" (§9)', async (t) => {
  const s = await board();
  const m = await s.mapPage(BUF, LEN, 'from_device');
  const r = await c.del(s.url);
  t.equal(r.status, 200);
  t.equal(r.body.leaked_mappings, 1);
  t.equal(r.body.leaked_coherent, 0);
  t.same(r.body.leaks, [{ handle: m.handle, kind: 'map_page', dir: 'from_device', size: LEN, dma_address: FIRST_IOVA }]);
  const d = r.body.debug as unknown as Finding[];
  t.equal(d.at(-1)?.check, 'leak');
  t.match(d.at(-1)?.message, /^DMA-API: device driver has pending DMA allocations while released from device \[count=1\]/);
  t.equal((await c.get(s.url)).status, 404, 'the session is gone');

  // The fix: unmap before the device goes away.
  const ok = await board();
  const m2 = await ok.mapPage(BUF, LEN, 'from_device');
  await ok.post('unmap', { handle: m2.handle });
  const clean = await c.del(ok.url);
  t.equal(clean.status, 200);
  t.match(clean.body, { leaked_mappings: 0, leaked_coherent: 0, leaks: [], debug: [] });
});

// ---- (k) ----------------------------------------------------------------------------------

t.test('(k) coherent device: the missing-sync sequence of (a) reads the new bytes — one memory, no cache to maintain (§8)', async (t) => {
  const s = await board({ device: { coherent: true } });
  t.equal((s.config.device as Obj).coherent, true);
  await s.cpuWrite(BUF, OLD);
  const m = await s.mapPage(BUF, LEN, 'from_device');
  await s.deviceWrite(m.dma_address, NEW);
  t.equal((await s.post('cpu/read', { phys: BUF, length: LEN })).data, NEW, 'no sync, yet the CPU sees the device\'s bytes');
  t.equal((await s.post('sync', { handle: m.handle, for: 'cpu' })).cache, 'none', 'and a sync has nothing to do');
});

// ---- (l) ----------------------------------------------------------------------------------

t.test('(l) no IOMMU, swiotlb forced: the device writes the bounce buffer; the CPU reads the old original until for_cpu copies it back (§6, §7)', async (t) => {
  const cfg = { iommu: null, swiotlb: { force: true } };
  // swiotlb's pool sits at 0x08000000 (below 4 GiB); a fresh pool gives slot 0, dma_offset is 0,
  // and a page-aligned buffer has no min_align_mask offset: the bounce address is the pool start.
  const BOUNCE = '0x8000000';

  t.test('the bug: read the original without sync_for_cpu', async (t) => {
    const s = await board(cfg);
    t.equal((s.config.swiotlb as Obj).start, BOUNCE);
    await s.cpuWrite(BUF, OLD);
    const m = await s.mapPage(BUF, LEN, 'from_device');
    t.equal(m.body.bounced, true, 'bounced');
    t.equal(m.dma_address, BOUNCE);
    t.equal((await s.deviceRead(m.dma_address)).data, OLD, 'map copied original → bounce, whatever the direction');
    t.same(await s.deviceWrite(m.dma_address, NEW), { written: LEN });
    t.equal((await s.post('cpu/read', { phys: BUF, length: LEN })).data, OLD, 'symptom: the original buffer still holds OLD');
    // The fix: sync_for_cpu copies bounce → original.
    const sy = await s.post('sync', { handle: m.handle, for: 'cpu' });
    t.equal(sy.bounced_bytes, LEN, 'swiotlb_sync_single_for_cpu copied the whole mapping back');
    t.equal(await s.cpuRead(BUF), NEW);
  });

  t.test('the correct sequence: unmap copies the bounce buffer back', async (t) => {
    const s = await board(cfg);
    await s.cpuWrite(BUF, OLD);
    const m = await s.mapPage(BUF, LEN, 'from_device');
    await s.deviceWrite(m.dma_address, NEW);
    noFindings(t, await s.post('unmap', { handle: m.handle }), 'unmap');
    t.equal(await s.cpuRead(BUF), NEW);
    t.same(await s.debug(), []);
  });
});
