// The binary /batch (schemas/batch-binary.ts, docs/api.md "Binary /batch"): a body packed as the
// format says gives the answers the JSON form gives; a packed answer decodes to the JSON answer;
// a malformed body is a 400 naming the field and runs nothing; the type is refused elsewhere.
import { test } from 'tap';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/service/app.js';
import { BatchBody } from '../schemas/batch.js';
import {
  BATCH_BINARY_TYPE,
  BATCH_RESULTS_BINARY_TYPE,
  decodeBatchRequest,
  decodeBatchResults,
  encodeBatchRequest,
  type BatchOpIn,
} from '../schemas/batch-binary.js';

const BIN = { 'content-type': BATCH_BINARY_TYPE, accept: BATCH_RESULTS_BINARY_TYPE };

async function twoSessions(config: Record<string, unknown> = {}): Promise<{ app: FastifyInstance; a: string; b: string }> {
  const app = await buildApp({ logLevel: 'silent' });
  const mk = async (): Promise<string> => (await app.inject({ method: 'POST', url: '/v1/sessions', payload: config })).json<{ id: string }>().id;
  return { app, a: await mk(), b: await mk() };
}

const postBinary = (app: FastifyInstance, id: string, payload: Buffer, headers: Record<string, string> = BIN) =>
  app.inject({ method: 'POST', url: `/v1/sessions/${id}/batch`, headers, payload });

/** A little-endian u32 as its four bytes. */
const word = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];

/** A body written byte by byte from the format's description (not through the encoder): header, then each record's bytes. */
function handPacked(records: number[][]): Buffer {
  const bytes = [0x44, 0x4d, 0x41, 0x42, 1, 0, 0, 0, ...word(records.length), ...records.flat()]; // "DMAB", version 1, count
  if (bytes.some((b) => !Number.isInteger(b) || b < 0 || b > 255)) throw new Error('handPacked takes bytes: write wider fields with word()');
  return Buffer.from(bytes);
}
/** map_sg record: header [1, dir, flags, 0], u32 nents, per entry u32 phys_lo, u32 phys_hi, u32 length. */
const mapSgRecord = (dir: number, entries: [number, number][]): number[] => [
  1, dir, 0, 0, ...word(entries.length), ...entries.flatMap(([phys, len]) => [...word(phys % 2 ** 32), ...word(Math.floor(phys / 2 ** 32)), ...word(len)]),
];

test('binary format: the thread list packed by hand gives the segments Linux gives (semantics §3, §5)', async (t) => {
  const { app, a } = await twoSessions({ layout: 'linux' });
  t.teardown(() => app.close());
  // map_sg to_device (dir 1) of 64 KiB @0x90000000, 16 KiB @0x91000000, 64 KiB @0x92000000, then
  // unmap (opcode 3) with flags bit1: handle is a ref to op 0.
  const body = handPacked([mapSgRecord(1, [[0x90000000, 65536], [0x91000000, 16384], [0x92000000, 65536]]), [3, 0, 2, 0, ...word(0)]]);
  const r = await postBinary(app, a, body);
  t.equal(r.statusCode, 200);
  t.equal(r.headers['content-type'], BATCH_RESULTS_BINARY_TYPE, 'Accept named the binary answer');
  // Worked by hand: 36 granules aligned to 64 below the 32-bit limit: pfn (0x100000 − 36) & ~63
  // = 0xfffc0; __finalise_sg cannot join past max_segment_size 64 KiB: three segments back to back.
  const [map, unmap] = decodeBatchResults(r.rawPayload);
  t.same(map, {
    handle: 1,
    nents: 3,
    segments: [
      { dma_address: '0xfffc0000', dma_length: 65536 },
      { dma_address: '0xfffd0000', dma_length: 16384 },
      { dma_address: '0xfffd4000', dma_length: 65536 },
    ],
    iova: { start: '0xfffc0000', size: 147456 },
    iova_ranges: [{ start: '0xfffc0000', size: 147456 }],
  });
  t.same(unmap, { handle: 1, iova: { start: '0xfffc0000', size: 147456 } });
  // The packed answer's own bytes: "DMAR", version 1, 2 records; record 0 is a map_sg (kind 1) of handle 1, 3 segments.
  t.same([...r.rawPayload.subarray(0, 24)], [0x44, 0x4d, 0x41, 0x52, 1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0]);
});

test('binary body without Accept: the answer is the JSON answer', async (t) => {
  const { app, a } = await twoSessions({ layout: 'linux' });
  t.teardown(() => app.close());
  const r = await postBinary(app, a, encodeBatchRequest([{ op: 'map_page', dir: 'from_device', phys: '0x90000000', size: 4096 }]), { 'content-type': BATCH_BINARY_TYPE });
  t.equal(r.statusCode, 200);
  t.match(r.headers['content-type'], /^application\/json/);
  // One granule below the 32-bit limit: pfn 0xfffff.
  t.same(r.json(), { results: [{ handle: 1, dma_address: '0xfffff000', iova: { start: '0xfffff000', size: 4096 } }] });
});

// Random batches over every op, refs (good and bad), optional fields and kernel failures.
const phys = fc.integer({ min: 0, max: 4095 }).map((k) => 0x90000000 + k * 0x1000);
const len = fc.constantFrom(1, 512, 4096, 8192, 65536, 0x11000);
const entry = fc.oneof(
  fc.record({ phys: phys.map((p) => `0x${p.toString(16)}`), length: len }),
  fc.tuple(phys, len).map(([p, l]) => [p + (l === 512 ? 512 : 0), l] as [number, number]),
);
const dir = fc.constantFrom('bidirectional', 'to_device', 'from_device') as fc.Arbitrary<'to_device'>;
const handle = fc.oneof(fc.integer({ min: 1, max: 12 }), fc.record({ ref: fc.nat(30) }));
const opArb: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('map_sg'), dir, sg: fc.array(entry, { minLength: 1, maxLength: 5 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('map_sg'), dir, sg: fc.array(entry, { minLength: 1, maxLength: 3 }), skip_cpu_sync: fc.boolean(), pages: fc.boolean(), explain: fc.boolean() }, { requiredKeys: ['op', 'dir', 'sg'] }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('map_page'), dir, phys, size: len }) },
  { weight: 5, arbitrary: fc.record({ op: fc.constant('unmap'), handle, skip_cpu_sync: fc.constant(true), dir }, { requiredKeys: ['op', 'handle'] }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('sync'), handle, for: fc.constantFrom('cpu', 'device') }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('alloc_coherent'), size: fc.integer({ min: 1, max: 20000 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('free_coherent'), handle }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('flush'), rcache: fc.boolean() }, { requiredKeys: ['op'] }) },
);
const layout = fc.constantFrom({ layout: 'linux' }, { layout: 'linux-4.4' }, { layout: 'arm-legacy' }, { iommu: null }, { layout: 'linux', device: { dma_mask: '0xfffff' } });

test('binary and JSON bodies of the same ops: equal answers, op for op (random batches, every layout)', async (t) => {
  const kinds = new Set<string>();
  const app = await buildApp({ logLevel: 'silent' });
  t.teardown(() => app.close());
  const mk = async (config: Record<string, unknown>): Promise<string> => (await app.inject({ method: 'POST', url: '/v1/sessions', payload: config })).json<{ id: string }>().id;
  await fc.assert(
    fc.asyncProperty(layout, fc.array(opArb, { minLength: 1, maxLength: 30 }), async (config, raw) => {
      // A ref must name an earlier op: point forward refs back.
      const ops = raw.map((o, k) => (o.handle && typeof o.handle === 'object' ? { ...o, handle: { ref: (o.handle as { ref: number }).ref % Math.max(k, 1) } } : o));
      if (ops[0]?.handle && typeof ops[0].handle === 'object') ops[0] = { op: 'flush' };
      const a = await mk(config);
      const b = await mk(config);
      try {
        const json = await app.inject({ method: 'POST', url: `/v1/sessions/${a}/batch`, payload: { ops } });
        const bin = await postBinary(app, b, encodeBatchRequest(ops as BatchOpIn[]));
        if (json.statusCode !== 200 || bin.statusCode !== 200) return json.statusCode === bin.statusCode && json.body === bin.body;
        const expected = json.json<{ results: Record<string, unknown>[] }>().results;
        for (const r of expected) kinds.add(Object.keys(r).sort().join(','));
        t.same(decodeBatchResults(bin.rawPayload), expected);
        return true;
      } finally {
        for (const id of [a, b]) await app.inject({ method: 'DELETE', url: `/v1/sessions/${id}` });
      }
    }),
    { numRuns: 80 },
  );
  t.ok(kinds.size >= 8, `answers of ${kinds.size} different shapes compared (fixed records and JSON records)`);
});

test('codec: a packed body decodes to exactly what zod decodes the JSON body to', async (t) => {
  fc.assert(
    fc.property(fc.array(opArb, { minLength: 1, maxLength: 20 }), (ops) => {
      const expected = BatchBody.parse(structuredClone({ ops })).ops;
      const got = decodeBatchRequest(encodeBatchRequest(ops as BatchOpIn[]), (v) => BatchBody.shape.ops.element.parse(v));
      t.same(got, expected);
      return true;
    }),
    { numRuns: 300 },
  );
});

const BAD_OP = Buffer.from('{"op":"map_page","dir":"up","phys":1,"size":1}');

test('malformed binary bodies: 400 naming the field, nothing run', async (t) => {
  const { app, a } = await twoSessions();
  t.teardown(() => app.close());
  const good = mapSgRecord(1, [[0x90000000, 4096]]);
  const cases: [string, Buffer, string][] = [
    ['magic', Buffer.from('DMAX\x01\x00\x00\x00\x01\x00\x00\x00'), 'body: not a binary batch'],
    ['version', Buffer.from([0x44, 0x4d, 0x41, 0x42, 2, 0, 0, 0, 1, 0, 0, 0, ...good]), 'body: format version 2'],
    ['short header', Buffer.from([0x44, 0x4d, 0x41]), 'body: truncated'],
    ['no ops', handPacked([]), 'body.ops: must hold at least 1 op'],
    ['count past the body', Buffer.concat([handPacked([good]).subarray(0, 8), Buffer.from(word(1000)), Buffer.from(good)]), 'body.ops: 1000 ops cannot fit'],
    ['opcode', handPacked([good, [9, 0, 0, 0, ...word(0)]]), 'body.ops.1.op: opcode 9'],
    ['direction', handPacked([mapSgRecord(7, [[0x90000000, 4096]])]), 'body.ops.0.dir: direction 7'],
    ['zero length', handPacked([mapSgRecord(1, [[0x90000000, 4096], [0x90001000, 0]])]), 'body.ops.0.sg.1.length: must be at least 1'],
    ['phys past 2^52', handPacked([mapSgRecord(1, [[2 ** 52, 4096]])]), 'body.ops.0.sg.0.phys: must be below 2^52'],
    ['no entries', handPacked([[1, 1, 0, 0, ...word(0)]]), 'body.ops.0.sg: must hold at least 1 entry'],
    ['truncated entries', handPacked([[1, 1, 0, 0, ...word(2), ...mapSgRecord(1, [[0x90000000, 4096]]).slice(8)]]), 'body.ops.0.sg: truncated'],
    ['unknown flag', handPacked([[3, 0, 0x80, 0, ...word(1)]]), 'body.ops.0: flags 0x80'],
    ['handle 0', handPacked([[3, 0, 0, 0, ...word(0)]]), 'body.ops.0.handle: handles start at 1'],
    ['sync for', handPacked([[4, 5, 0, 0, ...word(1)]]), 'body.ops.0.for: must be 0 (cpu) or 1 (device)'],
    ['trailing bytes', Buffer.concat([handPacked([good]), Buffer.from([0])]), 'body: 1 bytes follow the last of the 1 ops'],
    ['JSON record, not JSON', handPacked([[0, 0, 0, 0, ...word(3), 0x7b, 0x7b, 0x7b]]), 'body.ops.0: a JSON record must hold one JSON op object'],
    ['JSON record, bad op', handPacked([[0, 0, 0, 0, ...word(BAD_OP.length), ...BAD_OP]]), 'body.ops.0.dir'],
  ];
  for (const [name, body, message] of cases) {
    const r = await postBinary(app, a, body);
    t.equal(r.statusCode, 400, `${name}: 400`);
    t.equal(r.json<{ code: string }>().code, 'DMAEMU_INVALID_ARGUMENT', `${name}: code`);
    t.ok(r.json<{ message: string }>().message.startsWith(message), `${name}: "${r.json<{ message: string }>().message}" starts with "${message}"`);
  }
  const summary = (await app.inject({ method: 'GET', url: `/v1/sessions/${a}` })).json<{ live_mappings: number }>();
  t.equal(summary.live_mappings, 0, 'no refused body mapped anything');
});

test('the binary type is refused outside /batch (415), and limits hold as for JSON', async (t) => {
  const app = await buildApp({ logLevel: 'silent', limits: { maxBatchOps: 2 } });
  t.teardown(() => app.close());
  const id = (await app.inject({ method: 'POST', url: '/v1/sessions', payload: {} })).json<{ id: string }>().id;
  const body = encodeBatchRequest([{ op: 'flush' }, { op: 'flush' }, { op: 'flush' }]);
  const r = await app.inject({ method: 'POST', url: `/v1/sessions/${id}/map_sg`, headers: { 'content-type': BATCH_BINARY_TYPE }, payload: body });
  t.equal(r.statusCode, 415);
  t.equal(r.json<{ code: string }>().code, 'DMAEMU_UNSUPPORTED_MEDIA_TYPE');
  const over = await postBinary(app, id, body);
  t.equal(over.statusCode, 429, 'three ops over DMAEMU_MAX_BATCH_OPS 2');
  t.equal(over.json<{ code: string }>().code, 'DMAEMU_TOO_MANY_BATCH_OPS');
});
