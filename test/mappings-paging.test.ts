// GET /mappings pages through live mappings in handle order (extension: a session may hold a
// million mappings, far more than one answer should carry).
import t from 'tap';
import { buildApp } from '../src/service/app.js';

t.test('?limit= and ?after= page through live mappings in handle order; next is null on the last page', async (t) => {
  const app = await buildApp({ logLevel: 'warn' });
  t.teardown(() => app.close());
  const id = (await app.inject({ method: 'POST', url: '/v1/sessions', payload: {} })).json<{ id: string }>().id;
  for (let i = 0; i < 5; i++) {
    await app.inject({ method: 'POST', url: `/v1/sessions/${id}/map_page`, payload: { phys: 0x80000000 + i * 4096, size: 4096, dir: 'to_device' } });
  }
  await app.inject({ method: 'POST', url: `/v1/sessions/${id}/unmap`, payload: { handle: 3 } }); // live: 1, 2, 4, 5
  const page = async (q: string) => (await app.inject({ method: 'GET', url: `/v1/sessions/${id}/mappings${q}` })).json<{ mappings: { handle: number }[]; next: number | null }>();
  const p1 = await page('?limit=2');
  t.same(p1.mappings.map((m) => m.handle), [1, 2]);
  t.equal(p1.next, 2);
  const p2 = await page(`?limit=2&after=${p1.next}`);
  t.same(p2.mappings.map((m) => m.handle), [4, 5], 'the unmapped handle 3 is skipped');
  t.equal(p2.next, null, 'nothing after handle 5');
  const all = await page('');
  t.same(all.mappings.map((m) => m.handle), [1, 2, 4, 5], 'default limit 10000 holds them all');
  const bad = await app.inject({ method: 'GET', url: `/v1/sessions/${id}/mappings?limit=0` });
  t.equal(bad.statusCode, 400);
  t.match(bad.json<{ message: string }>().message, /^querystring\.limit/);
});

t.test('a page also ends once its rows hold 4096 segments + IOVA ranges + phys entries, whatever limit says (API.md "Tables")', async (t) => {
  const app = await buildApp({ logLevel: 'warn', dataDir: null });
  t.teardown(() => app.close());
  const id = (await app.inject({ method: 'POST', url: '/v1/sessions', payload: { device: { dma_mask: '0xffffffffffff' } } })).json<{ id: string }>().id;
  // Each map_sg: 1024 page-aligned 4 KiB entries 8 KiB apart. linux lays them back to back in
  // one allocation and __finalise_sg merges runs up to max_segment_size 64 KiB = 16 entries, so
  // a row carries 1024 phys + 64 segments + 1 IOVA range = 1089 items. 3 rows hold 3267 ≤ 4096;
  // a 4th would make 4356: a page holds 3 rows.
  for (let k = 0; k < 5; k++) {
    const sg = Array.from({ length: 1024 }, (_, i) => ({ phys: 0x100000000 + (k * 1024 + i) * 8192, length: 4096 }));
    const r = await app.inject({ method: 'POST', url: `/v1/sessions/${id}/map_sg`, payload: { dir: 'to_device', sg } });
    t.equal(r.json<{ nents: number }>().nents, 64, `map_sg ${k}: 64 segments`);
  }
  const page = async (q: string) => (await app.inject({ method: 'GET', url: `/v1/sessions/${id}/mappings${q}` })).json<{ mappings: { handle: number }[]; next: number | null }>();
  const p1 = await page('?limit=100000');
  t.same(p1.mappings.map((m) => m.handle), [1, 2, 3], 'three rows fit the page');
  t.equal(p1.next, 3);
  const p2 = await page(`?limit=100000&after=${p1.next}`);
  t.same(p2.mappings.map((m) => m.handle), [4, 5]);
  t.equal(p2.next, null, 'the last page');
});

t.test('a row heavier than the whole bound still makes a page of one row (a 4096-entry scatterlist: 4096 phys + 256 segments + 1 range)', async (t) => {
  const app = await buildApp({ logLevel: 'warn', dataDir: null });
  t.teardown(() => app.close());
  const id = (await app.inject({ method: 'POST', url: '/v1/sessions', payload: { device: { dma_mask: '0xffffffffffff' } } })).json<{ id: string }>().id;
  for (let k = 0; k < 2; k++) {
    const sg = Array.from({ length: 4096 }, (_, i) => ({ phys: 0x100000000 + (k * 4096 + i) * 8192, length: 4096 }));
    await app.inject({ method: 'POST', url: `/v1/sessions/${id}/map_sg`, payload: { dir: 'to_device', sg } });
  }
  const p1 = (await app.inject({ method: 'GET', url: `/v1/sessions/${id}/mappings` })).json<{ mappings: { handle: number }[]; next: number | null }>();
  t.same(p1.mappings.map((m) => m.handle), [1], 'one row, never none');
  t.equal(p1.next, 1);
});
