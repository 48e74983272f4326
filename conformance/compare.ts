// Compares a fresh recording of the real kernel with dmaemu: replays every call through the
// core and prints `conformance: N ops, M mismatches (linux X.Y intel-iommu)`, each mismatch,
// and whether the printed lines agree with the kernel's dma tracepoints. Exit status 1 on any
// mismatch or disagreement.
// Usage: tsx conformance/compare.ts RECORDING(.jsonl[.gz] or console log) [TRACE]
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { conformanceLine, kernelOf, loadRecording, parseTrace, replayCore, traceDisagreements } from '../test/helpers/kernel-replay.js';

const [recording, tracePath] = process.argv.slice(2);
if (!recording) {
  process.stderr.write('usage: compare.ts RECORDING [TRACE]\n');
  process.exit(2);
}
const recs = loadRecording(recording);
const { ops, mismatches: all } = await replayCore(recs, (seq, n, bad) => {
  process.stdout.write(`  ${seq.padEnd(22)} ${String(n).padStart(5)} ops ${bad} mismatches\n`);
});
for (const m of all.slice(0, 20)) {
  process.stdout.write(`mismatch ${m.seq} call ${m.call} (${m.op} id ${m.id}): kernel ${JSON.stringify(m.want)} dmaemu ${JSON.stringify(m.got)}\n`);
}
let disagreements: string[] = [];
if (tracePath) {
  const raw = readFileSync(tracePath);
  const trace = parseTrace((tracePath.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8'));
  disagreements = traceDisagreements(recs, trace);
  process.stdout.write(`trace: ${trace.length} traced maps, ${disagreements.length} disagreements with the printed lines\n`);
  for (const d of disagreements.slice(0, 20)) process.stdout.write(`  ${d}\n`);
}
const first = recs[0]?.device;
const machine = !first?.swiotlb ? 'intel-iommu' : first.swiotlb.force ? 'no-iommu swiotlb=force' : 'no-iommu';
process.stdout.write(`kernel: ${first?.kernel ?? '?'}\n${conformanceLine(ops, all.length, `linux ${first ? kernelOf(first) : '?'} ${machine}`)}\n`);
process.exit(all.length === 0 && disagreements.length === 0 && ops > 0 ? 0 : 1);
