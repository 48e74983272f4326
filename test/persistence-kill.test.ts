// kill -9 in the middle of a load (issue 12, item 3 (a)): the real server (npm start's entry
// point, a child process on 127.0.0.1:0, its data dir in a tmp dir) serves four sessions, each
// driven by its own client making map_page / unmap / cpu/write calls one after the other, and
// is killed with SIGKILL while they run. After a restart, every acknowledged call must be
// reflected and nothing else: each client replays the calls it got answers for into an
// in-process Session (the model) — the restored session must match it, or match it plus the one
// call that was in flight when the server died (written but never answered: allowed either
// way, the client never learned its fate). "Match" is the summary's counters, IOVA and memory
// figures, every /mappings row, a CPU read of the whole region, and the IOVA of the next map.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { CpuReadBody, CpuWriteBody, MapPageBody, SessionCreateBody, UnmapBody } from '../schemas/index.js';
import type { Session } from '../src/service/session.js';
import { SessionStore } from '../src/service/session-store.js';
import { rng } from './helpers/workload.js';
import { listeningUrl } from './helpers/server-process.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dataDir = mkdtempSync(path.join(tmpdir(), 'dmaemu-kill-'));
t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));

type Json = Record<string, unknown>;

function startServer(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/service/server.ts')], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'warn', DMAEMU_DATA_DIR: dataDir },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return listeningUrl(child).then((url) => ({ url, child }));
}

async function post(url: string, body: unknown): Promise<{ status: number; body: Json }> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, body: (await r.json()) as Json };
}

interface Call {
  path: 'map_page' | 'unmap' | 'cpu/write';
  body: Json;
}
interface Client {
  id: string;
  acked: { call: Call; status: number; answer: Json }[];
  inFlight: Call | null;
}

const CONFIG = { layout: 'linux', iommu: { strict: false } };
const REGION = 0x80000000;
const hex = (n: number): string => `0x${n.toString(16)}`;

/** One client: calls one after the other until the server goes away. */
async function drive(url: string, c: Client, seed: number): Promise<void> {
  const r = rng(seed);
  const live: number[] = [];
  for (;;) {
    let call: Call;
    const k = r();
    if (k < 0.45 || live.length === 0) call = { path: 'map_page', body: { phys: hex(REGION + Math.floor(r() * 32) * 4096), size: 512 + Math.floor(r() * 16000), dir: 'bidirectional' } };
    else if (k < 0.8) call = { path: 'unmap', body: { handle: live.splice(Math.floor(r() * live.length), 1)[0] } };
    else call = { path: 'cpu/write', body: { phys: hex(REGION + Math.floor(r() * 120000)), data: Buffer.from([Math.floor(r() * 256), 1, 2, 3]).toString('base64') } };
    c.inFlight = call;
    let res: { status: number; body: Json };
    try {
      res = await post(`${url}/v1/sessions/${c.id}/${call.path}`, call.body);
    } catch {
      return; // the server died: this call's fate is unknown
    }
    c.inFlight = null;
    c.acked.push({ call, status: res.status, answer: res.body });
    if (call.path === 'map_page' && typeof res.body.handle === 'number') live.push(res.body.handle);
  }
}

/** The model: a fresh in-process Session fed the same calls through the core. */
function model(calls: readonly Call[]): Session {
  const s = new SessionStore().create(SessionCreateBody.parse(CONFIG));
  for (const c of calls) {
    try {
      if (c.path === 'map_page') s.mapPage(MapPageBody.parse(c.body));
      else if (c.path === 'unmap') s.unmap(UnmapBody.parse(c.body));
      else s.cpuWrite(CpuWriteBody.parse(c.body));
    } catch {
      // an HTTP error the server answered too (checked below)
    }
  }
  return s;
}

const json = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

t.test('after kill -9, every acknowledged call is reflected and nothing else', async (t) => {
  const first = await startServer();
  const clients: Client[] = [];
  for (let i = 0; i < 4; i++) clients.push({ id: (await post(`${first.url}/v1/sessions`, CONFIG)).body.id as string, acked: [], inFlight: null });
  const running = clients.map((c, i) => drive(first.url, c, 100 + i));
  // Kill once every client has had answers for a while (bounded: at most ~10 s of load).
  const t0 = Date.now();
  while (clients.some((c) => c.acked.length < 150) && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
  const exited = new Promise((r) => first.child.once('exit', r));
  first.child.kill('SIGKILL');
  await exited;
  await Promise.all(running);
  t.ok(clients.every((c) => c.acked.length >= 50), `load ran: ${clients.map((c) => c.acked.length).join(', ')} acknowledged calls`);

  const second = await startServer();
  t.teardown(() => void second.child.kill('SIGTERM'));
  for (const c of clients) {
    const url = `${second.url}/v1/sessions/${c.id}`;
    const got = (await fetch(url)).status === 200 ? ((await (await fetch(url)).json()) as Json) : null;
    t.ok(got, `session ${c.id} is back`);
    if (!got) continue;
    const acked = c.acked.map((a) => a.call);
    // What the restored session shows (the CPU read last: it may pull lines into the cache).
    const read = { phys: hex(REGION), length: 140000 };
    const { id: _id, ...summary } = got;
    const rows = ((await (await fetch(`${url}/mappings`)).json()) as Json).mappings;
    const bytes = (await post(`${url}/cpu/read`, read)).body;
    const view = (s: Session): unknown => {
      const { id: _, ...sum } = json(s.summary()) as Json;
      return { summary: sum, rows: json(s.mappingsTable().mappings), bytes: json(s.cpuRead(CpuReadBody.parse(read))) };
    };
    const have = { summary, rows, bytes };
    // The acknowledged prefix, or that prefix plus the call in flight — nothing else.
    const candidates = [{ what: 'the acknowledged calls', calls: acked }, ...(c.inFlight ? [{ what: 'the acknowledged calls plus the one in flight', calls: [...acked, c.inFlight] }] : [])];
    const models = candidates.map((k) => ({ ...k, s: model(k.calls) }));
    const views = models.map((k) => view(k.s));
    const hit = views.findIndex((v) => isDeepStrictEqual(v, have));
    const m = models[Math.max(0, hit)] as (typeof models)[number];
    t.same(have, views[Math.max(0, hit)], `summary, every mapping row and the CPU's bytes match ${m.what}`);
    // The model's own answers equal what the server acknowledged: the model is a faithful oracle.
    const replayed = new SessionStore().create(SessionCreateBody.parse(CONFIG));
    let same = 0;
    for (const a of c.acked) {
      let out: unknown;
      try {
        out = a.call.path === 'map_page' ? replayed.mapPage(MapPageBody.parse(a.call.body)) : a.call.path === 'unmap' ? replayed.unmap(UnmapBody.parse(a.call.body)) : replayed.cpuWrite(CpuWriteBody.parse(a.call.body));
      } catch (err) {
        out = (err as { toBody(): unknown }).toBody();
      }
      if (JSON.stringify(json(out)) === JSON.stringify(a.answer)) same++;
    }
    t.equal(same, c.acked.length, 'every acknowledged answer is what the model answers');
    const next = { phys: hex(0x90000000), size: 8192, dir: 'to_device' };
    t.same((await post(`${url}/map_page`, next)).body, json(m.s.mapPage(MapPageBody.parse(next))), 'the next map gets the IOVA the model predicts');
  }
});
