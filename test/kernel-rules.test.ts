// Rules the real-kernel recordings (test/kernel-recordings/, conformance/) showed dmaemu had to
// follow; each test is named after the kernel rule and worked by hand.
import t from 'tap';
import { mapSg, session } from './helpers/dma-core.js';

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
