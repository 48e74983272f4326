// docs/api.md is the contract users read (README points there): it must name every path the
// service serves, every error code with its status, and every DMAEMU_* variable the service
// reads. Adding any of those without documenting it fails here, naming what is missing.
import t from 'tap';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp } from '../src/service/app.js';
import { ERROR_CODES } from '../src/core/errors.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const apiMd = readFileSync(path.join(root, 'docs/api.md'), 'utf8');

/** How docs/api.md writes an operation: session-scoped POSTs as `/op` under "DMA operations" or "Memory", the rest in full. */
function asWritten(method: string, p: string): string {
  const op = /^\/v1\/sessions\/\{id\}(\/.+)$/.exec(p);
  return method === 'post' && op ? `\`${op[1] ?? ''}\`` : `\`${method.toUpperCase()} ${p}\``;
}

t.test('every operation of /openapi.json is in docs/api.md', async (t) => {
  const app = await buildApp({ logLevel: 'silent' });
  t.teardown(() => app.close());
  const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, Record<string, unknown>> }>();
  const ops = Object.entries(doc.paths).flatMap(([p, methods]) => Object.keys(methods).map((m) => asWritten(m, p)));
  t.ok(ops.length >= 20, `${ops.length} operations`);
  t.same(ops.filter((o) => !apiMd.includes(o)), [], 'operations docs/api.md does not name (add them there)');
});

t.test('every error code is in docs/api.md with its HTTP status', async (t) => {
  const missing = Object.entries(ERROR_CODES)
    .filter(([code, { status }]) => !apiMd.includes(`| \`${code}\` | ${status} |`))
    .map(([code, { status }]) => `${code} (${status})`);
  t.same(missing, [], 'codes missing from the error table of docs/api.md');
});

t.test('every DMAEMU_* variable the service reads is in docs/api.md', async (t) => {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = path.join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts')) files.push(p);
    }
  };
  walk(path.join(root, 'src'));
  const names = new Set<string>();
  for (const f of files) for (const m of readFileSync(f, 'utf8').matchAll(/\bDMAEMU_[A-Z0-9_]*[A-Z0-9]\b/g)) names.add(m[0]);
  const variables = [...names].filter((n) => !(n in ERROR_CODES));
  t.ok(variables.includes('DMAEMU_MAX_SESSIONS'), 'the scan finds the variables (not vacuous)');
  t.same(variables.filter((v) => !apiMd.includes(v)).sort(), [], 'variables missing from docs/api.md');
});
