// Issue 22 item 3: a large answer (page rows, compare's columns, a big /batch) is serialized in
// slices that give the event loop back (src/service/json-slices.ts), and what is sent is the
// same JSON text JSON.stringify gives for the unsliced answer.

import t from 'tap';
import fc from 'fast-check';
import { buildApp } from '../src/service/app.js';
import { SLICE_CHARS, stringifySliced } from '../src/service/json-slices.js';
import { LARGE_ANSWER } from '../src/service/execute.js';
import { Session } from '../src/service/session.js';
import { resolveConfig } from '../src/core/config.js';
import { configRequest } from '../src/service/config-wire.js';
import { compare } from '../src/service/compare.js';
import { UNLIMITED_BUDGET } from '../src/core/memory-budget.js';
import { DEFAULT_REQUEST_LIMITS } from '../src/service/execute.js';
import { DEFAULT_SESSION_LIMITS } from '../src/core/dma-device.js';
import { CompareBody, MapPageBody, SessionCreateBody } from '../schemas/index.js';

const sliced = async (v: unknown): Promise<string> => (await stringifySliced(v)).toString('utf8');

t.test('sliced JSON is JSON.stringify: any JSON value, with undefined members and non-ASCII text', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.jsonValue(), async (v) => {
      t.equal(await sliced(v), JSON.stringify(v));
    }),
    { numRuns: 300 },
  );
  // JSON.stringify drops undefined, functions and symbols from objects and writes null for them in arrays.
  const odd = { a: undefined, b: [undefined, () => 1, Symbol('s'), 1], c: { d: [{ e: undefined }] }, f: () => 2, 'ü"\n': 'ünï\u2028' };
  t.equal(await sliced(odd), JSON.stringify(odd));
  // toJSON is called once, with the key it is found under.
  const keys: string[] = [];
  const dated = { when: new Date(0), arr: [{ toJSON: (k: string) => (keys.push(k), { k, inner: [1, 2] }) }] };
  const want = JSON.stringify(dated);
  const wantKeys = [...keys];
  keys.length = 0;
  t.equal(await sliced(dated), want);
  t.same(keys, wantKeys, 'toJSON got the same keys');
});

t.test('sliced JSON is JSON.stringify across slice boundaries (answers from one row to several slices)', async (t) => {
  const rowsOf = (n: number, extra: boolean): unknown => ({
    handle: 1,
    nents: 1,
    bounced: extra ? true : undefined,
    pages: Array.from({ length: n }, (_, i) => ({ iova: `0x${(0xfff00000 + i * 4096).toString(16)}`, phys: `0x${(0x80000000 + i * 4096).toString(16)}` })),
    explain: { breaks: Array.from({ length: n % 7 }, (_, i) => ({ rule: 'r', values: { i, list: [i, [i]] } })) },
  });
  // Each row is ~50 characters: 0 .. 3 slices' worth, and the sizes around each boundary.
  const perSlice = Math.ceil(SLICE_CHARS / 50);
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: 3 * perSlice }), fc.boolean(), async (n, extra) => {
      const v = rowsOf(n, extra);
      t.equal(await sliced(v), JSON.stringify(v));
    }),
    { numRuns: 40, examples: [[0, false], [perSlice - 1, true], [perSlice, false], [perSlice + 1, true]] },
  );
});

t.test('a circular answer is a TypeError, as JSON.stringify says', async (t) => {
  const a: { self?: unknown; list: unknown[] } = { list: [] };
  a.list.push({ back: a });
  await t.rejects(stringifySliced(a), TypeError);
});

t.test('a large answer gives the event loop back while it is serialized', async (t) => {
  const v = { rows: Array.from({ length: 4 * Math.ceil(SLICE_CHARS / 20) }, (_, i) => ({ i, s: 'x' })) };
  let turns = 0;
  let done = false;
  const count = (): void => {
    if (done) return;
    turns++;
    setImmediate(count);
  };
  setImmediate(count);
  const out = await stringifySliced(v);
  done = true;
  t.ok(turns >= 3, `other work ran ${turns} times in between (the text is ${out.length} bytes, ${SLICE_CHARS}-character slices)`);
  t.equal(out.toString('utf8'), JSON.stringify(v));
});

const wide = { device: { dma_mask: '0xffffffffffff', max_segment_size: 4294967295 } };

t.test('map_page ?pages=true over HTTP: sliced answers are the unsliced JSON, at sizes across the large-answer threshold', async (t) => {
  const app = await buildApp({ logLevel: 'silent', dataDir: null });
  t.teardown(() => app.close());
  // 48 estimated bytes per row: LARGE_ANSWER / 48 rows is where the sliced path starts.
  const threshold = Math.ceil(LARGE_ANSWER / 48);
  for (const rows of [1, threshold - 64, threshold + 64, 2 * threshold, DEFAULT_SESSION_LIMITS.maxPageRows]) {
    const created = await app.inject({ method: 'POST', url: '/v1/sessions', payload: wide });
    const id = created.json<{ id: string }>().id;
    const body = { phys: '0x80000000', size: rows * 4096, dir: 'to_device' };
    const r = await app.inject({ method: 'POST', url: `/v1/sessions/${id}/map_page?pages=true`, payload: body });
    t.equal(r.statusCode, 200, `${rows} rows: 200`);
    t.match(r.headers['content-type'], /^application\/json/);
    // The same call on a session of the same config, serialized whole by JSON.stringify.
    const alone = new Session('alone', resolveConfig(configRequest(SessionCreateBody.parse(wide))));
    const want = alone.mapPage(MapPageBody.parse(body), true);
    t.equal(want.pages?.length, rows, `${rows} rows listed`);
    if (rows > threshold) t.equal(r.body, JSON.stringify(want), `${rows} rows: the sliced text is JSON.stringify's`);
    else t.same(JSON.parse(r.body), JSON.parse(JSON.stringify(want)), `${rows} rows: the same JSON value`);
  }
});

t.test('compare of a 4096-entry scatterlist over HTTP: the sliced answer is the unsliced JSON', async (t) => {
  const app = await buildApp({ logLevel: 'silent', dataDir: null });
  t.teardown(() => app.close());
  const input = { session: wide, dir: 'to_device', sg: Array.from({ length: 4096 }, (_, i) => ({ phys: `0x${(0x80000000 + i * 0x2000).toString(16)}`, length: 4096 })) };
  const r = await app.inject({ method: 'POST', url: '/v1/compare', payload: input });
  t.equal(r.statusCode, 200);
  const want = await compare(CompareBody.parse(input), { ...DEFAULT_SESSION_LIMITS, ...DEFAULT_REQUEST_LIMITS }, UNLIMITED_BUDGET);
  t.ok(r.body.length > LARGE_ANSWER, `the answer (${r.body.length} bytes) took the sliced path`);
  t.equal(r.body, JSON.stringify(want));
});
