// Every example vector (test/vectors/*.json) run through the core: the
// session is created from the vector's body exactly as the REST layer would parse it, the ops
// run as one batch, and every field the vector's `expect` names must match.
import t from 'tap';
import { SessionCreateBody } from '../schemas/session.js';
import { BatchBody } from '../schemas/batch.js';
import { SessionStore } from '../src/service/session-store.js';
import { loadVectors, toBatchOp } from './helpers/vectors.js';

const vectors = loadVectors();
t.ok(vectors.length >= 8, 'the example vectors are present');

for (const v of vectors) {
  t.test(`${v.file}: ${v.name} [${v.rule}]`, async (t) => {
    const store = new SessionStore();
    const s = store.create(SessionCreateBody.parse(v.session));
    const { results } = s.batch(BatchBody.parse({ ops: v.ops.map(toBatchOp) }));
    v.ops.forEach((op, i) => {
      const r = results[i] as Record<string, unknown>;
      t.notOk('code' in r && 'statusCode' in r, `op ${i} (${op.op}) is not an error: ${JSON.stringify(r)}`);
      for (const [k, want] of Object.entries(op.expect ?? {})) t.same(r[k], want, `op ${i} (${op.op}) ${k}`);
    });
  });
}
