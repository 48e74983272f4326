// npm run bench: in-process (no HTTP) map_sg of 8 scattered 4 KiB entries + its unmap, pairs per
// second, with 1 k, 100 k and 1 M other live mappings in the session. Bounded: each size runs a
// fixed time window after a warm-up, and the whole run stops by itself (~1 minute).
//
// Last line, exactly: `bench: pairs_per_s_100k=<x> growth_1m_vs_1k=<y>` (growth = ns/pair at
// 1 M ÷ ns/pair at 1 k).

import { SessionCreateBody } from '../schemas/session.js';
import { MapPageBody, MapSgBody } from '../schemas/dma.js';
import { SessionStore, DEFAULT_STORE_LIMITS } from '../src/session-store.js';
import type { Session } from '../src/session.js';

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

export function runBench(): { size: number; pairsPerS: number; nsPerPair: number }[] {
  const rows = [];
  for (const size of SIZES) {
    const store = new SessionStore({ ...DEFAULT_STORE_LIMITS, maxMappings: 2_000_000 });
    const s = store.create(SessionCreateBody.parse(SESSION));
    fill(s, size);
    measure(s, WARMUP_MS);
    const { pairs, ns } = measure(s, WINDOW_MS);
    if (s.liveMappings !== size) throw new Error(`expected ${size} live mappings, found ${s.liveMappings}`);
    rows.push({ size, pairsPerS: Math.round((pairs * 1e9) / ns), nsPerPair: ns / pairs });
    store.clear();
  }
  return rows;
}

const rows = runBench();
console.log('live mappings  pairs/s      ns/pair');
for (const r of rows) console.log(`${String(r.size).padStart(13)}  ${String(r.pairsPerS).padStart(10)}  ${r.nsPerPair.toFixed(0).padStart(8)}`);
const at = (n: number) => rows.find((r) => r.size === n) ?? (rows[rows.length - 1] as (typeof rows)[number]);
const first = rows[0] as (typeof rows)[number];
const last = rows[rows.length - 1] as (typeof rows)[number];
console.log(`bench: pairs_per_s_100k=${at(100_000).pairsPerS} growth_1m_vs_1k=${(last.nsPerPair / first.nsPerPair).toFixed(2)}`);
