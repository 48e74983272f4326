// npm run load:persist: what persistence costs over HTTP. Two services (load-server.ts, each in
// its own process, one with DMAEMU_DATA_DIR in a fresh tmp dir, one memory-only) take the same
// map_sg(8)+unmap pairs from autocannon in this process, as interleaved slices (off on off on …)
// whose totals are summed, so drift of a shared machine hits both alike. All traffic on
// 127.0.0.1; every phase bounded in time; both services stopped and the tmp dir removed at the end.
// Last line, exactly:
// persist: pairs_per_s_off=<a> pairs_per_s_on=<b> ratio=<b/a>

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { autocannon, createSession, pairRequests, type AcResult } from './load-kit.js';
import { startServer, stop } from './load-server-process.js';


const SMOKE = process.env.LOAD_SMOKE === '1';
const DURATION_S = Number(process.env.LOAD_DURATION_S ?? 10);
const CONNECTIONS = Number(process.env.LOAD_CONNECTIONS ?? 16);
const WARMUP_S = Number(process.env.LOAD_WARMUP_S ?? 3);
const SLICES = SMOKE ? 1 : 4;



async function slice(title: string, url: string, id: string, seconds: number | null): Promise<AcResult> {
  const bounds = seconds === null ? { amount: 200, connections: 4 } : { duration: seconds, connections: CONNECTIONS };
  const r = await autocannon({ url, requests: pairRequests(`/v1/sessions/${id}`), pipelining: 1, ...bounds });
  const bad = r.non2xx + r.errors + r.timeouts;
  console.log(`${title.padEnd(36)} ${String(Math.round(r.requests.total / r.duration)).padStart(8)} req/s  (${r.requests.total} requests, ${bad} failed)`);
  if (bad > 0) throw new Error(`${title}: ${bad} requests failed`);
  return r;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'dmaemu-load-persist-'));
  const off = await startServer({ DMAEMU_DATA_DIR: 'off' });
  const on = await startServer({ DMAEMU_DATA_DIR: dir });
  try {
    const ids = { off: await createSession(off.url), on: await createSession(on.url) };
    if (!SMOKE) {
      await slice('warm-up, persistence off', off.url, ids.off, WARMUP_S);
      await slice('warm-up, persistence on', on.url, ids.on, WARMUP_S);
    }
    const sum = { off: { n: 0, s: 0 }, on: { n: 0, s: 0 } };
    for (let k = 0; k < SLICES; k++) {
      for (const which of ['off', 'on'] as const) {
        const svc = which === 'off' ? off : on;
        const r = await slice(`pairs, persistence ${which}, slice ${k + 1}/${SLICES}`, svc.url, ids[which], SMOKE ? null : DURATION_S / SLICES);
        sum[which].n += r.requests.total;
        sum[which].s += r.duration;
      }
    }
    const pairsOff = sum.off.n / sum.off.s / 2;
    const pairsOn = sum.on.n / sum.on.s / 2;
    console.log(`connections=${SMOKE ? 4 : CONNECTIONS} pipelining=1, ${SMOKE ? '200 requests' : `${DURATION_S}s`} per service in ${SLICES} interleaved slices; on = fdatasync group commit under ${dir}`);
    console.log(`persist: pairs_per_s_off=${pairsOff.toFixed(0)} pairs_per_s_on=${pairsOn.toFixed(0)} ratio=${(pairsOn / pairsOff).toFixed(3)}`);
  } finally {
    await Promise.all([stop(off.child), stop(on.child)]);
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
