// The requests the OpenAPI document shows as examples, in the order a reader would make them: the
// 2015 thread's {64k, 16k, 64k} list through map_sg, then the stale-data walk-through
// (docs/walkthrough-stale-data.md) on the same session. Each operation's documented answer
// (openapi-examples.ts) is what the service answers to these steps in this order;
// test/openapi-examples.test.ts replays them and fails on any difference.

/** The session id the examples show; a replay substitutes the id it was given. */
export const EXAMPLE_SESSION = 'yRpgwbjfxTBT5HteoCE-Xg';

export interface ExampleStep {
  operationId: string;
  method: 'GET' | 'POST' | 'DELETE';
  /** With `{id}` for the session. */
  path: string;
  body?: unknown;
}

const THREAD_SG = [
  { phys: '0x90000000', length: 65536 },
  { phys: '0x91000000', length: 16384 },
  { phys: '0x92000000', length: 65536 },
];

const FTRACE_LINES =
  '          insmod-133     [000] .....     2.588872: dma_map_sg: 0000:00:03.0 dir=TO_DEVICE nents=3/3 ents=3/3 dma_addrs={0xfffc0000,0xfffd0000,0xfffd4000} sizes={0x10000,0x4000,0x10000} phys_addrs={0x4430000,0x2cb8000,0x4440000} attrs=\n' +
  '          insmod-133     [000] .N...     2.591702: dma_unmap_sg: 0000:00:03.0 dir=TO_DEVICE phys_addrs={0x4430000,0x2cb8000,0x4440000} attrs=\n';

export const EXAMPLE_STEPS: readonly ExampleStep[] = [
  { operationId: 'create_session', method: 'POST', path: '/v1/sessions', body: { layout: 'linux', device: { bus: 'platform', dma_mask: '0xffffffff', coherent: false } } },
  { operationId: 'map_sg', method: 'POST', path: '/v1/sessions/{id}/map_sg', body: { dir: 'to_device', sg: THREAD_SG } },
  { operationId: 'sync', method: 'POST', path: '/v1/sessions/{id}/sync', body: { handle: 1, for: 'cpu' } },
  { operationId: 'unmap', method: 'POST', path: '/v1/sessions/{id}/unmap', body: { handle: 1 } },
  { operationId: 'get_trace', method: 'GET', path: '/v1/sessions/{id}/trace' },
  { operationId: 'compare', method: 'POST', path: '/v1/compare', body: { session: { device: { max_segment_size: 65536 } }, dir: 'to_device', sg: THREAD_SG } },
  // Two lines of the project's Linux 6.12 recording (test/kernel-recordings/ftrace/): the thread's
  // list mapped by the module's first device, then unmapped.
  { operationId: 'import_ftrace', method: 'POST', path: '/v1/import/ftrace', body: { text: FTRACE_LINES } },
  // The stale-data walk-through: 12 bytes of 0x11 from the CPU, 12 bytes of 0xff from the device.
  { operationId: 'cpu_write', method: 'POST', path: '/v1/sessions/{id}/cpu/write', body: { phys: '0x81000000', data: 'ERERERERERERERER' } },
  { operationId: 'map_page', method: 'POST', path: '/v1/sessions/{id}/map_page', body: { phys: '0x81000000', size: 4096, dir: 'from_device' } },
  { operationId: 'device_write', method: 'POST', path: '/v1/sessions/{id}/device/write', body: { dma_address: '0xfffff000', data: '////////////////' } },
  { operationId: 'cpu_read', method: 'POST', path: '/v1/sessions/{id}/cpu/read', body: { phys: '0x81000000', length: 12 } },
  { operationId: 'device_read', method: 'POST', path: '/v1/sessions/{id}/device/read', body: { dma_address: '0xfffff000', length: 12 } },
  { operationId: 'alloc_coherent', method: 'POST', path: '/v1/sessions/{id}/alloc_coherent', body: { size: 8192 } },
  { operationId: 'mappings', method: 'GET', path: '/v1/sessions/{id}/mappings' },
  { operationId: 'free_coherent', method: 'POST', path: '/v1/sessions/{id}/free_coherent', body: { handle: 3 } },
  { operationId: 'flush', method: 'POST', path: '/v1/sessions/{id}/flush', body: { rcache: true } },
  { operationId: 'batch', method: 'POST', path: '/v1/sessions/{id}/batch', body: { ops: [{ op: 'map_sg', dir: 'to_device', sg: [['0x90000000', 65536]] }, { op: 'unmap', handle: { ref: 0 } }] } },
  { operationId: 'faults', method: 'GET', path: '/v1/sessions/{id}/faults' },
  { operationId: 'debug', method: 'GET', path: '/v1/sessions/{id}/debug' },
  { operationId: 'get_session', method: 'GET', path: '/v1/sessions/{id}' },
  { operationId: 'healthz', method: 'GET', path: '/healthz' },
  { operationId: 'delete_session', method: 'DELETE', path: '/v1/sessions/{id}' },
];
