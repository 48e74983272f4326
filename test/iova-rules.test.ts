// One test per allocator rule (semantics §5, drivers/iommu/iova.c, dma-iommu.c, v4.4 iova.c,
// arch/arm/mm/dma-mapping.c), each named after the rule, with the expected value worked by hand
// from the rule in a comment. Every linux and linux-4.4 case runs on the fast allocator *and* on
// the reference model, so a hand-worked number that disagrees with either is caught here.
import { test, type Test } from 'tap';
import { DmaemuError } from '../src/core/errors.js';
import type { Iova44Allocator, Iova44Config, LinuxIovaAllocator, LinuxIovaConfig } from '../src/core/iova/iova-allocator.js';
import { createArmIova } from '../src/core/iova/arm-iova.js';
import { createIova44 } from '../src/core/iova/iova44.js';
import { createLinuxIova } from '../src/core/iova/linux-iova.js';
import { createArmIovaModel } from './model/arm-iova-model.js';
import { createIova44Model } from './model/iova44-model.js';
import { createLinuxIovaModel } from './model/linux-iova-model.js';

const M32 = 0xfffff; // DMA_BIT_MASK(32) >> 12
const M48 = 2 ** 36 - 1; // DMA_BIT_MASK(48) >> 12
const DMA32 = 0x100000; // dma_32bit_pfn = 1 << (32 - 12)
const base: LinuxIovaConfig = { shift: 12, startPfn: 1, apertureEndPfn: M48, pci: false, strict: true };

function linux(cfg: Partial<LinuxIovaConfig> = {}): [string, LinuxIovaAllocator][] {
  const c = { ...base, ...cfg };
  return [
    ['fast', createLinuxIova(c)],
    ['model', createLinuxIovaModel(c)],
  ];
}

const base44: Iova44Config = { shift: 12, startPfn: 1, dma32BitPfn: M32, apertureEndPfn: M48 };

function v44(cfg: Partial<Iova44Config> = {}): [string, Iova44Allocator][] {
  const c = { ...base44, ...cfg };
  return [
    ['fast', createIova44(c)],
    ['model', createIova44Model(c)],
  ];
}

test('top-down: first 4-pfn alloc under a 32-bit limit with 4K granule returns pfn 0xffffc', (t) => {
  // high = limit_pfn + 1 = 0x100000; new_pfn = (0x100000 − 4) & ~3 = 0xffffc.
  for (const [name, a] of linux()) t.equal(a.allocIova(4, M32), 0xffffc, name);
  t.end();
});

test('top-down next fit: each 1-pfn alloc lands just below the previous one', (t) => {
  // 0xfffff, then from cached32_node (0xfffff) high = 0xfffff → 0xffffe, then 0xffffd.
  for (const [name, a] of linux()) t.same([a.allocIova(1, M32), a.allocIova(1, M32), a.allocIova(1, M32)], [0xfffff, 0xffffe, 0xffffd], name);
  t.end();
});

test('sizes < 32 rounded to power of two: 3 pfns takes 4 but frees with unrounded size', (t) => {
  // alloc_iova_fast rounds 3 → 4: range [0xffffc, 0xfffff]. free_iova_fast(pfn, 3) uses
  // order_base_2(3) = 2, the 4-pfn class, so the pfn waits in class 2's loaded magazine and a
  // 4-pfn request gets it straight back.
  for (const [name, a] of linux()) {
    const pfn = a.allocIova(3, M32);
    t.equal(pfn, 0xffffc, `${name}: placed as 4 pfns`);
    t.same(a.snapshot().ranges, [{ lo: 0xffffc, hi: 0xfffff }], `${name}: 4 pfns in the tree`);
    a.freeIova(pfn, 3);
    t.same(a.snapshot().rcache[2]?.loaded, [0xffffc], `${name}: cached in class 2`);
    t.equal(a.allocIova(4, M32), 0xffffc, `${name}: reused by a 4-pfn request`);
  }
  t.end();
});

test('sizes ≥ 32 are not rounded, but aligned to the next power of two', (t) => {
  // 33 pfns, align_mask = ~0 << fls_long(32) = ~63: (0x100000 − 33) & ~63 = 0xfffdf & ~0x3f
  // = 0xfffc0; the range is [0xfffc0, 0xfffe0] (33 pfns, not 64).
  for (const [name, a] of linux()) {
    t.equal(a.allocIova(33, M32), 0xfffc0, name);
    t.same(a.snapshot().ranges, [{ lo: 0xfffc0, hi: 0xfffe0 }], name);
  }
  t.end();
});

test('SAC-first for pci: a 48-bit PCI device is first served below 4 GiB, a platform device is not', (t) => {
  // PCI: alloc_iova_fast(1, DMA_BIT_MASK(32) >> 12) → 0xfffff. Platform: straight against
  // the 48-bit limit → 2^36 − 1 = 0xfffffffff.
  for (const [name, a] of linux({ pci: true })) t.equal(a.allocIova(1, M48), 0xfffff, `pci ${name}`);
  for (const [name, a] of linux({ pci: false })) t.equal(a.allocIova(1, M48), 0xfffffffff, `platform ${name}`);
  t.end();
});

test('SAC-first gives up for good after the first 32-bit failure', (t) => {
  // Aperture [0xfff00, 0x1000ff]; [0xfff00, 0xffffe] reserved leaves only pfn 0xfffff below 4 GiB.
  // A 2-pfn request: the 32-bit try walks from the anchor: (0x100000 − 2) & ~1 = 0xffffe
  // collides with the reserved range, then (0xfff00 − 2) = 0xffefe < start_pfn: fails, so
  // pci_32bit_workaround = false and the full limit (aperture end 0x1000ff) gives
  // (0x100100 − 2) & ~1 = 0x1000fe. The next 1-pfn request no longer tries SAC: from
  // cached_node (0x1000fe) it gets 0x1000fd, although 0xfffff is still free.
  for (const [name, a] of linux({ pci: true, startPfn: 0xfff00, apertureEndPfn: 0x1000ff })) {
    a.reserve(0xfff00, 0xffffe);
    t.equal(a.allocIova(2, M48), 0x1000fe, `${name}: 32-bit try failed, 64-bit pfn`);
    t.equal(a.snapshot().pci32BitWorkaround, false, `${name}: SAC abandoned`);
    t.equal(a.allocIova(1, M48), 0x1000fd, `${name}: no SAC any more`);
  }
  t.end();
});

test('cached32 update on free: freeing at or above cached32_node moves it to the next range up', (t) => {
  // Three 64-pfn allocs: 0xfffc0, 0xfff80, 0xfff40 (cached32_node = 0xfff40). Freeing 0xfff80
  // (64 pfns: no rcache class, straight to the tree): pfn_hi < dma_32bit_pfn and pfn_lo ≥
  // cached32's pfn_lo, so cached32_node = rb_next = the 0xfffc0 range. The next 64-pfn request
  // walks from there: (0xfffc0 − 64) = 0xfff80 fits above 0xfff40's end 0xfff7f → 0xfff80.
  for (const [name, a] of linux()) {
    t.same([a.allocIova(64, M32), a.allocIova(64, M32), a.allocIova(64, M32)], [0xfffc0, 0xfff80, 0xfff40], name);
    a.freeIova(0xfff80, 64);
    t.same(a.snapshot().cached32, { lo: 0xfffc0, hi: 0xfffff }, `${name}: cached32 moved up`);
    t.equal(a.allocIova(64, M32), 0xfff80, `${name}: the hole is reused`);
  }
  t.end();
});

test('cached32 update on insert: only ranges ending below dma_32bit_pfn move cached32_node', (t) => {
  // A 48-bit alloc lands at 0xfffffffff (≥ dma_32bit_pfn) and becomes cached_node; cached32_node
  // stays the anchor.
  for (const [name, a] of linux()) {
    a.allocIova(1, M48);
    const s = a.snapshot();
    t.same([s.cached, s.cached32], [{ lo: 0xfffffffff, hi: 0xfffffffff }, 'anchor'], name);
  }
  t.end();
});

test('retry pass: a request that fails below cached32_node is retried from the limit down to just above it', (t) => {
  // Aperture [1, 0xff]. alloc(16, limit 0x3f) → (0x40 − 16) = 0x30, cached32_node = [0x30, 0x3f].
  // alloc(64, limit 0xff): first pass from cached32: high = 0x30 < 64 → fails; retry_pfn =
  // 0x3f < 0x100, so the walk restarts at the limit with low = 0x40: (0x100 − 64) & ~63 = 0xc0.
  for (const [name, a] of linux({ apertureEndPfn: 0xff })) {
    t.equal(a.allocIova(16, 0x3f), 0x30, name);
    t.equal(a.allocIova(64, 0xff), 0xc0, `${name}: found by the retry pass`);
  }
  t.end();
});

test('max32_alloc_size fast fail: a 32-bit request as large as the last failure fails at once', (t) => {
  // Aperture [1, 0x1ff]. alloc(128, 0xff) → 0x80. alloc(128, 0xff) fails (only [1, 0x7f] is
  // left under that limit): max32_alloc_size = 128. alloc(128, 0x1ff) is also a 32-bit request
  // (limit ≤ dma_32bit_pfn) with size ≥ 128, so it fails without a walk although [0x100, 0x1ff]
  // is free; a 64-pfn request still walks: from cached32 (0x80) → 0x40.
  for (const [name, a] of linux({ apertureEndPfn: 0x1ff })) {
    t.equal(a.allocIova(128, 0xff), 0x80, name);
    t.equal(a.allocIova(128, 0xff), 0, `${name}: real failure`);
    t.equal(a.snapshot().max32AllocSize, 128, `${name}: recorded`);
    t.equal(a.allocIova(128, 0x1ff), 0, `${name}: fast fail`);
    t.equal(a.allocIova(64, 0x1ff), 0x40, `${name}: smaller sizes still walk`);
  }
  t.end();
});

test('max32_alloc_size is reset by a free below dma_32bit_pfn', (t) => {
  // As above, then freeing the 128-pfn range at 0x80 (pfn_lo < dma_32bit_pfn) resets
  // max32_alloc_size to dma_32bit_pfn (0x100000) and the 128-pfn request is walked again:
  // from cached32 (rb_next of the freed range = the anchor): (0x200 − 128) = 0x180.
  for (const [name, a] of linux({ apertureEndPfn: 0x1ff })) {
    a.allocIova(128, 0xff);
    a.allocIova(128, 0xff);
    a.freeIova(0x80, 128);
    t.equal(a.snapshot().max32AllocSize, DMA32, name);
    t.equal(a.allocIova(128, 0x1ff), 0x180, name);
  }
  t.end();
});

test('rcache LIFO reuse: the last pfn freed is the first handed out again', (t) => {
  // Allocs 0xfffff, 0xffffe, 0xffffd; freed in that order into class 0's loaded magazine
  // [0xfffff, 0xffffe, 0xffffd]; pops take the highest index: 0xffffd, 0xffffe, 0xfffff.
  for (const [name, a] of linux()) {
    const p = [a.allocIova(1, M32), a.allocIova(1, M32), a.allocIova(1, M32)];
    for (const pfn of p) a.freeIova(pfn, 1);
    t.same([a.allocIova(1, M32), a.allocIova(1, M32), a.allocIova(1, M32)], [0xffffd, 0xffffe, 0xfffff], name);
  }
  t.end();
});

test('rcache pop takes the highest index whose pfn ≤ limit + 1 − size', (t) => {
  // Class 0 loaded = [0xfffff, 0xfffffffff]. A 32-bit 1-pfn request may take pfns ≤ 0x100000 − 1
  // = 0xfffff: index 1 is too high, index 0 fits → 0xfffff; the 48-bit pfn stays cached.
  for (const [name, a] of linux()) {
    a.allocIova(1, M32);
    a.allocIova(1, M48);
    a.freeIova(0xfffff, 1);
    a.freeIova(0xfffffffff, 1);
    t.equal(a.allocIova(1, M32), 0xfffff, name);
    t.same(a.snapshot().rcache[0]?.loaded, [0xfffffffff], name);
  }
  t.end();
});

test('rcache magazines: 127 pfns to a magazine, then prev, then the depot', (t) => {
  // 255 frees of 1 pfn: frees 1–127 fill loaded; free 128 finds loaded full and prev empty, so
  // they swap and loaded restarts; free 255 finds both full, so loaded (frees 128–254) goes to
  // the depot and a fresh magazine takes free 255.
  for (const [name, a] of linux()) {
    const p: number[] = [];
    for (let i = 0; i < 255; i++) p.push(a.allocIova(1, M48));
    for (const pfn of p) a.freeIova(pfn, 1);
    const c0 = a.snapshot().rcache[0];
    t.same(c0?.prev, p.slice(0, 127), `${name}: prev = frees 1–127`);
    t.same(c0?.depot, [p.slice(127, 254)], `${name}: depot = frees 128–254`);
    t.same(c0?.loaded, [p[254]], `${name}: loaded = free 255`);
  }
  t.end();
});

test('flush rcache and retry: a failing request frees every cached pfn back to the tree and tries once more', (t) => {
  // Aperture [1, 7]: seven 1-pfn allocs fill it (7 down to 1) and are freed into class 0. A
  // 2-pfn request finds class 1 empty and the tree full, flushes the rcache and retries from
  // the anchor: (8 − 2) & ~1 = 6.
  for (const [name, a] of linux({ apertureEndPfn: 7 })) {
    const p: number[] = [];
    for (let i = 0; i < 7; i++) p.push(a.allocIova(1, 7));
    t.same(p, [7, 6, 5, 4, 3, 2, 1], name);
    for (const pfn of p) a.freeIova(pfn, 1);
    t.equal(a.allocIova(2, 7), 6, name);
    t.same(a.snapshot().ranges, [{ lo: 6, hi: 7 }], `${name}: the rcache was flushed`);
  }
  t.end();
});

test('pfn 0 is never handed out: start_pfn = max(1, aperture.start >> shift)', (t) => {
  // Aperture [1, 3]: 3, 2, 1, then the next request fails (new_pfn 0 < start_pfn).
  for (const [name, a] of linux({ apertureEndPfn: 3 })) {
    t.same([a.allocIova(1, 3), a.allocIova(1, 3), a.allocIova(1, 3), a.allocIova(1, 3)], [3, 2, 1, 0], name);
  }
  t.end();
});

test('reserve: reserved ranges are never handed out', (t) => {
  // [0xffff0, 0xfffff] reserved: the first 1-pfn 32-bit alloc walks past it to 0xfffef.
  for (const [name, a] of linux()) {
    a.reserve(0xffff0, 0xfffff);
    t.equal(a.allocIova(1, M32), 0xfffef, name);
  }
  t.end();
});

test('non-strict: frees wait in a 256-slot flush queue that is drained when it holds 255', (t) => {
  // 256 frees: the first 255 are queued (nothing returns to the rcache); the 256th finds the
  // ring full (fq_full at 255), frees all 255 oldest first, then queues itself.
  for (const [name, a] of linux({ strict: false })) {
    const p: number[] = [];
    for (let i = 0; i < 256; i++) p.push(a.allocIova(1, M48));
    for (const pfn of p.slice(0, 255)) a.freeIova(pfn, 1);
    t.equal(a.snapshot().flushQueue.length, 255, `${name}: queued`);
    t.same(a.snapshot().rcache[0]?.loaded, [], `${name}: nothing freed yet`);
    a.freeIova(p[255] as number, 1);
    const s = a.snapshot();
    t.same(s.flushQueue, [{ pfn: p[255], pages: 1 }], `${name}: drained, then queued`);
    t.equal((s.rcache[0]?.loaded.length ?? 0) + (s.rcache[0]?.prev.length ?? 0) + 127 * (s.rcache[0]?.depot.length ?? 0), 255, name);
  }
  t.end();
});

test('v4.4 rounds every size to power of two', (t) => {
  // 33 pfns → 64 (alloc_iova size_aligned): limit 0xfffff, no ranges, pad = 0x100000 % 64 = 0,
  // pfn_lo = 0xfffff − 64 + 1 = 0xfffc0, and the range is all 64 pfns [0xfffc0, 0xfffff].
  for (const [name, a] of v44()) {
    t.equal(a.allocIova(33, M32), 0xfffc0, name);
    t.same(a.snapshot().ranges, [{ lo: 0xfffc0, hi: 0xfffff }], name);
  }
  t.end();
});

test('v4.4 never hands out start_pfn itself (start_pfn + size + pad > limit fails)', (t) => {
  // start_pfn 1, 32-bit pfn 2: alloc(1, 2) → 2 and cached32_node = [2, 2]. The next request
  // starts below it with limit 1: no range left, and 1 + 1 + 0 > 1, so it fails.
  for (const [name, a] of v44({ dma32BitPfn: 2, apertureEndPfn: 2 })) {
    t.equal(a.allocIova(1, 2), 2, name);
    t.equal(a.allocIova(1, 2), 0, name);
  }
  t.end();
});

test('v4.4 cached32_node only for requests whose limit is the 32-bit pfn', (t) => {
  // alloc(1, 0xfffff) → 0xfffff and becomes cached32_node; alloc(1, 2^36 − 1) starts at
  // rb_last and lands at 0xfffffffff without touching cached32_node.
  for (const [name, a] of v44()) {
    t.equal(a.allocIova(1, M32), 0xfffff, name);
    t.equal(a.allocIova(1, M48), 0xfffffffff, name);
    t.same(a.snapshot().cached32, { lo: 0xfffff, hi: 0xfffff }, name);
  }
  t.end();
});

test('v4.4 limit is dma_mask, not the aperture: a range beyond the aperture fails in iommu_map', (t) => {
  // Aperture ends at 0xfffff; a 48-bit request is placed at 0xfffffffff, iommu_map refuses it,
  // __free_iova gives it back: the call fails and no range stays.
  for (const [name, a] of v44({ apertureEndPfn: M32 })) {
    t.equal(a.allocIova(1, M48), 0, name);
    t.same(a.snapshot().ranges, [], name);
  }
  t.end();
});

test('arm-legacy first fit from aperture start with alignment min(order,8)', (t) => {
  // Aperture at 0x10000000, 4 KiB pages. 1 page → page 0 = 0x10000000. 3 pages: order 2,
  // aligned to 4 pages → page 4 = 0x10004000. 1 page → first fit, page 1 = 0x10001000.
  // 2 MiB = 512 pages: order 9 capped at 8, aligned to 256 pages → page 256 = 0x10100000
  // (order 9 would have given page 512 = 0x10200000).
  const cfg = { base: 0x10000000, size: 16 << 20, pageShift: 12 };
  for (const [name, a] of [
    ['fast', createArmIova(cfg)],
    ['model', createArmIovaModel(cfg)],
  ] as const) {
    t.same([a.allocIova(4096), a.allocIova(3 * 4096), a.allocIova(4096), a.allocIova(2 << 20)], [0x10000000, 0x10004000, 0x10001000, 0x10100000], name);
  }
  t.end();
});

test('arm-legacy bitmaps are whole 32-bit longs; past the last bit → DMA_MAPPING_ERROR (-1)', (t) => {
  // A 4-page mapping: bits = 4, bitmap_size = BITS_TO_LONGS(4) * 4 = 4 bytes, mapping->bits = 32.
  // So 5 pages fit at page 0 (the kernel maps past the aperture it was given); then a 32-page
  // request (order 5, aligned to 32 pages) has no room in the only bitmap → -1.
  for (const a of [createArmIova({ base: 0, size: 4 * 4096, pageShift: 12 }), createArmIovaModel({ base: 0, size: 4 * 4096, pageShift: 12 })]) {
    t.equal(a.allocIova(5 * 4096), 0);
    t.equal(a.allocIova(32 * 4096), -1);
  }
  t.end();
});

function rejects(t: Test, fn: () => unknown, field: string, what: string): void {
  try {
    fn();
    t.fail(`${what}: accepted`);
  } catch (e) {
    t.ok(e instanceof DmaemuError, `${what}: DmaemuError`);
    t.match(e, { code: 'DMAEMU_INVALID_ARGUMENT', field }, what);
  }
}

test('bad input: size 0 is rejected with DMAEMU_INVALID_ARGUMENT', (t) => {
  const [[, a]] = linux() as [[string, LinuxIovaAllocator]];
  rejects(t, () => a.allocIova(0, M32), 'pages', 'linux alloc of 0 pfns');
  rejects(t, () => a.freeIova(0xfffff, 0), 'pages', 'linux free of 0 pfns');
  rejects(t, () => a.allocIova(1.5, M32), 'pages', 'linux alloc of 1.5 pfns');
  rejects(t, () => createIova44(base44).allocIova(0, M32), 'pages', 'v4.4 alloc of 0 pfns');
  rejects(t, () => createArmIova({ base: 0, size: 1 << 20, pageShift: 12 }).allocIova(0), 'size', 'arm alloc of 0 bytes');
  t.end();
});

test('bad input: a DMA limit below the start pfn is rejected', (t) => {
  rejects(t, () => createLinuxIova({ ...base, startPfn: 0x100 }).allocIova(1, 0xff), 'dmaLimitPfn', 'linux');
  rejects(t, () => createIova44({ ...base44, startPfn: 0x100 }).allocIova(1, 0xff), 'dmaLimitPfn', 'v4.4');
  rejects(t, () => createLinuxIova({ ...base, startPfn: 0x100, apertureEndPfn: 0x80 }), 'apertureEndPfn', 'aperture end below start');
  t.end();
});

test('bad input: a granule that is not a power of two is rejected', (t) => {
  // 12 KiB: log2 is not an integer, so no shift describes it.
  rejects(t, () => createLinuxIova({ ...base, shift: Math.log2(12288) }), 'shift', 'linux 12 KiB granule');
  rejects(t, () => createIova44({ ...base44, shift: Math.log2(12288) }), 'shift', 'v4.4 12 KiB granule');
  t.end();
});

test('bad input: a granule larger than the CPU page is rejected (init_iova_domain BUG_ON)', (t) => {
  // 64 KiB granule (shift 16) on 4 KiB pages (page shift 12).
  rejects(t, () => createLinuxIova({ ...base, shift: 16, pageShift: 12 }), 'shift', 'linux');
  rejects(t, () => createIova44({ ...base44, shift: 16, pageShift: 12 }), 'shift', 'v4.4');
  t.doesNotThrow(() => createLinuxIova({ ...base, shift: 12, pageShift: 16 }), '4 KiB granule on 64 KiB pages is fine');
  t.end();
});

test('bad input: nonsense arm-legacy mappings and reserved ranges are rejected', (t) => {
  rejects(t, () => createArmIova({ base: 0x1234, size: 1 << 20, pageShift: 12 }), 'iommu.aperture.start', 'unaligned base');
  rejects(t, () => createArmIova({ base: 0, size: 2 ** 33, pageShift: 12 }), 'iommu.aperture', 'more than 4 GiB');
  rejects(t, () => createLinuxIova(base).reserve(10, 5), 'reserve', 'reserve with hi < lo');
  t.end();
});

test('allocatedPages and limitPfn say what the allocator really takes and where (the layouts report them)', (t) => {
  // Each size on a fresh allocator: the range in the tree is allocatedPages long (rounded up
  // below 32, as taken at or above), and it ends at the clamped limit (aperture end 0x1ff < mask).
  for (const pages of [1, 2, 3, 5, 17, 31, 32, 33, 100]) {
    const a = createLinuxIova({ ...base, apertureEndPfn: 0x1ff });
    const pfn = a.allocIova(pages, M32);
    const [r] = a.snapshot().ranges;
    t.equal(r && r.hi - r.lo + 1, a.allocatedPages(pages), `linux ${pages} pfns: tree range is allocatedPages`);
    t.ok(pfn + a.allocatedPages(pages) - 1 <= a.limitPfn(M32), `linux ${pages} pfns: below limitPfn`);
    const b = createIova44(base44);
    b.allocIova(pages, M32);
    const [s] = b.snapshot().ranges;
    t.equal(s && s.hi - s.lo + 1, b.allocatedPages(pages), `v4.4 ${pages} pfns: tree range is allocatedPages`);
  }
  const a = createLinuxIova({ ...base, apertureEndPfn: 0x1ff });
  t.equal(a.limitPfn(M32), 0x1ff, 'clamped to the aperture end');
  t.equal(a.limitPfn(0xff), 0xff, 'a mask below the aperture end is the limit');
  t.end();
});
