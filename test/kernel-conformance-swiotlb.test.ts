// dmaemu's dma-direct + swiotlb against the real kernels without an IOMMU: the same machine and
// sequences as the intel-iommu recordings, booted with `intel_iommu=off swiotlb=force`
// (conformance/run.sh, mode swiotlb-force: every mapping bounces through the boot's one
// swiotlb pool) and with `intel_iommu=off` and 6 GiB of RAM (mode no-iommu: a 32- or 24-bit
// device bounces only the buffers above its mask, a 64-bit one none). Each device replays as a session with `iommu: null` and the pool the kernel
// reported for it (dev->dma_io_tlb_mem: base, slots, one area); the pool is shared by every
// device of the boot, so each session starts its search where the previous device's replay left
// it (`swiotlb.index`). Every bounce address must equal the kernel's, exactly. A coherent
// buffer's address is the page the kernel's buddy allocator chose: replayed, not compared.
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { conformanceLine, loadRecording, parseTrace, replayCore, traceDisagreements } from './helpers/kernel-replay.js';
import { describeMismatches } from './helpers/kernel-http.js';

const dir = fileURLToPath(new URL('kernel-recordings/', import.meta.url));
const BOOTS = ['6.12', '7.3'].flatMap((k) => (['swiotlb-force', 'no-iommu'] as const).map((mode) => ({ k, mode, name: `linux-${k}-${mode}` })));
const RECORDED = BOOTS.filter((b) => existsSync(`${dir}${b.name}.jsonl.gz`));

t.test('both kernels were recorded in both modes without an IOMMU', async (t) => {
  t.same(RECORDED.map((b) => b.name), BOOTS.map((b) => b.name));
});

for (const { k, mode, name } of RECORDED) {
  const recs = loadRecording(`${dir}${name}.jsonl.gz`);
  const force = mode === 'swiotlb-force';
  const label = `linux ${k} no-iommu${force ? ' swiotlb=force' : ''}`;

  t.test(`${label}: a real boot, every device on the boot's one pool`, async (t) => {
    t.ok(recs.length >= 20, `${recs.length} devices`);
    const pools = new Set(recs.map((r) => JSON.stringify(r.device.swiotlb)));
    t.equal(pools.size, 1, 'one pool for the whole boot');
    for (const r of recs) {
      t.match(r.device.kernel, new RegExp(`^${k.replace('.', '\\.')}\\.`));
      t.match(r.device.swiotlb, { nareas: 1, force, nslabs: 32768 }, `${r.device.seq}: 64 MiB, one area`);
    }
    // what landed in the pool: all of it when forced, only part of it otherwise
    const pool = recs[0]?.device.swiotlb;
    const inPool = (a: string): boolean => pool !== undefined && BigInt(a) >= BigInt(pool.start) && BigInt(a) < BigInt(pool.end);
    const addrs = recs.flatMap((r) => r.calls.flatMap((c) => (c.op === 'map_sg' ? c.segs.map((x) => x[0]) : c.op === 'map_page' && !c.error ? [c.addr] : [])));
    const bounced = addrs.filter(inPool).length;
    t.comment(`${bounced} of ${addrs.length} segments bounced`);
    if (force) t.equal(bounced, addrs.length, 'swiotlb=force bounces every segment');
    else t.ok(bounced > 1000 && bounced < addrs.length - 1000, `only the segments above a device's mask bounce (${bounced} of ${addrs.length})`);
  });

  t.test(`${label}: the printed lines agree with the kernel's dma tracepoints`, async (t) => {
    const trace = parseTrace(gunzipSync(readFileSync(`${dir}${name}.trace.gz`)).toString('utf8'));
    t.ok(trace.length > 3000, `${trace.length} traced maps`);
    t.same(traceDisagreements(recs, trace).slice(0, 5), []);
  });

  t.test(`${label}: replayed through the core, every address (bounced or not) equals the kernel's`, async (t) => {
    const { ops, mismatches: all } = await replayCore(recs);
    const line = conformanceLine(ops, all.length, label);
    t.comment(line);
    process.stderr.write(`${line}\n`);
    t.ok(ops > 5000, `${ops} calls compared`);
    t.equal(all.length, 0, line, describeMismatches(all));
  });
}
