// The service as `npm start` runs it (src/service/server.ts in a child process) on 127.0.0.1 with an
// ephemeral port: the end-to-end flow over a real socket with fetch, the Prometheus text at
// /metrics, and graceful shutdown — a request in flight when SIGTERM arrives still completes
// with 200 and the process then exits 0 (API.md "Service", issue: in-flight requests finish).
import t from 'tap';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface Server {
  url: string;
  child: ChildProcessWithoutNullStreams;
  /** Everything the process printed on stdout so far (the URL line, then pino's JSON lines). */
  stdout: () => string;
  exited: Promise<number | null>;
}

async function startServer(): Promise<Server> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/service/server.ts')], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setInterval(() => {
      const m = /dmaemu listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m?.[1]) {
        clearInterval(timer);
        resolve(m[1]);
      }
    }, 20);
    void exited.then((code) => {
      clearInterval(timer);
      reject(new Error(`server exited early with ${code}: ${out}`));
    });
  });
  return { url, child, stdout: () => out, exited };
}

async function waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

type Json = Record<string, unknown>;

async function call(url: string, method: string, body?: unknown): Promise<{ status: number; body: Json }> {
  const res = await fetch(url, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  return { status: res.status, body: (await res.json()) as Json };
}

t.test('end to end over a real socket: create, map_sg, mappings, unmap, delete; /metrics; exit 0 on SIGINT', async (t) => {
  const srv = await startServer();
  t.teardown(() => {
    if (srv.child.exitCode === null) srv.child.kill('SIGKILL');
  });

  const created = await call(`${srv.url}/v1/sessions`, 'POST', { layout: 'linux' });
  t.equal(created.status, 201);
  const s = `${srv.url}/v1/sessions/${String(created.body.id)}`;

  // API.md's example list: one granule for 0x80001200+3584, two for 0x90000000+8192; 3 pfns
  // round to 4 at pfn 0xffffc; the second entry is concatenated (semantics §3).
  const sg = [
    { phys: '0x80001200', length: 3584 },
    { phys: '0x90000000', length: 8192 },
  ];
  const mapped = await call(`${s}/map_sg`, 'POST', { dir: 'to_device', sg });
  t.equal(mapped.status, 200);
  t.match(mapped.body, { handle: 1, nents: 1, segments: [{ dma_address: '0xffffc200', dma_length: 11776 }], iova: { start: '0xffffc000', size: 16384 } });

  const table = await call(`${s}/mappings`, 'GET');
  t.match(table.body, { mappings: [{ handle: 1, kind: 'map_sg', dir: 'to_device', nents: 2, segments: [{ dma_address: '0xffffc200', dma_length: 11776 }], phys: ['0x80001200', '0x90000000'] }] });

  const metrics = await fetch(`${srv.url}/metrics`);
  t.equal(metrics.status, 200);
  t.match(metrics.headers.get('content-type') ?? '', /^text\/plain/);
  const text = await metrics.text();
  t.match(text, /^dmaemu_sessions_live 1$/m, 'one live session');
  t.match(text, /^dmaemu_mappings_live 1$/m, 'one live mapping');
  t.match(text, /^dmaemu_iova_bytes_in_use [1-9]\d*$/m, 'IOVA bytes in use');
  t.match(text, /^# TYPE dmaemu_http_request_duration_seconds histogram$/m);
  t.match(text, /^dmaemu_http_request_duration_seconds_bucket\{[^}]*le="\+Inf"[^}]*route="\/v1\/sessions\/:id\/map_sg"[^}]*\} 1$/m, 'a bucket line for the map_sg route');
  t.match(text, /^dmaemu_http_request_duration_seconds_count\{[^}]*route="\/v1\/sessions"[^}]*\} 1$/m, 'a count line for session creation');

  const unmapped = await call(`${s}/unmap`, 'POST', { handle: 1 });
  t.same(unmapped.body, { handle: 1, iova: mapped.body.iova });
  t.same((await call(`${s}/mappings`, 'GET')).body, { mappings: [], next: null }, 'no mappings, no next page');

  const deleted = await call(s, 'DELETE');
  t.match(deleted.body, { leaked_mappings: 0, leaked_coherent: 0, leaks: [] });
  t.match(await call(s, 'GET'), { status: 404, body: { code: 'DMAEMU_SESSION_NOT_FOUND' } });

  t.match(srv.stdout(), /"msg":"request completed"/, 'pino logs one line per request at info');
  srv.child.kill('SIGINT');
  t.equal(await srv.exited, 0, 'exit code after SIGINT');
});

t.test('graceful shutdown: a request in flight when SIGTERM arrives completes with 200, then the process exits 0', async (t) => {
  const srv = await startServer();
  t.teardown(() => {
    if (srv.child.exitCode === null) srv.child.kill('SIGKILL');
  });
  const created = await call(`${srv.url}/v1/sessions`, 'POST', {});
  const id = String(created.body.id);

  // A big map_sg with page rows: 1024 entries of 64 KiB, 16 granules each → 16384 rows (the
  // DMAEMU_MAX_PAGE_ROWS default).
  const sg = Array.from({ length: 1024 }, (_, i) => ({ phys: '0x' + (0x100000000 + i * 0x20000).toString(16), length: 65536 }));
  const body = Buffer.from(JSON.stringify({ dir: 'to_device', sg }));
  const half = Math.floor(body.length / 2);

  // Send the headers and half the body, so the request is certainly in flight; SIGTERM; then
  // the rest once the server has started closing.
  const { port } = new URL(srv.url);
  let responseText = '';
  const response = new Promise<number>((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path: `/v1/sessions/${id}/map_sg?pages=true`, agent: false, headers: { 'content-type': 'application/json', 'content-length': body.length } },
      (res) => {
        res.setEncoding('utf8');
        res.on('data', (d: string) => (responseText += d));
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.write(body.subarray(0, half));
    setTimeout(() => {
      srv.child.kill('SIGTERM');
      waitFor(() => /shutting down/.test(srv.stdout()), 'the server to log "shutting down"').then(
        () => req.end(body.subarray(half)),
        reject,
      );
    }, 300);
  });

  t.equal(await response, 200, 'the in-flight request completed');
  const r = JSON.parse(responseText) as { nents: number; segments: unknown[]; pages: unknown[] };
  t.equal(r.nents, 1024, 'every 64 KiB entry is its own segment (max_segment_size 64 KiB)');
  t.equal(r.segments.length, 1024);
  t.equal(r.pages.length, 1024 * 16, 'one row per 4 KiB granule');
  t.equal(await srv.exited, 0, 'exit code after SIGTERM');
  const newConn = await fetch(`${srv.url}/healthz`).then(
    (res) => res.status,
    () => 'refused',
  );
  t.equal(newConn, 'refused', 'nothing listens afterwards');
});
