// The `linux` allocator (src/core/iova/linux-iova.ts, an augmented AVL tree that never walks) must
// hand back exactly what the kernel's linear walk hands back. fast-check drives it and the
// literal model (test/model/linux-iova-model.ts) with the same random operation sequences and
// requires the same pfn (or the same failure) from every call and the same snapshot — ranges,
// cached32_node, cached_node, max32_alloc_size, every rcache magazine and depot, the flush queue,
// the SAC-first flag — after every operation.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { test } from 'tap';
import type { LinuxIovaAllocator, LinuxIovaConfig, LinuxIovaSnapshot } from '../src/core/iova/iova-allocator.js';
import { createLinuxIova } from '../src/core/iova/linux-iova.js';
import { createLinuxIovaModel } from './model/linux-iova-model.js';

interface Scenario {
  name: string;
  cfg: LinuxIovaConfig;
  /** dma_mask >> shift values a request may use (every one ≥ startPfn). */
  limits: number[];
}

type Op =
  | { k: 'alloc'; pages: number; lim: number }
  | { k: 'free'; idx: number }
  | { k: 'burst'; n: number; pages: number; lim: number; reverse: boolean }
  | { k: 'reserve'; at: number; len: number }
  | { k: 'flushQueue' }
  | { k: 'flushRcache' };

const pagesArb = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 1, max: 40 }) }, // the rcache classes and just above
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 300 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 5000 }) },
);

const flags = fc.record({ pci: fc.boolean(), strict: fc.boolean() });

/** A 48-bit aperture: 32-bit and 48-bit masks, never exhausted; cached nodes, rcache, SAC success. */
const wideArb = fc
  .tuple(flags, fc.constantFrom(12, 14, 16), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 2 ** 20 }))
  .map(([f, shift, startPfn, odd]): Scenario => {
    const end = 2 ** (48 - shift) - 1;
    const m32 = 2 ** (32 - shift) - 1;
    return {
      name: 'wide',
      cfg: { shift, startPfn, apertureEndPfn: end, ...f },
      limits: [m32, end, Math.max(startPfn, odd % m32), startPfn + 3, 2 ** 40 - 1],
    };
  });

/** A small aperture below 4 GiB: exhaustion, the retry pass, max32_alloc_size, flush-and-retry. */
const smallArb = fc
  .tuple(flags, fc.integer({ min: 1, max: 64 }), fc.integer({ min: 8, max: 900 }), fc.integer({ min: 0, max: 1000 }))
  .map(([f, startPfn, span, odd]): Scenario => {
    const end = startPfn + span;
    return {
      name: 'small',
      cfg: { shift: 12, startPfn, apertureEndPfn: end, ...f },
      limits: [end, 0xfffff, startPfn + (odd % span), startPfn + (odd % 16)],
    };
  });

/** A small aperture straddling 4 GiB: SAC-first failing over, both cached nodes, 64-bit exhaustion. */
const straddleArb = fc
  .tuple(flags, fc.constantFrom(12, 16), fc.integer({ min: 4, max: 500 }), fc.integer({ min: 4, max: 500 }))
  .map(([f, shift, below, above]): Scenario => {
    const dma32 = 2 ** (32 - shift);
    return {
      name: 'straddle',
      cfg: { shift, startPfn: dma32 - below, apertureEndPfn: dma32 + above, ...f },
      limits: [dma32 - 1, dma32 + above, dma32, dma32 - 1 - (below >> 1), 2 ** (48 - shift) - 1],
    };
  });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ k: fc.constant('alloc' as const), pages: pagesArb, lim: fc.nat(1000) }) },
  { weight: 7, arbitrary: fc.record({ k: fc.constant('free' as const), idx: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('burst' as const),
      n: fc.integer({ min: 1, max: 600 }),
      pages: fc.integer({ min: 1, max: 48 }),
      lim: fc.nat(1000),
      reverse: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('reserve' as const), at: fc.nat(), len: fc.nat(40) }) },
  { weight: 1, arbitrary: fc.constant({ k: 'flushQueue' as const }) },
  { weight: 1, arbitrary: fc.constant({ k: 'flushRcache' as const }) },
);

function pickLimit(s: Scenario, lim: number): number {
  return s.limits[lim % s.limits.length] as number;
}

/** How often each rule's path fired, so a generator that stops reaching one is noticed. */
const seen = { depot: 0, fqFull: 0, sacGaveUp: 0, max32Set: 0, max32FastFail: 0, retryPass: 0, flushRetry: 0, fail: 0 };

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function cachedCount(snap: LinuxIovaSnapshot): number {
  return snap.rcache.reduce((n, c) => n + c.loaded.length + c.prev.length + c.depot.length * 127, 0);
}

/** Classifies one successful or failed single alloc from the model's state before and after it. */
function noteAlloc(before: LinuxIovaSnapshot, after: LinuxIovaSnapshot, pfn: number, pages: number, limit: number): void {
  if (pfn === 0) {
    seen.fail++;
    const size = pages < 32 ? 2 ** Math.ceil(Math.log2(pages)) : pages;
    if (limit < before.dma32BitPfn && size >= before.max32AllocSize) seen.max32FastFail++;
    return;
  }
  if (before.pci32BitWorkaround && !after.pci32BitWorkaround) seen.sacGaveUp++;
  // Flush-and-retry empties the whole rcache; an rcache hit takes one pfn and leaves the ranges.
  const drop = cachedCount(before) - cachedCount(after);
  if (drop > 1 || (drop === 1 && !same(after.ranges, before.ranges))) seen.flushRetry++;
  const is32 = pfn < before.dma32BitPfn;
  const c = is32 ? before.cached32 : before.cached;
  if (after.ranges.length > before.ranges.length && c !== 'anchor' && pfn > c.hi) seen.retryPass++;
}

/** Runs `ops` on both allocators, asserting equal answers and equal snapshots at every step. */
function runBoth(s: Scenario, ops: Op[]): void {
  const fast = createLinuxIova(s.cfg);
  const model = createLinuxIovaModel(s.cfg);
  const both: LinuxIovaAllocator[] = [fast, model];
  const live: { pfn: number; pages: number }[] = [];
  let queued = 0;
  const alloc = (pages: number, limit: number, step: string): number => {
    const got = fast.allocIova(pages, limit);
    const want = model.allocIova(pages, limit);
    assert.equal(got, want, `${step}: allocIova(${pages}, ${limit})`);
    if (got !== 0) live.push({ pfn: got, pages });
    return got;
  };
  ops.forEach((op, i) => {
    const step = `op ${i} ${JSON.stringify(op)}`;
    let frees = 0;
    switch (op.k) {
      case 'alloc': {
        const before = model.snapshot();
        const pfn = alloc(op.pages, pickLimit(s, op.lim), step);
        noteAlloc(before, model.snapshot(), pfn, op.pages, pickLimit(s, op.lim));
        break;
      }
      case 'free': {
        if (live.length === 0) return;
        const [a] = live.splice(op.idx % live.length, 1);
        if (a) for (const x of both) x.freeIova(a.pfn, a.pages);
        frees = 1;
        break;
      }
      case 'burst': {
        const mine: { pfn: number; pages: number }[] = [];
        for (let j = 0; j < op.n; j++) {
          const pfn = alloc(op.pages, pickLimit(s, op.lim), `${step} #${j}`);
          if (pfn !== 0) mine.push(live.pop() as { pfn: number; pages: number });
        }
        if (op.reverse) mine.reverse();
        for (const a of mine) for (const x of both) x.freeIova(a.pfn, a.pages);
        frees = mine.length;
        break;
      }
      case 'reserve': {
        const span = s.cfg.apertureEndPfn - s.cfg.startPfn + 8;
        const lo = Math.max(0, s.cfg.startPfn - 4 + (op.at % span));
        for (const x of both) x.reserve(lo, lo + op.len);
        break;
      }
      case 'flushQueue':
        for (const x of both) x.flushQueue();
        break;
      case 'flushRcache':
        for (const x of both) x.flushRcache();
        break;
    }
    fast.checkInvariants();
    assert.equal(fast.rangeCount, model.rangeCount, `${step}: rangeCount`);
    const snap = model.snapshot();
    assert.deepEqual(fast.snapshot(), snap, `${step}: snapshot`);
    if (snap.rcache.some((c) => c.depot.length > 0)) seen.depot++;
    if (snap.max32AllocSize !== snap.dma32BitPfn) seen.max32Set++;
    if (!s.cfg.strict && op.k !== 'flushQueue' && snap.flushQueue.length < queued + frees) seen.fqFull++;
    queued = snap.flushQueue.length;
  });
}

const scenarioArb = fc.oneof(wideArb, smallArb, straddleArb);

test('linux allocator equals the kernel walk on random sequences (every pfn, every failure, every snapshot)', (t) => {
  fc.assert(
    fc.property(scenarioArb, fc.array(opArb, { minLength: 1, maxLength: 80 }), (s, ops) => runBoth(s, ops)),
    { numRuns: 500 },
  );
  t.pass('500 random sequences agree');
  t.end();
});

test('linux allocator equals the kernel walk when a small aperture is driven to exhaustion', (t) => {
  // Long runs of allocations in a tiny space: every failure path (max32 fast fail, retry pass,
  // flush rcache and retry, SAC-first giving up) fires again and again.
  const exhaustOps = fc.array(
    fc.oneof(
      { weight: 8, arbitrary: fc.record({ k: fc.constant('alloc' as const), pages: fc.integer({ min: 1, max: 70 }), lim: fc.nat(1000) }) },
      { weight: 4, arbitrary: fc.record({ k: fc.constant('free' as const), idx: fc.nat() }) },
      {
        weight: 1,
        arbitrary: fc.record({
          k: fc.constant('burst' as const),
          n: fc.integer({ min: 1, max: 300 }),
          pages: fc.integer({ min: 1, max: 40 }),
          lim: fc.nat(1000),
          reverse: fc.boolean(),
        }),
      },
      { weight: 1, arbitrary: fc.constant({ k: 'flushQueue' as const }) },
      { weight: 1, arbitrary: fc.constant({ k: 'flushRcache' as const }) },
    ),
    { minLength: 20, maxLength: 250 },
  );
  fc.assert(fc.property(fc.oneof(smallArb, straddleArb), exhaustOps, (s, ops) => runBoth(s, ops)), { numRuns: 300 });
  t.pass('300 exhaustion sequences agree');
  t.end();
});

test('the random sequences reached every rule they are meant to check', (t) => {
  t.comment(JSON.stringify(seen));
  for (const [rule, n] of Object.entries(seen)) t.ok(n > 0, `${rule} fired ${n} times`);
  t.end();
});
