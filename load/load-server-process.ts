// Starts load/load-server in its own process for the HTTP load scripts (load-http.ts,
// load-persist.ts) and stops it: the service must not share a CPU-time budget with autocannon.

import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Resolves with the URL the server prints once it listens; `env` is added to this process's. */
export function startServer(env: Record<string, string>): Promise<{ url: string; child: ChildProcess }> {
  // Runs the compiled server when there is one (npm run load builds first), else through tsx.
  const isTs = import.meta.url.endsWith('.ts');
  const script = path.join(here, isTs ? 'load-server.ts' : 'load-server.js');
  // LOAD_PROFILE_DIR: the server writes a V8 CPU profile there when it stops (npm run load -- profiling).
  const prof = process.env.LOAD_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.LOAD_PROFILE_DIR}`] : [];
  // The same V8 flags `npm start` and the image use (see load/README.md, "pretenuring").
  const args = ['--max-semi-space-size=64', '--no-allocation-site-pretenuring', ...prof, ...(isTs ? ['--import', 'tsx', script] : [script])];
  const child = spawn(process.execPath, args, { env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'info', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  return listening(child);
}

/**
 * The service's own entry point (src/service/server, as `npm start` runs it) with these V8 flags,
 * on 127.0.0.1 with a free port, memory only and quiet: for the memory scripts, which need the
 * real process (its heap limit sets the default budget). Compiled when this file is, else tsx.
 */
export function startService(v8Flags: string[]): Promise<{ url: string; child: ChildProcess }> {
  const isTs = import.meta.url.endsWith('.ts');
  const script = path.join(here, '../src/service', isTs ? 'server.ts' : 'server.js');
  const child = spawn(process.execPath, [...v8Flags, ...(isTs ? ['--import', 'tsx'] : []), script], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'warn', DMAEMU_DATA_DIR: process.env.DMAEMU_DATA_DIR ?? 'off' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  process.on('exit', () => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return listening(child);
}

/** Resolves with the URL a server child prints once it listens; rejects if it exits first. */
function listening(child: ChildProcess): Promise<{ url: string; child: ChildProcess }> {
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer): void => {
      out += d.toString();
      const m = /listening on (http:\/\/[^\s"]+)/.exec(out); // a pino line: the URL ends at the quote
      if (m?.[1]) {
        // From here on the server's per-request log lines go nowhere, as they would to a file.
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        resolve({ url: m[1], child });
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`load server exited early (${code}): ${out}`)));
  });
}

/** SIGTERM, then SIGKILL after 5 s; resolves once the process is gone. */
export function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
