// The Python client (clients/python/dmaemu_client.py) is generated from /openapi.json and kept in
// sync: a fresh generation must equal the committed file. When python3 is on this machine, its
// unittest suite (standard library only; the pytest-style example runs inside it) runs against a
// live service on 127.0.0.1.
import t from 'tap';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildApp } from '../src/service/app.js';
import { PYTHON_CLIENT, pythonSource } from '../scripts/generate-python-client.js';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

t.test('clients/python/dmaemu_client.py is what the generator makes of the live OpenAPI document', async (t) => {
  const fresh = await pythonSource();
  t.ok(fresh === readFileSync(PYTHON_CLIENT, 'utf8'), 'up to date (else: npm run client:python)');
  t.match(fresh, /def map_sg\(self, id: str, body: MapSgRequestInput, \*, pages: Optional\[bool\] = None, explain: Optional\[bool\] = None\) -> MapSgResult:/);
});

const python = await run('python3', ['--version']).then(
  (r) => r.stdout.trim(),
  () => null,
);

t.test(`the Python client's tests against a live service (${python ?? 'python3 is not installed here: nothing to run'})`, async (t) => {
  if (!python) return t.pass('no python3 on this machine');
  const app = await buildApp({ logLevel: 'silent', dataDir: null });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.close());
  const r = await run('python3', ['-m', 'unittest', 'discover', '-s', path.join(root, 'clients/python'), '-v'], {
    cwd: root,
    env: { ...process.env, DMAEMU_URL: url, PYTHONDONTWRITEBYTECODE: '1' },
  }).catch((e: { stdout?: string; stderr?: string; code?: number }) => ({ stdout: e.stdout ?? '', stderr: `${e.stderr ?? ''} (exit ${String(e.code)})` }));
  t.match(r.stderr, /\nRan 5 tests in [\d.]+s\n\nOK\n/, 'all five pass', { stderr: r.stderr });
});
