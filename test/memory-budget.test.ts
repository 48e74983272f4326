// The process-wide memory budget (src/core/memory-budget.ts, docs/memory-budget.md): work that would
// take all sessions past DMAEMU_MEMORY_BUDGET is refused with DMAEMU_MEMORY_BUDGET (507) before
// it has any effect; every session stays usable; freeing gives the room back; a restore admits
// acknowledged work whatever the budget; and a real server with a small heap, fed by a leaking
// harness, refuses instead of dying, with RSS under the budget plus a stated margin.
import { test } from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SessionCreateBody } from '../schemas/session.js';
import { CpuReadBody, CpuWriteBody } from '../schemas/memory.js';
import { DmaemuError } from '../src/core/errors.js';
import { FOOTPRINT, MemoryBudget, budgetFromEnv, defaultBudgetBytes } from '../src/core/memory-budget.js';
import { DEFAULT_STORE_LIMITS, SessionStore } from '../src/service/session-store.js';
import { buildApp } from '../src/service/app.js';
import { client } from './helpers/http.js';
import { decodeFrames } from '../src/service/store/frames.js';
import { mapPage, mapSg } from './helpers/dma-core.js';
import { listeningUrl } from './helpers/server-process.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** A store whose budget is `bytes`. */
function storeWith(bytes: number): SessionStore {
  return new SessionStore({ ...DEFAULT_STORE_LIMITS, memoryBudget: bytes });
}

function refusal(fn: () => unknown): DmaemuError | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof DmaemuError) return e;
    throw e;
  }
  return undefined;
}

// A session costs FOOTPRINT.session; its first mapping brings its first handle-table page
// (FOOTPRINT.handlePage, charged as the answer leaves); each one-entry mapping FOOTPRINT.mapping.
const SESSION = FOOTPRINT.session;
const FIRST_PAGE = FOOTPRINT.handlePage;
const MAP1 = FOOTPRINT.mapping;
const PAGE = (i: number) => 0x80000000 + i * 0x1000;

test('a map over the budget is refused with DMAEMU_MEMORY_BUDGET (507) and leaves the session exactly as it was', async (t) => {
  // Room for the session, its first handle page and three one-page mappings: the fourth map
  // needs MAP1 more than the limit has.
  const limit = SESSION + FIRST_PAGE + 3 * MAP1;
  const store = storeWith(limit);
  const s = store.create(SessionCreateBody.parse({}));
  // A twin with room to spare takes the same successful calls: the refusal must leave no trace
  // (no IOVA allocated, no handle used, no counter moved) that would make the two differ later.
  const twin = new SessionStore().create(SessionCreateBody.parse({}));
  for (let i = 0; i < 3; i++) t.same(mapPage(s, PAGE(i), 4096), mapPage(twin, PAGE(i), 4096), `map ${i} fits`);
  t.equal(store.budget.used, limit, 'charged: session + handle page + 3 mappings = the limit');
  const before = { summary: s.summary(), table: s.mappingsTable() };
  const err = refusal(() => mapPage(s, PAGE(3), 4096));
  t.equal(err?.code, 'DMAEMU_MEMORY_BUDGET');
  t.equal(err?.statusCode, 507);
  t.match(err?.message, /DMAEMU_MEMORY_BUDGET=\d+/, 'the message names the budget and its env var');
  t.same({ summary: s.summary(), table: s.mappingsTable() }, before, 'summary and mapping table unchanged');
  t.equal(store.budget.used, limit, 'nothing charged');
  t.equal(refusal(() => mapSg(s, [{ phys: PAGE(3), length: 4096 }]))?.code, 'DMAEMU_MEMORY_BUDGET', 'map_sg too');
  // Unmap gives MAP1 back; the next map then lands where the twin's does (same handle, same IOVA).
  t.same(s.unmap({ handle: 2 }), twin.unmap({ handle: 2 }), 'unmap still works at the limit');
  t.equal(store.budget.used, limit - MAP1, 'unmap gave its mapping back');
  t.same(mapPage(s, PAGE(3), 4096), mapPage(twin, PAGE(3), 4096), 'the freed room is usable: same handle and IOVA as the twin');
});

test('the budget is shared: one session at the limit refuses the others, which still answer, and freeing or deleting restores room', async (t) => {
  const limit = 2 * SESSION + 2 * FIRST_PAGE + 4 * MAP1;
  const store = storeWith(limit);
  const a = store.create(SessionCreateBody.parse({}));
  const b = store.create(SessionCreateBody.parse({}));
  t.ok(mapPage(b, PAGE(0), 4096).handle, 'b maps one page');
  for (let i = 0; i < 3; i++) t.ok(mapPage(a, PAGE(i), 4096).handle, `a (the leaking one) maps page ${i}`);
  t.equal(store.budget.used, limit, 'the budget is full');
  t.equal(refusal(() => mapPage(b, PAGE(1), 4096))?.code, 'DMAEMU_MEMORY_BUDGET', "b is refused too: the room is the whole service's");
  t.same(b.sync({ handle: 1, for: 'cpu' }).handle, 1, 'b still answers calls that need no room');
  t.equal(b.summary().live_mappings, 1);
  const c = refusal(() => store.create(SessionCreateBody.parse({})));
  t.equal(c?.code, 'DMAEMU_MEMORY_BUDGET', 'a new session is refused: it costs FOOTPRINT.session');
  t.equal(store.size, 2, 'and is not registered');
  const leaks = store.delete(a.id);
  t.equal(leaks.leaked_mappings, 3, 'deleting a reports its leaks');
  t.equal(store.budget.used, SESSION + FIRST_PAGE + MAP1, "deleting a gave back all of its share; what is left is b's");
  t.equal(store.budget.used, b.budgetBytes);
  t.ok(mapPage(b, PAGE(1), 4096).handle, 'b maps again');
});

test('an expired session gives its share back', async (t) => {
  let now = 0;
  const store = new SessionStore({ ...DEFAULT_STORE_LIMITS, ttlMs: 1000 }, () => now);
  const s = store.create(SessionCreateBody.parse({}));
  mapPage(s, PAGE(0), 4096);
  t.ok(store.budget.used > 0);
  now = 5000;
  t.equal(store.sweep(), 1);
  t.equal(store.budget.used, 0, 'nothing left charged');
});

test('a cpu_write that would create RAM past the budget is refused before any byte is written', async (t) => {
  // Coherent device: no CPU cache, a write goes to RAM chunks of FOOTPRINT.ramChunk each.
  const limit = SESSION + FOOTPRINT.ramChunk; // room for one 4 KiB chunk
  const store = storeWith(limit);
  const s = store.create(SessionCreateBody.parse({ device: { coherent: true } }));
  const page = Buffer.alloc(4096, 0xab).toString('base64');
  t.same(s.cpuWrite(CpuWriteBody.parse({ phys: PAGE(0), data: page })), { written: 4096 }, 'one chunk fits');
  t.equal(store.budget.used, limit, 'charged one RAM chunk');
  const two = Buffer.alloc(8192, 0xcd).toString('base64');
  // [PAGE(0) + 2048, +8192) spans chunks 0 (present), 1 and 2 (missing): two more chunks.
  t.equal(refusal(() => s.cpuWrite(CpuWriteBody.parse({ phys: PAGE(0) + 2048, data: two })))?.code, 'DMAEMU_MEMORY_BUDGET');
  t.equal(s.summary().memory_bytes_touched, 4096, 'no chunk was created');
  const back = Buffer.from(s.cpuRead(CpuReadBody.parse({ phys: PAGE(0), length: 4096 })).data ?? '', 'base64');
  t.ok(back.every((x) => x === 0xab), 'not even the bytes that fell in the present chunk were written');
});

test('DMAEMU_MEMORY_BUDGET: a positive integer of bytes, or 70 % of the smaller of the heap limit and memory', async (t) => {
  t.equal(budgetFromEnv({ DMAEMU_MEMORY_BUDGET: '1048576' }), 1048576);
  t.equal(budgetFromEnv({}), defaultBudgetBytes());
  t.throws(() => budgetFromEnv({ DMAEMU_MEMORY_BUDGET: '1GB' }), /DMAEMU_MEMORY_BUDGET must be a positive integer/);
  t.throws(() => budgetFromEnv({ DMAEMU_MEMORY_BUDGET: '0' }), /DMAEMU_MEMORY_BUDGET/);
  const b = new MemoryBudget(100);
  b.admitAll(true);
  b.charge(1000);
  t.equal(b.used, 1000, 'while admitting (restore) nothing is refused');
  b.admitAll(false);
  t.throws(() => b.charge(1), /memory budget/, 'then new work is refused until enough is freed');
});

for (const compact of [false, true]) {
  test(`over HTTP: 507 with the documented code, /metrics shows the budget, and a restore${compact ? ' from a snapshot' : ''} into a smaller budget keeps every acknowledged mapping`, async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'dmaemu-budget-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    // Compacting after every call: the restore starts from a snapshot, which carries the session's own count.
    const journal = compact ? { compactMinBytes: 1, compactRatio: 0.01 } : { compactMinBytes: 1 << 30 };
    const big = await buildApp({ logLevel: 'silent', dataDir: dir, journal });
    const c = client(big);
    const id = (await c.post('/v1/sessions', {})).body.id as string;
    const ops = Array.from({ length: 4 }, (_, i) => ({ op: 'map_page', phys: `0x${PAGE(i).toString(16)}`, size: 4096, dir: 'to_device' }));
    t.equal((await c.post(`/v1/sessions/${id}/batch`, { ops })).status, 200);
    for (let i = 4; i < 8; i++) t.equal((await c.post(`/v1/sessions/${id}/map_page`, { phys: `0x${PAGE(i).toString(16)}`, size: 4096, dir: 'to_device' })).status, 200);
    await big.close();
    const file = readdirSync(path.join(dir, 'sessions'))[0] ?? '';
    const kinds = decodeFrames(readFileSync(path.join(dir, 'sessions', file))).frames.map((f) => f.kind);
    t.equal(kinds.includes('S'), compact, compact ? 'the log was compacted into a snapshot' : 'the whole log is replayed');

    // Room for less than what the log holds: the restore admits it all anyway.
    const small = await buildApp({ logLevel: 'silent', dataDir: dir, journal, limits: { memoryBudget: SESSION + FIRST_PAGE + 2 * MAP1 } });
    t.teardown(() => small.close());
    const c2 = client(small);
    const summary = (await c2.get(`/v1/sessions/${id}`)).body;
    t.equal(summary.live_mappings, 8, 'all 8 acknowledged mappings are back');
    t.equal(summary.memory_budget_bytes, SESSION + FIRST_PAGE + 8 * MAP1, "the summary shows the session's share: session + handle page + 8 mappings");
    const metrics = (await c2.get('/metrics')).text;
    t.match(metrics, new RegExp(`dmaemu_memory_budget_bytes ${SESSION + FIRST_PAGE + 2 * MAP1}\\b`));
    t.match(metrics, new RegExp(`dmaemu_memory_accounted_bytes ${SESSION + FIRST_PAGE + 8 * MAP1}\\b`), 'the restored state is counted in full');
    const r = await c2.post(`/v1/sessions/${id}/map_page`, { phys: '0x90000000', size: 4096, dir: 'to_device' });
    t.equal(r.status, 507, 'over the budget after the restore: new work is refused');
    t.equal(r.body.code, 'DMAEMU_MEMORY_BUDGET');
    t.equal(r.body.error, 'Insufficient Storage');
    for (let h = 1; h <= 7; h++) t.equal((await c2.post(`/v1/sessions/${id}/unmap`, { handle: h })).status, 200);
    t.equal((await c2.post(`/v1/sessions/${id}/map_page`, { phys: '0x90000000', size: 4096, dir: 'to_device' })).status, 200, 'room again once freed');
  });
}

/** VmRSS of a process, in bytes (Linux /proc). */
function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

test('a real server with a 256 MiB heap and the derived budget refuses a leaking harness instead of dying; others still answer; RSS stays under budget + margin', async (t) => {
  // No DMAEMU_MEMORY_BUDGET: the default is 70 % of the 256 MiB heap's limit (~213 MB).
  const child = spawn(process.execPath, ['--max-old-space-size=256', '--import', 'tsx', path.join(root, 'src/service/server.ts')], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'warn', DMAEMU_DATA_DIR: 'off', DMAEMU_MEMORY_BUDGET: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const url = await listeningUrl(child, () => stderr);
  const post = async (p: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await fetch(`${url}${p}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const rssStart = rssOf(child.pid as number);
  const bystander = (await post('/v1/sessions', {})).body.id as string;
  t.equal((await post(`/v1/sessions/${bystander}/map_page`, { phys: '0x1000', size: 4096, dir: 'to_device' })).status, 200);
  const metric = async (name: string): Promise<number> => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(await (await fetch(`${url}/metrics`)).text())?.[1]);
  const budget = await metric('dmaemu_memory_budget_bytes');
  t.ok(budget > 150e6 && budget < 260e6, `derived budget ${budget} is ~70 % of a 256 MiB heap limit`);

  // Four leaking sessions map 4 KiB pages in batches of 1024 and never unmap, until refused.
  const leakers: string[] = [];
  for (let k = 0; k < 4; k++) leakers.push((await post('/v1/sessions', { device: { dma_mask: '0xffffffffffff' } })).body.id as string);
  let mapped = 0;
  let refusedAt = -1;
  const bad: number[] = [];
  const deadline = Date.now() + 60_000;
  for (let round = 0; refusedAt < 0 && Date.now() < deadline; round++) {
    const id = leakers[round % leakers.length] as string;
    const base = 0x100000000 + round * 1024 * 4096;
    const ops = Array.from({ length: 1024 }, (_, i) => ({ op: 'map_page', phys: `0x${(base + i * 4096).toString(16)}`, size: 4096, dir: 'bidirectional' }));
    const r = await post(`/v1/sessions/${id}/batch`, { ops });
    if (r.status !== 200) bad.push(r.status);
    const results = (r.body.results ?? []) as { code?: string; handle?: number | null }[];
    for (const x of results) {
      if (x.code === 'DMAEMU_MEMORY_BUDGET') {
        refusedAt = mapped;
        break;
      }
      if (typeof x.handle === 'number') mapped++;
    }
  }
  t.same(bad, [], 'every batch answered 200 (refusals are per op)');
  t.ok(refusedAt > 0, `refused after ${refusedAt} live mappings`);
  // Expected ceiling: (budget − fixed costs) ÷ FOOTPRINT.mapping, handle pages aside.
  t.ok(refusedAt < budget / MAP1, 'the refusal came at the per-mapping charge, not later');
  t.equal(child.exitCode, null, 'the server is alive');
  const rss = rssOf(child.pid as number);
  // Margin: the process before any session (~90 MB with tsx's compiler loaded) plus the 30 %
  // the budget leaves of the heap limit for GC, and the in-memory trace buffers.
  const margin = 160 * 1024 * 1024;
  t.ok(rss < budget + margin, `RSS ${(rss / 2 ** 20).toFixed(0)} MiB (${(rssStart / 2 ** 20).toFixed(0)} MiB at start) < budget ${(budget / 2 ** 20).toFixed(0)} MiB + margin ${margin / 2 ** 20} MiB`);
  // The bystander answers: reads and unmaps need no room.
  t.equal((await post(`/v1/sessions/${bystander}/unmap`, { handle: 1 })).status, 200, 'another session still answers');
  const health = await fetch(`${url}/healthz`);
  t.equal(health.status, 200);
  // Deleting one leaker gives room back: the bystander maps again.
  const del = await fetch(`${url}/v1/sessions/${leakers[0] as string}`, { method: 'DELETE' });
  t.equal(del.status, 200);
  t.equal((await post(`/v1/sessions/${bystander}/map_page`, { phys: '0x1000', size: 4096, dir: 'to_device' })).status, 200, 'room again after a delete');
  const code = await new Promise<number | null>((resolve) => {
    child.once('exit', (c) => resolve(c));
    child.kill('SIGTERM');
  });
  t.equal(code, 0, 'clean exit');
  t.notMatch(stderr, /heap out of memory/);
});
