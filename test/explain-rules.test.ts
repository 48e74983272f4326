// ?explain=true: one hand-worked test per break reason of every layout (semantics §3, §4, §7),
// the verdict and the parameter it names — and, for each named parameter, a second session that
// proves it really gives one segment. Expected values are worked from the rules in comments.
// Unless a test says otherwise: platform device, 32-bit dma_mask, 4 KiB pages and granule, a
// fresh domain over a 48-bit aperture, so `linux` places top-down from pfn 0xfffff,
// size-aligned, sizes below 32 pfns rounded up to a power of two.
import t from 'tap';
import { MapSgBody } from '../schemas/dma.js';
import { BatchBody } from '../schemas/batch.js';
import type { MapSgOut } from '../schemas/index.js';
import type { Session } from '../src/service/session.js';
import { FOUR_PAGES, IOMMU_48, session, type Entry } from './helpers/dma-core.js';

type Explain = NonNullable<MapSgOut['explain']>;

const linux = (device: Record<string, unknown> = {}, iommu: Record<string, unknown> = IOMMU_48) =>
  session({ device: { bus: 'platform', dma_mask: '0xffffffff', ...device }, iommu, layout: 'linux', page_size: 4096 });
const linux44 = (device: Record<string, unknown> = {}) => session({ device: { bus: 'platform', dma_mask: '0xffffffff', ...device }, iommu: IOMMU_48, layout: 'linux-4.4', page_size: 4096 });
const ARM_APERTURE = { granule: 4096, aperture: { start: '0x10000000', end: '0x4fffffff' }, strict: true };
const arm = (device: Record<string, unknown> = {}) => session({ device: { bus: 'platform', dma_mask: '0xffffffff', ...device }, iommu: ARM_APERTURE, layout: 'arm-legacy', page_size: 4096 });
const direct = (device: Record<string, unknown> = {}, swiotlb: Record<string, unknown> = {}) =>
  session({ device: { bus: 'platform', dma_mask: '0xffffffff', ...device }, iommu: null, swiotlb });

/** The 2015 thread's list: 64 KiB, 16 KiB, 64 KiB, each from its own 16 MiB-apart page. */
const THREAD: Entry[] = [
  { phys: '0x90000000', length: 65536 },
  { phys: '0x91000000', length: 16384 },
  { phys: '0x92000000', length: 65536 },
];

function explained(s: Session, sg: Entry[], dir = 'to_device'): { out: MapSgOut; why: Explain } {
  const out = s.mapSg(MapSgBody.parse({ dir, sg }), false, true);
  if (!out.explain) throw new Error('no explain on a map_sg asked with explain');
  return { out, why: out.explain };
}

const rules = (why: Explain) => why.breaks.map((b) => [b.before_entry, b.rule]);
const segsOf = (out: MapSgOut) => out.segments.map((s) => [s.dma_address, s.dma_length]);

// ---- linux (§3) ---------------------------------------------------------------------------

t.test('linux max_segment_size: the thread list with the default 65536 breaks twice on max_segment_size − cur_len < length', async (t) => {
  // iova_len = 65536 + 16384 + 65536 = 147456 = 36 pfns (≥ 32: not rounded), aligned to 64 pfns
  // below 0x100000 − 36 = 0xfffdc → pfn 0xfffc0. __finalise_sg: entry 1: 65536 − 65536 = 0 <
  // 16384 → new segment; entry 2: 65536 − 16384 = 49152 < 65536 → new segment.
  const { out, why } = explained(linux(), THREAD);
  t.same(segsOf(out), [['0xfffc0000', 65536], ['0xfffd0000', 16384], ['0xfffd4000', 65536]]);
  t.same(rules(why), [[1, 'max_segment_size'], [2, 'max_segment_size']]);
  t.equal(why.breaks[0]?.message, 'max_segment_size 65536 − cur_len 65536 < length 16384');
  t.same(why.breaks[0]?.values, { max_segment_size: 65536, cur_len: 65536, length: 16384 });
  t.same(why.breaks[1]?.values, { max_segment_size: 65536, cur_len: 16384, length: 65536 });
  // 0xfffc0000 + 0x10000 = 0xfffd0000, + 0x4000 = 0xfffd4000: back to back.
  t.equal(why.contiguous_iova, true);
  t.equal(why.one_segment, false);
  // One segment needs max_segment_size ≥ 65536 + 16384 + 65536 = 147456.
  t.same(why.would_merge_with, { max_segment_size: 147456 });
  t.equal(why.verdict, 'one contiguous IOVA range, not one segment (3 segments); max_segment_size ≥ 147456 would give one segment');
});

t.test('linux max_segment_size: the value the verdict names (147456) does give one segment', async (t) => {
  // 147456 − 65536 = 81920 ≥ 16384 → cur_len 81920; 147456 − 81920 = 65536 ≥ 65536 → 147456.
  const { out, why } = explained(linux({ max_segment_size: 147456 }), THREAD);
  t.same(segsOf(out), [['0xfffc0000', 147456]]);
  t.same(why.breaks, []);
});

t.test('linux UINT_MAX max_segment_size: the thread list is one segment, nothing to explain', async (t) => {
  const { out, why } = explained(linux({ max_segment_size: 0xffffffff }), THREAD);
  t.same(segsOf(out), [['0xfffc0000', 147456]]);
  t.same(why.breaks, []);
  t.equal(why.one_segment, true);
  t.equal(why.contiguous_iova, true);
  t.equal(why.would_merge_with, null);
  t.equal(why.verdict, 'one contiguous IOVA range, one segment');
});

t.test('linux entry offset: an entry starting inside a granule (s_iova_off != 0) always starts a segment; no parameter helps', async (t) => {
  // Entry 1 at 0x82000400: iova_off 0x400, padded to align(0x800 + 0x400) = 1 granule; 2 pfns at
  // pfn 0xffffe. Segments 0xffffe000 (0x1000) and 0xfffff000 + 0x400 (0x800): a gap of 0x400.
  const { out, why } = explained(linux(), [{ phys: '0x81000000', length: 0x1000 }, { phys: '0x82000400', length: 0x800 }]);
  t.same(segsOf(out), [['0xffffe000', 0x1000], ['0xfffff400', 0x800]]);
  t.same(rules(why), [[1, 'entry_offset']]);
  t.same(why.breaks[0]?.values, { iova_off: 0x400, granule: 4096 });
  t.equal(why.contiguous_iova, false);
  t.equal(why.would_merge_with, null);
  t.equal(why.verdict, 'not one contiguous IOVA range, not one segment (2 segments); no device parameter would give one segment (entry 1: entry_offset)');
});

t.test('linux previous entry not ending on a granule: length + iova_off < s_iova_len resets cur_len', async (t) => {
  // Entry 0: 0x800 bytes padded to 0x1000, so it ends 0x800 into its granule; 2 pfns at 0xffffe.
  const { out, why } = explained(linux(), [{ phys: '0x81000000', length: 0x800 }, { phys: '0x82000000', length: 0x1000 }]);
  t.same(segsOf(out), [['0xffffe000', 0x800], ['0xfffff000', 0x1000]]);
  t.same(rules(why), [[1, 'previous_partial']]);
  t.same(why.breaks[0]?.values, { prev_length: 0x800, prev_iova_off: 0, granule: 4096 });
  t.equal(why.would_merge_with, null);
});

t.test('linux segment boundary: an entry whose IOVA is on a boundary ((dma_addr & mask) == 0) starts a segment', async (t) => {
  // mask 0x1fff: pads before entries 1..3 are 0x1000, 0, 0x1000, never < s_iova_len − 1 = 0xfff,
  // so none is added; 4 pfns at 0xffffc. Entry 1 at 0xffffd000 (& 0x1fff = 0x1000) joins;
  // entry 2 at 0xffffe000 (& 0x1fff = 0) starts a segment; entry 3 joins it.
  const { out, why } = explained(linux({ segment_boundary_mask: '0x1fff' }), FOUR_PAGES);
  t.same(segsOf(out), [['0xffffc000', 0x2000], ['0xffffe000', 0x2000]]);
  t.same(rules(why), [[2, 'segment_boundary']]);
  t.same(why.breaks[0]?.values, { dma_address: '0xffffe000', segment_boundary_mask: '0x1fff' });
  // The size-aligned 0x4000 allocation lies in one window of a mask ≥ 0x3fff.
  t.same(why.would_merge_with, { segment_boundary_mask: '0x3fff' });
  t.equal(why.verdict, 'one contiguous IOVA range, not one segment (2 segments); segment_boundary_mask ≥ 0x3fff would give one segment');
  const wide = explained(linux({ segment_boundary_mask: '0x3fff' }), FOUR_PAGES);
  t.same(segsOf(wide.out), [['0xffffc000', 0x4000]], 'the named mask gives one segment');
});

t.test('linux segment boundary pad: an entry that would straddle a boundary is moved onto it, and the previous entry cannot be followed', async (t) => {
  // mask 0xffff. Entry 1 at 0x10000: pad (0xffff − 0x10000 + 1) & 0xffff = 0. Entry 2 at 0x14000:
  // pad = (0x10000 − 0x14000) & 0xffff = 0xc000 < 0xffff, so entry 1 grows to 0x10000 and entry 2
  // starts at 0x20000. 0x30000 = 48 pfns, aligned to 64 below 0x100000 − 48 → pfn 0xfffc0.
  // Entry 1 at 0xfffd0000 is on a boundary; entry 2 follows a padded entry 1 (cur_len reset).
  const { out, why } = explained(linux({ segment_boundary_mask: '0xffff' }), THREAD);
  t.same(segsOf(out), [['0xfffc0000', 65536], ['0xfffd0000', 16384], ['0xfffe0000', 65536]]);
  t.same(rules(why), [[1, 'segment_boundary'], [2, 'segment_boundary']]);
  t.equal(why.breaks[1]?.kernel, 'iommu_dma_map_sg');
  t.equal(why.contiguous_iova, false);
  // Unpadded 147456 bytes fit a 0x40000 window; and since __finalise_sg tests the boundary
  // before max_segment_size, 65536 would still split it: both are named.
  t.same(why.would_merge_with, { max_segment_size: 147456, segment_boundary_mask: '0x3ffff' });
  const fixed = explained(linux({ segment_boundary_mask: '0x3ffff', max_segment_size: 147456 }), THREAD);
  t.same(segsOf(fixed.out), [['0xfffc0000', 147456]], 'the named pair gives one segment');
});

t.test('linux obstacles: a boundary break can hide an entry offset (issue 25\'s list); the advice then is null and the verdict names both', async (t) => {
  // Device: max_segment_size UINT_MAX, segment_boundary_mask 0xffff (64 KiB windows), 40-bit
  // dma_mask, platform bus. iommu_dma_map_sg lays the entries out (iova_len before each; pad =
  // (mask − iova_len + 1) & mask, added to the previous entry when pad && pad < s_iova_len − 1):
  //   e0 4096 @0x80000000:       at 0x0,     s_iova_len 0x1000
  //   e1 98304 @0x81000000:      pad 0x10000 − 0x1000 = 0xf000 < 0x17fff → e0 grows to 0x10000; at 0x10000, 0x18000
  //   e2 16384 @0x82000000:      pad 0x10000 − 0x8000 = 0x8000, not < 0x3fff → none; at 0x28000, 0x4000
  //   e3 40960 @0x83000000:      pad 0x10000 − 0xc000 = 0x4000 < 0x9fff → e2 grows to 0x8000; at 0x30000, 0xa000
  //   e4 98304 @0x8400093d:      iova_off 0x93d, s_iova_len align(0x18000 + 0x93d) = 0x19000;
  //                              pad 0x10000 − 0xa000 = 0x6000 < 0x18fff → e3 grows to 0x10000; at 0x40000
  // iova_len 0x59000 = 89 pfns (≥ 32: not rounded), size-aligned to 128 pfns below pfn
  // 0x10000000 (40-bit mask): (0x10000000 − 89) & ~127 = 0xfffff80 → 0xfffff80000.
  // __finalise_sg: e1 follows a grown e0 (cur_len reset) → new segment; e2 joins (pfn 0xfffffa8
  // & 15 != 0, UINT_MAX − 0x18000 ≥ 0x4000); e3 follows a grown e2 → new; e4 follows a grown e3
  // → new, and its s_iova_off 0x93d would start one anyway. 4 segments.
  const sg = [
    { phys: '0x80000000', length: 4096 },
    { phys: '0x81000000', length: 98304 },
    { phys: '0x82000000', length: 16384 },
    { phys: '0x83000000', length: 40960 },
    { phys: '0x8400093d', length: 98304 },
  ];
  const device = { max_segment_size: 0xffffffff, segment_boundary_mask: '0xffff', dma_mask: '0xffffffffff' };
  const { out, why } = explained(linux(device), sg);
  t.same(segsOf(out), [['0xfffff80000', 0x1000], ['0xfffff90000', 0x1c000], ['0xfffffb0000', 0xa000], ['0xfffffc093d', 0x18000]]);
  t.same(rules(why), [[1, 'segment_boundary'], [3, 'segment_boundary'], [4, 'segment_boundary']]);
  // The obstacles: e4's offset (no parameter moves a buffer), and the pads before e1, e3, e4,
  // which a window holding the whole list removes: Σ granule-padded lengths 0x1000 + 0x18000 +
  // 0x4000 + 0xa000 + 0x19000 = 0x38000, in a 0x40000 window → mask 0x3ffff.
  t.same(
    why.obstacles.map((o) => [o.rule, o.entries, o.fixed_by]),
    [
      ['entry_offset', [4], null],
      ['segment_boundary', [1, 3, 4], { segment_boundary_mask: '0x3ffff' }],
    ],
  );
  t.equal(why.would_merge_with, null);
  t.equal(
    why.verdict,
    'not one contiguous IOVA range, not one segment (4 segments); no device parameter would give one segment (entry 4: entry_offset), and segment_boundary_mask ≥ 0x3ffff would be needed as well (entries 1, 3, 4: segment_boundary)',
  );
  // The old advice (mask 0x3ffff alone): no pads; 0x38000 = 56 pfns aligned to 64 below
  // 0x10000000 → 0xfffffc0000; e0..e3 join (0x1000 + 0x18000 + 0x4000 + 0xa000 = 0x27000), e4 at
  // 0x27000 + 0x93d starts a segment: 2, as the issue says.
  const masked = explained(linux({ ...device, segment_boundary_mask: '0x3ffff' }), sg);
  t.same(segsOf(masked.out), [['0xfffffc0000', 0x27000], ['0xfffffe793d', 0x18000]]);
  t.same(masked.why.obstacles.map((o) => [o.rule, o.entries]), [['entry_offset', [4]]]);
  t.equal(masked.why.verdict, 'not one contiguous IOVA range, not one segment (2 segments); no device parameter would give one segment (entry 4: entry_offset)');
  const loosest = explained(linux({ ...device, segment_boundary_mask: '0xffffffffffffffff' }), sg);
  t.equal(loosest.out.nents, 2, 'the loosest limits leave the offset entry on its own');
});

t.test('linux obstacles: a list longer than UINT_MAX cannot be one segment (sg_dma_len is unsigned int)', async (t) => {
  // 0xfffff000 + 0x2000 = 0x100001000 > 0xffffffff; with max_segment_size UINT_MAX,
  // 0xffffffff − 0xfffff000 = 0xfff < 0x2000: entry 1 starts a segment, and no unsigned int
  // limit holds Σ length.
  const { out, why } = explained(linux({ max_segment_size: 0xffffffff, dma_mask: '0xffffffffffff' }), [
    { phys: '0x100000000', length: 0xfffff000 },
    { phys: '0x300000000', length: 0x2000 },
  ]);
  t.equal(out.nents, 2);
  t.same(rules(why), [[1, 'max_segment_size']]);
  t.same(why.obstacles.map((o) => [o.rule, o.entries, o.fixed_by]), [['dma_length_limit', [1], null]]);
  t.equal(why.would_merge_with, null);
  t.match(why.verdict, /no device parameter would give one segment \(entry 1: dma_length_limit\)$/);
});

t.test('linux failure: ENOMEM says which allocation, how many pfns and under what limit', async (t) => {
  // Aperture 0..0x3fff: limit pfn min(0xfffff, 3) = 3, start pfn 1; four pages need 4 pfns.
  const { out, why } = explained(linux({}, { granule: 4096, aperture: { start: '0x0', end: '0x3fff' } }), FOUR_PAGES);
  t.equal(out.nents, 0);
  t.equal(why.failure?.kernel, 'iommu_dma_alloc_iova');
  t.same(why.failure?.values, { pfns: 4, allocated_pfns: 4, limit_pfn: '0x3', start_pfn: '0x1', granule: 4096 });
  t.match(why.verdict, /^the mapping failed: no free range of 4 pfns/);
});

// ---- linux-4.4 (§4) -----------------------------------------------------------------------

t.test('linux-4.4 never merges: every entry after the first is a break, with the power-of-two padding before it', async (t) => {
  // Entry 1 (16 KiB) at 0x10000: 0x10000 % 0x4000 = 0, no pad. Entry 2 (64 KiB) needs 64 KiB
  // alignment: 0x14000 → pad 0xc000 = 49152.
  const { out, why } = explained(linux44(), THREAD);
  t.same(segsOf(out), [['0xfffc0000', 65536], ['0xfffd0000', 16384], ['0xfffe0000', 65536]]);
  t.same(rules(why), [[1, 'v4.4_never_merges'], [2, 'v4.4_never_merges']]);
  t.same(why.breaks.map((b) => b.values), [{ pad: 0, alignment: 16384 }, { pad: 49152, alignment: 65536 }]);
  t.equal(why.contiguous_iova, false);
  t.equal(why.verdict, 'not one contiguous IOVA range, not one segment (3 segments); no device parameter would give one segment (entries 1, 2: v4.4_never_merges)');
});

t.test('linux-4.4 never merges: UINT_MAX max_segment_size changes nothing', async (t) => {
  const { out, why } = explained(linux44({ max_segment_size: 0xffffffff }), THREAD);
  t.equal(out.nents, 3);
  t.equal(why.would_merge_with, null);
});

// ---- arm-legacy (§4) ----------------------------------------------------------------------

t.test('arm-legacy new chunk (max_segment_size): chunk_size + length > max_segment_size gives a new allocation', async (t) => {
  // Chunk 0: 0x10000; + 0x4000 > 0x10000 → chunk 1 (0x4000); + 0x10000 > 0x10000 → chunk 2. The
  // bitmap aligns a chunk to its order: 64 KiB at 0x10000000, 16 KiB at 0x10010000, 64 KiB at
  // the next 64 KiB boundary past 0x10014000 = 0x10020000.
  const { out, why } = explained(arm(), THREAD);
  t.same(segsOf(out), [['0x10000000', 65536], ['0x10010000', 16384], ['0x10020000', 65536]]);
  t.same(why.breaks.map((b) => [b.before_entry, b.rule, b.condition]), [[1, 'arm_new_chunk', 'max_segment_size'], [2, 'arm_new_chunk', 'max_segment_size']]);
  t.same(why.breaks[0]?.values, { chunk_size: 65536, length: 16384, max_segment_size: 65536 });
  t.equal(why.contiguous_iova, false);
  // First offset 0 + 147456.
  t.same(why.would_merge_with, { max_segment_size: 147456 });
  const fixed = explained(arm({ max_segment_size: 147456 }), THREAD);
  t.same(segsOf(fixed.out), [['0x10000000', 147456]], 'one chunk of 0x24000');
});

t.test('arm-legacy obstacles: one chunk of the whole list must fit one bitmap of the mapping (__alloc_iova never spans two)', async (t) => {
  // Aperture 1 GiB = 262144 pages: bitmaps of at most PAGE_SIZE bytes = 32768 bits = 128 MiB.
  // 64 MiB + 64 MiB + 4 KiB with max_segment_size 65536: three chunks (each + length > 65536),
  // 64 MiB at 0x10000000, 64 MiB at 0x14000000, and 4 KiB in a second bitmap at 0x18000000.
  // One chunk needs max_segment_size ≥ 0x8001000, but 0x8001000 bytes exceed one bitmap.
  const sg = [
    { phys: '0x80000000', length: 0x4000000 },
    { phys: '0x90000000', length: 0x4000000 },
    { phys: '0xa0000000', length: 0x1000 },
  ];
  const { out, why } = explained(arm(), sg);
  t.same(segsOf(out), [['0x10000000', 0x4000000], ['0x14000000', 0x4000000], ['0x18000000', 0x1000]]);
  t.same(
    why.obstacles.map((o) => [o.rule, o.condition ?? null, o.entries, o.fixed_by]),
    [
      ['arm_new_chunk', 'max_segment_size', [1, 2], { max_segment_size: 0x8001000 }],
      ['iova_space', null, [2], null],
    ],
  );
  t.equal(why.would_merge_with, null);
  t.equal(
    why.verdict,
    // 0x10000000 + 0x4000000 = 0x14000000, + 0x4000000 = 0x18000000: back to back, by chance.
    'one contiguous IOVA range, not one segment (3 segments); no device parameter would give one segment (entry 2: iova_space), and max_segment_size ≥ 134221824 would be needed as well (entries 1, 2: arm_new_chunk (max_segment_size))',
  );
  const loosest = explained(arm({ max_segment_size: 0xffffffff }), sg);
  t.equal(loosest.out.nents, 0, 'at UINT_MAX the one chunk is asked for, and __alloc_iova fails');
});

t.test('arm-legacy new chunk (offset): an entry with a page offset starts a chunk', async (t) => {
  const { why } = explained(arm(), [{ phys: '0x81000000', length: 0x1000 }, { phys: '0x82000200', length: 0x100 }]);
  t.same(why.breaks.map((b) => [b.before_entry, b.condition]), [[1, 'offset']]);
  t.same(why.breaks[0]?.values, { offset: 0x200, page_size: 4096 });
  t.equal(why.would_merge_with, null);
});

t.test('arm-legacy new chunk (chunk not a page multiple): after a chunk that ends inside a page', async (t) => {
  const { why } = explained(arm(), [{ phys: '0x81000000', length: 0x800 }, { phys: '0x82000000', length: 0x1000 }]);
  t.same(why.breaks.map((b) => [b.before_entry, b.condition]), [[1, 'chunk_not_page_multiple']]);
  t.same(why.breaks[0]?.values, { chunk_size: 0x800, page_size: 4096 });
});

// ---- no IOMMU (§7) ------------------------------------------------------------------------

t.test('no IOMMU: dma-direct never merges; each entry is its own segment at phys', async (t) => {
  const { out, why } = explained(direct(), THREAD);
  t.same(segsOf(out), [['0x90000000', 65536], ['0x91000000', 16384], ['0x92000000', 65536]]);
  t.same(rules(why), [[1, 'no_iommu'], [2, 'no_iommu']]);
  t.equal(why.verdict, 'not one contiguous IOVA range, not one segment (3 segments); no device parameter would give one segment (entries 1, 2: no_iommu)');
});

t.test('no IOMMU, swiotlb bounce: a bounced entry is its own segment at its slot', async (t) => {
  // force: slot 0 (0x08000000) for entry 0; a page-sized bounce keeps page alignment, the next
  // search starts at slot 2 → 0x08001000. Back to back by chance, still two segments.
  const { out, why } = explained(direct({}, { force: true }), [{ phys: '0x81000000', length: 4096 }, { phys: '0x82000000', length: 4096 }]);
  t.same(segsOf(out), [['0x8000000', 4096], ['0x8001000', 4096]]);
  t.same(rules(why), [[1, 'swiotlb_bounce']]);
  t.same(why.breaks[0]?.values, { phys: '0x82000000', bounce: '0x8001000', length: 4096 });
  t.equal(why.contiguous_iova, true);
  t.equal(why.would_merge_with, null);
});

t.test('no IOMMU failure: EIO names the entry and why swiotlb could not take it', async (t) => {
  // dma_mask 0xffffff (16 MiB): 0x81000000 is not addressable, and the pool at 0x08000000 is not either.
  const { out, why } = explained(direct({ dma_mask: '0xffffff' }), [{ phys: '0x81000000', length: 4096 }]);
  t.equal(out.nents, 0);
  t.equal(why.failure?.kernel, 'dma_direct_map_sg');
  t.equal(why.failure?.message, 'entry 0 at phys 0x81000000: swiotlb addr beyond the DMA mask');
});

// ---- wiring --------------------------------------------------------------------------------

t.test('explain is off by default: the answer has no explain field', async (t) => {
  const out = linux().mapSg(MapSgBody.parse({ dir: 'to_device', sg: THREAD }));
  t.equal(out.explain, undefined);
});

t.test('/batch map_sg with explain: true carries the same explanation', async (t) => {
  const r = linux().batch(BatchBody.parse({ ops: [{ op: 'map_sg', dir: 'to_device', sg: THREAD, explain: true }] }));
  const first = r.results[0] as MapSgOut;
  t.equal(first.explain?.verdict, 'one contiguous IOVA range, not one segment (3 segments); max_segment_size ≥ 147456 would give one segment');
});
