// Restore after a restart gives the very same session (issue 12, item 3 (d)): a seeded mixed
// workload runs against a service with a data dir; the dir is copied while the service is
// live (every acknowledged call is on disk, nothing is in flight); the original and a service
// restored from the copy are then observed side by side: summary (counters, IOVA in use,
// memory touched), every /mappings row, /debug, /faults, CPU reads of the whole region, and
// the address the next map gets — which only matches if the IOVA allocator's tree, caches and
// flush queue came back exactly. Once with the whole log replayed, once with compaction forced
// so the restore starts from a snapshot (store/snapshot.ts) and replays the tail.
import t from 'tap';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../src/service/app.js';
import { decodeFrames } from '../src/service/store/frames.js';
import { client } from './helpers/http.js';
import { observe, readRegion, runWorkload } from './helpers/workload.js';

const CONFIGS = {
  linux: { layout: 'linux', iommu: { strict: false } },
  'linux-4.4': { layout: 'linux-4.4', page_size: 16384, iommu: { granule: 4096 } },
  'arm-legacy': { layout: 'arm-legacy' },
  'dma-direct + swiotlb': { iommu: null, device: { dma_mask: '0xffffffff' }, swiotlb: { size: 1 << 20, force: true } },
  'coherent linux': { layout: 'linux', device: { coherent: true } },
};

const tmp = mkdtempSync(join(tmpdir(), 'dmaemu-restore-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

for (const compact of [false, true]) {
  for (const [name, config] of Object.entries(CONFIGS)) {
    t.test(`${name}${compact ? ', from a snapshot' : ''}: the restored session is the original, down to the next IOVA`, async (t) => {
      const dir = join(tmp, `${name.replace(/\W+/g, '_')}-${compact}`);
      // compactMinBytes 2 KiB, ratio 1: a snapshot every few calls, so the restore starts from one.
      const journal = compact ? { compactMinBytes: 2048, compactRatio: 1 } : { compactMinBytes: 1 << 30 };
      const app = await buildApp({ logLevel: 'silent', dataDir: dir, journal });
      t.teardown(() => app.close());
      const c = client(app);
      const s = await c.session(config);
      await runWorkload(c, s.url, 12 + name.length, 160);
      const copy = `${dir}-copy`;
      cpSync(dir, copy, { recursive: true });

      const file = join(copy, 'sessions', readdirSync(join(copy, 'sessions'))[0] ?? '');
      const kinds = decodeFrames(readFileSync(file)).frames.map((f) => f.kind);
      if (compact) t.ok(kinds.includes('S'), 'the log was compacted into a snapshot');
      else t.notOk(kinds.includes('S'), 'the whole log is replayed');

      const app2 = await buildApp({ logLevel: 'silent', dataDir: copy, journal });
      t.teardown(() => app2.close());
      const c2 = client(app2);
      t.same(await observe(c2, s.url), await observe(c, s.url), 'summary, mappings, debug findings and faults');
      if (!compact) t.same((await c2.get(`${s.url}/trace`)).body, (await c.get(`${s.url}/trace`)).body, 'the trace read back from disk is the live one');
      t.same(await readRegion(c2, s.url), await readRegion(c, s.url), 'the CPU reads the same bytes');
      const next = { phys: '0x90000000', size: 20480, dir: 'bidirectional' };
      const [a, b] = [(await c.post(`${s.url}/map_page`, next)).body, (await c2.post(`${s.url}/map_page`, next)).body];
      t.ok(typeof a.handle === 'number', 'the next map succeeds');
      t.same(b, a, 'the next map gets the same handle and IOVA');
      const sg = { dir: 'to_device', sg: [{ phys: '0x91000000', length: 8192 }, { phys: '0x91003000', length: 4096 }] };
      t.same((await c2.post(`${s.url}/map_sg`, sg)).body, (await c.post(`${s.url}/map_sg`, sg)).body, 'and so does a map_sg after it');
    });
  }
}

t.test('compaction keeps disk use bounded under map/unmap churn', async (t) => {
  const dir = join(tmp, 'churn');
  // Floor 16 KiB, ratio 2: the log stays under base + 2 × base + 16 KiB + one batch record.
  const app = await buildApp({ logLevel: 'silent', dataDir: dir, journal: { compactMinBytes: 16384, compactRatio: 2 } });
  t.teardown(() => app.close());
  const c = client(app);
  const s = await c.session({ layout: 'linux' });
  // 64 mappings stay live throughout: the live state the snapshot must keep.
  await c.post(`${s.url}/batch`, { ops: Array.from({ length: 64 }, (_, i) => ({ op: 'map_page', phys: `0x${(0x40000000 + i * 4096).toString(16)}`, size: 4096, dir: 'to_device' })) });
  const file = join(dir, 'sessions', `${s.id}.oplog`);
  let appended = 0;
  let largest = 0;
  const ops = Array.from({ length: 32 }, (_, i) => ({ op: 'map_page', phys: `0x${(0x50000000 + i * 4096).toString(16)}`, size: 4096, dir: 'to_device' }));
  const batch = { ops: [...ops, ...ops.map((_, i) => ({ op: 'unmap', handle: { ref: i } }))] };
  // The log proper ends where the frames do; past it the writer keeps up to 256 KiB of zeros ahead.
  const logBytes = (): number => decodeFrames(readFileSync(file)).validBytes;
  let fileLargest = 0;
  for (let i = 0; i < 600; i++) {
    const before = logBytes();
    await c.post(`${s.url}/batch`, batch);
    const after = logBytes();
    appended += Math.max(0, after - before);
    largest = Math.max(largest, after);
    fileLargest = Math.max(fileLargest, readFileSync(file).length);
  }
  t.ok(fileLargest <= largest + 256 * 1024, `the file (${fileLargest} B) is the log plus at most 256 KiB preallocated`);
  const frames = decodeFrames(readFileSync(file)).frames;
  const snap = frames.find((f) => f.kind === 'S');
  t.ok(snap, 'the log holds a snapshot');
  const base = (snap?.offset ?? 0) + (snap?.payload.length ?? 0) + 9;
  const record = frames[frames.length - 1]?.payload.length ?? 0;
  t.ok(largest <= 3 * base + 16384 + 2 * record, `largest log ${largest} B ≤ 3 × base ${base} B + 16 KiB + two records of ${record} B`);
  t.ok(appended > 8 * largest, `without compaction it would hold ${appended} B, over 8× the largest log`);
  // And the compacted session still answers like the live one after a restart.
  const copy = `${dir}-copy`;
  cpSync(dir, copy, { recursive: true });
  const app2 = await buildApp({ logLevel: 'silent', dataDir: copy });
  t.teardown(() => app2.close());
  const c2 = client(app2);
  t.same(await observe(c2, s.url), await observe(c, s.url), 'restored from the compacted log');
  t.same((await c2.post(`${s.url}/batch`, batch)).body, (await c.post(`${s.url}/batch`, batch)).body, 'the next batch answers the same');
});
