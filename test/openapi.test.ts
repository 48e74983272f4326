// /openapi.json is checked by an independent OpenAPI 3.x validator (@seriousme/openapi-schema-
// validator: the official 3.1 JSON schemas through ajv), and against the app itself: every
// route the app registers is in the document (routes collected with an onRoute hook on a
// wrapped Fastify factory, so nothing is parsed out of printRoutes), and every path the
// contract (docs/api.md) names is there too.
import t from 'tap';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Validator } from '@seriousme/openapi-schema-validator';
import * as fastifyModule from 'fastify';
import type { FastifyInstance, RouteOptions } from 'fastify';
import type { buildApp as BuildApp } from '../src/service/app.js';

interface Route {
  method: string;
  url: string;
  hidden: boolean;
}

/** buildApp with Fastify's factory wrapped so that every route registered is recorded. */
async function appWithRouteLog(): Promise<{ app: FastifyInstance; routes: Route[] }> {
  const routes: Route[] = [];
  const factory = ((opts?: Parameters<typeof fastifyModule.default>[0]) => {
    const app = fastifyModule.default(opts);
    app.addHook('onRoute', (r: RouteOptions) => {
      const methods = Array.isArray(r.method) ? r.method : [r.method];
      const hidden = r.schema?.hide === true;
      for (const m of methods) routes.push({ method: m.toLowerCase(), url: r.url, hidden });
    });
    return app;
  }) as typeof fastifyModule.default;
  const { buildApp } = await t.mockImport<{ buildApp: typeof BuildApp }>('../src/service/app.js', {
    fastify: { ...fastifyModule, default: factory },
  });
  const app = await buildApp({ logLevel: 'silent' });
  await app.ready();
  return { app, routes };
}

const { app, routes } = await appWithRouteLog();
t.teardown(() => app.close());

interface OpenApiDoc {
  openapi: string;
  paths: Record<string, Record<string, { operationId?: string; tags?: string[] }>>;
}

async function fetchDoc(app: FastifyInstance): Promise<OpenApiDoc> {
  const res = await app.inject({ method: 'GET', url: '/openapi.json' });
  if (res.statusCode !== 200) throw new Error(`/openapi.json → ${res.statusCode}`);
  return res.json<OpenApiDoc>();
}

/** Fastify's `/v1/sessions/:id/map_sg` is OpenAPI's `/v1/sessions/{id}/map_sg`. */
const toOpenApiPath = (url: string): string => url.replace(/:([A-Za-z_]\w*)/g, '{$1}');

t.test('/openapi.json is a valid OpenAPI 3.1 document (independent validator)', async (t) => {
  const doc = await fetchDoc(app);
  t.equal(doc.openapi, '3.1.0');
  const validator = new Validator({ strict: false });
  const result = await validator.validate(doc as unknown as Record<string, unknown>);
  t.equal(validator.version, '3.1', 'validated against the 3.1 schema');
  t.ok(result.valid, 'the validator accepts the document', { errors: result.errors });
  // The validator is not vacuous: the same document without `info` is refused.
  const { info: _info, ...broken } = doc as unknown as Record<string, unknown>;
  t.notOk((await new Validator({ strict: false }).validate(broken)).valid, 'a document without info is refused');
});

t.test('every route the app registers is in the document, except Swagger UI’s own hidden /docs routes and the / redirect', async (t) => {
  const doc = await fetchDoc(app);
  const documented = new Set(Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p}`)));
  const gets = new Set(routes.filter((r) => r.method === 'get').map((r) => r.url));
  const expected = routes.filter(
    (r) =>
      !(r.hidden && (r.url === '/docs' || r.url.startsWith('/docs/'))) &&
      // GET / only redirects to /ui (docs/api.md lists it): no operation a client calls.
      !(r.hidden && r.url === '/') &&
      // HEAD is Fastify's automatic twin of each GET; OpenAPI lists the GET.
      !(r.method === 'head' && gets.has(r.url)),
  );
  t.ok(expected.length >= 20, `${expected.length} routes to look for`);
  for (const r of expected) t.ok(documented.has(`${r.method} ${toOpenApiPath(r.url)}`), `${r.method.toUpperCase()} ${r.url} is documented`);
  const registered = new Set(routes.map((r) => `${r.method} ${toOpenApiPath(r.url)}`));
  for (const op of documented) t.ok(registered.has(op), `documented ${op} is a real route`);
});

t.test('every operation has a unique operationId and a tag; map_sg is tagged dma', async (t) => {
  const doc = await fetchDoc(app);
  const ids: string[] = [];
  for (const [p, ops] of Object.entries(doc.paths)) {
    for (const [m, op] of Object.entries(ops)) {
      t.ok(op.operationId, `${m} ${p} has an operationId`);
      t.ok(op.tags?.length, `${m} ${p} has a tag`);
      if (op.operationId) ids.push(op.operationId);
    }
  }
  t.equal(new Set(ids).size, ids.length, 'operationIds are unique');
  t.match(doc.paths['/v1/sessions/{id}/map_sg']?.post, { operationId: 'map_sg', tags: ['dma'] });
});

// The contract's paths (docs/api.md), in its own order (sessions, DMA operations, memory,
// tables, service).
const API_MD_PATHS: [string, string][] = [
  ['post', '/v1/sessions'],
  ['get', '/v1/sessions/{id}'],
  ['delete', '/v1/sessions/{id}'],
  ...['map_sg', 'map_page', 'unmap', 'sync', 'alloc_coherent', 'free_coherent', 'batch', 'flush'].map((p): [string, string] => ['post', `/v1/sessions/{id}/${p}`]),
  ...['cpu/write', 'cpu/read', 'device/write', 'device/read'].map((p): [string, string] => ['post', `/v1/sessions/{id}/${p}`]),
  ...['mappings', 'debug', 'faults'].map((p): [string, string] => ['get', `/v1/sessions/{id}/${p}`]),
  ['get', '/healthz'],
  ['get', '/openapi.json'],
  ['get', '/metrics'],
];

/** How docs/api.md writes a path: session-scoped POSTs as `/op` under their section, the rest in full. */
function asWritten(method: string, p: string): string {
  const op = /^\/v1\/sessions\/\{id\}(\/.+)$/.exec(p);
  return method === 'post' && op ? `\`${op[1] ?? ''}\`` : `\`${method.toUpperCase()} ${p}\``;
}

t.test('every path docs/api.md names is in the document', async (t) => {
  // Guard against this list drifting from the contract users read.
  const apiMd = readFileSync(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../docs/api.md'), 'utf8');
  for (const [m, p] of API_MD_PATHS) t.ok(apiMd.includes(asWritten(m, p)), `docs/api.md names ${asWritten(m, p)}`);
  t.ok(apiMd.includes('`GET /docs`'), 'docs/api.md names `GET /docs`');
  const doc = await fetchDoc(app);
  for (const [m, p] of API_MD_PATHS) t.ok(doc.paths[p]?.[m], `${m.toUpperCase()} ${p}`);
});

t.test('info.version is the package version (what Swagger UI shows)', async (t) => {
  const pkg = JSON.parse(readFileSync(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../package.json'), 'utf8')) as { version: string };
  const doc = (await fetchDoc(app)) as unknown as { info: { version: string } };
  t.equal(doc.info.version, pkg.version);
});

t.test(
  'GET /docs, which docs/api.md lists under Service, is described in the document',
  async (t) => {
      const doc = await fetchDoc(app);
    t.ok(doc.paths['/docs']?.get, 'GET /docs');
  },
);

t.test(
  'no schema admits a negative number: every integer on the wire is a handle, count, length or size',
  async (t) => {
    const doc = await fetchDoc(app);
    const negative: string[] = [];
    const walk = (node: unknown, at: string): void => {
      if (typeof node !== 'object' || node === null) return;
      const min = (node as { minimum?: unknown }).minimum;
      if (typeof min === 'number' && min < 0) negative.push(at);
      for (const [k, v] of Object.entries(node)) walk(v, `${at}/${k}`);
    };
    walk(doc, '#');
    t.same(negative, [], 'schemas with a negative minimum');
  },
);
