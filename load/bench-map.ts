// npm run bench: in-process (no HTTP) map_sg of 8 scattered 4 KiB entries + its unmap, pairs per
// second, with 1 k, 100 k and 1 M other live mappings in the session. Bounded: each size runs a
// fixed time window after a warm-up, in its own child process, and the whole run stops by itself
// (~1 minute).
//
// Last line, exactly: `bench: pairs_per_s_100k=<x> growth_1m_vs_1k=<y>` (growth = ns/pair at
// 1 M ÷ ns/pair at 1 k).

import { SessionCreateBody } from '../schemas/session.js';
import { MapPageBody, MapSgBody } from '../schemas/dma.js';
import { SessionStore, DEFAULT_STORE_LIMITS } from '../src/service/session-store.js';
import type { Session } from '../src/service/session.js';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const SMOKE = process.env.BENCH_SMOKE === '1';
const SIZES = process.env.BENCH_SIZES ? process.env.BENCH_SIZES.split(',').map(Number) : SMOKE ? [100, 1000] : [1_000, 100_000, 1_000_000];
const WINDOW_MS = SMOKE ? 100 : 2000;
const WARMUP_MS = SMOKE ? 50 : 500;

/** A 48-bit device so a million single-page mappings fit comfortably below the mask. */
const SESSION = { device: { dma_mask: '0xffffffffffff' } };
const SG = MapSgBody.parse({
  dir: 'to_device',
  sg: Array.from({ length: 8 }, (_, i) => ({ phys: `0x${(0x90000000 + i * 0x100000).toString(16)}`, length: 4096 })),
});

function fill(s: Session, n: number): void {
  for (let i = 0; i < n; i++) s.mapPage(MapPageBody.parse({ phys: 0x100000000 + i * 4096, size: 4096, dir: 'bidirectional' }));
}

function measure(s: Session, ms: number): { pairs: number; ns: number } {
  let pairs = 0;
  const t0 = process.hrtime.bigint();
  const deadline = t0 + BigInt(ms) * 1_000_000n;
  let now = t0;
  while (now < deadline) {
    for (let k = 0; k < 1000; k++) {
      const r = s.mapSg(SG);
      s.unmap({ handle: r.handle as number });
    }
    pairs += 1000;
    now = process.hrtime.bigint();
  }
  return { pairs, ns: Number(now - t0) };
}

/** One size, in this process: fill, warm up, measure. */
function runSize(size: number): { size: number; pairsPerS: number; nsPerPair: number } {
  const store = new SessionStore({ ...DEFAULT_STORE_LIMITS, maxMappings: 2_000_000 });
  const s = store.create(SessionCreateBody.parse(SESSION));
  fill(s, size);
  measure(s, WARMUP_MS);
  const { pairs, ns } = measure(s, WINDOW_MS);
  if (s.liveMappings !== size) throw new Error(`expected ${size} live mappings, found ${s.liveMappings}`);
  return { size, pairsPerS: Math.round((pairs * 1e9) / ns), nsPerPair: ns / pairs };
}

/**
 * Each size runs in a fresh process with this one's flags, so one size's million-object heap
 * (and V8's decisions about it) cannot tax the next size's measurement.
 */
function runInChild(size: number): { size: number; pairsPerS: number; nsPerPair: number } {
  const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--size', String(size)], {
    env: process.env,
    encoding: 'utf8',
    timeout: 120_000,
  });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !line.startsWith('{')) throw new Error(`bench child for ${size} failed (${r.status}): ${r.stderr}${r.stdout}`);
  return JSON.parse(line) as { size: number; pairsPerS: number; nsPerPair: number };
}

const sizeArg = process.argv.indexOf('--size');
if (sizeArg >= 0) {
  console.log(JSON.stringify(runSize(Number(process.argv[sizeArg + 1]))));
} else {
  const rows = SIZES.map(runInChild);
  console.log(`live mappings  pairs/s      ns/pair   (node ${process.execArgv.join(' ') || '(no flags)'})`);
  for (const r of rows) console.log(`${String(r.size).padStart(13)}  ${String(r.pairsPerS).padStart(10)}  ${r.nsPerPair.toFixed(0).padStart(8)}`);
  const first = rows[0] as (typeof rows)[number];
  const last = rows[rows.length - 1] as (typeof rows)[number];
  const at = (n: number) => rows.find((r) => r.size === n) ?? last;
  console.log(`bench: pairs_per_s_100k=${at(100_000).pairsPerS} growth_1m_vs_1k=${(last.nsPerPair / first.nsPerPair).toFixed(2)}`);
}
