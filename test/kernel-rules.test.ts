// Rules the real-kernel recordings (test/kernel-recordings/, conformance/) showed dmaemu had to
// follow; each test is named after the kernel rule and worked by hand.
import t from 'tap';
import { mapPage, mapSg, session, unmap } from './helpers/dma-core.js';
import { FlushBody } from '../schemas/dma.js';
import type { Session } from '../src/service/session.js';

t.test('pci_device_add: a PCI device has dma_parms with max_segment_size 65536 and segment_boundary_mask 0xffffffff', async (t) => {
  // The 6.12 recording's "defaults" for every edu device: 65536 and 0xffffffff, before the
  // driver changed anything. A platform device without dma_parms keeps ULONG_MAX (v5.10+).
  const pci = session({ device: { bus: 'pci' } }).wireConfig.device;
  t.equal(pci.segment_boundary_mask, '0xffffffff');
  t.equal(pci.max_segment_size, 65536);
  t.equal(session({ device: { bus: 'platform' } }).wireConfig.device.segment_boundary_mask, '0xffffffffffffffff');
  t.equal(session({ device: { bus: 'pci', segment_boundary_mask: '0xffffffffffffffff' } }).wireConfig.device.segment_boundary_mask, '0xffffffffffffffff', 'an explicit mask still wins');
});

t.test('iommu_dma_map_sg with the PCI default boundary: an entry that would cross 4 GiB of IOVA starts on the boundary', async (t) => {
  // PCI device, 64-bit mask, max_segment_size UINT_MAX, boundary left at PCI's default.
  // Entries: 3 GiB then 2 GiB, granule-aligned.
  //   entry 0: s_iova_len 0xc0000000, iova_len 0xc0000000
  //   entry 1: pad = (0xffffffff − 0xc0000000 + 1) & 0xffffffff = 0x40000000 < 0x80000000 − 1,
  //            so entry 0 grows to 0x100000000 and entry 1 sits at offset 0x100000000;
  //            iova_len 0x180000000 = 0x180000 pfns.
  // iommu_dma_alloc_iova: SAC-first fails (0x180000 pfns ≥ max32_alloc_size 0x100000), then
  // below the 48-bit aperture (end pfn 0xfffffffff, exclusive limit 0x1000000000), size-aligned
  // to 0x200000 pfns: (0x1000000000 − 0x180000) & ~0x1fffff = 0xfffe80000 & ~0x1fffff
  // = pfn 0xfffe00000, IOVA 0xfffe00000000.
  // __finalise_sg: entry 0 was padded (0xc0000000 < 0x100000000) so cur_len resets and entry 1
  // opens a segment at 0xfffe00000000 + 0x100000000 = 0xffff00000000.
  // With a ULONG_MAX boundary there is no pad (0x140000 pfns, same base) and entry 1 would sit
  // at 0xfffe00000000 + 0xc0000000 = 0xfffec0000000.
  const s = session({ device: { bus: 'pci', dma_mask: '0xffffffffffffffff', max_segment_size: 0xffffffff, coherent: true } });
  const r = mapSg(s, [
    { phys: '0x100000000', length: 0xc0000000 },
    { phys: '0x200000000', length: 0x80000000 },
  ]);
  t.same(
    r.segments.map((g) => [g.dma_address, g.dma_length]),
    [
      ['0xfffe00000000', 0xc0000000],
      ['0xffff00000000', 0x80000000],
    ],
  );
});

/** 382 one-page maps (map k at pfn 0x100000 − k: top-down below the 32-bit mask), then unmaps in map order. */
function fillDepot(): Session {
  const s = session({});
  const handles: number[] = [];
  for (let k = 1; k <= 382; k++) {
    const r = mapPage(s, 0x80000000 + k * 0x1000, 4096);
    if (r.handle === null) throw new Error('map failed');
    handles.push(r.handle);
  }
  for (const h of handles) unmap(s, h);
  return s;
}

t.test('iova_depot_work_func: after IOVA_DEPOT_DELAY a depot keeps num_online_cpus (1) magazines, the newest go back to the tree', async (t) => {
  // Frees #1..#382 into class 0 (__iova_rcache_insert, 127 pfns a magazine):
  //   #1..#127 fill loaded; #128 swaps (prev = #1..#127); #128..#254 fill loaded;
  //   #255 pushes loaded (#128..#254) to the depot; #255..#381 fill a fresh loaded;
  //   #382 pushes it (#255..#381): depot = [#128..#254, #255..#381], loaded = [#382].
  // The trim (6.12 recording, sequence depot-trim) pops the top magazine, #255..#381, and frees
  // its 127 pfns to the tree.
  const s = fillDepot();
  t.same(s.flush(FlushBody.parse({ depot_trim: true })), { flushed: 0, rcache_freed: 127 });
  const got: string[] = [];
  for (let k = 1; k <= 256; k++) got.push(mapPage(s, 0x90000000 + k * 0x1000, 4096).dma_address);
  // Allocation 1: loaded's #382 (pfn 0xffe82). 2..128: prev, popped from its end: #127 .. #1,
  // so allocation 128 is #1 (pfn 0xfffff). 129: the depot's remaining magazine, its last pfn
  // #254 (0x100000 − 254 = 0xfff02). 130..255: #253 .. #128. 256: the rcache is empty; the tree
  // walk starts at cached32, which freeing #255 (its pfn_lo ≥ cached32's, __cached_rbnode_
  // delete_update) moved to #254 (0xfff02): the first pfn below it, 0xfff01, is free.
  t.equal(got[0], '0xffe82000');
  t.equal(got[127], '0xfffff000');
  t.equal(got[128], '0xfff02000');
  t.equal(got[254], '0xfff80000', 'allocation 255 is #128 (0x100000 − 128 = 0xfff80)');
  t.equal(got[255], '0xfff01000');
});

t.test('without time passing (no depot_trim) the depot keeps both magazines: allocation 129 takes the newest one\'s last pfn', async (t) => {
  // Depot top is #255..#381: its last pfn is #381 = 0x100000 − 381 = 0xffe83.
  const s = fillDepot();
  const got: string[] = [];
  for (let k = 1; k <= 129; k++) got.push(mapPage(s, 0x90000000 + k * 0x1000, 4096).dma_address);
  t.equal(got[128], '0xffe83000');
});
