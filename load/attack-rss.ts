// npm run load:attack-rss: peak RSS of the service under a mixed attack (issue 22), against what
// docs/memory-budget.md promises: the budget plus a 160 MiB margin. The server runs as a child
// with a V8 heap of ATTACK_HEAP_MB (default 512) and the default (derived) budget. Two phases,
// each client one request at a time:
//   1. fill, until the first DMAEMU_MEMORY_BUDGET refusal or FILL_SECONDS (default 150):
//      3 writers (cpu/write of 3 MiB bodies, 4 MiB of base64, to fresh addresses; a session at
//      its memory_limit is left behind and a new one created) and 2 leakers (/batch of 1024
//      map_page of 4 KiB, never unmapped, sessions never deleted);
//   2. attack, ATTACK_SECONDS (default 60): the same five go on (now mostly refused, their
//      bodies still decoded) and 2 tracers join: POST /v1/sessions with a trace of one 3 MiB
//      cpu_write and 32 cpu_read of 1 MiB, the sessions never deleted.
// Refusals (429, 507, 413) are counted, not errors. The peak is the kernel's high-water mark of
// the child's resident set (VmHWM in /proc/PID/status), so no spike between samples is missed.
// At the end a bystander session created first must still answer.
//
// Bounded: FILL_SECONDS + ATTACK_SECONDS, REQUEST_TIMEOUT_MS per request, then the child is
// killed. Talks only to 127.0.0.1. Last line, exactly:
// `attack-rss: heap_mb=<h> budget_mb=<b> margin_mb=160 peak_rss_mb=<p> over_mb=<p − b − 160> budget_full_s=<s|never> alive=<bool> bystander_ok=<bool>`

import { readFileSync } from 'node:fs';
import { startService } from './load-server-process.js';

const HEAP_MB = Number(process.env.ATTACK_HEAP_MB ?? 512);
const FILL_SECONDS = Number(process.env.FILL_SECONDS ?? 150);
const SECONDS = Number(process.env.ATTACK_SECONDS ?? 60);
const REQUEST_TIMEOUT_MS = 30_000;
/** docs/memory-budget.md: what RSS may exceed the budget by (baseline, uncharged buffers). */
const MARGIN_MB = 160;
const MB = 1024 * 1024;
const { url, child } = await startService([`--max-old-space-size=${HEAP_MB}`]);
const pid = child.pid ?? 0;
let lastHwm = 0;
/** The child's peak RSS so far (VmHWM), kept once it has exited. */
function peakRss(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    lastHwm = Math.max(lastHwm, Number(m?.[1] ?? 0) * 1024);
  } catch {
    // gone: the last reading stands
  }
  return lastHwm;
}

const t0 = Date.now();
/** Milliseconds from t0 to the first DMAEMU_MEMORY_BUDGET refusal; −1 before it. */
let fullAt = -1;
const counts = new Map<string, number>();
const count = (k: string): void => void counts.set(k, (counts.get(k) ?? 0) + 1);

async function post(p: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  try {
    const res = await fetch(`${url}${p}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    const parsed = (await res.json()) as Record<string, unknown>;
    count(`${p.split('/').pop() ?? p}:${res.status}`);
    return { status: res.status, body: parsed };
  } catch (err) {
    count(`error:${(err as Error).name}`);
    return { status: 0, body: {} };
  }
}

async function session(config: unknown = {}): Promise<string | null> {
  const r = await post('/v1/sessions', config);
  sawRefusal(r);
  return r.status === 201 ? (r.body.id as string) : null;
}

const bystander = await session();
if (!bystander) throw new Error('the bystander could not be created');
await post(`/v1/sessions/${bystander}/map_page`, { phys: '0x1000', size: 4096, dir: 'to_device' });
const budgetText = await (await fetch(`${url}/metrics`)).text();
const budget = Number(/^dmaemu_memory_budget_bytes (\S+)$/m.exec(budgetText)?.[1] ?? 0);

let attackEnd = t0 + (FILL_SECONDS + SECONDS) * 1000;
const alive = (): boolean => child.exitCode === null && child.signalCode === null;
const running = (): boolean => Date.now() < attackEnd && alive();
const attacking = new Promise<void>((resolve) => {
  const tick = setInterval(() => {
    const filled = fullAt >= 0 || Date.now() - t0 >= FILL_SECONDS * 1000;
    if (filled || !alive()) {
      clearInterval(tick);
      attackEnd = Date.now() + SECONDS * 1000;
      resolve();
    }
  }, 100);
});
/** Notes the first budget refusal: the fill phase is over. */
function sawRefusal(r: { status: number }): void {
  if (r.status === 507 && fullAt < 0) fullAt = Date.now() - t0;
}
const THREE_MIB = Buffer.alloc(3 * MB, 0xa5).toString('base64');

async function leaker(k: number): Promise<void> {
  let id = await session({ device: { dma_mask: '0xffffffffffff' } });
  for (let round = 0; running(); round++) {
    if (!id) {
      id = await session({ device: { dma_mask: '0xffffffffffff' } });
      if (!id) continue;
    }
    const base = 0x100000000 + (k * 1_000_000 + round) * 1024 * 4096;
    const ops = Array.from({ length: 1024 }, (_, i) => ({ op: 'map_page', phys: `0x${(base + i * 4096).toString(16)}`, size: 4096, dir: 'bidirectional' }));
    const r = await post(`/v1/sessions/${id}/batch`, { ops });
    if (((r.body.results ?? []) as { code?: string }[]).some((x) => x.code === 'DMAEMU_MEMORY_BUDGET')) sawRefusal({ status: 507 });
    if (r.status === 429) id = null; // DMAEMU_MAX_MAPPINGS: leave it, leak another
  }
}

async function writer(k: number): Promise<void> {
  let id = await session();
  for (let round = 0; running(); round++) {
    if (!id) {
      id = await session();
      if (!id) continue;
    }
    const r = await post(`/v1/sessions/${id}/cpu/write`, { phys: `0x${(0x100000000 + (k * 1_000_000 + round) * 4 * MB).toString(16)}`, data: THREE_MIB });
    sawRefusal(r);
    if (r.status === 429) id = null; // the session's memory_limit: leave it, leak another
  }
}

async function tracer(): Promise<void> {
  await attacking;
  const trace = { ops: [{ op: 'cpu_write', phys: 0, data: THREE_MIB }, ...Array.from({ length: 32 }, (_, i) => ({ op: 'cpu_read', phys: (i % 3) * MB, length: MB }))] };
  while (running()) sawRefusal(await post('/v1/sessions', { trace }));
}

const sampler = setInterval(peakRss, 100);
await Promise.all([leaker(0), leaker(1), writer(0), writer(1), writer(2), tracer(), tracer()]);
clearInterval(sampler);
const peak = peakRss();
const isAlive = alive();
let bystanderOk = false;
if (isAlive) {
  try {
    const r = await fetch(`${url}/v1/sessions/${bystander}/mappings`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    bystanderOk = r.status === 200 && ((await r.json()) as { mappings: unknown[] }).mappings.length === 1;
  } catch {
    bystanderOk = false;
  }
}
child.kill('SIGKILL');
console.log(`answers: ${[...counts].sort().map(([k, v]) => `${k}=${v}`).join(' ')}`);
const mb = (b: number): string => (b / MB).toFixed(0);
console.log(`attack-rss: heap_mb=${HEAP_MB} budget_mb=${mb(budget)} margin_mb=${MARGIN_MB} peak_rss_mb=${mb(peak)} over_mb=${mb(peak - budget - MARGIN_MB * MB)} budget_full_s=${fullAt < 0 ? 'never' : (fullAt / 1000).toFixed(0)} alive=${isAlive} bystander_ok=${bystanderOk}`);
process.exit(0);
