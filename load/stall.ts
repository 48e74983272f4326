// npm run load:stall: how long one tenant's heavy request holds up the others (issue 22: no
// stall beyond 50 ms). The service runs in its own process on 127.0.0.1; a probe in a worker
// thread of this process asks GET /healthz every PROBE_GAP_MS on its own keep-alive connection
// and records each answer's latency, while the main thread sends the heaviest request of each
// kind, one kind after another. A kind's stall is the latency of the probes that overlapped its
// requests: worst and p99. The baseline is the probe alone, measured first in the same run.
//
// Kinds: a trace import (POST /v1/sessions with a trace of flush ops), a compare of 4096-entry
// scatterlists, a JSON /batch and a binary /batch of 1024 map_sg ops, one 4096-entry map_sg
// with ?pages=true&explain=true, one map_page with ?pages=true, and a /mappings listing at the largest limit over a session
// holding many mappings. A kind starts at the size below; when the service refuses it as too
// big (400, 413, 429, 507) the size is halved until it is accepted, so each kind measures the
// heaviest request of that shape the service takes. Restore-at-start is not among them: the service listens only once its
// logs are replayed, so there is no other tenant to stall yet (npm run load:restore times it).
//
// Bounded: each request has a REQUEST_TIMEOUT_MS deadline (a timeout is reported, not waited
// out), sizes are fixed, and the server is stopped at the end. STALL_SMOKE=1 shrinks every size
// (test/load-smoke.test.ts). Each kind prints
// `stall: kind=<k> size=<accepted size> status=<s> requests=<n> ms=<request time> worst_ms=<w> p99_ms=<p>` and the
// last line is `stall: worst_ms=<w> p99_ms=<p> baseline_p99_ms=<b> ratio_p99=<p/b>` over every kind.

import { Worker } from 'node:worker_threads';
import { encodeBatchRequest } from '../schemas/batch-binary.js';
import { startServer, stop } from './load-server-process.js';

const SMOKE = process.env.STALL_SMOKE === '1';
const PROBE_GAP_MS = 5;
const REQUEST_TIMEOUT_MS = SMOKE ? 20_000 : 120_000;
const BASELINE_MS = SMOKE ? 200 : 2000;
const SIZES = SMOKE
  ? { traceFlushOps: 500, compareOps: 2, compareEntries: 16, batchEntries: 4, bigSgEntries: 64, pageRows: 256, listedMappings: 2048, repeats: 1 }
  : { traceFlushOps: 500_000, compareOps: 16, compareEntries: 4096, batchEntries: 256, bigSgEntries: 4096, pageRows: 262_144, listedMappings: 100_352, repeats: 3 };

const { url, child } = await startServer({ LOG_LEVEL: 'warn', DMAEMU_DATA_DIR: 'off' });
process.on('exit', () => {
  if (child.exitCode === null) child.kill('SIGKILL');
});

// The probe: its own thread, so this thread building and parsing big bodies does not delay it.
const PROBE = `
const { parentPort, workerData } = require('node:worker_threads');
const samples = [];
let running = true;
parentPort.on('message', () => { running = false; });
(async () => {
  while (running) {
    const t0 = performance.timeOrigin + performance.now();
    try { await (await fetch(workerData.url + '/healthz', { signal: AbortSignal.timeout(workerData.timeout) })).text(); }
    catch { /* a timed-out probe still counts with its full wait */ }
    const t1 = performance.timeOrigin + performance.now();
    samples.push([t0, t1 - t0]);
    if (samples.length === 1) parentPort.postMessage('started');
    await new Promise((r) => setTimeout(r, workerData.gap));
  }
  parentPort.postMessage(samples);
})();
`;
const probe = new Worker(PROBE, { eval: true, workerData: { url, gap: PROBE_GAP_MS, timeout: REQUEST_TIMEOUT_MS } });
const probeStarted = new Promise<void>((resolve) => probe.once('message', () => resolve()));
await probeStarted;
const probeDone = new Promise<[number, number][]>((resolve) => probe.once('message', resolve));
const now = (): number => performance.timeOrigin + performance.now();

interface Window {
  kind: string;
  /** Each measured request's [start, end]: preparing it (sessions, bodies) is not measured. */
  spans: [number, number][];
  statuses: string[];
  size: number;
}
const windows: Window[] = [];

const JSON_HEADERS = { 'content-type': 'application/json' };

async function send(method: string, path: string, body?: string | Buffer, headers: Record<string, string> = JSON_HEADERS): Promise<{ status: number; text: string }> {
  try {
    const res = await fetch(`${url}${path}`, { method, headers, body, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    return { status: res.status, text: await res.text() };
  } catch (err) {
    return { status: 0, text: (err as Error).name === 'TimeoutError' ? 'timeout' : String(err) };
  }
}

/** Statuses that refuse a request as too big: the size is halved and the request tried again. */
const REFUSED = new Set([400, 413, 429, 507]);
type Fire = () => Promise<{ status: number; text: string }>;

/**
 * Measures the heaviest request of a kind the service accepts: `prepare(size)` builds it
 * (unmeasured) and returns the call; a refusal as too big halves the size (at most 10 times),
 * then SIZES.repeats requests of the accepted size are measured.
 */
async function measure(kind: string, size: number, prepare: (size: number) => Promise<Fire>): Promise<void> {
  const w: Window = { kind, spans: [], statuses: [], size };
  while (w.statuses.length < SIZES.repeats) {
    await new Promise((r) => setTimeout(r, 100)); // the probe settles between requests
    const fire = await prepare(w.size);
    const start = now();
    const r = await fire();
    const end = now();
    if (REFUSED.has(r.status) && w.statuses.length === 0 && w.size > 1 && w.spans.length < 10) {
      console.log(`stall: kind=${kind} size=${w.size} refused ${r.status}: ${r.text.slice(0, 160)}; halving`);
      w.size = Math.floor(w.size / 2);
      continue;
    }
    w.spans.push([start, end]);
    w.statuses.push(r.status === 0 ? 'timeout' : String(r.status));
  }
  windows.push(w);
}

async function newSession(config: unknown = {}): Promise<string> {
  const r = await send('POST', '/v1/sessions', JSON.stringify(config));
  if (r.status !== 201) throw new Error(`session create answered ${r.status}: ${r.text.slice(0, 300)}`);
  return (JSON.parse(r.text) as { id: string }).id;
}

const hex = (n: number): string => `0x${n.toString(16)}`;
/** n scattered 4 KiB entries (8 KiB apart, so none merge into one run of pages). */
const entries = (n: number, base = 0x80000000): { phys: string; length: number }[] => Array.from({ length: n }, (_, i) => ({ phys: hex(base + i * 0x2000), length: 4096 }));

// The baseline: the probe alone.
const baselineStart = now();
await new Promise((r) => setTimeout(r, BASELINE_MS));
const baseline: Window = { kind: 'baseline', spans: [[baselineStart, now()]], statuses: [], size: 0 };

const wide = { device: { dma_mask: '0xffffffffffff', max_segment_size: 4294967295 } };

await measure('trace_import', SIZES.traceFlushOps, async (n) => {
  const body = JSON.stringify({ trace: { session: {}, ops: Array.from({ length: n }, () => ({ op: 'flush' })) } });
  return () => send('POST', '/v1/sessions', body);
});

await measure('compare', SIZES.compareOps, async (n) => {
  const body = JSON.stringify({ session: wide, ops: Array.from({ length: n }, (_, k) => ({ op: 'map_sg', dir: 'to_device', sg: entries(SIZES.compareEntries, 0x80000000 + k * 0x4000000) })) });
  return () => send('POST', '/v1/compare', body);
});

/** 1024 map_sg ops of n entries each, in a fresh session (size = entries per op). */
const batchOps = (n: number): { op: 'map_sg'; dir: 'to_device'; sg: { phys: string; length: number }[] }[] =>
  Array.from({ length: 1024 }, (_, i) => ({ op: 'map_sg', dir: 'to_device', sg: entries(n, 0x100000000 + i * n * 0x2000) }));
await measure('batch_json', SIZES.batchEntries, async (n) => {
  const id = await newSession(wide);
  const body = JSON.stringify({ ops: batchOps(n).map((o) => ({ ...o, sg: o.sg.map((e) => [e.phys, e.length]) })) });
  return () => send('POST', `/v1/sessions/${id}/batch`, body);
});
await measure('batch_binary', SIZES.batchEntries, async (n) => {
  const id = await newSession(wide);
  const body = encodeBatchRequest(batchOps(n));
  return () => send('POST', `/v1/sessions/${id}/batch`, body, { 'content-type': 'application/vnd.dmaemu.batch' });
});

await measure('map_sg_pages', SIZES.bigSgEntries, async (n) => {
  const id = await newSession(wide);
  const body = JSON.stringify({ dir: 'to_device', sg: entries(n, 0x100000000) });
  return () => send('POST', `/v1/sessions/${id}/map_sg?pages=true&explain=true`, body);
});

// One map_page with ?pages=true: size = page rows (4 KiB pages mapped).
await measure('map_page_pages', SIZES.pageRows, async (n) => {
  const id = await newSession(wide);
  const body = JSON.stringify({ phys: hex(0x100000000), size: n * 4096, dir: 'to_device' });
  return () => send('POST', `/v1/sessions/${id}/map_page?pages=true`, body);
});

// A session holding listedMappings one-page mappings, filled by /batch before the window; the
// size is the page's limit.
const listId = await newSession(wide);
for (let done = 0; done < SIZES.listedMappings; done += 1024) {
  const ops = Array.from({ length: Math.min(1024, SIZES.listedMappings - done) }, (_, i) => ({ op: 'map_page', phys: hex(0x80000000 + ((done + i) % 65536) * 4096), size: 4096, dir: 'to_device' }));
  const r = await send('POST', `/v1/sessions/${listId}/batch`, JSON.stringify({ ops }));
  if (r.status !== 200) throw new Error(`filling the listed session answered ${r.status}: ${r.text.slice(0, 300)}`);
}
await measure('mappings_list', 100_000, async (n) => () => send('GET', `/v1/sessions/${listId}/mappings?limit=${n}`));

probe.postMessage('stop');
const samples = await probeDone;
await probe.terminate();
await stop(child);

/** Latencies of the probes that overlapped one of the window's requests. */
const during = (w: Window): number[] => samples.filter(([t0, lat]) => w.spans.some(([a, b]) => t0 <= b && t0 + lat >= a)).map(([, lat]) => lat);
function stats(lat: number[]): { worst: number; p99: number } {
  const s = [...lat].sort((a, b) => a - b);
  return { worst: s[s.length - 1] ?? 0, p99: s[Math.min(s.length - 1, Math.floor(s.length * 0.99))] ?? 0 };
}
const f = (x: number): string => x.toFixed(1);
const all: number[] = [];
for (const w of windows) {
  const lat = during(w);
  all.push(...lat);
  const { worst, p99 } = stats(lat);
  const ms = w.spans.reduce((sum, [a, b]) => sum + (b - a), 0);
  console.log(`stall: kind=${w.kind} size=${w.size} status=${w.statuses.join(',')} requests=${w.statuses.length} ms=${Math.round(ms)} worst_ms=${f(worst)} p99_ms=${f(p99)}`);
}
const base = stats(during(baseline));
const overall = stats(all);
console.log(`stall: worst_ms=${f(overall.worst)} p99_ms=${f(overall.p99)} baseline_p99_ms=${f(base.p99)} ratio_p99=${f(overall.p99 / Math.max(base.p99, 0.1))}`);
process.exit(0);
