// One example per classic driver bug (issue 6), at the core level: each shows the symptom a real
// non-coherent board would show — stale data, the device reading old data, an IOMMU fault, a
// dma-debug finding in the kernel's words, a leak — and that the correct sequence of calls makes
// it go away. Semantics §6 (map/unmap/sync maintenance), §8 (caches, faults), §9 (dma-debug).
import t from 'tap';
import {
  allocCoherent,
  cpuRead,
  cpuWrite,
  deviceRead,
  deviceWrite,
  freeCoherent,
  mapPage,
  mapSg,
  pattern,
  session,
  sync,
  unmap,
} from './helpers/dma-core.js';

const BUF = 0x81000000;
const LEN = 0x1000;
const OLD = pattern(LEN, 1);
const NEW = pattern(LEN, 2);
/** A non-coherent platform device behind a strict 4 KiB `linux` IOMMU (the arm64 board). */
const board = () => session({ device: { coherent: false }, iommu: { granule: 4096, strict: true }, layout: 'linux' });

t.test('bug: no sync_for_cpu after a FROM_DEVICE transfer → the CPU reads stale cache lines', async (t) => {
  // §8: device writes go to RAM; the CPU keeps its lines until for_cpu of FROM_DEVICE invalidates.
  const s = board();
  cpuWrite(s, BUF, OLD); // the driver touched the buffer: its lines are in the cache
  const m = mapPage(s, BUF, LEN, 'from_device');
  t.equal(deviceWrite(s, m.dma_address, NEW).written, LEN);
  // The bug: read without sync_for_cpu (dma-debug also notices the CPU touching a device-owned buffer).
  t.same(cpuRead(s, BUF, LEN), OLD, 'symptom: the CPU sees what it had cached, not what the device wrote');
  t.ok(s.debugTable().debug.some((f) => f.check === 'cpu_access_device_owned'), 'dma-debug: CPU access to a device-owned buffer');
  // The fix: sync_for_cpu (or unmap) invalidates, and the device's data shows.
  t.equal(sync(s, m.handle ?? 0, 'cpu').cache, 'invalidate');
  t.same(cpuRead(s, BUF, LEN), NEW, 'after sync_for_cpu the CPU reads what the device wrote');
  unmap(s, m.handle ?? 0);

  // The correct sequence from the start, on a fresh board: no stale data, no finding.
  const ok = board();
  cpuWrite(ok, BUF, OLD);
  const m2 = mapPage(ok, BUF, LEN, 'from_device');
  deviceWrite(ok, m2.dma_address, NEW);
  unmap(ok, m2.handle ?? 0);
  t.same(cpuRead(ok, BUF, LEN), NEW);
  t.same(ok.debugTable().debug, []);
});

t.test('bug: no sync_for_device after the CPU refills a reused TO_DEVICE buffer → the device reads old data', async (t) => {
  // §8: CPU writes stay in the cache until for_device of TO_DEVICE cleans them to RAM.
  const s = board();
  cpuWrite(s, BUF, OLD);
  const m = mapPage(s, BUF, LEN, 'to_device'); // map cleans: RAM holds OLD
  t.same(deviceRead(s, m.dma_address, LEN).data, OLD);
  sync(s, m.handle ?? 0, 'cpu'); // the CPU takes the buffer back to refill it
  cpuWrite(s, BUF, NEW);
  // The bug: hand it back to the device without sync_for_device.
  t.same(deviceRead(s, m.dma_address, LEN).data, OLD, 'symptom: the device reads the previous contents');
  // The fix.
  t.equal(sync(s, m.handle ?? 0, 'device').cache, 'clean');
  t.same(deviceRead(s, m.dma_address, LEN).data, NEW, 'after sync_for_device the device reads the new data');
  unmap(s, m.handle ?? 0);
  t.same(s.debugTable().debug, [], 'the correct sync calls draw no finding');
});

t.test('bug: the device writes into a DMA_TO_DEVICE mapping → IOMMU permission fault, memory untouched', async (t) => {
  const s = board();
  cpuWrite(s, BUF, OLD);
  const m = mapSg(s, [{ phys: BUF, length: LEN }], 'to_device');
  const addr = m.segments[0]?.dma_address ?? '';
  const w = deviceWrite(s, addr, NEW);
  t.ok(w.fault, 'symptom: a fault, not a write');
  t.equal(w.fault?.dma_address, addr);
  t.equal(w.fault?.access, 'write');
  t.match(w.fault?.reason, /write to a read-only mapping/);
  t.equal(s.faultsTable().faults.length, 1, 'listed at /faults');
  unmap(s, m.handle ?? 0);
  t.same(cpuRead(s, BUF, LEN), OLD, 'the buffer kept its contents');
  // The fix: map it in the direction the device uses.
  const ok = mapSg(s, [{ phys: BUF, length: LEN }], 'bidirectional');
  t.notOk(deviceWrite(s, ok.segments[0]?.dma_address ?? '', NEW).fault);
  unmap(s, ok.handle ?? 0);
  t.same(cpuRead(s, BUF, LEN), NEW);
  t.equal(s.faultsTable().faults.length, 1, 'no new fault');
});

t.test('bug: the device accesses a buffer after unmap → IOMMU translation fault "unmapped IOVA"', async (t) => {
  const s = board();
  cpuWrite(s, BUF, OLD);
  const m = mapPage(s, BUF, LEN, 'to_device');
  t.same(deviceRead(s, m.dma_address, LEN).data, OLD, 'the correct order: the device reads while mapped');
  unmap(s, m.handle ?? 0);
  const r = deviceRead(s, m.dma_address, LEN);
  t.equal(r.data, undefined, 'symptom: no data');
  t.match(r.out.fault?.reason, /unmapped IOVA/);
  t.equal(r.out.fault?.dma_address, m.dma_address);
  t.match(s.faultsTable().faults[0]?.reason, /unmapped IOVA/, 'listed at /faults');
});

t.test('bug: unmap with a different size or direction → dma-debug finding in the kernel\'s words', async (t) => {
  const s = board();
  const m = mapPage(s, BUF, LEN, 'to_device');
  const u = unmap(s, m.handle ?? 0, { size: 0x800, dir: 'from_device' });
  const msgs = (u.debug ?? []).map((f) => f.message);
  // kernel/dma/debug.c check_unmap
  t.match(msgs[0], /^DMA-API: device driver frees DMA memory with different size \[device address=0x[0-9a-f]+\] \[map size=4096 bytes\] \[unmap size=2048 bytes\]$/);
  t.match(
    msgs[1],
    /^DMA-API: device driver frees DMA memory with different direction \[device address=0x[0-9a-f]+\] \[size=4096 bytes\] \[mapped with DMA_TO_DEVICE\] \[unmapped with DMA_FROM_DEVICE\]$/,
  );
  t.equal(s.debugTable().debug.length, 2, 'collected at /debug');
  // The fix: unmap with what was mapped.
  const m2 = mapPage(s, BUF, LEN, 'to_device');
  t.equal(unmap(s, m2.handle ?? 0, { size: LEN, dir: 'to_device' }).debug, undefined, 'no finding');
  // map_sg: nents as given to map_sg, not as returned.
  const sg = mapSg(s, [{ phys: BUF, length: LEN }, { phys: BUF + 0x10000, length: LEN }], 'to_device');
  t.equal(sg.nents, 1, 'the two pages merged');
  t.equal(unmap(s, sg.handle ?? 0, { nents: 2 }).debug, undefined, 'unmap with the nents passed to map_sg: fine');
  const sg2 = mapSg(s, [{ phys: BUF, length: LEN }, { phys: BUF + 0x10000, length: LEN }], 'to_device');
  t.match(unmap(s, sg2.handle ?? 0, { nents: 1 }).debug?.[0]?.message, /^DMA-API: device driver frees DMA sg list with different entry count \[map count=2\] \[unmap count=1\]$/);
});

t.test('bug: free_coherent of a streaming handle → "frees DMA memory with wrong function", buffer kept', async (t) => {
  const s = board();
  const m = mapPage(s, BUF, LEN, 'to_device');
  t.throws(() => freeCoherent(s, m.handle ?? 0), { code: 'DMAEMU_INVALID_ARGUMENT' }, 'refused (HTTP 400)');
  const f = s.debugTable().debug[0];
  t.equal(f?.check, 'free_wrong_function');
  t.match(f?.message, /^DMA-API: device driver frees DMA memory with wrong function .*\[mapped as single\] \[unmapped as coherent\]$/);
  t.equal(s.summary().live_mappings, 1, 'the streaming mapping is still live');
  // And the mirror image: unmap of a coherent buffer.
  const c = allocCoherent(s, LEN);
  t.throws(() => unmap(s, c.handle ?? 0), { code: 'DMAEMU_INVALID_ARGUMENT' });
  t.match(s.debugTable().debug[1]?.message, /wrong function .*\[mapped as coherent\] \[unmapped as single\]$/);
  // The fix: each with its own function — no new finding.
  unmap(s, m.handle ?? 0);
  freeCoherent(s, c.handle ?? 0);
  t.equal(s.debugTable().debug.length, 2);
  t.equal(s.summary().live_mappings + s.summary().live_coherent, 0);
});

t.test('bug: mappings still live when the device goes away → leak report', async (t) => {
  const s = board();
  const m = mapPage(s, BUF, LEN, 'from_device');
  const c = allocCoherent(s, 0x2000);
  const report = s.close();
  t.equal(report.leaked_mappings, 1);
  t.equal(report.leaked_coherent, 1);
  t.same(report.leaks.map((l) => [l.handle, l.kind, l.dma_address]), [
    [m.handle, 'map_page', m.dma_address],
    [c.handle, 'coherent', c.dma_handle],
  ]);
  t.match(report.debug.at(-1)?.message, /^DMA-API: device driver has pending DMA allocations while released from device \[count=2\]/);
  // The fix: release everything first.
  const ok = board();
  const m2 = mapPage(ok, BUF, LEN, 'from_device');
  const c2 = allocCoherent(ok, 0x2000);
  unmap(ok, m2.handle ?? 0);
  freeCoherent(ok, c2.handle ?? 0);
  const clean = ok.close();
  t.equal(clean.leaks.length, 0);
  t.same(clean.debug, []);
});

t.test('dma-debug messages carry the kernel\'s fields: [device address=0x%016llx] and [size=…]', async (t) => {
  // kernel/dma/debug.c prints every device address as 0x%016llx, and check_unmap's wrong-function
  // message names the address and size (not a handle): e.g. "device driver frees DMA memory with
  // wrong function [device address=0x0000000087040000] [size=8 bytes] [mapped as coherent]
  // [unmapped as single]". A log grep written against real kernels should match the emulator.
  const s = board();
  const m = mapPage(s, BUF, LEN, 'to_device'); // linux, fresh: 1 pfn at 0xfffff → 0xfffff000
  t.equal(m.dma_address, '0xfffff000');
  const u = unmap(s, m.handle ?? 0, { size: 0x800 });
  t.match(u.debug?.[0]?.message, /\[device address=0x00000000fffff000\]/, 'check_unmap (size): 16 hex digits');
  const m2 = mapPage(s, BUF, LEN, 'to_device');
  t.throws(() => freeCoherent(s, m2.handle ?? 0));
  t.match(s.debugTable().debug.at(-1)?.message, /wrong function \[device address=0x[0-9a-f]{16}\] \[size=4096 bytes\] \[mapped as single\] \[unmapped as coherent\]$/);
});
