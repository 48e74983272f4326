// The real server as child processes on one data dir (issue 23): the second refuses to start
// and names the holder (pid, host); a holder killed with -9 does not keep its lock; and a server
// whose stdout is a full disk keeps serving, its log lines on stderr and counted in /metrics.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path, { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listeningUrl } from './helpers/server-process.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tmp = mkdtempSync(join(tmpdir(), 'dmaemu-processes-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

function startServer(dir: string, stdout: 'pipe' | number = 'pipe'): { child: ChildProcess; stderr: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'src/service/server.ts')], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', DMAEMU_DATA_DIR: dir },
    stdio: ['ignore', stdout, 'pipe'],
  });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  return { child, stderr: () => err };
}

const exited = (child: ChildProcess): Promise<number | null> => new Promise((resolve) => child.once('exit', (code) => resolve(code)));

t.test('two services on one data dir: the second refuses to start and names the holder; a holder killed with -9 does not keep it', async (t) => {
  const dir = join(tmp, 'two');
  const first = startServer(dir);
  const url = await listeningUrl(first.child, first.stderr);
  t.teardown(() => void first.child.kill('SIGKILL'));
  const r = await fetch(`${url}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  const id = ((await r.json()) as { id: string }).id;

  const second = startServer(dir);
  const code = await exited(second.child);
  t.equal(code, 1, 'the second service exits with status 1');
  t.match(second.stderr(), `data dir ${dir} is in use by process ${String(first.child.pid)} on host ${hostname()}`, 'naming the holder: pid and host');

  first.child.kill('SIGKILL');
  await exited(first.child);
  const third = startServer(dir);
  const url3 = await listeningUrl(third.child, third.stderr);
  t.teardown(() => void third.child.kill('SIGKILL'));
  t.equal((await fetch(`${url3}/v1/sessions/${id}`)).status, 200, 'after kill -9 the next start takes the dead holder`s lock at once and restores the session');
  third.child.kill('SIGTERM');
  t.equal(await exited(third.child), 0);
});

t.test('a server whose stdout is a full disk (/dev/full) keeps serving; its log lines go to stderr, counted in /metrics', async (t) => {
  const { openSync, closeSync } = await import('node:fs');
  const { createServer } = await import('node:net');
  // A free loopback port (the server cannot print its URL: its stdout takes nothing).
  const port = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const a = probe.address();
      probe.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
  const full = openSync('/dev/full', 'w');
  t.teardown(() => closeSync(full));
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'src/service/server.ts')], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'info', DMAEMU_DATA_DIR: join(tmp, 'stdout-full') },
    stdio: ['ignore', full, 'pipe'],
  });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  t.teardown(() => void child.kill('SIGKILL'));
  const url = `http://127.0.0.1:${port}`;
  let up = false;
  for (let i = 0; i < 200 && !up && child.exitCode === null; i++) {
    up = await fetch(`${url}/healthz`).then((r) => r.ok, () => false);
    if (!up) await new Promise((r) => setTimeout(r, 100));
  }
  t.ok(up, 'it started');
  for (let i = 0; i < 20; i++) t.equal((await fetch(`${url}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status, 201);
  const metrics = await (await fetch(`${url}/metrics`)).text();
  t.match(metrics, /dmaemu_log_lines_lost_total\{outcome="stderr"\} [1-9]/, 'the lines stdout refused are counted as written to stderr');
  t.match(err, /"msg":"request completed"/, 'and they are on stderr');
  t.equal(child.exitCode, null, 'the process is alive');
  child.kill('SIGTERM');
  t.equal(await exited(child), 0, 'and stops cleanly');
});

