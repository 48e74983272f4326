// The kernel axis (src/core/layouts/kernels.ts) and what each version reads differently, and
// the two-step IOVA API (src/core/iova-api.ts) as Linux 7.3 has it. Every expected value is
// worked by hand from the version's source (include/linux/dma-mapping.h,
// drivers/iommu/dma-iommu.c, iova.c) and checked against the recordings
// (test/kernel-recordings/linux-{6.12,7.3}-intel-iommu.*); each test names the version.
import t from 'tap';
import { DMA_MAPPING_ERROR, mapPage, mapSg, session, sessionError } from './helpers/dma-core.js';
import { DmaemuError } from '../src/core/errors.js';
import { DmaDebug } from '../src/core/dma-debug.js';
import { IovaApi } from '../src/core/iova-api.js';
import { LinuxIommuDma } from '../src/core/layouts/linux.js';
import type { Session } from '../src/service/session.js';
import type { DebugFinding } from '../src/core/dma-debug.js';

const THREAD = [
  { phys: '0x4430000', length: 65536 },
  { phys: '0x2cb8000', length: 16384 },
  { phys: '0x4440000', length: 65536 },
];

/** A PCI device behind intel-iommu as recorded: 32-bit mask, x86 (coherent), strict. */
function pci(kernel: '6.12' | '7.3', device: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Session {
  return session({ kernel, device: { bus: 'pci', coherent: true, ...device }, ...extra });
}

function segs(s: Session, sg = THREAD): [string, number][] {
  return mapSg(s, sg).segments.map((g) => [g.dma_address, g.dma_length]);
}

/** The findings the device's calls since the last call produced. */
function findings(s: Session): DebugFinding[] {
  return s.device.finish() ?? [];
}

// ---- dma_parms at their edges ---------------------------------------------------------------

for (const kernel of ['6.12', '7.3'] as const) {
  t.test(`dma_get_max_seg_size (${kernel}): max_segment_size 0 reads as SZ_64K, so {64k, 16k, 64k} maps as three segments`, async (t) => {
    // dma_get_max_seg_size: dma_parms && dma_parms->max_segment_size ? it : SZ_64K → 65536.
    // iommu_dma_map_sg: iova_len 0x10000 + 0x4000 + 0x10000 = 0x24000 = 36 pfns (≥ 32: no
    // power-of-two rounding); SAC-first below 4 GiB, size-aligned to 64 pfns:
    // alignDown(0x100000 − 36, 64) = 0xfffc0 → 0xfffc0000.
    // __finalise_sg: entry 1: 65536 − 65536 = 0 < 16384, new segment; entry 2: 65536 − 16384
    // = 49152 < 65536, new segment. Recorded: thread-max-seg-zero, on both kernels.
    const s = pci(kernel, { max_segment_size: 0 });
    t.equal(s.wireConfig.device.max_segment_size, 65536, 'the config says what the getter reads');
    t.same(segs(s), [
      ['0xfffc0000', 65536],
      ['0xfffd0000', 16384],
      ['0xfffd4000', 65536],
    ]);
    t.same(findings(s), [], 'dma-debug checks against 65536, not 0: no "[max=0]"');
  });

  t.test(`dma_get_seg_boundary (${kernel}): a boundary of 0 reads as ULONG_MAX, not as pci_device_add's 0xffffffff`, async (t) => {
    // dma_parms && dma_parms->segment_boundary_mask ? it : ULONG_MAX (v5.10+). Recorded:
    // offsets-boundary-zero prints 0xffffffffffffffff after dma_set_seg_boundary(dev, 0).
    t.equal(pci(kernel, { segment_boundary_mask: '0x0' }).wireConfig.device.segment_boundary_mask, '0xffffffffffffffff');
    t.equal(pci(kernel).wireConfig.device.segment_boundary_mask, '0xffffffff', 'never set: the PCI default stands');
  });
}

t.test('linux-4.4 reads 0 as v4.4 did (SZ_64K, 32-bit boundary); arm-legacy (2015, before v4.4) uses it as it is', async (t) => {
  const v44 = session({ layout: 'linux-4.4', device: { max_segment_size: 0, segment_boundary_mask: '0x0' } }).wireConfig.device;
  t.same([v44.max_segment_size, v44.segment_boundary_mask], [65536, '0xffffffff']);
  const arm = session({ layout: 'arm-legacy', device: { max_segment_size: 0 } }).wireConfig.device;
  t.equal(arm.max_segment_size, 0);
});

t.test('the kernel axis: layout linux defaults to the newest recorded (7.3); other layouts have none', async (t) => {
  t.equal(session({}).wireConfig.kernel, '7.3');
  t.equal(session({ kernel: '6.12' }).wireConfig.kernel, '6.12');
  t.equal(session({ layout: 'linux-4.4' }).wireConfig.kernel, null);
  t.match(sessionError({ layout: 'arm-legacy', kernel: '7.3' }), { code: 'DMAEMU_INVALID_ARGUMENT', field: 'kernel' });
  t.match(sessionError({ kernel: '6.13' }), { code: 'SCHEMA', field: 'kernel' }, 'an unrecorded version is refused');
});

// ---- the IOVA API (7.3) ----------------------------------------------------------------------

t.test('dma_iova_try_alloc (7.3) keeps the buffer offset within the granule and stores the unaligned size', async (t) => {
  // phys 0x5510100: iova_offset 0x100; iova_align(10000 + 0x100) = 12288, 3 pfns, rounded to 4
  // (alloc_iova_fast) and size-aligned: alignDown(0x100000 − 4, 4) = 0xffffc → state.addr
  // 0xffffc000 + 0x100; dma_iova_size(state) = 10000.
  const s = pci('7.3');
  const r = s.device.iovaTryAlloc({ phys: 0x5510100, size: 10000 });
  t.same([r.ok, `0x${r.addr.toString(16)}`, r.size], [true, '0xffffc100', 10000]);
  // the same allocator as dma_map_page: 1 pfn next, below the 4 it took → 0xffffb000
  t.equal(mapPage(s, '0x100000', 4096).dma_address, '0xffffb000');
});

t.test('dma_iova_try_alloc (7.3) says false with an all-zero state: size 0, no IOMMU, and an exhausted space', async (t) => {
  const s = pci('7.3');
  t.match(s.device.iovaTryAlloc({ phys: 0x1000, size: 0 }), { ok: false, state: null, addr: 0n, size: 0, reason: 'size_zero' });
  t.match(findings(s), [{ check: 'iova_try_alloc_size_zero' }], 'WARN_ON_ONCE(!size)');
  t.match(pci('7.3', {}, { iommu: null }).device.iovaTryAlloc({ phys: 0x1000, size: 4096 }), { ok: false, reason: 'no_iommu' });
  // 24-bit mask: pfns 1..0xfff; 1 MiB = 256 pfns, size-aligned: 0xf00, 0xe00, … 0x100 (15 of
  // them; pfn 0 is never used), then false. Recorded: iova-exhaust-24.
  const x = pci('7.3', { dma_mask: '0xffffff', coherent_dma_mask: '0xffffff' });
  const addrs: string[] = [];
  for (let i = 0; i < 16; i++) {
    const r = x.device.iovaTryAlloc({ phys: 0x5b00000, size: 1 << 20 });
    addrs.push(r.ok ? `0x${r.addr.toString(16)}` : `false ${r.reason} 0x${r.addr.toString(16)}`);
  }
  t.same(addrs, [...Array.from({ length: 15 }, (_, i) => `0x${(0xf00000 - i * 0x100000).toString(16)}`), 'false exhausted 0x0']);
});

t.test('dma_iova_link (7.3): off-granule phys only at offset 0 (-EIO), the IOVA on a granule (-ENXIO), nothing linked twice (-EADDRINUSE)', async (t) => {
  // Recorded (iova-rules-64, iova-basic-32): -5, -6 and -98.
  const s = pci('7.3', { dma_mask: '0xffffffffffffffff', coherent_dma_mask: '0xffffffffffffffff' });
  const d = s.device;
  const a = d.iovaTryAlloc({ phys: 0x5458100, size: 16384 }).state as number;
  t.match(d.iovaLink({ state: a, phys: 0x5458200, offset: 4096, size: 4096, dir: 'to_device' }), { ret: -5, errno: 'EIO' }, 'WARN_ON_ONCE(iova_start_pad && offset > 0)');
  const b = d.iovaTryAlloc({ phys: 0x67a0200, size: 65536 }).state as number;
  t.equal(d.iovaLink({ state: b, phys: 0x67a0200, offset: 0, size: 3584, dir: 'to_device' }).ret, 0, 'the first link keeps the offset');
  // state.addr ends in 0x200: offset 4096 puts the IOVA 0x200 into a granule
  t.match(d.iovaLink({ state: b, phys: 0x67a2000, offset: 4096, size: 16384, dir: 'to_device' }), { ret: -6, errno: 'ENXIO' });
  t.equal(d.iovaLink({ state: b, phys: 0x67a2000, offset: 4096 - 0x200, size: 16384, dir: 'to_device' }).ret, 0, 'offset 4096 − 0x200 is on the granule');
  t.match(d.iovaLink({ state: b, phys: 0x67a2000, offset: 4096 - 0x200, size: 4096, dir: 'to_device' }), { ret: -98, errno: 'EADDRINUSE' });
  t.equal(d.iovaSync({ state: b, offset: 0, size: 65536 }).ret, 0);
});

t.test('dma_iova_destroy(mapped_len) on 7.3 frees the whole allocation, whatever mapped_len covers', async (t) => {
  // try_alloc 64 KiB: 16 pfns, alignDown(0x100000 − 16, 16) = 0xffff0. Destroy with 16 KiB
  // linked: 7.3 frees all 16 pfns (rcache class 16), so the next 64 KiB try comes back at
  // 0xffff0000 (recorded: iova-destroy-32, three times in a row).
  const s = pci('7.3');
  const d = s.device;
  for (let i = 0; i < 3; i++) {
    const r = d.iovaTryAlloc({ phys: 0x6060000, size: 65536 });
    t.equal(`0x${r.addr.toString(16)}`, '0xffff0000');
    d.iovaLink({ state: r.state as number, phys: 0x6060000, offset: 0, size: 16384, dir: 'to_device' });
    d.iovaDestroy({ state: r.state as number, mapped_len: 16384, dir: 'to_device' });
  }
  t.same(findings(s), []);
});

t.test('dma_iova_destroy as the 6.16 series was posted (v5–v7) freed only the linked length', async (t) => {
  // __iommu_dma_iova_unlink(…, 0, mapped_len, …, free_iova) freed iova_align(mapped_len):
  // 4 of the 16 pfns go to the rcache (class 4) and the node of 16 stays, so the next 64 KiB
  // try_alloc comes from the tree below it: alignDown(0xffff0 − 16, 16) = 0xfffe0.
  const s = pci('7.3');
  const api = new IovaApi(new LinuxIommuDma(s.device.config).iovaDomain, { destroyFrees: 'linked' }, new DmaDebug());
  const r = api.tryAlloc({ phys: 0x6060000, size: 65536 });
  api.link({ state: r.state as number, phys: 0x6060000, offset: 0, size: 16384, dir: 'to_device' });
  api.destroy({ state: r.state as number, mapped_len: 16384, dir: 'to_device' });
  t.equal(`0x${api.tryAlloc({ phys: 0x6060000, size: 65536 }).addr.toString(16)}`, '0xfffe0000');
});

t.test('dma-debug findings for IOVA-API misuse (7.3): unlink of what is not linked, free with links left, a link outside the state, leaks', async (t) => {
  const s = pci('7.3');
  const d = s.device;
  const v = d.iovaTryAlloc({ phys: 0x5458000, size: 32768 }).state as number;
  d.iovaLink({ state: v, phys: 0x5458000, offset: 0, size: 8192, dir: 'to_device' });
  d.iovaUnlink({ state: v, offset: 0, size: 8192, dir: 'to_device' });
  d.iovaUnlink({ state: v, offset: 0, size: 8192, dir: 'to_device' });
  t.match(findings(s), [{ check: 'iova_unlink_unlinked', handle: v }], 'WARN_ON(unmapped != size)');
  // past the allocation of 8 pfns: the kernel links it (recorded ret 0), dmaemu says so
  t.equal(d.iovaLink({ state: v, phys: 0x5458000, offset: 32768, size: 4096, dir: 'to_device' }).ret, 0);
  t.match(findings(s), [{ check: 'iova_link_outside_state' }]);
  d.iovaFree({ state: v });
  t.match(findings(s), [{ check: 'iova_free_linked' }]);
  t.throws(() => d.iovaFree({ state: v }), DmaemuError, 'a freed state is gone');
  t.match(findings(s), [{ check: 'iova_state_unknown' }]);
  d.iovaTryAlloc({ phys: 0x5458000, size: 4096 });
  d.reportLeaks();
  t.match(findings(s), [{ check: 'iova_state_leak' }]);
});

t.test('Linux 6.12 (and the older layouts) have no IOVA API: the call is refused naming the field', async (t) => {
  t.throws(() => pci('6.12').device.iovaTryAlloc({ phys: 0, size: 4096 }), { code: 'DMAEMU_INVALID_ARGUMENT', field: 'kernel' });
  t.throws(() => session({ layout: 'linux-4.4' }).device.iovaTryAlloc({ phys: 0, size: 4096 }), { code: 'DMAEMU_INVALID_ARGUMENT', field: 'layout' });
});

// ---- no IOMMU: the boot's swiotlb pool, and iommu.forcedac ------------------------------------

t.test('swiotlb_map against the pool where the boot put it: a 28-bit mask fails every bounce above 2^28, maps below', async (t) => {
  // swiotlb=force, pool at 0x36400000 (a 7.3 boot, dev->dma_io_tlb_mem): a 64 KiB buffer takes
  // slot 0, 0x36400000 > 0xfffffff, so dma_capable fails and the map returns DMA_MAPPING_ERROR
  // (swiotlb_map: "swiotlb addr … overflow"). With the pool at 0x8000000 (dmaemu's default,
  // below 2^28) the same call bounces to 0x8000000.
  const body = (start?: string) => ({ kernel: '7.3', iommu: null, device: { bus: 'pci', coherent: true, dma_mask: '0xfffffff' }, swiotlb: { force: true, ...(start ? { start } : {}) } });
  t.equal(mapPage(session(body('0x36400000')), '0x5410000', 65536).dma_address, DMA_MAPPING_ERROR);
  t.equal(mapPage(session(body()), '0x5410000', 65536).dma_address, '0x8000000');
});

t.test('swiotlb: a session starts its search where the boot\'s earlier devices left the pool (swiotlb.index)', async (t) => {
  // index 148: slot 148 is at 0x36400000 + 148·2048 = 0x3644a000, page-aligned (a 64 KiB
  // buffer needs it), list[148] = 128 − 20 = 108 ≥ 32 slots, no boundary in the way (PCI mask
  // 0xffffffff: 2^21 slots): the bounce lands there, and the next search starts at 148 + 32.
  const s = session({ kernel: '7.3', iommu: null, device: { bus: 'pci', coherent: true }, swiotlb: { force: true, start: '0x36400000', index: 148 } });
  t.equal(mapPage(s, '0x5410000', 65536).dma_address, '0x3644a000');
  t.equal(s.device.swiotlbIndex(), 180);
  t.match(sessionError({ iommu: null, swiotlb: { start: '0x4000000' } }), { field: 'swiotlb.start' }, 'below the emulated coherent pages');
  t.match(sessionError({ iommu: null, swiotlb: { size: 2 * 1024 * 1024, index: 1024 } }), { field: 'swiotlb.index' });
});

t.test('iommu.forcedac (v5.13+): a PCI device gets no SAC-first try, its first IOVA comes from the top of the aperture', async (t) => {
  // 64-bit mask, default 48-bit aperture: iommu_dma_alloc_iova without pci_32bit_workaround
  // allocates below the aperture end, pfn 0xfffffffff → 0xfffffffff000; with SAC-first the same
  // map lands below 4 GiB, pfn 0xfffff → 0xfffff000.
  const dev = { bus: 'pci', coherent: true, dma_mask: '0xffffffffffffffff', coherent_dma_mask: '0xffffffffffffffff' };
  t.equal(mapPage(session({ device: dev, iommu: { forcedac: true } }), '0x100000', 4096).dma_address, '0xfffffffff000');
  t.equal(mapPage(session({ device: dev }), '0x100000', 4096).dma_address, '0xfffff000');
  t.match(sessionError({ layout: 'linux-4.4', iommu: { forcedac: true } }), { field: 'iommu.forcedac' });
});
