// /metrics after a known sequence of calls: DMA calls by op and kernel result (single calls
// and /batch ops alike), dma-debug findings by check, device faults by reason class, all with
// Prometheus names (`_total` counters, snake_case labels).
import t from 'tap';
import { buildApp } from '../src/service/app.js';
import { faultClass } from '../routes/metrics.js';

/** The value of one series in Prometheus text, or undefined if it is not exposed. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

t.test('counters after map_sg, a failing map_page, a batch, a wrong-size unmap and three faults', async (t) => {
  const app = await buildApp({ logLevel: 'silent' });
  t.teardown(() => app.close());
  const post = async (url: string, payload: unknown) => (await app.inject({ method: 'POST', url, payload: payload as object })).json<Record<string, unknown>>();
  // An IOMMU aperture of 0..0xffff is 16 pfns, and pfn 0 is never handed out (start_pfn 1):
  // a 64 KiB map_page needs 16 pfns and finds 15, so alloc_iova fails: -ENOMEM (semantics §5, §6).
  const small = (await post('/v1/sessions', { iommu: { aperture: { start: '0x0', end: '0xffff' } } })) as { id: string };
  const failed = await post(`/v1/sessions/${small.id}/map_page`, { phys: '0x80000000', size: 65536, dir: 'to_device' });
  t.match(failed, { dma_address: '0xffffffffffffffff', error: { errno: 'ENOMEM' } }, 'the map fails as Linux would');

  const { id } = (await post('/v1/sessions', {})) as { id: string };
  const S = `/v1/sessions/${id}`;
  const m = (await post(`${S}/map_sg`, { dir: 'to_device', sg: [{ phys: '0x80000000', length: 4096 }] })) as { handle: number };
  // unmap with the wrong size: one dma-debug finding, unmap_size (check_unmap).
  await post(`${S}/unmap`, { handle: m.handle, size: 8192 });
  // A batch: map_page, sync, unmap — three more ok calls.
  await post(`${S}/batch`, {
    ops: [
      { op: 'map_page', phys: '0x81000000', size: 4096, dir: 'from_device' },
      { op: 'sync', handle: { ref: 0 }, for: 'cpu' },
      { op: 'unmap', handle: { ref: 0 } },
    ],
  });
  // Nothing is mapped now: a device write at 0x10000 is a translation fault, twice.
  await post(`${S}/device/write`, { dma_address: '0x10000', data: 'AA==' });
  await post(`${S}/device/read`, { dma_address: '0x10000', length: 1 });
  // A device write into a to_device mapping: IOMMU_WRITE not granted, a permission fault.
  const ro = (await post(`${S}/map_page`, { phys: '0x82000000', size: 4096, dir: 'to_device' })) as { dma_address: string };
  const pf = (await post(`${S}/device/write`, { dma_address: ro.dma_address, data: 'AA==' })) as { fault?: { reason: string } };
  t.match(pf.fault?.reason, /permission fault/);

  const res = await app.inject({ method: 'GET', url: '/metrics' });
  t.equal(res.statusCode, 200);
  const text = res.body;
  t.equal(sample(text, 'dmaemu_dma_calls_total{op="map_sg",result="ok"}'), 1);
  t.equal(sample(text, 'dmaemu_dma_calls_total{op="map_page",result="ok"}'), 2, 'the batch op counts like a single call');
  t.equal(sample(text, 'dmaemu_dma_calls_total{op="map_page",result="ENOMEM"}'), 1);
  t.equal(sample(text, 'dmaemu_dma_calls_total{op="sync",result="ok"}'), 1);
  t.equal(sample(text, 'dmaemu_dma_calls_total{op="unmap",result="ok"}'), 2);
  t.equal(sample(text, 'dmaemu_dma_calls_total{op="alloc_coherent",result="ENOMEM"}'), 0, 'every (op, result) series exists from the start');
  t.equal(sample(text, 'dmaemu_debug_findings_total{check="unmap_size"}'), 1);
  t.equal(sample(text, 'dmaemu_device_faults_total{reason="translation"}'), 2);
  t.equal(sample(text, 'dmaemu_device_faults_total{reason="permission"}'), 1);
  t.match(text, /# TYPE dmaemu_dma_calls_total counter/);
});

t.test('an HTTP-refused call is not a DMA call; its dma-debug finding still counts', async (t) => {
  const app = await buildApp({ logLevel: 'silent' });
  t.teardown(() => app.close());
  const { id } = (await app.inject({ method: 'POST', url: '/v1/sessions', payload: {} })).json<{ id: string }>();
  // Handle 5 never existed: 404, and dma-debug's "tries to free DMA memory it has not allocated".
  const r = await app.inject({ method: 'POST', url: `/v1/sessions/${id}/unmap`, payload: { handle: 5 } });
  t.equal(r.statusCode, 404);
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  t.equal(sample(text, 'dmaemu_dma_calls_total{op="unmap",result="ok"}'), 0);
  t.equal(sample(text, 'dmaemu_debug_findings_total{check="unmap_unknown"}'), 1);
});

t.test('fault reasons are grouped into bounded classes (the text carries addresses)', async (t) => {
  t.equal(faultClass('unmapped IOVA (translation fault)'), 'translation');
  t.equal(faultClass('device write to a DMA_TO_DEVICE mapping (permission fault: handle 3 mapped to_device)'), 'permission');
  t.equal(faultClass("beyond the device's dma_mask 0xffffffff: the device cannot drive this address"), 'dma_mask');
  t.equal(faultClass('below dma_offset 0x1000: no memory there'), 'dma_offset');
  t.equal(faultClass('beyond the 52-bit physical address space'), 'address_space');
});
