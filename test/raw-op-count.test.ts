// Issue 22 item 3: a long JSON body's ops are counted on the raw text (src/service/json-count.ts)
// and refused from the count as the parsed body would be, before JSON.parse builds it.

import t from 'tap';
import fc from 'fast-check';
import { buildApp } from '../src/service/app.js';
import { RAW_COUNT_FROM, SCAN_CHARS, countArrayAt } from '../src/service/json-count.js';

t.test('the raw count is the parsed array\'s length: any JSON around it, any spacing, escaped quotes in strings', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.jsonValue(), { maxLength: 30 }), fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 4 }), fc.constantFrom(undefined, 1, '\t'), async (ops, around, space) => {
      const doc = { ...around, trace: { ...around, ops } };
      t.equal(await countArrayAt(JSON.stringify(doc, null, space), ['trace', 'ops']), ops.length);
      t.equal(await countArrayAt(JSON.stringify({ ...around, ops }, null, space), ['ops']), ops.length);
    }),
    { numRuns: 200 },
  );
  t.equal(await countArrayAt('{"ops":[]}', ['ops']), 0, 'an empty array holds 0');
  t.equal(await countArrayAt('{"ops":[ ]}', ['ops']), 0, 'an empty array with a space holds 0');
  t.equal(await countArrayAt('{"x":{"ops":[1,2]},"ops":[[1,2],{"a":[3,4]},"]\\",["]}', ['ops']), 3, 'only the array at the path counts, not one at another depth nor brackets in strings');
  t.equal(await countArrayAt('{"ops":[1,2,3],"ops":[4]}', ['ops']), 1, 'a repeated key counts its last array, as JSON.parse keeps the last');
  t.equal(await countArrayAt('{"trace":{"ops":[1]},"ops":[1,2]}', ['trace', 'ops']), 1);
  t.equal(await countArrayAt('{"ops":7}', ['ops']), null, 'no array at the path: null');
  t.equal(await countArrayAt('{"ops":[1,2]', ['ops']), null, 'an unclosed text: null (JSON.parse reports it)');
  t.equal(await countArrayAt('{"ops":[1,2}]', ['ops']), null, 'mismatched brackets: null');
  t.equal(await countArrayAt('[{"ops":[1]}]', ['ops']), null, 'the path starts at a top-level object');
  // Across the slices the scan yields between.
  const many = JSON.stringify({ ops: Array.from({ length: Math.ceil((3 * SCAN_CHARS) / 14) }, () => ({ op: 'flush' })) });
  t.ok(many.length > 2 * SCAN_CHARS);
  t.equal(await countArrayAt(many, ['ops']), Math.ceil((3 * SCAN_CHARS) / 14));
});

t.test('too many ops are refused from the raw count, before the body is parsed', async (t) => {
  const app = await buildApp({ logLevel: 'silent', dataDir: null });
  t.teardown(() => app.close());
  const flushes = (n: number): string => Array.from({ length: n }, () => '{"op":"flush"}').join(',');
  // Each op's answer is estimated at 200 bytes at least: 4194304 / 200 = 20971 ops fit; 30 000 do not.
  // The body ends in `01`, which JSON.parse refuses: a 413 rather than that 400 shows the count came first.
  const trace = `{"trace":{"ops":[${flushes(30_000)}]},"x":01}`;
  t.ok(trace.length >= RAW_COUNT_FROM);
  const r = await app.inject({ method: 'POST', url: '/v1/sessions', headers: { 'content-type': 'application/json' }, payload: trace });
  t.equal(r.statusCode, 413);
  t.equal(r.json<{ code: string }>().code, 'DMAEMU_RESPONSE_TOO_LARGE');
  t.match(r.json<{ message: string }>().message, /30000 ops.*DMAEMU_MAX_RESPONSE_BYTES=4194304/);
  // The same body, well formed, is refused the same way (and the same as before the raw count).
  const good = await app.inject({ method: 'POST', url: '/v1/sessions', headers: { 'content-type': 'application/json' }, payload: trace.replace(',"x":01', '') });
  t.equal(good.statusCode, 413);
  t.equal(good.json<{ message: string }>().message, r.json<{ message: string }>().message);
  // Under the limit, the malformed body reaches JSON.parse: its 400.
  const few = `{"trace":{"ops":[${flushes(5000)}]},"x":01}`;
  const parsed = await app.inject({ method: 'POST', url: '/v1/sessions', headers: { 'content-type': 'application/json' }, payload: few });
  t.equal(parsed.statusCode, 400);
  t.equal(parsed.json<{ code: string }>().code, 'DMAEMU_MALFORMED_BODY');

  // A /batch over DMAEMU_MAX_BATCH_OPS (1024): its 429, from the count.
  const created = await app.inject({ method: 'POST', url: '/v1/sessions', payload: {} });
  const id = created.json<{ id: string }>().id;
  const batch = await app.inject({ method: 'POST', url: `/v1/sessions/${id}/batch`, headers: { 'content-type': 'application/json' }, payload: `{"ops":[${flushes(5000)}],"x":01}` });
  t.equal(batch.statusCode, 429);
  t.equal(batch.json<{ code: string }>().code, 'DMAEMU_TOO_MANY_BATCH_OPS');
  // Compare: 30 000 ops, 413 from the count.
  const cmp = await app.inject({ method: 'POST', url: '/v1/compare', headers: { 'content-type': 'application/json' }, payload: `{"ops":[${flushes(30_000)}],"x":01}` });
  t.equal(cmp.statusCode, 413);
  t.equal(cmp.json<{ code: string }>().code, 'DMAEMU_RESPONSE_TOO_LARGE');
});
