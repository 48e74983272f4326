// Every example vector (test/vectors/*.json, and those of DMAEMU_VECTORS_DIR) run through the
// core: the session is created from the vector's body exactly as the REST layer would parse it,
// the ops run as one batch, every field the vector's `expect` names must match, and whatever the
// vector leaves mapped must be listed in the mappings table as its op answered it.
import t from 'tap';
import { SessionCreateBody } from '../schemas/session.js';
import { BatchBody } from '../schemas/batch.js';
import { SessionStore } from '../src/service/session-store.js';
import { expectMismatches, liveRowMismatches, loadVectors, toBatchOp, type Answer, type Vector } from './helpers/vectors.js';

const vectors = loadVectors();
t.ok(vectors.length >= 8, 'the example vectors are present');

/** Runs a vector through the core; the answers and the mappings table at the end. */
function run(v: Vector): { answers: Answer[]; rows: Answer[] } {
  const store = new SessionStore();
  const s = store.create(SessionCreateBody.parse(v.session));
  const { results } = s.batch(BatchBody.parse({ ops: v.ops.map(toBatchOp) }));
  return { answers: results, rows: s.mappingsTable().mappings };
}

for (const v of vectors) {
  t.test(`${v.file}: ${v.name} [${v.rule}]`, async (t) => {
    const { answers, rows } = run(v);
    v.ops.forEach((op, i) => {
      const r = answers[i] ?? {};
      t.notOk('code' in r && 'statusCode' in r, `op ${i} (${op.op}) is not an error: ${JSON.stringify(r)}`);
    });
    t.same(expectMismatches(v.ops, answers), [], 'every expected field matches');
    t.same(liveRowMismatches(v.ops, answers, rows), [], 'what is left mapped is listed as its op answered');
  });
}

t.test('the checks can fail: a wrong expectation is reported with its op and field', async (t) => {
  const v = vectors.find((x) => x.file === 'linux-every-op-live-at-end.json');
  if (!v) return t.fail('linux-every-op-live-at-end.json is missing');
  // op 1 maps 256 bytes at 0x85000800: §6 puts the handle at iova + 0x800, never at a page start.
  const wrong = { ...v, ops: v.ops.map((op, i) => (i === 1 ? { ...op, expect: { dma_address: '0xffffd000' } } : op)) };
  const { answers, rows } = run(wrong);
  t.same(expectMismatches(wrong.ops, answers), ['op 1 (map_page) dma_address: got "0xffffd800", want "0xffffd000"']);
  // A table missing the map_page row, or holding a row no op left mapped, is reported too.
  const page = rows.find((r) => r.kind === 'map_page');
  t.same(liveRowMismatches(wrong.ops, answers, rows.filter((r) => r !== page)), [`op 1 (map_page) handle ${String(page?.handle)}: still mapped but not listed in /mappings`]);
  const unmapped = answers[0]?.handle;
  t.same(liveRowMismatches(wrong.ops, answers, [...rows, { handle: unmapped }]), [`/mappings row ${String(unmapped)}: no op left this handle mapped`]);
});
