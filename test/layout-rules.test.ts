// One hand-worked test per rule of docs/linux-semantics.md §2, §3, §4, §6 and §7.
// Every expected value is worked from the rule in the comment above it (never pasted from the
// emulator's output). Unless a test says otherwise: platform device, 32-bit dma_mask, 4 KiB
// pages and granule, fresh domain over a 48-bit aperture, so the `linux` allocator's limit is
// pfn 0xfffff and it places top-down, size-aligned (sizes below 32 pfns rounded to a power of 2).
import t from 'tap';
import { MapSgBody } from '../schemas/dma.js';
import {
  DMA_MAPPING_ERROR,
  FOUR_PAGES,
  IOMMU_48,
  allocCoherent,
  cpuRead,
  cpuWrite,
  deviceRead,
  freeCoherent,
  hx,
  mapPage,
  mapSg,
  pattern,
  segs,
  session,
  sessionError,
  unmap,
  type Entry,
} from './helpers/dma-core.js';

const linux = (device: Record<string, unknown> = {}, iommu: Record<string, unknown> = IOMMU_48, extra: Record<string, unknown> = {}) =>
  session({ device: { bus: 'platform', dma_mask: '0xffffffff', ...device }, iommu, layout: 'linux', page_size: 4096, ...extra });
const linux44 = (device: Record<string, unknown> = {}, iommu: Record<string, unknown> = IOMMU_48, extra: Record<string, unknown> = {}) =>
  session({ device: { bus: 'platform', dma_mask: '0xffffffff', ...device }, iommu, layout: 'linux-4.4', page_size: 4096, ...extra });
const ARM_APERTURE = { granule: 4096, aperture: { start: '0x10000000', end: '0x4fffffff' }, strict: true };
const arm = (device: Record<string, unknown> = {}, iommu: Record<string, unknown> = ARM_APERTURE) =>
  session({ device: { bus: 'platform', dma_mask: '0xffffffff', ...device }, iommu, layout: 'arm-legacy', page_size: 4096 });
const direct = (device: Record<string, unknown> = {}, swiotlb: Record<string, unknown> = {}) =>
  session({ device: { bus: 'platform', dma_mask: '0xffffffff', ...device }, iommu: null, swiotlb });

const pages = (n: number, base = 0x81000000, stride = 0x01000000, length = 4096): Entry[] =>
  Array.from({ length: n }, (_, i) => ({ phys: hx(base + i * stride), length }));

// ---- §2 device parameters, defaults and validation ----------------------------------------

t.test('§2 defaults: no dma_parms, 32-bit masks, max_segment_size 65536, boundary ~0 (linux), 4 KiB granule', async (t) => {
  const c = session({}).wireConfig;
  t.equal(c.layout, 'linux');
  t.equal(c.device.bus, 'platform');
  t.equal(c.device.dma_mask, '0xffffffff');
  t.equal(c.device.coherent_dma_mask, '0xffffffff');
  t.equal(c.device.max_segment_size, 65536);
  t.equal(c.device.segment_boundary_mask, '0xffffffffffffffff');
  t.equal(c.iommu?.granule, 4096);
  t.equal(c.page_size, 4096);
});

t.test('§2 defaults: linux-4.4 keeps the pre-2020 segment_boundary_mask 0xffffffff', async (t) => {
  t.equal(session({ layout: 'linux-4.4' }).wireConfig.device.segment_boundary_mask, '0xffffffff');
  // An explicit mask wins over either default.
  t.equal(session({ layout: 'linux-4.4', device: { segment_boundary_mask: '0xffff' } }).wireConfig.device.segment_boundary_mask, '0xffff');
});

t.test('§2 validation: an invalid config is refused and the error names the field', async (t) => {
  const cases: [string, Record<string, unknown>, string][] = [
    ['granule above page_size', { page_size: 4096, iommu: { granule: 16384 } }, 'iommu.granule'],
    ['segment_boundary_mask not 2^n − 1', { device: { segment_boundary_mask: '0xfff0' } }, 'device.segment_boundary_mask'],
    ['segment_boundary_mask with a hole', { device: { segment_boundary_mask: '0xff0fff' } }, 'device.segment_boundary_mask'],
    ['aperture start above end', { iommu: { aperture: { start: '0x2000', end: '0x1000' } } }, 'iommu.aperture'],
    ['reserved region start above end', { iommu: { reserved: [{ start: '0x9000', end: '0x8000' }] } }, 'iommu.reserved.0'],
    ['swiotlb size not a multiple of 2 KiB', { iommu: null, swiotlb: { size: 3000 } }, 'swiotlb.size'],
    ['dma_mask of 0', { device: { dma_mask: '0x0' } }, 'device.dma_mask'],
    ['dma_mask wider than 64 bits', { device: { dma_mask: '0x1ffffffffffffffff' } }, 'device.dma_mask'],
    ['reserved region beyond 64 bits', { iommu: { reserved: [{ start: '0x0', end: '0x10000000000000000' }] } }, 'iommu.reserved.0.end'],
    ['granule not a power of two', { iommu: { granule: 8192 } }, 'iommu.granule'],
  ];
  for (const [what, body, field] of cases) {
    const e = sessionError(body);
    t.ok(e, `${what} is refused`);
    t.equal(e?.field, field, `${what}: the error names ${field} (${e?.message ?? ''})`);
  }
  t.equal(sessionError({ device: { segment_boundary_mask: '0xffff' } }), undefined, '0xffff = 2^16 − 1 is accepted');
});

t.test('§2 start_pfn: IOVA allocation never returns pfn 0 (linux)', async (t) => {
  // Aperture [0, 0x3fff] = pfns 0..3; start_pfn = max(1, 0) = 1; limit = min(dma_mask, end) >> 12 = 3.
  // One-pfn maps go top-down, next fit: pfn 3, 2, 1 — and then nothing, since pfn 0 is never used.
  const s = linux({}, { granule: 4096, aperture: { start: '0x0', end: '0x3fff' }, strict: true });
  t.equal(mapPage(s, '0x81000000', 4096).dma_address, '0x3000');
  t.equal(mapPage(s, '0x82000000', 4096).dma_address, '0x2000');
  t.equal(mapPage(s, '0x83000000', 4096).dma_address, '0x1000');
  const r = mapPage(s, '0x84000000', 4096);
  t.equal(r.dma_address, DMA_MAPPING_ERROR);
  t.equal(r.error?.errno, 'ENOMEM');
});

t.test('§2 reserved regions are never handed out (linux)', async (t) => {
  // Reserved [0xffff0000, 0xffffffff] = pfns 0xffff0..0xfffff. 4 pfns top-down from 0x100000 would be
  // 0xffffc, which overlaps it; the walk goes below the reserved range: (0xffff0 − 4) & ~3 = 0xfffec.
  const s = linux({}, { ...IOMMU_48, reserved: [{ start: '0xffff0000', end: '0xffffffff' }] });
  const r = mapSg(s, FOUR_PAGES);
  t.same(segs(r), [['0xfffec000', 0x4000]]);
});

// ---- §3 map_sg, layout linux ----------------------------------------------------------------

t.test('§3 (§10 example): four scattered pages, defaults → one segment {0xffffc000, 0x4000}', async (t) => {
  // Steps 1–3: each entry iova_off 0, s_iova_len 0x1000, no boundary pad (mask ~0): iova_len 0x4000.
  // Step 4: 4 pfns, aligned to 4, top-down under 0xfffff → pfn 0xffffc. Entries laid back to back:
  // 0xffffc000→0x81000000, 0xffffd000→0x83000000, 0xffffe000→0x82000000, 0xfffff000→0x84000000.
  // Step 5: entries 1..3 start on a granule, off the (~0) boundary, 65536 − cur_len ≥ 0x1000 → joined.
  const s = linux();
  const r = mapSg(s, FOUR_PAGES, 'to_device', true);
  t.equal(r.nents, 1);
  t.same(segs(r), [['0xffffc000', 0x4000]]);
  t.same(r.iova, { start: '0xffffc000', size: 0x4000 });
  t.same(r.pages, [
    { iova: '0xffffc000', phys: '0x81000000' },
    { iova: '0xffffd000', phys: '0x83000000' },
    { iova: '0xffffe000', phys: '0x82000000' },
    { iova: '0xfffff000', phys: '0x84000000' },
  ]);
});

t.test('§3 step 1 (§10 example): iova_off pads an entry to whole granules; it cannot be extended', async (t) => {
  // Entry 0: iova_off 0x800, s_iova_len = align_up(0x1000 + 0x800) = 0x2000; entry 1: 0x1000.
  // iova_len 0x3000 = 3 pfns → rounded to 4 → pfn 0xffffc. Entry 0's segment at 0xffffc000 + 0x800.
  // After entry 0, length + iova_off = 0x1800 < 0x2000 → cur_len = 0: entry 1 (at 0xffffe000) is new.
  const s = linux();
  const r = mapSg(s, [{ phys: '0x81000800', length: 0x1000 }, { phys: '0x82000000', length: 0x1000 }], 'from_device', true);
  t.equal(r.nents, 2);
  t.same(segs(r), [['0xffffc800', 0x1000], ['0xffffe000', 0x1000]]);
  t.same(r.pages, [
    { iova: '0xffffc000', phys: '0x81000000' },
    { iova: '0xffffd000', phys: '0x81001000' },
    { iova: '0xffffe000', phys: '0x82000000' },
  ]);
});

t.test('§3 step 1: iova_off is the offset within the IOVA granule, not within the CPU page', async (t) => {
  // page_size 16 KiB, granule 4 KiB. Entry 0 at 0x81002800 (page offset 0x2800): iova_off =
  // 0x2800 mod 0x1000 = 0x800, s_iova_len = align_up(0x800 + 0x800) = 0x1000, and it ends on the
  // granule (0x800 + 0x800 = 0x1000), so cur_len is kept. Entry 1 at 0x90003000: iova_off 0.
  // 2 pfns → pfn 0xffffe. Segment 0 at 0xffffe000 + 0x800; entry 1 (0xfffff000) joins: 0x1800.
  const s = linux({}, IOMMU_48, { page_size: 16384 });
  const r = mapSg(s, [{ phys: '0x81002800', length: 0x800 }, { phys: '0x90003000', length: 0x1000 }], 'to_device', true);
  t.same(segs(r), [['0xffffe800', 0x1800]]);
  t.same(r.pages, [
    { iova: '0xffffe000', phys: '0x81002000' },
    { iova: '0xfffff000', phys: '0x90003000' },
  ]);
});

t.test('§3 step 2: segment_boundary_mask padding grows the previous entry to end on the boundary', async (t) => {
  // mask 0xffff (64 KiB), max_segment_size 1 MiB so only the boundary matters.
  // Entry A 0xc000: pad = (0xffff − 0 + 1) & 0xffff = 0; iova_len = 0xc000.
  // Entry B 0x8000: pad = (0xffff − 0xc000 + 1) & 0xffff = 0x4000; 0x4000 < 0x8000 − 1 → A grows
  // to 0x10000, iova_len = 0x10000; B at 0x10000; iova_len = 0x18000 = 24 pfns → 32, aligned 32:
  // (0x100000 − 32) & ~31 = 0xfffe0. A {0xfffe0000, 0xc000}; A's padded s_iova_len (0x10000) >
  // 0xc000 → cur_len = 0, and B's IOVA 0xffff0000 & 0xffff = 0 → B is {0xffff0000, 0x8000}.
  const s = linux({ segment_boundary_mask: '0xffff', max_segment_size: 0x100000 });
  const r = mapSg(s, [{ phys: '0x90000000', length: 0xc000 }, { phys: '0x91000000', length: 0x8000 }], 'to_device', true);
  t.same(segs(r), [['0xfffe0000', 0xc000], ['0xffff0000', 0x8000]]);
  t.same(r.iova, { start: '0xfffe0000', size: 0x20000 });
  // The pad is added to A's s->length, and iommu_map_sg maps each entry's s->length: the IOMMU maps
  // the 4 pages after A (0x9000c000..) into the pad, then B's 8 pages from 0xffff0000: 24 rows.
  t.equal(r.pages?.length, 24);
  t.same(r.pages?.[12], { iova: '0xfffec000', phys: '0x9000c000' });
  t.same(r.pages?.[16], { iova: '0xffff0000', phys: '0x91000000' });
});

t.test('§3 step 2: no pad when the entry fits exactly up to the boundary', async (t) => {
  // mask 0xffff. A 0x8000; before B: pad = (0xffff − 0x8000 + 1) & 0xffff = 0x8000, not < 0x8000 − 1
  // → no pad. iova_len 0x10000 = 16 pfns → pfn 0xffff0. B at 0xffff8000 (& 0xffff ≠ 0), 65536 −
  // 0x8000 ≥ 0x8000 → joined: one segment {0xffff0000, 0x10000}.
  const s = linux({ segment_boundary_mask: '0xffff' });
  const r = mapSg(s, [{ phys: '0x90000000', length: 0x8000 }, { phys: '0x91000000', length: 0x8000 }]);
  t.same(segs(r), [['0xffff0000', 0x10000]]);
});

t.test('§3 step 4: one allocation against dma_mask (and the aperture), top-down', async (t) => {
  // 24-bit mask: limit 0xfff → 4 pfns at 0xffc.
  t.same(segs(mapSg(linux({ dma_mask: '0xffffff' }), FOUR_PAGES)), [['0xffc000', 0x4000]]);
  // 40-bit platform device: limit 0xfffffff → (0x10000000 − 4) & ~3 = 0xffffffc.
  t.same(segs(mapSg(linux({ dma_mask: '0xffffffffff' }), FOUR_PAGES)), [['0xffffffc000', 0x4000]]);
  // 40-bit PCI device: SAC-first tries below 4 GiB first (§5) → 0xffffc.
  t.same(segs(mapSg(linux({ bus: 'pci', dma_mask: '0xffffffffff' }), FOUR_PAGES)), [['0xffffc000', 0x4000]]);
  // Aperture end 0xfffffff clamps a 32-bit mask: limit 0xffff → 0xfffc.
  const small = linux({}, { granule: 4096, aperture: { start: '0x0', end: '0xfffffff' }, strict: true });
  t.same(segs(mapSg(small, FOUR_PAGES)), [['0xfffc000', 0x4000]]);
});

t.test('§3 step 5 (§10 example): max_segment_size 8192 splits the range in two', async (t) => {
  // Entries at 0xffffc000.. as in §10. Entry 1: 8192 − 0x1000 ≥ 0x1000 → joins (cur_len 0x2000);
  // entry 2: 8192 − 0x2000 = 0 < 0x1000 → new segment at 0xffffe000; entry 3 joins it.
  const r = mapSg(linux({ max_segment_size: 8192 }), FOUR_PAGES, 'bidirectional');
  t.equal(r.nents, 2);
  t.same(segs(r), [['0xffffc000', 0x2000], ['0xffffe000', 0x2000]]);
  t.same(r.iova, { start: '0xffffc000', size: 0x4000 }, 'still one allocation');
});

t.test('§3 step 5: an entry starting on a segment boundary is never concatenated', async (t) => {
  // mask 0xffff, max 1 MiB. A 0x10000: no pad before B ((0xffff − 0x10000 + 1) & 0xffff = 0).
  // iova_len 0x14000 = 20 pfns → 32 → pfn 0xfffe0. B's IOVA 0xffff0000 & 0xffff = 0 → new segment.
  const s = linux({ segment_boundary_mask: '0xffff', max_segment_size: 0x100000 });
  const r = mapSg(s, [{ phys: '0x90000000', length: 0x10000 }, { phys: '0x91000000', length: 0x4000 }]);
  t.same(segs(r), [['0xfffe0000', 0x10000], ['0xffff0000', 0x4000]]);
});

t.test('§3 step 5: an entry with iova_off != 0 starts a new segment', async (t) => {
  // A 0x1000 at 0x81000000; B 0x800 at 0x82000400 (iova_off 0x400, s_iova_len 0x1000).
  // 2 pfns → 0xffffe. A {0xffffe000, 0x1000}; B cannot join (iova_off ≠ 0): {0xfffff400, 0x800}.
  const r = mapSg(linux(), [{ phys: '0x81000000', length: 0x1000 }, { phys: '0x82000400', length: 0x800 }]);
  t.same(segs(r), [['0xffffe000', 0x1000], ['0xfffff400', 0x800]]);
});

t.test('§3 step 5: cur_len reset — an entry that stops short of its granule cannot be extended', async (t) => {
  // A 0x800 at 0x81000000: s_iova_len 0x1000 > 0x800 + 0 → cur_len = 0 after it.
  // 2 pfns → 0xffffe: {0xffffe000, 0x800}, then B {0xfffff000, 0x1000}.
  const r = mapSg(linux(), [{ phys: '0x81000000', length: 0x800 }, { phys: '0x82000000', length: 0x1000 }]);
  t.same(segs(r), [['0xffffe000', 0x800], ['0xfffff000', 0x1000]]);
});

t.test('§3 step 5: max_segment_size − cur_len is unsigned int: after an over-long entry, entries join it', async (t) => {
  // max 0x2000. A 0x4000: new segment, cur_len 0x4000. B 0x1000: 0x2000 − 0x4000 wraps to 0xffffe000
  // ≥ 0x1000 → joins (0x5000); C likewise (0x6000). 6 pfns → 8 → (0x100000 − 8) & ~7 = 0xffff8.
  const r = mapSg(linux({ max_segment_size: 0x2000 }), [
    { phys: '0x90000000', length: 0x4000 },
    { phys: '0x91000000', length: 0x1000 },
    { phys: '0x92000000', length: 0x1000 },
  ]);
  t.same(segs(r), [['0xffff8000', 0x6000]]);
});

t.test('§3 step 6: an entry longer than max_segment_size is never split', async (t) => {
  // 0x30000 = 48 pfns (≥ 32: not rounded), aligned to 64: (0x100000 − 48) & ~63 = 0xfffc0.
  const r = mapSg(linux(), [{ phys: '0x90000000', length: 0x30000 }]);
  t.same(segs(r), [['0xfffc0000', 0x30000]]);
  t.same(r.iova, { start: '0xfffc0000', size: 0x30000 });
});

t.test('§3 step 5 with the 2015 thread list {64k, 16k, 64k}: default max and UINT_MAX', async (t) => {
  // No pads (mask ~0). iova_len 0x24000 = 36 pfns (not rounded), aligned 64 → 0xfffc0. Entries at
  // 0xfffc0000, 0xfffd0000, 0xfffd4000. Default max 0x10000: B: 0x10000 − 0x10000 = 0 < 0x4000 →
  // new; C: 0x10000 − 0x4000 < 0x10000 → new. UINT_MAX: everything joins, 0x24000.
  const list: Entry[] = [
    { phys: '0x90000000', length: 0x10000 },
    { phys: '0x91000000', length: 0x4000 },
    { phys: '0x92000000', length: 0x10000 },
  ];
  t.same(segs(mapSg(linux(), list)), [['0xfffc0000', 0x10000], ['0xfffd0000', 0x4000], ['0xfffd4000', 0x10000]]);
  t.same(segs(mapSg(linux({ max_segment_size: 0xffffffff }), list)), [['0xfffc0000', 0x24000]]);
});

t.test('§3 step 7: unmap frees first-segment start to last-segment end, widened; its size picks the rcache class', async (t) => {
  // The §10 offset list: allocation 4 pfns at 0xffffc. Unmap frees 0xffffc800 − 0x800 ..
  // align_up(0xfffff000) = 3 pfns → rcache class order_base_2(3) = 2 (the 4-pfn class).
  // A later 4-pfn request (class 2) pops pfn 0xffffc from that magazine: the same address.
  const s = linux();
  const a = mapSg(s, [{ phys: '0x81000800', length: 0x1000 }, { phys: '0x82000000', length: 0x1000 }]);
  t.equal(s.summary().iova_bytes_in_use, 0x4000);
  const u = unmap(s, a.handle ?? 0);
  t.same(u.iova, { start: '0xffffc000', size: 0x4000 });
  t.equal(s.summary().iova_bytes_in_use, 0);
  t.equal(s.summary().live_mappings, 0);
  t.match(deviceRead(s, '0xffffc800', 16).out.fault?.reason, /unmapped IOVA/, 'the IOMMU no longer maps it');
  t.same(segs(mapSg(s, FOUR_PAGES)), [['0xffffc000', 0x4000]], 'reused from the class-2 rcache');
});

t.test('§3 step 8: no IOVA space → nents 0, ENOMEM, nothing mapped, nothing leaked', async (t) => {
  // Aperture [0, 0xffff]: pfns 1..15 usable (limit 0xf). 8 pfns → (0x10 − 8) & ~7 = 8 → 0x8000.
  // A second 8-pfn list: below pfn 8 only (8 − 8) & ~7 = 0 < start_pfn 1 → fails.
  // A following 4-pfn list: next fit below pfn 8 → (8 − 4) & ~3 = 4 → 0x4000 — as in a twin
  // session that never saw the failure.
  const ap = { granule: 4096, aperture: { start: '0x0', end: '0xffff' }, strict: true };
  const s = linux({}, ap);
  const twin = linux({}, ap);
  const eight = pages(8);
  t.same(segs(mapSg(s, eight)), [['0x8000', 0x8000]]);
  mapSg(twin, eight);
  const before = s.summary();
  const r = mapSg(s, pages(8, 0x90000000));
  t.equal(r.nents, 0);
  t.same(r.segments, []);
  t.equal(r.handle, null);
  t.equal(r.error?.errno, 'ENOMEM');
  const after = s.summary();
  t.equal(after.live_mappings, 1);
  t.equal(after.iova_bytes_in_use, 0x8000);
  t.equal(after.iova_ranges, before.iova_ranges, 'no IOVA range left behind');
  t.equal(s.mappingsTable().mappings.length, 1);
  const next = mapSg(s, pages(4, 0xa0000000));
  t.same(segs(next), [['0x4000', 0x4000]]);
  t.same(segs(next), segs(mapSg(twin, pages(4, 0xa0000000))), 'same as a session that never failed');
});

t.test('§3 step 8: an empty list or a zero-length entry is a caller error (400), never a kernel result', async (t) => {
  t.notOk(MapSgBody.safeParse({ dir: 'to_device', sg: [] }).success, 'empty list');
  t.notOk(MapSgBody.safeParse({ dir: 'to_device', sg: [{ phys: '0x81000000', length: 0 }] }).success, 'zero-length entry');
});

// ---- §4 map_sg, layout linux-4.4 ------------------------------------------------------------

t.test('§4 linux-4.4 (§10 example): every entry is its own segment', async (t) => {
  // Pads: roundup_pow_of_two(0x1000) − iova_len is a multiple of 0x1000 → 0. 4 pfns (a power of 2);
  // v4.4 places at limit − size − pad + 1 = 0xfffff − 4 − 0 + 1 = 0xffffc.
  const r = mapSg(linux44(), FOUR_PAGES);
  t.equal(r.nents, 4);
  t.same(segs(r), [['0xffffc000', 0x1000], ['0xffffd000', 0x1000], ['0xffffe000', 0x1000], ['0xfffff000', 0x1000]]);
});

t.test('§4 linux-4.4: the 2015 thread list {64k, 16k, 64k} — each entry padded to its power of two', async (t) => {
  // A 0x10000 at 0. B 0x4000: p = 0x4000, pad = (0x4000 − 0x10000) & 0x3fff = 0 → at 0x10000.
  // C 0x10000: p = 0x10000, pad = (0x10000 − 0x14000) & 0xffff = 0xc000 → B grows, C at 0x20000.
  // iova_len 0x30000 = 48 pfns → rounded to 64; pad = 0x100000 mod 64 = 0 → 0xfffff − 64 + 1 = 0xfffc0.
  const r = mapSg(linux44(), [
    { phys: '0x90000000', length: 0x10000 },
    { phys: '0x91000000', length: 0x4000 },
    { phys: '0x92000000', length: 0x10000 },
  ]);
  t.equal(r.nents, 3);
  t.same(segs(r), [['0xfffc0000', 0x10000], ['0xfffd0000', 0x4000], ['0xfffe0000', 0x10000]]);
  t.same(r.iova, { start: '0xfffc0000', size: 0x40000 });
});

t.test('§4 linux-4.4: pad = (roundup_pow_of_two(s_iova_len) − iova_len) & (… − 1) aligns each entry', async (t) => {
  // A 0x1000; B 0x2000: p = 0x2000, pad = (0x2000 − 0x1000) & 0x1fff = 0x1000 → B at 0x2000.
  // 4 pfns → 0xffffc: A {0xffffc000, 0x1000}, B {0xffffe000, 0x2000}.
  const r = mapSg(linux44(), [{ phys: '0x81000000', length: 0x1000 }, { phys: '0x82000000', length: 0x2000 }]);
  t.same(segs(r), [['0xffffc000', 0x1000], ['0xffffe000', 0x2000]]);
});

t.test('§4 linux-4.4: an offset entry keeps its in-granule offset; nents is the input count', async (t) => {
  // A at 0x81000800: s_iova_len 0x2000; B 0x1000: pad (0x1000 − 0x2000) & 0xfff = 0. 3 pfns → 4 →
  // 0xffffc. A {0xffffc800, 0x1000}, B {0xffffe000, 0x1000}.
  const r = mapSg(linux44(), [{ phys: '0x81000800', length: 0x1000 }, { phys: '0x82000000', length: 0x1000 }]);
  t.equal(r.nents, 2);
  t.same(segs(r), [['0xffffc800', 0x1000], ['0xffffe000', 0x1000]]);
});

t.test('§4 linux-4.4: page_size > granule — v4.4 adds the CPU-page offset (s->offset), not iova_off', async (t) => {
  // page 16 KiB, granule 4 KiB, entry at 0x81002000: page offset 0x2000, iova_off 0. One pfn at
  // 0xfffff. The page says "entry_iova + iova_off" = 0xfffff000; v4.4's iommu_dma_map_sg stashes
  // s->offset (the page offset) in sg_dma_address and __finalise_sg adds it back: 0xfffff000 +
  // 0x2000 = 0x100001000 (fixed in v4.6, "iommu/dma: Use correct offset in map_sg"). The kernel
  // wins (see FINDINGS-core.md): we expect v4.4's address.
  const r = mapSg(linux44({}, IOMMU_48, {}), [{ phys: '0x81002000', length: 0x1000 }]);
  t.equal(r.nents, 1);
  const s16 = linux44({}, IOMMU_48, { page_size: 16384 });
  t.same(segs(mapSg(s16, [{ phys: '0x81002000', length: 0x1000 }])), [['0x100001000', 0x1000]]);
  t.same(segs(r), [['0xfffff000', 0x1000]], 'with page_size = granule both readings agree');
});

t.test('§4/§5 linux-4.4: unmap frees the range holding the handle\'s pfn — even when v4.4\'s offset puts it in another mapping', async (t) => {
  // page 64 KiB, granule 4 KiB, coherent device. A: 0x80000000 → 1 pfn at 0xfffff, segment
  // 0xfffff000. B: 0x80001000 (page offset 0x1000) → 1 pfn at 0xffffe, segment 0xffffe000 + 0x1000
  // = 0xfffff000 (v4.4's offset). Unmapping B: v4.4's __iommu_dma_unmap does find_iova(pfn
  // 0xfffff) → A's range: it unmaps and frees A's IOVA; B's stays mapped (leaked, a WARN-free leak).
  // C then gets the free pfn 0xfffff; the device reading 0xfffff000 must see C's buffer — the
  // emulator must never report an internal error for a sequence of valid calls.
  const s = linux44({ coherent: true }, IOMMU_48, { page_size: 65536 });
  const a = mapSg(s, [{ phys: '0x80000000', length: 0x1000 }]);
  const b = mapSg(s, [{ phys: '0x80001000', length: 0x1000 }]);
  t.same([segs(a), segs(b)], [[['0xfffff000', 0x1000]], [['0xfffff000', 0x1000]]]);
  unmap(s, b.handle ?? 0);
  cpuWrite(s, 0x90000000, pattern(0x1000, 9));
  const c = mapSg(s, [{ phys: '0x90000000', length: 0x1000 }]);
  t.same(segs(c), [['0xfffff000', 0x1000]], 'C reuses the pfn B\'s unmap freed');
  let got: Uint8Array | undefined;
  t.doesNotThrow(() => {
    got = deviceRead(s, '0xfffff000', 0x1000).data;
  }, 'device access after valid calls never fails inside the emulator');
  t.same(got, pattern(0x1000, 9), 'the IOMMU maps C there now');
});

t.test('§4/§5 linux-4.4: allocation failure → nents 0; start_pfn itself is never handed out', async (t) => {
  // dma_mask 0x3fff → limit pfn 3 (not the 32-bit pfn, so no cached32_node). 1 pfn: 3, then 2
  // (limit lowered to 2, start_pfn + 1 <= 2), then limit 1: start_pfn + 1 <= 1 fails → nents 0.
  // Freeing pfn 3 lets the next one-pfn request have it again.
  const s = linux44({ dma_mask: '0x3fff' });
  const a = mapSg(s, pages(1));
  t.same(segs(a), [['0x3000', 0x1000]]);
  t.same(segs(mapSg(s, pages(1, 0x82000000))), [['0x2000', 0x1000]]);
  const ranges = s.summary().iova_ranges;
  const f = mapSg(s, pages(1, 0x83000000));
  t.equal(f.nents, 0);
  t.ok(f.error, 'the failure is reported');
  t.equal(s.summary().iova_ranges, ranges, 'nothing allocated');
  unmap(s, a.handle ?? 0);
  t.same(segs(mapSg(s, pages(1, 0x84000000))), [['0x3000', 0x1000]]);
});

t.test('§5 linux-4.4: the request limit is dma_mask, not clamped to the aperture — the map fails', async (t) => {
  // Aperture end 0xfffffff, dma_mask 32 bits: v4.4 places 1 pfn at 0xfffff, beyond the aperture,
  // so the IOMMU map fails and the call fails with nothing left allocated.
  const s = linux44({}, { granule: 4096, aperture: { start: '0x0', end: '0xfffffff' }, strict: true });
  const ranges = s.summary().iova_ranges;
  const r = mapSg(s, pages(1));
  t.equal(r.nents, 0);
  t.ok(r.error, 'the failure is reported');
  t.equal(s.summary().iova_ranges, ranges);
  t.equal(s.summary().iova_bytes_in_use, 0);
});

// ---- §4 map_sg, layout arm-legacy -----------------------------------------------------------

t.test('§4 arm-legacy (§10 example): page-aligned entries form one chunk at the aperture start', async (t) => {
  // chunk_size 0x1000 + 0x1000 + … = 0x4000 ≤ 65536; every entry offset 0, chunk ends on pages.
  // Bitmap first fit, alignment 2^min(get_order(0x4000) = 2, 8) = 4 pages → index 0 → 0x10000000.
  const r = mapSg(arm(), FOUR_PAGES);
  t.same(segs(r), [['0x10000000', 0x4000]]);
  t.same(r.iova_ranges, [{ start: '0x10000000', size: 0x4000 }]);
});

t.test('§4 arm-legacy: a chunk ends when chunk_size + length > max_segment_size; each chunk its own IOVA', async (t) => {
  // max 8192: chunk 0 = entries 0,1 (0x2000); entry 2: 0x2000 + 0x1000 > 0x2000 → chunk 1 = 2,3.
  // Chunk 0: 2 pages, align 2 → index 0; chunk 1: 2 pages, align 2 → index 2 → 0x10002000.
  const r = mapSg(arm({ max_segment_size: 8192 }), FOUR_PAGES);
  t.same(segs(r), [['0x10000000', 0x2000], ['0x10002000', 0x2000]]);
  t.same(r.iova_ranges, [{ start: '0x10000000', size: 0x2000 }, { start: '0x10002000', size: 0x2000 }]);
});

t.test('§4 arm-legacy: the first entry\'s offset counts toward max_segment_size', async (t) => {
  // max 0x3000. chunk_size = 0x800 + 0x1800 = 0x2000 (ends on a page); + 0x1000 = 0x3000 ≤ max →
  // joins; + 0x1000 > max → new chunk. Chunk 0: page_align(0x3000) = 3 pages, get_order = 2 →
  // aligned 4 → index 0; segment {0x10000000 + 0x800, 0x3000 − 0x800}. Chunk 1: 1 page → index 3.
  const r = mapSg(arm({ max_segment_size: 0x3000 }), [
    { phys: '0x81000800', length: 0x1800 },
    { phys: '0x82000000', length: 0x1000 },
    { phys: '0x83000000', length: 0x1000 },
  ]);
  t.same(segs(r), [['0x10000800', 0x2800], ['0x10003000', 0x1000]]);
});

t.test('§4 arm-legacy: an entry with an offset, or after a chunk not ending on a page, starts a chunk', async (t) => {
  // A 0x800 at 0x81000000: chunk_size 0x800 (not a page multiple) → B starts a chunk.
  // C at 0x83000400 has an offset → starts a chunk: 0x400 + 0x1000 → 2 pages, aligned 2.
  // Chunks: index 0 (1 page), index 1 (1 page), index 2 (2 pages) → C at 0x10002000 + 0x400.
  const r = mapSg(arm(), [
    { phys: '0x81000000', length: 0x800 },
    { phys: '0x82000000', length: 0x1000 },
    { phys: '0x83000400', length: 0x1000 },
  ]);
  t.same(segs(r), [['0x10000000', 0x800], ['0x10001000', 0x1000], ['0x10002400', 0x1000]]);
});

t.test('§4 arm-legacy: segment_boundary_mask is ignored', async (t) => {
  // mask 0xffff, max 0x20000: four 32 KiB entries form one 128 KiB chunk that crosses two 64 KiB
  // boundaries; get_order(0x20000) = 5 → aligned 32 pages → index 0.
  const r = mapSg(arm({ segment_boundary_mask: '0xffff', max_segment_size: 0x20000 }), pages(4, 0x90000000, 0x01000000, 0x8000));
  t.same(segs(r), [['0x10000000', 0x20000]]);
});

t.test('§4 arm-legacy: a chunk that cannot be allocated unmaps the chunks already made → 0', async (t) => {
  // Aperture 32 pages (arm_iommu_create_mapping sizes its bitmap in 32-bit longs, so an aperture
  // that is not a multiple of 32 pages would silently grow: we take exactly one long's worth).
  // max 64 KiB = 16 pages: 33 pages → chunk [0..15] at index 0, [16..31] at index 16, [32] finds
  // no room → both chunks are unmapped, nents 0. A following 4-page list gets index 0, as fresh.
  const ap = { granule: 4096, aperture: { start: '0x10000000', end: '0x1001ffff' }, strict: true };
  const s = arm({}, ap);
  const r = mapSg(s, pages(33));
  t.equal(r.nents, 0);
  t.ok(r.error, 'the failure is reported');
  t.equal(s.summary().iova_bytes_in_use, 0);
  t.equal(s.summary().live_mappings, 0);
  t.same(segs(mapSg(s, pages(4, 0x90000000))), [['0x10000000', 0x4000]]);
  t.same(segs(mapSg(s, pages(16, 0xa0000000))), [['0x10010000', 0x10000]], 'index 16 (aligned 16) is free too');
});

// ---- §6 map_page and alloc_coherent ---------------------------------------------------------

t.test('§6 map_page: handle = iova + (phys mod granule); size + iova_off padded to granules', async (t) => {
  // linux: 0x81000234 + 0x100 → iova_off 0x234, 1 pfn at 0xfffff → 0xfffff234.
  t.equal(mapPage(linux(), '0x81000234', 0x100).dma_address, '0xfffff234');
  // Crossing a granule: 0xf00 + 0x200 → 2 pfns, aligned 2 → 0xffffe → 0xffffef00.
  const r = mapPage(linux(), '0x81000f00', 0x200, 'to_device', true);
  t.equal(r.dma_address, '0xffffef00');
  t.same(r.pages, [
    { iova: '0xffffe000', phys: '0x81000000' },
    { iova: '0xfffff000', phys: '0x81001000' },
  ]);
  // 16 KiB granule (page 16 KiB): iova_off 0x1234, 1 pfn; limit 0xffffffff >> 14 = 0x3ffff → 0xffffc000.
  t.equal(mapPage(linux({}, { ...IOMMU_48, granule: 16384 }, { page_size: 16384 }), '0x81001234', 0x100).dma_address, '0xffffd234');
  // linux-4.4: 1 pfn at 0xfffff − 1 + 1 → 0xfffff234.
  t.equal(mapPage(linux44(), '0x81000234', 0x100).dma_address, '0xfffff234');
  // arm-legacy: bitmap index 0 at the aperture start, plus the page offset.
  t.equal(mapPage(arm(), '0x81000234', 0x100).dma_address, '0x10000234');
  // dma-direct: phys + dma_offset.
  t.equal(mapPage(direct({ dma_offset: '0x10000000' }), '0x81000234', 0x100).dma_address, '0x91000234');
});

t.test('§6 alloc_coherent: zeroed pages, mapped against coherent_dma_mask (streaming maps use dma_mask)', async (t) => {
  // coherent_dma_mask 24 bits, dma_mask 32 bits. map_page first: 1 pfn at 0xfffff. Then
  // alloc_coherent(0x2000): 2 pfns under limit 0xfff → (0x1000 − 2) & ~1 = 0xffe → 0xffe000.
  const s = linux({ coherent_dma_mask: '0xffffff' });
  t.equal(mapPage(s, '0x81000000', 0x1000).dma_address, '0xfffff000');
  const c = allocCoherent(s, 0x2000);
  t.equal(c.dma_handle, '0xffe000');
  t.equal(c.phys.length, 2, 'two pages');
  const p0 = Number(c.phys[0]);
  t.same(cpuRead(s, p0, 0x2000), new Uint8Array(0x2000), 'zeroed');
  // Dirty the pages, free them, allocate again: whatever pages come back are zeroed.
  cpuWrite(s, p0, pattern(0x2000, 3));
  t.same(deviceRead(s, c.dma_handle, 0x2000).data, pattern(0x2000, 3), 'coherent: the device sees CPU writes with no sync');
  freeCoherent(s, c.handle ?? 0);
  const c2 = allocCoherent(s, 0x2000);
  t.same(cpuRead(s, Number(c2.phys[0]), 0x2000), new Uint8Array(0x2000), 'a new buffer is zeroed');
  t.same(deviceRead(s, c2.dma_handle, 0x2000).data, new Uint8Array(0x2000));
});

t.test('§6/§7 alloc_coherent without an IOMMU: dma-direct, physically under coherent_dma_mask', async (t) => {
  const s = direct({ dma_offset: '0x40000000' });
  const c = allocCoherent(s, 0x3000);
  t.equal(c.phys.length, 3);
  t.equal(c.dma_handle, hx(Number(c.phys[0]) + 0x40000000), 'dma_handle = phys + dma_offset');
  t.ok(BigInt(c.dma_handle) + 0x3000n - 1n <= 0xffffffffn, 'under coherent_dma_mask');
  // A mask no emulated RAM fits under (1 MiB − 1, plus a 1 GiB dma_offset): the allocation fails.
  const none = direct({ coherent_dma_mask: '0xfffff', dma_offset: '0x40000000' });
  const f = allocCoherent(none, 0x1000);
  t.equal(f.handle, null);
  t.equal(f.dma_handle, DMA_MAPPING_ERROR);
  t.ok(f.error);
});

// ---- §7 no IOMMU: dma-direct and swiotlb ----------------------------------------------------

t.test('§7 dma-direct: dma_address = phys + dma_offset, and map_sg never merges', async (t) => {
  // Two physically adjacent pages stay two segments.
  const r = mapSg(direct({ dma_offset: '0x10000000' }), [{ phys: '0x81000000', length: 0x1000 }, { phys: '0x81001000', length: 0x1000 }]);
  t.equal(r.nents, 2);
  t.same(segs(r), [['0x91000000', 0x1000], ['0x91001000', 0x1000]]);
  t.equal(r.iova, null);
  t.notOk(r.bounced);
  // A 64-bit mask addresses memory above 4 GiB directly.
  t.same(segs(mapSg(direct({ dma_mask: '0xffffffffffffffff' }), [{ phys: '0x100000000', length: 0x1000 }])), [['0x100000000', 0x1000]]);
});

t.test('§7 dma_capable: a buffer not wholly under dma_mask is bounced through swiotlb below 4 GiB', async (t) => {
  // Entry 0 (0x81000000) is addressable; entry 1 (0x100000000) is not → swiotlb slot 0 (page-sized:
  // page aligned; the pool starts page aligned) → the pool's start. Entry 2 straddles 4 GiB
  // (0xfffff800 + 0x1000 − 1 > 0xffffffff): not wholly capable → bounced, next fit after slots 0–1:
  // slot 2 is page aligned (pool start + 0x1000).
  const s = direct();
  const start = Number(s.wireConfig.swiotlb.start);
  t.ok(start + s.wireConfig.swiotlb.size <= 2 ** 32, 'the pool lies below 4 GiB');
  const r = mapSg(s, [
    { phys: '0x81000000', length: 0x1000 },
    { phys: '0x100000000', length: 0x1000 },
    { phys: '0xfffff800', length: 0x1000 },
  ]);
  t.equal(r.bounced, true);
  t.same(segs(r), [['0x81000000', 0x1000], [hx(start), 0x1000], [hx(start + 0x1000), 0x1000]]);
});

t.test('§7 dma_capable failure with no bounce possible: DMA_MAPPING_ERROR; map_sg → -EIO, undone', async (t) => {
  // Above 4 GiB and larger than 256 KiB: swiotlb cannot take it.
  const s = direct({}, { size: 0x80000 });
  const p = mapPage(s, '0x100000000', 0x40001);
  t.equal(p.dma_address, DMA_MAPPING_ERROR);
  t.equal(p.handle, null);
  t.ok(p.error);
  // map_sg: entry 0 bounces (2 slots), entry 1 fails → -EIO and entry 0's slots are released.
  const r = mapSg(s, [{ phys: '0x100000000', length: 0x1000 }, { phys: '0x200000000', length: 0x40001 }]);
  t.equal(r.nents, 0);
  t.equal(r.error?.errno, 'EIO');
  // The pool is 2 × 128 slots: two 256 KiB bounces need all of it, so nothing may have leaked.
  // (Next fit resumes after the released slots 0–1: slot 128 first, then slot 0.)
  const start = Number(s.wireConfig.swiotlb.start);
  const a = mapPage(s, '0x100000000', 0x40000);
  const b = mapPage(s, '0x110000000', 0x40000);
  t.same([a.dma_address, b.dma_address], [hx(start + 0x40000), hx(start)]);
  t.equal(mapPage(s, '0x120000000', 0x800).dma_address, DMA_MAPPING_ERROR, 'and then the pool is full');
});

t.test('§7 swiotlb force: every buffer is bounced, in 2 KiB slots, next fit', async (t) => {
  // 0x100 → slot 0; 0x100 → slot 1 (+0x800); 0x1000 (≥ a page: page aligned) → slot 2 = +0x1000,
  // two slots; 0x900 → two slots at slot 4 = +0x2000.
  const s = direct({}, { force: true });
  const start = Number(s.wireConfig.swiotlb.start);
  const got = [
    mapPage(s, '0x81000000', 0x100),
    mapPage(s, '0x81000100', 0x100),
    mapPage(s, '0x82000000', 0x1000),
    mapPage(s, '0x83000000', 0x900),
  ];
  t.same(
    got.map((r) => r.dma_address),
    [hx(start), hx(start + 0x800), hx(start + 0x1000), hx(start + 0x2000)],
  );
  t.ok(got.every((r) => r.bounced === true));
});

t.test('§7 swiotlb: no allocation crosses a 128-slot segment', async (t) => {
  // 0x3f000 = 126 slots at slot 0. 0x2000 (4 slots) at slot 126 would cross slot 128 → slot 128
  // (+0x40000). Next fit then goes on at slot 132 (+0x42000).
  const s = direct({}, { force: true });
  const start = Number(s.wireConfig.swiotlb.start);
  t.equal(mapPage(s, '0x81000000', 0x3f000).dma_address, hx(start));
  t.equal(mapPage(s, '0x82000000', 0x2000).dma_address, hx(start + 0x40000));
  t.equal(mapPage(s, '0x83000000', 0x800).dma_address, hx(start + 0x42000));
});

t.test('§7 swiotlb: at most 256 KiB (128 slots) per mapping', async (t) => {
  const s = direct({}, { force: true });
  const start = Number(s.wireConfig.swiotlb.start);
  t.equal(mapPage(s, '0x81000000', 0x40000).dma_address, hx(start), '256 KiB fits one segment');
  const big = mapPage(s, '0x82000000', 0x40001);
  t.equal(big.dma_address, DMA_MAPPING_ERROR, '256 KiB + 1 does not');
  t.ok(big.error);
  const sg = mapSg(s, [{ phys: '0x83000000', length: 0x40001 }]);
  t.equal(sg.nents, 0);
  t.equal(sg.error?.errno, 'EIO');
});

t.test('§7 swiotlb: a full pool fails the map; unmapping gives the slots back', async (t) => {
  // Pool 0x80000 = 256 slots. Two 128-slot bounces fill it; a 1-slot bounce then fails. After the
  // first is unmapped, next fit wraps from slot 256 to slot 0.
  const s = direct({}, { size: 0x80000, force: true });
  const start = Number(s.wireConfig.swiotlb.start);
  const a = mapPage(s, '0x81000000', 0x40000);
  t.equal(mapPage(s, '0x82000000', 0x40000).dma_address, hx(start + 0x40000));
  t.equal(mapPage(s, '0x83000000', 0x800).dma_address, DMA_MAPPING_ERROR);
  unmap(s, a.handle ?? 0);
  t.equal(mapPage(s, '0x83000000', 0x800).dma_address, hx(start));
});

t.test('§7 swiotlb: a bounce slot the device cannot address fails the map (DMA_MAPPING_ERROR)', async (t) => {
  // dma_mask just below the pool: 0x10000000 is not addressable, and neither is the bounce slot.
  const probe = direct();
  const start = Number(probe.wireConfig.swiotlb.start);
  const s = direct({ dma_mask: hx(start - 1) });
  const r = mapPage(s, hx(start + 0x1000000), 0x1000);
  t.equal(r.dma_address, DMA_MAPPING_ERROR);
  t.ok(r.error);
});
