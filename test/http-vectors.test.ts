// Every example vector (test/vectors/*.json, and those of DMAEMU_VECTORS_DIR) replayed over
// HTTP, one call per op on its own endpoint — so the wire format (hex parsing, serialization,
// routing) is held to the same expectations as the core. `ref: i` names the handle op i returned,
// as the vectors README says; here it is resolved by the test (helpers/vectors.ts toHttpCall),
// not by /batch. Whatever the vector leaves mapped (a map_sg, a map_page, a coherent buffer) must
// be listed by GET /mappings as its op answered it.
import t from 'tap';
import { buildApp } from '../src/service/app.js';
import { client } from './helpers/http.js';
import { expectMismatches, liveRowMismatches, loadVectors, toHttpCall, type Answer } from './helpers/vectors.js';

const vectors = loadVectors();
t.ok(vectors.length >= 8, 'the example vectors are present');

const app = await buildApp({ logLevel: 'silent' });
t.teardown(() => app.close());
const c = client(app);

for (const v of vectors) {
  t.test(`${v.file}: ${v.name} [${v.rule}]`, async (t) => {
    const s = await c.session(v.session);
    const answers: Answer[] = [];
    for (const [i, op] of v.ops.entries()) {
      const call = toHttpCall(op, answers);
      const r = await c.post(`${s.url}/${call.path}`, call.body, call.query ? { query: call.query } : {});
      t.equal(r.status, 200, `op ${i} (${op.op}) answers 200`, r.status === 200 ? {} : { body: r.text });
      answers.push(r.body);
    }
    t.same(expectMismatches(v.ops, answers), [], 'every expected field matches');
    const rows = (await c.get(`${s.url}/mappings`)).body.mappings as Answer[];
    t.same(liveRowMismatches(v.ops, answers, rows), [], 'what is left mapped is listed as its op answered');
    await c.del(s.url);
  });
}
