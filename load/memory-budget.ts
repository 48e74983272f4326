// npm run load:budget: issue 12's leaking harnesses against a real server. The built server runs
// as a child with a V8 heap of BUDGET_HEAP_MB (default 1024) and the derived memory budget (or
// DMAEMU_MEMORY_BUDGET when set); seven sessions map 4 KiB pages through /batch and never unmap
// until the service refuses with DMAEMU_MEMORY_BUDGET. Then a bystander session must still
// answer, the server must still be alive, and its RSS (/proc/PID/status VmRSS) is reported
// against the budget.
//
// Bounded: at most BUDGET_SECONDS (default 180) of mapping, then the child is stopped. Talks
// only to 127.0.0.1. Last line, exactly:
// `budget: budget_mb=<b> refused_at_mappings=<n> rss_mb=<r> others_ok=<true|false>`

import { readFileSync } from 'node:fs';
import { startService } from './load-server-process.js';

const HEAP_MB = Number(process.env.BUDGET_HEAP_MB ?? 1024);
const SECONDS = Number(process.env.BUDGET_SECONDS ?? 180);
const LEAKERS = 7;
const BATCH = 1024;
const MB = 1024 * 1024;

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

const { url, child } = await startService([`--max-old-space-size=${HEAP_MB}`]);
const stop = (): void => {
  if (child.exitCode === null) child.kill('SIGKILL');
};
const pid = child.pid ?? 0;

async function post(p: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${url}${p}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
}

const rssStart = rssOf(pid);
const bystander = (await post('/v1/sessions', {})).body.id as string;
await post(`/v1/sessions/${bystander}/map_page`, { phys: '0x1000', size: 4096, dir: 'to_device' });
const budget = await metric('dmaemu_memory_budget_bytes');
const leakers: string[] = [];
for (let k = 0; k < LEAKERS; k++) leakers.push((await post('/v1/sessions', { device: { dma_mask: '0xffffffffffff' } })).body.id as string);

let mapped = 0;
let refusedAt = -1;
let peak = rssStart;
const t0 = Date.now();
for (let round = 0; refusedAt < 0 && Date.now() - t0 < SECONDS * 1000; round++) {
  const id = leakers[round % LEAKERS] as string;
  const base = 0x100000000 + round * BATCH * 4096;
  const ops = Array.from({ length: BATCH }, (_, i) => ({ op: 'map_page', phys: `0x${(base + i * 4096).toString(16)}`, size: 4096, dir: 'bidirectional' }));
  const r = await post(`/v1/sessions/${id}/batch`, { ops });
  if (r.status !== 200) throw new Error(`batch ${round} answered ${r.status}: ${JSON.stringify(r.body)}`);
  for (const x of (r.body.results ?? []) as { code?: string; handle?: number | null }[]) {
    if (x.code === 'DMAEMU_MEMORY_BUDGET') {
      refusedAt = mapped;
      break;
    }
    if (typeof x.handle === 'number') mapped++;
  }
  if (round % 64 === 0) peak = Math.max(peak, rssOf(pid));
}
const rss = rssOf(pid);
peak = Math.max(peak, rss);
const accounted = await metric('dmaemu_memory_accounted_bytes');
const alive = child.exitCode === null;
const unmap = await post(`/v1/sessions/${bystander}/unmap`, { handle: 1 });
const health = await fetch(`${url}/healthz`);
const othersOk = alive && unmap.status === 200 && health.status === 200;
console.log(
  `heap_mb=${HEAP_MB} rss_start_mb=${(rssStart / MB).toFixed(0)} peak_rss_mb=${(peak / MB).toFixed(0)} accounted_mb=${(accounted / MB).toFixed(0)} ` +
    `mapped=${mapped} seconds=${((Date.now() - t0) / 1000).toFixed(0)}${refusedAt < 0 ? ' (time ran out before a refusal)' : ''}`,
);
stop();
console.log(`budget: budget_mb=${(budget / MB).toFixed(0)} refused_at_mappings=${refusedAt} rss_mb=${(rss / MB).toFixed(0)} others_ok=${othersOk}`);
process.exit(othersOk && refusedAt > 0 ? 0 : 1);
