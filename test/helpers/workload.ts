// A seeded mixed workload over HTTP for the persistence tests: every kind of session-scoped
// call (streaming and coherent maps, unmaps — some wrong, some of unknown handles —, syncs,
// flushes, batches with refs, CPU and device accesses to mapped and unmapped addresses), so
// that a restored session has allocator, cache, RAM, findings and faults state to get right.

import type { Client, Obj } from './http.js';

/** mulberry32: a tiny seeded PRNG, so a failing run can be repeated. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const hex = (n: number): string => `0x${n.toString(16)}`;

export async function runWorkload(c: Client, url: string, seed: number, steps: number): Promise<void> {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const page = (): number => 0x80000000 + Math.floor(r() * 64) * 4096;
  const live: { handle: number; kind: 'stream' | 'coherent'; dma: string; size: number }[] = [];
  const data = (n: number): string => Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256))).toString('base64');
  const dirs = ['to_device', 'from_device', 'bidirectional'] as const;
  for (let i = 0; i < steps; i++) {
    const k = r();
    if (k < 0.18) {
      const sg = Array.from({ length: 1 + Math.floor(r() * 4) }, () => ({ phys: hex(page() + Math.floor(r() * 8) * 64), length: 64 + Math.floor(r() * 8192) }));
      const a = (await c.post(`${url}/map_sg`, { dir: pick(dirs), sg })).body;
      const segs = a.segments as Obj[];
      if (typeof a.handle === 'number' && segs[0]) live.push({ handle: a.handle, kind: 'stream', dma: segs[0].dma_address as string, size: segs[0].dma_length as number });
    } else if (k < 0.3) {
      const size = 64 + Math.floor(r() * 12000);
      const a = (await c.post(`${url}/map_page`, { phys: hex(page()), size, dir: pick(dirs) })).body;
      if (typeof a.handle === 'number') live.push({ handle: a.handle, kind: 'stream', dma: a.dma_address as string, size });
    } else if (k < 0.36) {
      const size = 4096 * (1 + Math.floor(r() * 3));
      const a = (await c.post(`${url}/alloc_coherent`, { size })).body;
      if (typeof a.handle === 'number') live.push({ handle: a.handle, kind: 'coherent', dma: a.dma_handle as string, size });
    } else if (k < 0.52 && live.length > 0) {
      const at = Math.floor(r() * live.length);
      const m = live[at] as (typeof live)[number];
      if (m.kind === 'coherent') await c.post(`${url}/free_coherent`, { handle: m.handle });
      else await c.post(`${url}/unmap`, r() < 0.2 ? { handle: m.handle, size: m.size + 1 } : { handle: m.handle });
      live.splice(at, 1);
    } else if (k < 0.55) {
      await c.post(`${url}/unmap`, { handle: 100000 + i }); // 404 after a dma-debug finding: an effect
    } else if (k < 0.63 && live.length > 0) {
      const m = pick(live);
      await c.post(`${url}/sync`, { handle: m.handle, for: pick(['cpu', 'device'] as const) });
    } else if (k < 0.72) {
      await c.post(`${url}/cpu/write`, { phys: hex(page() + Math.floor(r() * 4000)), data: data(1 + Math.floor(r() * 200)) });
    } else if (k < 0.78) {
      await c.post(`${url}/cpu/read`, { phys: hex(page()), length: 1 + Math.floor(r() * 5000) });
    } else if (k < 0.84) {
      const m = live.length > 0 && r() < 0.8 ? pick(live) : null;
      const addr = m ? m.dma : '0x12345000';
      await c.post(`${url}/device/write`, { dma_address: addr, data: data(1 + Math.floor(r() * 64)) });
    } else if (k < 0.9) {
      const m = live.length > 0 && r() < 0.8 ? pick(live) : null;
      await c.post(`${url}/device/read`, { dma_address: m ? m.dma : '0x23456000', length: 1 + Math.floor(r() * 64) });
    } else if (k < 0.93) {
      await c.post(`${url}/flush`, r() < 0.5 ? {} : { rcache: true });
    } else {
      const n = 1 + Math.floor(r() * 4);
      const ops: Obj[] = [];
      for (let j = 0; j < n; j++) ops.push({ op: 'map_page', phys: hex(page()), size: 4096, dir: 'to_device' });
      for (let j = 0; j < n; j++) if (r() < 0.7) ops.push({ op: 'unmap', handle: { ref: j } });
      const a = (await c.post(`${url}/batch`, { ops })).body;
      const results = a.results as Obj[];
      for (let j = 0; j < n; j++) {
        const res = results[j] as Obj;
        const unmapped = ops.slice(n).some((o) => (o.handle as Obj).ref === j);
        if (!unmapped && typeof res.handle === 'number') live.push({ handle: res.handle, kind: 'stream', dma: res.dma_address as string, size: 4096 });
      }
    }
  }
}

/** Everything a client can observe of a session without changing it, plus CPU reads of the region the workload touched. */
export async function observe(c: Client, url: string): Promise<Obj> {
  const summary = (await c.get(url)).body;
  const mappings: Obj[] = [];
  let after: number | null = 0;
  while (after !== null) {
    const p: Obj = (await c.get(`${url}/mappings`, { query: `after=${after}&limit=100` })).body;
    mappings.push(...(p.mappings as Obj[]));
    after = p.next as number | null;
  }
  const debug = (await c.get(`${url}/debug`)).body;
  const faults = (await c.get(`${url}/faults`)).body;
  return { summary, mappings, debug, faults };
}

/** CPU reads of the workload's whole region (they may pull lines into the cache: run them last). */
export async function readRegion(c: Client, url: string): Promise<string[]> {
  const out: string[] = [];
  for (let p = 0; p < 64; p += 16) out.push((await c.post(`${url}/cpu/read`, { phys: hex(0x80000000 + p * 4096), length: 16 * 4096 + 4096 })).body.data as string);
  return out;
}
