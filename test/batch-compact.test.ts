// /batch's compact scatterlists (`[phys, length]` tuples) and its compiled validator
// (src/service/http-batch-validator.ts): the compact form answers exactly what the object form answers,
// a malformed compact body is a 400 naming the field, refs and limits behave as before, and the
// compiled check accepts exactly the bodies zod's BatchBody accepts, decoding them to zod's output.
import { test } from 'tap';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { buildApp } from '../src/service/app.js';
import { compileBatchCheck } from '../src/service/http-batch-validator.js';
import { BatchBody, SgTuple, decodeBatchBody } from '../schemas/batch.js';
import { PhysIn } from '../schemas/common.js';
import type { StoreLimits } from '../src/service/session-store.js';
import { asText, client, type Obj } from './helpers/http.js';

async function session(limits: Partial<StoreLimits> = {}): Promise<{ app: FastifyInstance; post: (body: unknown) => Promise<{ status: number; body: Obj }> }> {
  const app = await buildApp({ logLevel: 'silent', limits });
  const c = client(app);
  const id = (await c.post('/v1/sessions', {})).body.id as string;
  return { app, post: (body) => c.post(`/v1/sessions/${id}/batch`, body) };
}

// The 2015 thread's list: 64 KiB at 0x90000000, 16 KiB at 0x91000000, 64 KiB at 0x92000000.
const THREAD_OBJECTS = [
  { phys: '0x90000000', length: 65536 },
  { phys: '0x91000000', length: 16384 },
  { phys: '0x92000000', length: 65536 },
];
const THREAD_TUPLES = [
  ['0x90000000', 65536],
  [0x91000000, 16384], // phys as a safe integer is the same address
  ['0x92000000', 65536],
];

// Worked by hand (README's table, `linux` layout, platform-device defaults: 32-bit dma_mask,
// 4 KiB granule, max_segment_size 64 KiB): iommu_dma_map_sg sizes one IOVA allocation for the
// whole list, 144 KiB = 36 pages; alloc_iova_fast aligns it to roundup_pow_of_two(36) = 64 pages
// below the 32-bit limit: pfn (0x100000 − 36) & ~63 = 0xfffc0 → 0xfffc0000. __finalise_sg lays
// the entries back to back (0xfffc0000, +64 KiB = 0xfffd0000, +16 KiB = 0xfffd4000) and cannot
// merge any two: each pair would exceed max_segment_size (64 KiB).
const THREAD_RESULT = {
  handle: 1,
  nents: 3,
  segments: [
    { dma_address: '0xfffc0000', dma_length: 65536 },
    { dma_address: '0xfffd0000', dma_length: 16384 },
    { dma_address: '0xfffd4000', dma_length: 65536 },
  ],
  iova: { start: '0xfffc0000', size: 147456 },
};

test('compact [phys, length] entries map the thread list exactly as {phys, length} objects do', async (t) => {
  const a = await session();
  const b = await session();
  t.teardown(() => Promise.all([a.app.close(), b.app.close()]));
  const objects = await a.post({ ops: [{ op: 'map_sg', dir: 'to_device', sg: THREAD_OBJECTS }] });
  const tuples = await b.post({ ops: [{ op: 'map_sg', dir: 'to_device', sg: THREAD_TUPLES }] });
  t.equal(tuples.status, 200);
  t.match(tuples.body, { results: [THREAD_RESULT] }, 'the hand-worked segments');
  t.same(tuples.body, objects.body, 'byte for byte the object form’s answer');
});

test('a mixed batch (tuples and objects in one list, map_page, sync, unmap by ref, a failing op, flush) answers as the object form', async (t) => {
  const mixed = (sg: unknown[]) => ({
    ops: [
      { op: 'map_sg', dir: 'to_device', sg },
      { op: 'map_page', phys: '0x80000000', size: 4096, dir: 'to_device' },
      { op: 'sync', handle: { ref: 1 }, for: 'device' },
      { op: 'unmap', handle: { ref: 0 } },
      { op: 'unmap', handle: { ref: 0 } },
      { op: 'flush' },
    ],
  });
  const a = await session();
  const b = await session();
  t.teardown(() => Promise.all([a.app.close(), b.app.close()]));
  const objects = await a.post(mixed(THREAD_OBJECTS));
  const compact = await b.post(mixed([THREAD_TUPLES[0], THREAD_OBJECTS[1], THREAD_TUPLES[2]]));
  t.equal(compact.status, 200);
  t.match(compact.body, {
    results: [
      THREAD_RESULT,
      // One page below the last allocation: alloc_iova_fast searches down from cached32_node
      // (pfn 0xfffc0), so the page lands at pfn 0xfffbf → 0xfffbf000.
      { handle: 2, dma_address: '0xfffbf000', iova: { start: '0xfffbf000', size: 4096 } },
      // A non-coherent device, DMA_TO_DEVICE: arch_sync_dma_for_device cleans the lines; no bounce.
      { handle: 2, cache: 'clean', bounced_bytes: 0 },
      { handle: 1, iova: { start: '0xfffc0000', size: 147456 } },
      // The ref still resolves to handle 1, which is gone now: that op fails, the next ones run.
      { statusCode: 404, code: 'DMAEMU_HANDLE_NOT_FOUND' },
      { flushed: Number, rcache_freed: Number },
    ],
  });
  t.same(compact.body, objects.body, 'same answer as the object form');
});

test('a malformed compact entry is a 400 whose message names the field', async (t) => {
  const { app, post } = await session();
  t.teardown(() => app.close());
  const one = (e: unknown) => post({ ops: [{ op: 'unmap', handle: 7 }, { op: 'map_sg', dir: 'to_device', sg: [['0x90000000', 4096], e] }] });
  const cases: Array<[unknown, RegExp]> = [
    [['0x90000000', 0], /^body\.ops\.1\.sg\.1\.1: /], // length ≥ 1 (struct scatterlist's length)
    [['0xzz', 4096], /^body\.ops\.1\.sg\.1\.0: must be a hex string/],
    [[2 ** 52, 4096], /^body\.ops\.1\.sg\.1\.0: /], // phys below 2^52 (PHYS_MASK)
    [['0x90000000', 4096, 1], /^body\.ops\.1\.sg\.1: /], // a pair, not a triple
    [['0x90000000'], /^body\.ops\.1\.sg\.1: /],
    [{ phys: '0x90000000', length: 4096, x: 1 }, /^body\.ops\.1\.sg\.1(\.x)?: /],
  ];
  for (const [entry, message] of cases) {
    const r = await one(entry);
    t.equal(r.status, 400, JSON.stringify(entry));
    t.equal(r.body.code, 'DMAEMU_INVALID_ARGUMENT');
    t.match(asText(r.body.message), message, JSON.stringify(entry));
  }
});

test('refs resolve in the compact form too, and a ref to a later op is that op’s error', async (t) => {
  const { app, post } = await session();
  t.teardown(() => app.close());
  const r = await post({
    ops: [
      { op: 'unmap', handle: { ref: 1 } }, // names op 1, which has not run yet
      { op: 'map_sg', dir: 'from_device', sg: [[0x90000000, 4096]] },
      { op: 'unmap', handle: { ref: 1 } },
    ],
  });
  t.equal(r.status, 200);
  t.match(r.body, {
    results: [
      { statusCode: 400, code: 'DMAEMU_INVALID_ARGUMENT', message: /^ops\.0\.handle\.ref: / },
      // 4 KiB: one page from the top of the 32-bit space, pfn 0xfffff → 0xfffff000.
      { handle: 1, nents: 1, segments: [{ dma_address: '0xfffff000', dma_length: 4096 }] },
      { handle: 1, iova: { start: '0xfffff000', size: 4096 } },
    ],
  });
});

test('DMAEMU_MAX_BATCH_OPS and DMAEMU_MAX_SG_ENTRIES still apply to compact bodies', async (t) => {
  const { app, post } = await session({ maxBatchOps: 2, maxSgEntries: 2 });
  t.teardown(() => app.close());
  const map = (n: number) => ({ op: 'map_sg', dir: 'to_device', sg: Array.from({ length: n }, (_, i) => [0x90000000 + i * 0x10000, 4096]) });
  const over = await post({ ops: [map(1), map(1), map(1)] });
  t.equal(over.status, 429);
  t.equal(over.body.code, 'DMAEMU_TOO_MANY_BATCH_OPS');
  const long = await post({ ops: [map(3), map(2)] });
  t.equal(long.status, 200, 'the batch runs; the op over the limit fails by itself');
  t.match(long.body, { results: [{ statusCode: 429, code: 'DMAEMU_TOO_MANY_SG_ENTRIES' }, { nents: Number }] });
});

// ---- the compiled check against zod ------------------------------------------------------

const hexish = fc.oneof(
  fc.bigInt({ min: 0n, max: 2n ** 56n }).map((v) => `0x${v.toString(16)}`),
  fc.bigInt({ min: 0n, max: 2n ** 52n }).map((v) => `0X${v.toString(16).toUpperCase()}`),
  fc.constantFrom('0x', '0x00000000000000', 'x90000000', '90000000', '0xg', ' 0x1', '0x1 ', ''),
);
const numberish = fc.oneof(
  fc.integer({ min: -2, max: 2 ** 32 + 1 }),
  fc.constantFrom(0, 1, 2 ** 52 - 1, 2 ** 52, 2 ** 53 - 1, 2 ** 53, 0.5, -0, 4294967295, 4294967296),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);
const phys = fc.oneof(hexish, numberish);
const junk = fc.oneof(fc.constant(null), fc.boolean(), fc.string({ maxLength: 3 }), fc.constant([]), fc.constant({}));
const maybe = <T>(a: fc.Arbitrary<T>) => fc.oneof({ weight: 6, arbitrary: a }, { weight: 1, arbitrary: junk });
const dir = maybe(fc.constantFrom('bidirectional', 'to_device', 'from_device', 'none', 'sideways'));
const entry = fc.oneof(
  fc.tuple(maybe(phys), maybe(numberish)),
  fc.array(maybe(phys), { maxLength: 3 }),
  fc.record({ phys: maybe(phys), length: maybe(numberish) }, { requiredKeys: [] }),
  fc.record({ phys: maybe(phys), length: maybe(numberish), extra: junk }),
);
const handle = fc.oneof(numberish, fc.record({ ref: maybe(numberish) }), fc.record({ ref: numberish, x: junk }));
const op = fc.oneof(
  fc.record({ op: fc.constant('map_sg'), dir, sg: maybe(fc.array(entry, { maxLength: 4 })), pages: maybe(fc.boolean()), skip_cpu_sync: maybe(fc.boolean()) }, { requiredKeys: ['op'] }),
  fc.record({ op: fc.constant('map_page'), phys: maybe(phys), size: maybe(numberish), dir }, { requiredKeys: ['op'] }),
  fc.record({ op: fc.constantFrom('unmap', 'free_coherent'), handle, dir, size: maybe(numberish), nents: maybe(numberish) }, { requiredKeys: ['op'] }),
  fc.record({ op: fc.constant('sync'), handle, for: maybe(fc.constantFrom('cpu', 'device')), offset: maybe(numberish) }, { requiredKeys: ['op'] }),
  fc.record({ op: fc.constantFrom('alloc_coherent', 'flush', 'map', 'MAP_SG'), size: maybe(numberish), rcache: maybe(fc.boolean()) }, { requiredKeys: ['op'] }),
  junk,
);
// Valid bodies (every field in range), so the accepting side is exercised as much as the rejecting one.
const vPhys = fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 52n - 1n }).map((v) => `0x${v.toString(16)}`), fc.integer({ min: 0, max: 2 ** 52 - 1 }));
const vLen = fc.integer({ min: 1, max: 0xffffffff });
const vDir = fc.constantFrom('bidirectional', 'to_device', 'from_device', 'none');
const vHandle = fc.oneof(fc.integer({ min: 1, max: 2 ** 40 }), fc.record({ ref: fc.nat(8) }));
const vSg = fc.array(fc.oneof(fc.tuple(vPhys, vLen), fc.record({ phys: vPhys, length: vLen })), { minLength: 1, maxLength: 4 });
const vOp = fc.oneof(
  fc.record({ op: fc.constant('map_sg'), dir: vDir, sg: vSg, pages: fc.boolean(), explain: fc.boolean() }, { requiredKeys: ['op', 'dir', 'sg'] }),
  fc.record({ op: fc.constant('map_page'), phys: vPhys, size: vLen, dir: vDir, skip_cpu_sync: fc.boolean() }, { requiredKeys: ['op', 'phys', 'size', 'dir'] }),
  fc.record({ op: fc.constant('unmap'), handle: vHandle, dir: vDir, size: fc.nat(), nents: fc.nat(9) }, { requiredKeys: ['op', 'handle'] }),
  fc.record({ op: fc.constant('sync'), handle: vHandle, for: fc.constantFrom('cpu', 'device'), offset: fc.nat(), size: vLen }, { requiredKeys: ['op', 'handle', 'for'] }),
  fc.record({ op: fc.constant('alloc_coherent'), size: fc.integer({ min: 1, max: 2 ** 32 }) }),
  fc.record({ op: fc.constant('free_coherent'), handle: vHandle }),
  fc.record({ op: fc.constant('flush'), rcache: fc.boolean() }, { requiredKeys: ['op'] }),
);
const body = fc.oneof(
  { weight: 4, arbitrary: fc.record({ ops: fc.array(vOp, { minLength: 1, maxLength: 4 }) }) },
  { weight: 2, arbitrary: fc.record({ ops: fc.array(fc.oneof({ weight: 4, arbitrary: vOp }, { weight: 1, arbitrary: op }), { maxLength: 4 }) }) },
  { weight: 4, arbitrary: fc.record({ ops: fc.array(op, { maxLength: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ ops: fc.array(op, { maxLength: 2 }), extra: junk }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
);

test('the compiled check accepts exactly what zod’s BatchBody accepts, and decodes to zod’s output', (t) => {
  const check = compileBatchCheck();
  let accepted = 0;
  fc.assert(
    fc.property(body, (raw) => {
      const wire: unknown = JSON.parse(JSON.stringify(raw)); // what a client can send (no -0, no undefined)
      const zod = BatchBody.safeParse(wire);
      const ok = check(structuredClone(wire));
      if (ok !== zod.success) return false;
      if (!ok) return true;
      accepted++;
      return isDeepStrictEqual(decodeBatchBody(structuredClone(wire) as z.input<typeof BatchBody>), zod.data);
    }),
    { numRuns: 3000 },
  );
  t.ok(accepted > 1000, `valid bodies were generated too (${accepted})`);
  t.end();
});

test('BatchBody has no transform but PhysIn and SgTuple, the two decodeBatchBody mirrors', (t) => {
  // decodeBatchBody replays BatchBody's transforms by hand; a new one (or a default, a coercion)
  // would slip past the property above unless its generator knew the field. This census fails first.
  const unknown: string[] = [];
  const walk = (s: z.ZodType, where: string): void => {
    if (s === PhysIn || s === SgTuple) return;
    const def = s._zod.def as unknown as Record<string, unknown> & { type: string };
    if (['pipe', 'transform', 'default', 'prefault', 'catch', 'lazy', 'custom'].includes(def.type) || def.coerce === true) unknown.push(`${where}: ${def.type}`);
    const kids: Array<[string, unknown]> = [];
    if (def.type === 'object') kids.push(...Object.entries(def.shape as Record<string, unknown>));
    if (def.type === 'array') kids.push(['[]', def.element]);
    if (def.type === 'union') kids.push(...(def.options as unknown[]).map((o, i): [string, unknown] => [`|${i}`, o]));
    if (def.type === 'tuple') kids.push(...(def.items as unknown[]).map((o, i): [string, unknown] => [String(i), o]));
    if (def.type === 'optional' || def.type === 'nullable') kids.push(['?', def.innerType]);
    for (const [k, v] of kids) if (v instanceof z.ZodType) walk(v, `${where}.${k}`);
  };
  walk(BatchBody, 'body');
  t.same(unknown, []);
  t.end();
});
