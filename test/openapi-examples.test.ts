// The examples /openapi.json shows are true: run in order on a fresh service, each example request
// (src/service/openapi-steps.ts) gets the documented answer (src/service/openapi-examples.ts);
// every operation that takes a JSON body shows an example of it, every JSON answer one too, and
// every error response a body with a code documented for that status.
import t from 'tap';
import { ERROR_CODES } from '../src/core/errors.js';
import { buildApp } from '../src/service/app.js';
import { EXAMPLES_FILE, examplesSource } from '../scripts/generate-openapi-examples.js';
import { readFileSync } from 'node:fs';

type Media = { schema?: unknown; example?: unknown; examples?: Record<string, { value: { statusCode: number; code: string } }> };
type Op = { operationId: string; requestBody?: { content: Record<string, Media> }; responses: Record<string, { content?: Record<string, Media> }> };

const app = await buildApp({ logLevel: 'silent' });
t.teardown(() => app.close());
const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, Record<string, Op>> }>();
const ops = Object.values(doc.paths).flatMap((methods) => Object.values(methods));

t.test('each example answer is what the service answers to the example requests, in order', async (t) => {
  const fresh = await examplesSource();
  t.equal(fresh, readFileSync(EXAMPLES_FILE, 'utf8'), 'src/service/openapi-examples.ts is current (else: npm run openapi:examples)');
});

t.test('every JSON request body and every JSON answer has an example', async (t) => {
  const missing: string[] = [];
  for (const op of ops) {
    if (op.requestBody?.content['application/json'] && op.requestBody.content['application/json'].example === undefined) missing.push(`${op.operationId} request`);
    for (const [status, r] of Object.entries(op.responses)) {
      const m = r.content?.['application/json'];
      if (!m || op.operationId === 'openapi') continue; // /openapi.json answers this very document
      if (status.startsWith('2') && m.example === undefined) missing.push(`${op.operationId} ${status}`);
      if (/^[45]/.test(status) && !m.examples) missing.push(`${op.operationId} ${status}`);
    }
  }
  t.same(missing, []);
});

t.test('every error example carries a code documented with that status', async (t) => {
  const wrong: string[] = [];
  for (const op of ops) {
    for (const [status, r] of Object.entries(op.responses)) {
      for (const [name, ex] of Object.entries(r.content?.['application/json']?.examples ?? {})) {
        const doc = ERROR_CODES[ex.value.code as keyof typeof ERROR_CODES];
        if (!doc || String(doc.status) !== status || ex.value.statusCode !== doc.status || name !== ex.value.code) wrong.push(`${op.operationId} ${status} ${name}`);
      }
    }
  }
  t.same(wrong, []);
  const sample = doc.paths['/v1/sessions/{id}/map_sg']?.post?.responses['404']?.content?.['application/json']?.examples;
  t.same(Object.keys(sample ?? {}), ['DMAEMU_SESSION_NOT_FOUND', 'DMAEMU_HANDLE_NOT_FOUND'], 'map_sg: the two 404s its description names');
});
