// dmaemu's dma-direct + swiotlb against the real kernels without an IOMMU: the same machine and
// sequences as the intel-iommu recordings, booted with `intel_iommu=off swiotlb=force`
// (conformance/run.sh, mode swiotlb-force), so every mapping bounces through the boot's one
// swiotlb pool. Each device replays as a session with `iommu: null` and the pool the kernel
// reported for it (dev->dma_io_tlb_mem: base, slots, one area); the pool is shared by every
// device of the boot, so each session starts its search where the previous device's replay left
// it (`swiotlb.index`). Every bounce address must equal the kernel's, exactly. A coherent
// buffer's address is the page the kernel's buddy allocator chose: replayed, not compared.
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { conformanceLine, loadRecording, parseTrace, replayCore, traceDisagreements, type Mismatch } from './helpers/kernel-replay.js';

const dir = fileURLToPath(new URL('kernel-recordings/', import.meta.url));
const KERNELS = ['6.12', '7.3'].filter((k) => existsSync(`${dir}linux-${k}-swiotlb-force.jsonl.gz`));

function describe(m: readonly Mismatch[]): { mismatches: string[] } {
  return { mismatches: m.slice(0, 5).map((x) => `${x.seq} call ${x.call} (${x.op} id ${x.id}): kernel ${JSON.stringify(x.want)}, dmaemu ${JSON.stringify(x.got)}`) };
}

t.test('both kernels were recorded without an IOMMU', async (t) => {
  t.same(KERNELS, ['6.12', '7.3']);
});

for (const k of KERNELS) {
  const recs = loadRecording(`${dir}linux-${k}-swiotlb-force.jsonl.gz`);

  t.test(`${k} swiotlb=force: a real boot, every device on the one forced pool`, async (t) => {
    t.ok(recs.length >= 20, `${recs.length} devices`);
    const pools = new Set(recs.map((r) => JSON.stringify(r.device.swiotlb)));
    t.equal(pools.size, 1, 'one pool for the whole boot');
    for (const r of recs) {
      t.match(r.device.kernel, new RegExp(`^${k.replace('.', '\\.')}\\.`));
      t.match(r.device.swiotlb, { nareas: 1, force: true, nslabs: 32768 }, `${r.device.seq}: 64 MiB, one area, forced`);
    }
  });

  t.test(`${k} swiotlb=force: the printed lines agree with the kernel's dma tracepoints`, async (t) => {
    const trace = parseTrace(gunzipSync(readFileSync(`${dir}linux-${k}-swiotlb-force.trace.gz`)).toString('utf8'));
    t.ok(trace.length > 3000, `${trace.length} traced maps`);
    t.same(traceDisagreements(recs, trace).slice(0, 5), []);
  });

  t.test(`${k} swiotlb=force: replayed through the core, every bounce address equals the kernel's`, async (t) => {
    const { ops, mismatches: all } = await replayCore(recs);
    const line = conformanceLine(ops, all.length, `linux ${k} no-iommu swiotlb=force`);
    t.comment(line);
    process.stderr.write(`${line}\n`);
    t.ok(ops > 5000, `${ops} calls compared`);
    t.equal(all.length, 0, line, describe(all));
  });
}
