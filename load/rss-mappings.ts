// npm run load:rss: what live mappings really cost. One in-process session maps N 4 KiB pages
// (default 1 M, RSS_MAPPINGS overrides; RSS_SG=k maps k scattered pages per map_sg instead of
// one map_page) and never unmaps them; RSS, V8 heap and off-heap bytes
// are taken after a full GC before and after. This is the figure the memory budget's
// per-mapping charge is set from (src/core/memory-budget.ts), so rerun it when Mapping changes.
//
// Bounded by construction: N map_page calls, then it exits. Last line, exactly:
// `rss: mappings=<n> rss_mb=<x> heap_used_mb=<y> bytes_per_mapping=<z>`

import { SessionCreateBody } from '../schemas/session.js';
import { MapPageBody, MapSgBody } from '../schemas/dma.js';
import { DEFAULT_STORE_LIMITS, SessionStore } from '../src/service/session-store.js';

const N = Number(process.env.RSS_MAPPINGS ?? 1_000_000);
const SG = Number(process.env.RSS_SG ?? 0);
const MB = 1024 * 1024;

/** A full GC when the process runs with --expose-gc (npm run load:rss does), so RSS is live state. */
function settle(): NodeJS.MemoryUsage {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
  return process.memoryUsage();
}

const store = new SessionStore({ ...DEFAULT_STORE_LIMITS, maxMappings: Math.max(N, 1) });
// A 48-bit device: a million single-page mappings fit far below the mask.
const s = store.create(SessionCreateBody.parse({ device: { dma_mask: '0xffffffffffff' } }));
// Parse once, as the HTTP layer would per request; phys changes per call.
const body = MapPageBody.parse({ phys: 0x100000000, size: 4096, dir: 'bidirectional' });
const sgBody = MapSgBody.parse({ dir: 'bidirectional', sg: [{ phys: 0, length: 4096 }] });
const before = settle();
const t0 = process.hrtime.bigint();
for (let i = 0; i < N; i++) {
  // Entries 8 KiB apart: no two merge, each its own segment.
  const r = SG > 0 ? s.mapSg({ ...sgBody, sg: Array.from({ length: SG }, (_, k) => ({ phys: 0x100000000 + (i * SG + k) * 8192, length: 4096 })) }) : s.mapPage({ ...body, phys: 0x100000000 + i * 4096 });
  if (r.handle === null) throw new Error(`map ${i} failed: ${JSON.stringify(r.error)}`);
}
const ms = Number(process.hrtime.bigint() - t0) / 1e6;
const after = settle();
if (s.liveMappings !== N) throw new Error(`expected ${N} live mappings, found ${s.liveMappings}`);
const f = (b: number): string => (b / MB).toFixed(1);
console.log(`before: rss_mb=${f(before.rss)} heap_used_mb=${f(before.heapUsed)} external_mb=${f(before.external)}`);
console.log(`after:  rss_mb=${f(after.rss)} heap_used_mb=${f(after.heapUsed)} external_mb=${f(after.external)} (${ms.toFixed(0)} ms to map)`);
console.log(`budget: accounted_mb=${f(store.budget.used)} of ${f(store.budget.limit)} (${store.budget.source})`);
console.log(`rss: mappings=${N} sg_entries=${Math.max(SG, 1)} rss_mb=${f(after.rss)} heap_used_mb=${f(after.heapUsed)} bytes_per_mapping=${Math.round((after.rss - before.rss) / Math.max(N, 1))}`);
