// The request log: exactly one info line per request, written when the request completes, with
// method, route pattern (which names the op), session id, status and duration as flat fields
// (README "Errors, limits and configuration": LOG_LEVEL=info gives one line per request).
import t from 'tap';
import { buildApp } from '../src/service/app.js';

interface Line {
  level: number;
  msg: string;
  method?: string;
  route?: string;
  session?: string | null;
  status?: number;
  ms?: number;
}

async function appWithLog() {
  const lines: Line[] = [];
  const app = await buildApp({ logLevel: 'info', logStream: { write: (s: string) => void lines.push(JSON.parse(s) as Line) } });
  t.teardown(() => app.close());
  // Start-up lines (e.g. the store saying where it keeps its data) are not request lines.
  await app.ready();
  lines.length = 0;
  return { app, lines };
}

t.test('a map_sg logs one line: method, route pattern, session id, status 200, duration', async (t) => {
  const { app, lines } = await appWithLog();
  const created = await app.inject({ method: 'POST', url: '/v1/sessions', payload: {} });
  const id = created.json<{ id: string }>().id;
  lines.length = 0;
  const res = await app.inject({ method: 'POST', url: `/v1/sessions/${id}/map_sg`, payload: { dir: 'to_device', sg: [{ phys: '0x80000000', length: 4096 }] } });
  t.equal(res.statusCode, 200);
  t.equal(lines.length, 1, 'one line for the request, none when it came in');
  t.match(lines[0], { level: 30, msg: 'request completed', method: 'POST', route: '/v1/sessions/:id/map_sg', session: id, status: 200 });
  t.type(lines[0]?.ms, 'number');
  t.ok((lines[0]?.ms ?? -1) >= 0, 'duration in milliseconds');
});

t.test('an HTTP error is logged with its status; a route without a session says session null', async (t) => {
  const { app, lines } = await appWithLog();
  await app.inject({ method: 'POST', url: '/v1/sessions/nosuchsession/unmap', payload: { handle: 1 } });
  t.equal(lines.length, 1, 'one line: a 4xx writes no separate error line');
  t.match(lines[0], { method: 'POST', route: '/v1/sessions/:id/unmap', session: 'nosuchsession', status: 404 });
  lines.length = 0;
  await app.inject({ method: 'GET', url: '/healthz' });
  t.match(lines.filter((l) => l.msg === 'request completed'), [{ method: 'GET', route: '/healthz', session: null, status: 200 }]);
});

t.test('at LOG_LEVEL=warn a successful request writes nothing', async (t) => {
  const lines: string[] = [];
  const app = await buildApp({ logLevel: 'warn', logStream: { write: (s: string) => void lines.push(s) } });
  t.teardown(() => app.close());
  await app.ready();
  lines.length = 0;
  await app.inject({ method: 'GET', url: '/healthz' });
  t.same(lines, []);
});
