// The service starts with `npm start`'s entry point, answers /healthz on a real socket and
// exits 0 on SIGTERM (API.md "Service").
import { test } from 'tap';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { listeningUrl } from './helpers/server-process.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

test('server listens on HOST:PORT, prints its URL and exits 0 on SIGTERM', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/service/server.ts')], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const url = await listeningUrl(child);
  const res = await fetch(`${url}/healthz`);
  t.equal(res.status, 200);
  t.same(await res.json(), { status: 'ok', sessions: 0 });
  const code = await new Promise<number | null>((resolve) => {
    child.once('exit', (c) => resolve(c));
    child.kill('SIGTERM');
  });
  t.equal(code, 0, 'exit code after SIGTERM');
});
