// dmaemu against the real kernel: every DMA-API call the recording module made on Linux 6.12
// (QEMU q35, emulated Intel IOMMU, one CPU; conformance/README.md) replayed through the core
// and over HTTP. Each device of the recording is a fresh IOMMU domain and becomes one session
// configured as the kernel reported it; every map answer must equal the kernel's, segment for
// segment and address for address. Re-record with `npm run conformance`.
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import {
  conformanceLine,
  loadRecording,
  parseTrace,
  replayCore,
  traceDisagreements,
  type DeviceLine,
  type Mismatch,
} from './helpers/kernel-replay.js';
import { SessionStore } from '../src/service/session-store.js';
import { SessionCreateBody } from '../schemas/session.js';
import { replayOverHttp } from './helpers/kernel-http.js';

const dir = fileURLToPath(new URL('kernel-recordings/', import.meta.url));
const recs = loadRecording(`${dir}linux-6.12-intel-iommu.jsonl.gz`);
// DMA-API calls; the "sleep" lines (time passing in the guest) are replayed but not compared
const calls = recs.reduce((n, r) => n + r.calls.filter((c) => c.op !== 'sleep').length, 0);
function first(): DeviceLine {
  const r = recs[0];
  if (!r) throw new Error('the recording holds no device');
  return r.device;
}

function describe(m: readonly Mismatch[]): { mismatches: string[] } {
  return { mismatches: m.slice(0, 5).map((x) => `${x.seq} call ${x.call} (${x.op} id ${x.id}): kernel ${JSON.stringify(x.want)}, dmaemu ${JSON.stringify(x.got)}`) };
}

t.test('the recording is a real 6.12 intel-iommu boot with thousands of calls', async (t) => {
  t.ok(recs.length >= 15, `${recs.length} devices, one domain each`);
  t.ok(calls >= 5000, `${calls} calls`);
  for (const r of recs) {
    t.match(r.device.kernel, /^6\.12\./, `${r.device.seq}: kernel ${r.device.kernel}`);
    // pci_device_add's dma_parms, seen before the module changed anything
    t.same(r.device.defaults, { dma_mask: '0xffffffff', max_segment_size: 65536, segment_boundary_mask: '0xffffffff' }, `${r.device.seq}: PCI defaults`);
  }
});

t.test('pci_device_add: a bare PCI session resolves to the mask and dma_parms the kernel gave every edu device', async (t) => {
  const bare = new SessionStore().create(SessionCreateBody.parse({ device: { bus: 'pci' } })).wireConfig.device;
  const d = first().defaults;
  t.same(
    { dma_mask: bare.dma_mask, max_segment_size: bare.max_segment_size, segment_boundary_mask: bare.segment_boundary_mask },
    { dma_mask: d.dma_mask, max_segment_size: d.max_segment_size, segment_boundary_mask: d.segment_boundary_mask },
  );
});

t.test('the printed lines agree with the kernel\'s own dma tracepoints', async (t) => {
  const trace = parseTrace(gunzipSync(readFileSync(`${dir}linux-6.12-intel-iommu.trace.gz`)).toString('utf8'));
  t.ok(trace.length > 0, `${trace.length} traced maps`);
  t.same(traceDisagreements(recs, trace).slice(0, 5), []);
});

t.test('replayed through the core (Session), every answer equals the kernel\'s', async (t) => {
  const { ops, mismatches: all } = await replayCore(recs);
  const line = conformanceLine(ops, all.length);
  t.comment(line);
  process.stderr.write(`${line}\n`);
  t.equal(ops, calls, 'every recorded call was replayed');
  t.equal(all.length, 0, line, describe(all));
});

t.test('replayed over HTTP (one request per call), every answer equals the kernel\'s', async (t) => {
  const { ops, mismatches: all } = await replayOverHttp(t, recs);
  const line = conformanceLine(ops, all.length);
  t.comment(`${line} over HTTP`);
  t.equal(all.length, 0, line, describe(all));
});
