// Issue 22: no request can hurt another tenant. Every call runs through src/service/execute.ts:
// its cost is estimated and checked before any effect (docs/api.md "Request limits"), its answer
// is charged to the memory budget while it is built, long work runs in slices that let other
// sessions' calls in, calls on one session still run (and are logged) in arrival order, and a
// create from a trace that fails leaves no session, in memory or on disk.

import t, { type Test } from 'tap';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../src/service/app.js';
import { FOOTPRINT } from '../src/core/memory-budget.js';
import { encodeBatchRequest } from '../schemas/batch-binary.js';
import { asText, client, type Client, type Reply } from './helpers/http.js';

const GiB = 2 ** 30;
const MiB = 2 ** 20;

async function appAt(t: Test, opts: Parameters<typeof buildApp>[0] = {}): Promise<{ app: Awaited<ReturnType<typeof buildApp>>; c: Client }> {
  const app = await buildApp({ logLevel: 'silent', dataDir: null, ...opts });
  t.teardown(() => app.close());
  return { app, c: client(app) };
}

function refused(t: Test, r: Reply, status: number, code: string, names: string): void {
  t.equal(r.status, status, `HTTP ${status}`);
  t.equal(r.body.code, code);
  t.match(asText(r.body.message), names, `the message names ${names}`);
}

t.test('the issue\'s killers end as a 4xx naming the limit, before any effect', async (t) => {
  const { app, c } = await appAt(t);
  const s = await c.session();

  // 400 × cpu_read of 1 MiB: each answer is 1 MiB in base64 = 4 × ceil(1048576 / 3) = 1398104
  // characters + 200, so the trace would keep ~559 MB of answers, over 4 MiB.
  const reads = Array.from({ length: 400 }, () => ({ op: 'cpu_read', phys: 0, length: MiB }));
  refused(t, await c.post('/v1/sessions', { trace: { ops: reads } }), 413, 'DMAEMU_RESPONSE_TOO_LARGE', 'DMAEMU_MAX_RESPONSE_BYTES=4194304');

  // Two map_page of 1 GiB with pages: 262144 rows each (1 GiB / 4 KiB), + 1 per op, in 4
  // columns: 4 × 2 × 262145 = 2097160 units > 1048576.
  const pages = [0, 1].map((i) => ({ op: 'map_page', dir: 'to_device', phys: i * GiB, size: GiB, pages: true }));
  const cmp = await c.post('/v1/compare', { ops: pages });
  refused(t, cmp, 413, 'DMAEMU_REQUEST_TOO_COSTLY', 'DMAEMU_MAX_REQUEST_COST=1048576');
  t.match(asText(cmp.body.message), '2097160', 'the message gives the estimate');

  // The same map_page 64 times in one /batch: 64 × 262145 = 16777280 units.
  const batch = Array.from({ length: 64 }, (_, i) => ({ op: 'map_page', dir: 'to_device', phys: i * GiB, size: GiB, pages: true }));
  refused(t, await c.post(`${s.url}/batch`, { ops: batch }), 413, 'DMAEMU_REQUEST_TOO_COSTLY', '16777280');
  t.equal((await c.get(s.url)).body.live_mappings, 0, 'the refused batch mapped nothing');

  // 256 × cpu_read 1 MiB compared: 4 × 256 × 1398304 bytes of answer.
  refused(t, await c.post('/v1/compare', { ops: reads.slice(0, 256) }), 413, 'DMAEMU_RESPONSE_TOO_LARGE', String(4 * 256 * 1398304));

  // A compare of 100 k entries: counted on the raw body, refused as map_sg would refuse it.
  const sg = Array.from({ length: 100_000 }, (_, i) => ({ phys: 0x10000000 + i * 0x2000, length: 4096 }));
  refused(t, await c.post('/v1/compare', { sg }), 429, 'DMAEMU_TOO_MANY_SG_ENTRIES', 'sg: a scatterlist may hold at most 4096 entries');

  // 500 k flush ops: every op's answer is estimated at 200 bytes at least, 10^8 > 4 MiB, counted before parsing.
  const flushes = `{"trace":{"ops":[${Array.from({ length: 500_000 }, () => '{"op":"flush"}').join(',')}]}}`;
  refused(t, await c.post('/v1/sessions', undefined, { raw: flushes, headers: { 'content-type': 'application/json' } }), 413, 'DMAEMU_RESPONSE_TOO_LARGE', '100000000');

  // A binary /batch whose header says 1 M ops: refused from the header, before one op is decoded.
  const one = encodeBatchRequest([{ op: 'flush' }]);
  one.writeUInt32LE(1_000_000, 8);
  const bin = await app.inject({ method: 'POST', url: `${s.url}/batch`, payload: one, headers: { 'content-type': 'application/vnd.dmaemu.batch' } });
  t.equal(bin.statusCode, 429);
  t.equal(bin.json<{ code: string }>().code, 'DMAEMU_TOO_MANY_BATCH_OPS');

  // An `expect` nested 10 000 deep: a 400 naming it (the mismatch report used to overflow the stack).
  const deep = '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000);
  const r = await c.post('/v1/sessions', undefined, { raw: `{"trace":{"ops":[{"op":"flush","expect":{"flushed":${deep}}}]}}`, headers: { 'content-type': 'application/json' } });
  refused(t, r, 400, 'DMAEMU_INVALID_ARGUMENT', 'trace.ops.0.expect');

  t.equal(app.store.size, 1, 'no refused create left a session behind');
});

t.test('a create from a trace that fails leaves no session in memory or on disk, and none comes back after a restart', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dmaemu-atomic-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // Budget: one session's footprint plus 100 KiB. A 64 KiB read answers 4 × 21846 + 200 = 87584
  // bytes (≥ 64 KiB: charged twice, 175168 bytes), which the budget cannot hold next to the session.
  const budget = FOOTPRINT.session + 100 * 1024;
  const app = await buildApp({ logLevel: 'silent', dataDir: dir, limits: { memoryBudget: budget, maxRequestCost: 64 } });
  const c = client(app);
  const bad = [
    { ops: [{ op: 'flush' }, { op: 'map_sg', dir: 'sideways', sg: [] }] }, // an invalid op
    { ops: [{ op: 'cpu_read', phys: 0, length: 65536 }] }, // its answer does not fit the budget: 507
    { ops: Array.from({ length: 65 }, () => ({ op: 'flush' })) }, // 65 units > DMAEMU_MAX_REQUEST_COST=64
    { ops: [{ op: 'flush', expect: JSON.parse('{"a":'.repeat(40) + '1' + '}'.repeat(40)) as unknown }] }, // 41 levels > 32
  ];
  const statuses = [];
  for (const trace of bad) statuses.push((await c.post('/v1/sessions', { trace })).status);
  t.same(statuses, [400, 507, 413, 400], 'each refused');
  t.equal(app.store.size, 0, 'no session in memory');
  t.equal(app.store.budget.used, 0, 'every charge given back');
  t.same(readdirSync(dir, { recursive: true }).filter((f) => String(f).startsWith('sessions/')), [], 'no log on disk');
  const ok = await c.post('/v1/sessions', { trace: { ops: [{ op: 'map_page', dir: 'to_device', phys: 0, size: 4096 }] } });
  t.equal(ok.status, 201, 'a trace that fits is accepted');
  await app.close();
  const again = await buildApp({ logLevel: 'silent', dataDir: dir });
  t.teardown(() => again.close());
  t.same([...again.store.values()].map((s) => s.id), [ok.body.id], 'after a restart: only the session a client was given');
});

t.test('a long /batch runs in slices: another session\'s call is answered before it, a call on the same session after it', async (t) => {
  const { c } = await appAt(t);
  const a = await c.session();
  const b = await c.session();
  // 4 map_sg of 4096 entries: 4 × 4097 units, over one slice (4096): the batch yields between ops.
  const sg = Array.from({ length: 4096 }, (_, i) => [0x10000000 + i * 0x2000, 4096]);
  const done: string[] = [];
  const track = (name: string, p: Promise<Reply>): Promise<Reply> => p.then((r) => (done.push(name), r));
  const [batch, same, other] = await Promise.all([
    track('batch on A', c.post(`${a.url}/batch`, { ops: Array.from({ length: 4 }, () => ({ op: 'map_sg', dir: 'to_device', sg })) })),
    track('map_page on A', c.post(`${a.url}/map_page`, { dir: 'to_device', phys: '0x1000', size: 4096 })),
    track('flush on B', c.post(`${b.url}/flush`, {})),
  ]);
  t.equal(batch.status, 200);
  t.equal(done.indexOf('flush on B') < done.indexOf('batch on A'), true, 'B was answered while A\'s batch was running');
  t.equal(done.indexOf('batch on A') < done.indexOf('map_page on A'), true, 'A\'s next call waited for its batch');
  // Handles count from 1 in call order: the batch's four maps take 1-4, the map_page after them 5.
  t.same((batch.body.results as { handle: number }[]).map((r) => r.handle), [1, 2, 3, 4]);
  t.equal(same.body.handle, 5, 'the map_page ran after the batch');
  t.equal(other.status, 200);
  const trace = (await c.get(`${a.url}/trace`)).body as { ops: { op: string }[] };
  t.same(trace.ops.map((o) => o.op), ['map_sg', 'map_sg', 'map_sg', 'map_sg', 'map_page'], 'logged in the order they ran');
});

t.test('compare\'s four sessions are charged to the memory budget while it runs, and given back', async (t) => {
  // Room for the store's nothing plus three sessions' footprints: the fourth column cannot be made.
  const { app, c } = await appAt(t, { limits: { memoryBudget: 3 * FOOTPRINT.session + 1 } });
  const sg = [{ phys: '0x90000000', length: 4096 }];
  refused(t, await c.post('/v1/compare', { sg }), 507, 'DMAEMU_MEMORY_BUDGET', 'DMAEMU_MEMORY_BUDGET');
  t.equal(app.store.budget.used, 0, 'nothing held after the refusal');
  const { app: roomy, c: c2 } = await appAt(t, { limits: { memoryBudget: 4 * FOOTPRINT.session + 4 * 1280 } });
  t.equal((await c2.post('/v1/compare', { sg })).status, 200, 'four sessions and one mapping each fit');
  t.equal(roomy.store.budget.used, 0, 'given back with the answer');
});
