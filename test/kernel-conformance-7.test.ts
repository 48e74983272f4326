// dmaemu against Linux 7.3 (Debian trixie-backports; QEMU q35, emulated Intel IOMMU, one CPU;
// conformance/README.md): the 6.12 sequences, the edge dma_parms and masks, and the two-step
// IOVA API, every call replayed through the core, and over HTTP for the devices that use no
// IOVA-API call (those have no REST routes yet). Each device is a fresh IOMMU domain and becomes
// one session with `kernel: "7.3"`; every answer must equal the kernel's, address for address.
// Re-record with `npm run conformance` (KERNELS=7 for this one alone).
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { conformanceLine, loadRecording, parseTrace, replayCore, traceDisagreements } from './helpers/kernel-replay.js';
import { isIovaCall } from './helpers/kernel-iova.js';
import { describeMismatches, replayOverHttp } from './helpers/kernel-http.js';

const dir = fileURLToPath(new URL('kernel-recordings/', import.meta.url));
const recs = loadRecording(`${dir}linux-7.3-intel-iommu.jsonl.gz`);
const calls = recs.reduce((n, r) => n + r.calls.filter((c) => c.op !== 'sleep').length, 0);
const iovaCalls = recs.reduce((n, r) => n + r.calls.filter(isIovaCall).length, 0);
const LABEL = 'linux 7.3 intel-iommu';

t.test('the recording is a real 7.3 intel-iommu boot: the 6.12 sequences, edge values and the IOVA API', async (t) => {
  const seqs = recs.map((r) => r.device.seq);
  for (const r of recs) t.match(r.device.kernel, /^7\.3\./, `${r.device.seq}: kernel ${r.device.kernel}`);
  for (const s of ['thread-pci-defaults', 'depot-trim', 'thread-max-seg-zero', 'offsets-boundary-zero', 'mixed-64-zeros', 'iova-basic-32', 'iova-rules-64', 'iova-destroy-32', 'iova-exhaust-24']) {
    t.ok(seqs.includes(s), `sequence ${s} recorded`);
  }
  t.ok(calls >= 15000, `${calls} calls`);
  t.ok(iovaCalls >= 200, `${iovaCalls} IOVA-API calls`);
});

t.test("the printed lines agree with the kernel's own dma tracepoints (map_page is traced as dma_map_phys since 6.18)", async (t) => {
  const text = gunzipSync(readFileSync(`${dir}linux-7.3-intel-iommu.trace.gz`)).toString('utf8');
  t.ok(text.includes('dma_map_phys:'), 'the trace names the event dma_map_phys');
  t.notOk(text.includes('dma_map_page:'), 'and never dma_map_page');
  const trace = parseTrace(text);
  t.ok(trace.filter((e) => e.op === 'map_page').length > 5000, 'the dma_map_phys events are read as map_page');
  t.same(traceDisagreements(recs, trace).slice(0, 5), []);
});

t.test("replayed through the core (Session, IOVA API included), every answer equals the kernel's", async (t) => {
  const { ops, mismatches: all } = await replayCore(recs);
  const line = conformanceLine(ops, all.length, LABEL);
  t.comment(line);
  process.stderr.write(`${line}\n`);
  t.equal(ops, calls, 'every recorded call was replayed');
  t.equal(all.length, 0, line, describeMismatches(all));
});

t.test("replayed over HTTP (one request per call), every answer equals the kernel's", async (t) => {
  const http = recs.filter((r) => !r.calls.some(isIovaCall));
  t.equal(recs.length - http.length, 4, 'the four IOVA-API devices replay through the core only');
  const { ops, mismatches: all } = await replayOverHttp(t, http);
  const line = conformanceLine(ops, all.length, LABEL);
  t.comment(`${line} over HTTP`);
  t.ok(ops > 14000, `${ops} calls over HTTP`);
  t.equal(all.length, 0, line, describeMismatches(all));
});
