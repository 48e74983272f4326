// The `arm-legacy` allocator (src/core/iova/arm-iova.ts, word-at-a-time bitmap scans) must hand back
// exactly what arch/arm's __alloc_iova over bitmap_find_next_zero_area hands back: fast-check
// drives it and the bit-at-a-time model (test/model/arm-iova-model.ts) with the same random
// sequences and requires the same address or DMA_MAPPING_ERROR from every call and the same
// allocated runs and bitmap count after every operation — alignment min(get_order, 8), first fit
// from the aperture start, extension bitmaps created on demand, dma_mask never consulted.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { test } from 'tap';
import type { ArmIovaAllocator, ArmIovaConfig } from '../src/core/iova/iova-allocator.js';
import { createArmIova } from '../src/core/iova/arm-iova.js';
import { createArmIovaModel } from './model/arm-iova-model.js';

type Op = { k: 'alloc'; size: number } | { k: 'free'; idx: number };

const cfgArb: fc.Arbitrary<ArmIovaConfig> = fc.oneof(
  // Small mappings: one bitmap, often full.
  fc.record({
    base: fc.integer({ min: 0, max: 0xfff }).map((p) => p * 0x100000),
    size: fc.integer({ min: 1, max: 2000 }).map((p) => p * 4096),
    pageShift: fc.constant(12),
    alignmentOrder: fc.constantFrom(undefined, 4, 8),
  }),
  // Several extension bitmaps of 32768 pages (128 MiB) each.
  fc.record({
    base: fc.constantFrom(0, 0x10000000, 0x80000000),
    size: fc.integer({ min: 2 * 32768, max: 4 * 32768 }).map((p) => p * 4096),
    pageShift: fc.constant(12),
    alignmentOrder: fc.constant(undefined),
  }),
  // 16 KiB and 64 KiB pages.
  fc.record({
    base: fc.constant(0x40000000),
    size: fc.integer({ min: 1, max: 4096 }).map((p) => p * 65536),
    pageShift: fc.constantFrom(14, 16),
    alignmentOrder: fc.constant(undefined),
  }),
);

const sizeArb = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 1, max: 20 * 4096 }) },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 2 * 1024 * 1024 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 80 * 1024 * 1024 }) },
);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ k: fc.constant('alloc' as const), size: sizeArb }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('free' as const), idx: fc.nat() }) },
);

const seen = { fail: 0, extended: 0, aligned256: 0 };

function runBoth(cfg: ArmIovaConfig, ops: Op[]): void {
  const fast = createArmIova(cfg);
  const model = createArmIovaModel(cfg);
  const both: ArmIovaAllocator[] = [fast, model];
  const page = 2 ** cfg.pageShift;
  const live: { addr: number; size: number }[] = [];
  ops.forEach((op, i) => {
    const step = `op ${i} ${JSON.stringify(op)}`;
    if (op.k === 'alloc') {
      const got = fast.allocIova(op.size);
      const want = model.allocIova(op.size);
      assert.equal(got, want, `${step}: allocIova(${op.size})`);
      if (got === -1) seen.fail++;
      else live.push({ addr: got, size: Math.ceil(op.size / page) * page });
      if (op.size > 256 * page) seen.aligned256++;
    } else if (live.length > 0) {
      const [a] = live.splice(op.idx % live.length, 1);
      if (a) for (const x of both) x.freeIova(a.addr, a.size);
    }
    const snap = model.snapshot();
    if (snap.bitmaps > 1) seen.extended++;
    assert.deepEqual(fast.snapshot(), snap, `${step}: snapshot`);
  });
}

test('arm-legacy allocator equals the bitmap first fit on random sequences', (t) => {
  fc.assert(fc.property(cfgArb, fc.array(opArb, { minLength: 1, maxLength: 60 }), runBoth), { numRuns: 250 });
  t.pass('250 random sequences agree');
  t.end();
});

test('arm-legacy allocator equals the bitmap first fit across extension bitmaps', (t) => {
  // 256..512 MiB mappings (2..4 bitmaps of 128 MiB) and allocations of up to 64 MiB.
  const bigCfg = fc.record({
    base: fc.constantFrom(0, 0x10000000, 0x80000000),
    size: fc.integer({ min: 2 * 32768, max: 4 * 32768 }).map((p) => p * 4096),
    pageShift: fc.constant(12),
  });
  const bigOps = fc.array(
    fc.oneof(
      { weight: 3, arbitrary: fc.record({ k: fc.constant('alloc' as const), size: fc.integer({ min: 1, max: 64 * 1024 * 1024 }) }) },
      { weight: 1, arbitrary: fc.record({ k: fc.constant('free' as const), idx: fc.nat() }) },
    ),
    { minLength: 5, maxLength: 40 },
  );
  fc.assert(fc.property(bigCfg, bigOps, runBoth), { numRuns: 40 });
  t.pass('40 sequences over extension bitmaps agree');
  t.end();
});

test('the random sequences reached every rule they are meant to check', (t) => {
  t.comment(JSON.stringify(seen));
  for (const [rule, n] of Object.entries(seen)) t.ok(n > 0, `${rule} fired ${n} times`);
  t.end();
});
