// The memory-only op store (no DMAEMU_DATA_DIR) keeps each session's first calls for GET /trace.
// Rule (src/service/store/memory-op-store.ts): it keeps them as JSON, at most maxCalls records and
// maxBytes per session, and only what the memory budget lets it hold — a /batch record carries
// its whole input and answer, so an uncapped buffer would hold gigabytes outside the budget.
// Past a cap the trace is gone (a snapshot base with no state) and the bytes are given back.
import { test } from 'tap';
import { MemoryOpStore } from '../src/service/store/memory-op-store.js';
import { encodeJson, type CallRecord, type CreateRecord } from '../src/service/store/op-store.js';
import { FOOTPRINT } from '../src/core/memory-budget.js';
import { DEFAULT_STORE_LIMITS, SessionStore } from '../src/service/session-store.js';

const create: CreateRecord = { t: 'create', at: 1, id: 's1', input: {} };
const call = (i: number): CallRecord => ({ t: 'call', at: 10 + i, op: 'flush', in: { rcache: false }, out: { flushed: 0, rcache_freed: 0 } });

test('records are kept as JSON up to maxBytes, each charged through hold; the first past it drops the trace and gives every byte back', async (t) => {
  const one = encodeJson(call(0)).length; // every call(i) below has the same length: at is 10..19
  const held: number[] = [];
  const store = new MemoryOpStore((_id, b) => (held.push(b), true), 100, 3 * one);
  await store.append('s1', create);
  for (let i = 0; i < 3; i++) await store.append('s1', call(i));
  const kept = await store.load('s1');
  t.same(kept?.calls, [call(0), call(1), call(2)], 'three records fit in 3 × their length, decoded as they went in');
  t.equal(kept?.snapshot, null, 'the whole history is there');
  t.same(held, [one, one, one], 'each record charged its JSON length');
  await store.append('s1', call(3));
  const gone = await store.load('s1');
  t.same(gone?.calls, [], 'the fourth does not fit: no partial history is kept');
  t.equal(gone?.snapshot?.calls, 4, 'the trace says 4 calls are missing from it');
  t.same(held, [one, one, one, -3 * one], 'and the 3 records are given back');
});

test('maxCalls still caps the number of records', async (t) => {
  const store = new MemoryOpStore(() => true, 2);
  await store.append('s1', create);
  for (let i = 0; i < 3; i++) await store.append('s1', call(i));
  t.equal((await store.load('s1'))?.snapshot?.calls, 3, 'the third record of a 2-record cap drops the trace');
});

test('a budget with no room keeps no trace (and never refuses the call itself)', async (t) => {
  // Room for the session's fixed cost and 100 bytes more: a flush record (~70 bytes of JSON) fits once, not twice.
  const sessions = new SessionStore({ ...DEFAULT_STORE_LIMITS, memoryBudget: FOOTPRINT.session + 100 });
  const budget = sessions.budget;
  const s = sessions.create({});
  const store = new MemoryOpStore((id, b) => sessions.holdTrace(id, b));
  const rec = { ...create, id: s.id };
  await store.append(s.id, rec);
  const len = encodeJson(call(0)).length;
  t.ok(len < 100 && 2 * len > 100, `a record is ${len} bytes`);
  await store.append(s.id, call(0));
  t.equal(budget.used, FOOTPRINT.session + len, 'the first record is charged to the budget');
  await store.append(s.id, call(1));
  t.equal((await store.load(s.id))?.calls.length, 0, 'the second has no room: the trace is dropped');
  t.equal(budget.used, FOOTPRINT.session, 'and its bytes are back');
  sessions.delete(s.id);
  t.equal(budget.used, 0, 'deleting the session gives the rest back');
});
