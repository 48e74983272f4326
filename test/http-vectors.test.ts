// Every example vector (test/vectors/*.json) replayed over HTTP, one call
// per op on its own endpoint — so the wire format (hex parsing, serialization, routing) is held
// to the same expectations as the core. `ref: i` at the top level of an op names the handle op
// i returned, as the vectors README says; here it is resolved by the test, not by /batch.
import t from 'tap';
import { buildApp } from '../src/service/app.js';
import { asText, client, type Obj } from './helpers/http.js';
import { loadVectors, type VectorOp } from './helpers/vectors.js';

const vectors = loadVectors();
t.ok(vectors.length >= 8, 'the example vectors are present');

const app = await buildApp({ logLevel: 'silent' });
t.teardown(() => app.close());
const c = client(app);

/** The HTTP body of a vector op: its fields minus the test's own, with `ref` as a handle. */
function bodyOf(op: VectorOp, handles: readonly (Obj | undefined)[]): Record<string, unknown> {
  const { op: _op, expect: _expect, ref, pages: _pages, ...body } = op;
  if (ref === undefined) return body;
  const handle = handles[ref]?.handle;
  if (typeof handle !== 'number') throw new Error(`op ${ref} returned no handle to refer to`);
  return { ...body, handle };
}

for (const v of vectors) {
  t.test(`${v.file}: ${v.name} [${v.rule}]`, async (t) => {
    const s = await c.session(v.session);
    const results: Obj[] = [];
    for (const [i, op] of v.ops.entries()) {
      const r = await c.post(`${s.url}/${op.op}`, bodyOf(op, results), op.pages === true ? { query: 'pages=true' } : {});
      t.equal(r.status, 200, `op ${i} (${op.op}) answers 200`, r.status === 200 ? {} : { body: r.text });
      results.push(r.body);
      for (const [k, want] of Object.entries(op.expect ?? {})) t.same(r.body[k], want, `op ${i} (${op.op}) ${k}`);
    }
    // Whatever the vector left mapped is still listed with the segments the map call returned.
    const live = (await c.get(`${s.url}/mappings`)).body.mappings as Obj[];
    for (const row of live) {
      const mapped = results.find((r) => r.handle === row.handle);
      t.same(row.segments, mapped?.segments, `mappings row ${asText(row.handle)} repeats its segments`);
    }
    await c.del(s.url);
  });
}
