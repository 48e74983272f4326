// The typed client (client/index.ts) against a real listening server on 127.0.0.1: the 2015
// thread's {64k, 16k, 64k} list through map_sg, a Linux-reported failure as an answer, an HTTP
// error as DmaemuHttpError with its code, and the leak report on close.
import t from 'tap';
import { buildApp } from '../src/service/app.js';
import { createDmaemuClient, DmaemuHttpError } from '../client/index.js';

const app = await buildApp({ logLevel: 'silent' });
const url = await app.listen({ host: '127.0.0.1', port: 0 });
t.teardown(() => app.close());
const dmaemu = createDmaemuClient(url);

const THREAD_SG = [
  { phys: '0x90000000', length: 65536 },
  { phys: '0x91000000', length: 16384 },
  { phys: '0x92000000', length: 65536 },
];

t.test('map_sg of the thread list in layout linux: three segments in one 144 KiB IOVA range', async (t) => {
  const s = await dmaemu.createSession({ layout: 'linux' });
  t.equal(s.config.device.max_segment_size, 65536, 'no dma_parms: 64 KiB segments');
  const r = await s.mapSg({ dir: 'to_device', sg: THREAD_SG });
  // Worked by hand (semantics §3, §5): 36 granules, aligned to 64 below the 32-bit limit
  // 0x100000: (0x100000 − 36) & ~63 = pfn 0xfffc0. __finalise_sg cannot join past 64 KiB, so
  // each entry is its own segment, back to back: 0xfffc0000, +0x10000, +0x4000.
  t.same(r.segments, [
    { dma_address: '0xfffc0000', dma_length: 65536 },
    { dma_address: '0xfffd0000', dma_length: 16384 },
    { dma_address: '0xfffd4000', dma_length: 65536 },
  ]);
  t.same(r.iova, { start: '0xfffc0000', size: 147456 });
  const rows = await s.mapPage({ phys: '0x80000000', size: 4096, dir: 'from_device' }, { pages: true });
  t.equal(rows.pages?.length, 1, '?pages=true: one row for one granule');
  const report = await s.close();
  t.equal(report.leaked_mappings, 2, 'both mappings were still live at close');
});

t.test('an HTTP error throws DmaemuHttpError with the stable code', async (t) => {
  const gone = dmaemu.session('no-such-session');
  const err = await gone.unmap({ handle: 1 }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof DmaemuHttpError);
  t.match(err, { status: 404, code: 'DMAEMU_SESSION_NOT_FOUND' });
});

t.test('a failure Linux reports is an answer, not an exception', async (t) => {
  // Aperture 0..0xffff: 16 pfns, pfn 0 never handed out, so a 64 KiB map finds 15: -ENOMEM.
  const s = await dmaemu.createSession({ iommu: { aperture: { start: '0x0', end: '0xffff' } } });
  const r = await s.mapPage({ phys: '0x80000000', size: 65536, dir: 'to_device' });
  t.match(r, { handle: null, dma_address: '0xffffffffffffffff', error: { errno: 'ENOMEM' } });
  await s.close();
});

t.test('batch with refs and the tables, through the wrapper', async (t) => {
  const s = await dmaemu.createSession({});
  const b = await s.batch({ ops: [{ op: 'map_sg', dir: 'to_device', sg: THREAD_SG.slice(0, 1) }, { op: 'unmap', handle: { ref: 0 } }] });
  t.equal(b.results.length, 2);
  t.same((await s.mappings()).mappings, [], 'nothing left mapped');
  t.same((await s.faults()).faults, []);
  t.same((await s.close()).leaks, []);
  t.match(await dmaemu.healthz(), { status: 'ok' });
});

t.test('batchBinary: the thread list through the binary /batch gives what batch() gives', async (t) => {
  const ops = [
    { op: 'map_sg' as const, dir: 'to_device' as const, sg: THREAD_SG },
    { op: 'unmap' as const, handle: { ref: 0 } },
    { op: 'unmap' as const, handle: 99 },
  ];
  const a = await dmaemu.createSession({ layout: 'linux' });
  const b = await dmaemu.createSession({ layout: 'linux' });
  const packed = await a.batchBinary({ ops });
  t.same(packed, await b.batch({ ops }), 'same results, op for op');
  // Worked by hand as above: three 64/16/64 KiB segments from 0xfffc0000.
  t.same((packed.results[0] as { segments: unknown }).segments, [
    { dma_address: '0xfffc0000', dma_length: 65536 },
    { dma_address: '0xfffd0000', dma_length: 16384 },
    { dma_address: '0xfffd4000', dma_length: 65536 },
  ]);
  t.match(packed.results[2], { code: 'DMAEMU_HANDLE_NOT_FOUND' }, 'an op error travels as its JSON record');
  const err = await dmaemu.session('no-such-session').batchBinary({ ops }).then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof DmaemuHttpError && err.code === 'DMAEMU_SESSION_NOT_FOUND', 'an HTTP error is still DmaemuHttpError with its code');
  await a.close();
  await b.close();
});
