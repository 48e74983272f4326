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
