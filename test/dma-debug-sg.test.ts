// dma-debug's scatterlist and cacheline checks (kernel/dma/debug.c), exact text: check_sg_segment
// (debug_dma_map_sg walks the first mapped_ents entries: entry i's own length against
// max_segment_size, the i-th DMA segment against the segment boundary) and add_dma_entry's
// active cacheline tracking (an entry that lets the device write, keyed by the 64-byte line of
// its first byte; a second live one on that line is -EEXIST; the count saturates at 7).
// Expected values are worked from those rules in the comments.
import t from 'tap';
import { MapPageBody, MapSgBody } from '../schemas/dma.js';
import type { DebugFindingOut } from '../schemas/index.js';
import type { Session } from '../src/service/session.js';
import { IOMMU_48, allocCoherent, mapPage, mapSg, session, sync, unmap, type Dir } from './helpers/dma-core.js';

const linux = (device: Record<string, unknown> = {}) => session({ device, iommu: IOMMU_48, layout: 'linux' });
const EEXIST = "DMA-API: cacheline tracking EEXIST, overlapping mappings aren't supported";
const checks = (d: DebugFindingOut[] | undefined) => (d ?? []).map((f) => [f.check, f.message]);

// ---- check_sg_segment ----------------------------------------------------------------------

t.test('check_sg_segment: an entry longer than max_segment_size is reported with [len] [max]', async (t) => {
  const r = mapSg(linux(), [{ phys: '0x90000000', length: 0x20000 }]);
  t.same(checks(r.debug), [['sg_segment_too_long', 'DMA-API: mapping sg segment longer than device claims to support [len=131072] [max=65536]']]);
  t.equal(r.debug?.[0]?.handle, r.handle);
});

t.test('check_sg_segment: after an over-long entry the unsigned max_len − cur_len wraps, the next entry joins, and only entry 0 is checked', async (t) => {
  // 65536 − 131072 in unsigned int = 2^32 − 65536 ≥ 4096: one segment of 135168, mapped_ents 1,
  // so debug_dma_map_sg checks entry 0 only: one finding.
  const r = mapSg(linux(), [{ phys: '0x90000000', length: 0x20000 }, { phys: '0x91000000', length: 0x1000 }]);
  t.same(r.segments.map((s) => s.dma_length), [135168]);
  t.same(checks(r.debug), [['sg_segment_too_long', 'DMA-API: mapping sg segment longer than device claims to support [len=131072] [max=65536]']]);
});

t.test('check_sg_segment: entries within max_segment_size and the default 64-bit boundary say nothing', async (t) => {
  const r = mapSg(linux(), [{ phys: '0x90000000', length: 0x10000 }, { phys: '0x91000000', length: 0x4000 }]);
  t.equal(r.debug, undefined);
});

t.test('check_sg_segment across boundary, dma-direct: [start] [end] [boundary] as 0x%016llx', async (t) => {
  // 0x8000f000 + 0x2000 − 1 = 0x80010fff; (start ^ end) & ~0xffff = 0x10000 ≠ 0.
  const s = session({ iommu: null, device: { segment_boundary_mask: '0xffff' } });
  const r = mapSg(s, [{ phys: '0x8000f000', length: 0x2000 }]);
  t.same(checks(r.debug), [
    ['sg_segment_across_boundary', 'DMA-API: mapping sg segment across boundary [start=0x000000008000f000] [end=0x0000000080010fff] [boundary=0x000000000000ffff]'],
  ]);
});

t.test('check_sg_segment, linux-4.4: one entry longer than the boundary and max_segment_size gives both messages', async (t) => {
  // v4.4 never splits an entry: 0x20000 bytes = 32 pfns, size-aligned below pfn 0xfffff →
  // 0x100000 − 32 = pfn 0xfffe0: 0xfffe0000..0xffffffff crosses every 64 KiB boundary.
  const s = session({ layout: 'linux-4.4', iommu: IOMMU_48, device: { segment_boundary_mask: '0xffff' } });
  const r = mapSg(s, [{ phys: '0x90000000', length: 0x20000 }]);
  t.same(checks(r.debug), [
    ['sg_segment_too_long', 'DMA-API: mapping sg segment longer than device claims to support [len=131072] [max=65536]'],
    ['sg_segment_across_boundary', 'DMA-API: mapping sg segment across boundary [start=0x00000000fffe0000] [end=0x00000000ffffffff] [boundary=0x000000000000ffff]'],
  ]);
});

t.test('check_sg_segment, arm-legacy: the layout ignores segment_boundary_mask, dma-debug does not', async (t) => {
  // A 32 KiB chunk (order 3) at the aperture base 0x10000000: 0x10000000..0x10007fff crosses 0x3fff.
  const s = session({ layout: 'arm-legacy', iommu: { aperture: { start: '0x10000000', end: '0x4fffffff' } }, device: { segment_boundary_mask: '0x3fff' } });
  const r = mapSg(s, [{ phys: '0x90000000', length: 0x8000 }]);
  t.same(checks(r.debug), [
    ['sg_segment_across_boundary', 'DMA-API: mapping sg segment across boundary [start=0x0000000010000000] [end=0x0000000010007fff] [boundary=0x0000000000003fff]'],
  ]);
});

t.test('check_sg_segment findings are kept at /debug too', async (t) => {
  const s = linux();
  mapSg(s, [{ phys: '0x90000000', length: 0x20000 }]);
  t.same(s.debugTable().debug.map((f) => f.check), ['sg_segment_too_long']);
});

// ---- active cacheline tracking ---------------------------------------------------------------

const page = (s: Session, phys: string, dir: Dir = 'from_device', skip = false) => s.mapPage(MapPageBody.parse({ phys, size: 64, dir, ...(skip ? { skip_cpu_sync: true } : {}) }));

t.test('cacheline EEXIST: a second device-writable mapping of the same 64-byte line is reported', async (t) => {
  const s = linux();
  t.equal(page(s, '0x80000000').debug, undefined);
  // 0x80000020 is in line 0x80000000 / 64 too.
  t.same(checks(page(s, '0x80000020').debug), [['cacheline_overlap', EEXIST]]);
  // The next line (0x80000040) is another key.
  t.equal(page(s, '0x80000040').debug, undefined);
});

t.test('cacheline EEXIST: DMA_TO_DEVICE mappings are never tracked (the device does not write)', async (t) => {
  const s = linux();
  page(s, '0x80000000', 'to_device');
  t.equal(page(s, '0x80000000', 'to_device').debug, undefined);
  t.equal(page(s, '0x80000000', 'from_device').debug, undefined, 'the first tracked entry on the line');
});

t.test('cacheline EEXIST: DMA_ATTR_SKIP_CPU_SYNC excuses the overlap', async (t) => {
  const s = linux();
  page(s, '0x80000000');
  t.equal(page(s, '0x80000000', 'bidirectional', true).debug, undefined);
});

t.test('cacheline EEXIST: the line is free again once every mapping on it is unmapped', async (t) => {
  const s = linux();
  const a = page(s, '0x80000000');
  const b = page(s, '0x80000000'); // overlap 1
  unmap(s, a.handle as number); // overlap 0: b still tracked
  t.same(checks(page(s, '0x80000000').debug), [['cacheline_overlap', EEXIST]], 'b is still live');
  unmap(s, b.handle as number);
  const s2 = linux();
  const c = page(s2, '0x80000000');
  unmap(s2, c.handle as number); // the last one deletes the line
  t.equal(page(s2, '0x80000000').debug, undefined);
});

t.test('cacheline EEXIST, map_sg: only the first mapped_ents entries are tracked, keyed by entry i', async (t) => {
  // Two whole pages merge into one segment: mapped_ents 1, so only entry 0 (0x81000000) is in
  // the tree; a mapping of entry 1's page (0x82000000) meets nothing there.
  const s = linux();
  const r = s.mapSg(MapSgBody.parse({ dir: 'from_device', sg: [{ phys: '0x81000000', length: 4096 }, { phys: '0x82000000', length: 4096 }] }));
  t.equal(r.nents, 1);
  t.equal(mapPage(s, '0x82000000', 4096, 'from_device').debug, undefined);
  t.same(checks(mapPage(s, '0x81000000', 4096, 'from_device').debug), [['cacheline_overlap', EEXIST]]);
});

t.test('cacheline EEXIST, coherent: a dma_alloc_coherent buffer is tracked as DMA_BIDIRECTIONAL', async (t) => {
  const s = linux();
  const c = allocCoherent(s, 4096);
  const phys = c.phys[0] as string;
  t.same(checks(mapPage(s, phys, 64, 'bidirectional').debug), [['cacheline_overlap', EEXIST]]);
});

t.test('cacheline overlap limit: the ninth mapping of a line exceeds the 3-tag counter, warned once', async (t) => {
  // Mappings 2..8 raise the overlap to 7; the 9th would make it 8 > 7: the WARN_ONCE comes first
  // (active_cacheline_inc_overlap), then add_dma_entry's EEXIST. cln = 0x80000000 / 64 = 0x2000000.
  const s = linux();
  const handles: number[] = [];
  for (let k = 1; k <= 8; k++) handles.push(page(s, '0x80000000').handle as number);
  const ninth = page(s, '0x80000000');
  t.same(checks(ninth.debug), [
    ['cacheline_overlap_limit', 'DMA-API: exceeded 7 overlapping mappings of cacheline 0x0000000002000000'],
    ['cacheline_overlap', EEXIST],
  ]);
  t.same(checks(page(s, '0x80000000').debug), [['cacheline_overlap', EEXIST]], 'WARN_ONCE: not again');
});

t.test('cacheline overlap limit: the saturated count forgets the extra mappings, so the line is untracked one unmap early', async (t) => {
  // 9 maps: the count stops at 7. Unmapping 8 of them: 7 → 0 after seven, the eighth deletes
  // the line although the ninth mapping is still live; a new mapping then meets nothing.
  const s = linux();
  const handles: number[] = [];
  for (let k = 1; k <= 9; k++) handles.push(page(s, '0x80000000').handle as number);
  for (const h of handles.slice(0, 8)) unmap(s, h);
  t.equal(page(s, '0x80000000').debug, undefined);
});

// ---- check_sync: entry count ------------------------------------------------------------------

t.test('check_sync nents: dma_sync_sg_* with another entry count than the map is reported with both counts', async (t) => {
  const s = linux();
  const r = mapSg(s, [{ phys: '0x81000000', length: 4096 }, { phys: '0x82000000', length: 4096 }], 'bidirectional');
  const h = r.handle as number;
  t.equal(sync(s, h, 'cpu', { nents: 2 }).debug, undefined, 'the count dma_map_sg was given (not the 1 it returned)');
  t.same(checks(sync(s, h, 'cpu', { nents: 1 }).debug), [['sync_nents', 'DMA-API: device driver syncs DMA sg list with different entry count [map count=2] [sync count=1]']]);
  // A single mapping is synced with dma_sync_single_*: no entry count to compare.
  const p = mapPage(s, '0x83000000', 4096, 'bidirectional');
  t.equal(sync(s, p.handle as number, 'cpu', { nents: 3 }).debug, undefined);
});
