// Hostile input over every endpoint (issue 22: no request can hurt another tenant). The real
// server runs as a child process with a 512 MiB V8 heap and the default memory budget; every
// case sends one request a careless or hostile harness could send and accepts only
//   - a clear 4xx in the error shape of API.md whose message (or code) names the offending
//     field or limit, or
//   - the correct answer (for small cases worked by hand from the Linux rules),
// never a 5xx, a crash or a hang. After every case a bystander session, created at the start,
// must still answer exactly as it did: same summary, mappings, findings, faults and bytes.
//
// Bounded: every request has a deadline. A case whose request gets no answer in time, or that
// kills the server, fails with what happened; the server is then killed (SIGKILL) and started
// again with a new bystander, so one bad case cannot hide or break the others. The child is
// killed when the file ends.
//
// Fixed rules used below (default session: `linux`, 32-bit masks, 4 KiB pages and granule,
// max_segment_size 64 KiB; a fresh domain allocates top-down from the 32-bit limit, n pfns
// rounded up to a power of two and aligned to it, so 1 pfn lands at 0xfffff000 and 4 at
// 0xffffc000; semantics §2, §5):
//   - map_page of 4096 bytes at 0x80000000 → dma_address 0xfffff000.
//   - API.md's map_sg {3584 @ 0x80001200, 8192 @ 0x90000000}: iova_off 0x200, 0x200 + 3584 =
//     4096 ends the first page, so the two entries lie back to back from 0xffffc200; 0x200 +
//     11776 = 12288 rounds to 3 pages, allocated as 4 (power of two) at 0xffffc000; one segment
//     of 11776 bytes (≤ 64 KiB): segments [{0xffffc200, 11776}], iova {0xffffc000, 16384}.

import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { asText, errorViolations, type Obj } from './helpers/http.js';
import { listeningUrl } from './helpers/server-process.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Deadline of an ordinary request, and of a case built to cost the server a lot. */
const TIMEOUT_MS = 10_000;
const HEAVY_TIMEOUT_MS = 10_000;

// ---- the server under attack ----------------------------------------------------------------

interface Server {
  child: ChildProcess;
  url: string;
  stderr: () => string;
  /** The bystander session's id and what it answered right after it was set up. */
  bystander: string;
  fingerprint: string;
}

let server: Server | undefined;

async function startServer(): Promise<Server> {
  const child = spawn(process.execPath, ['--max-old-space-size=512', '--import', 'tsx', path.join(root, 'src/service/server.ts')], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'warn', DMAEMU_DATA_DIR: 'off' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
  });
  const url = await listeningUrl(child, () => err);
  const s: Server = { child, url, stderr: () => err, bystander: '', fingerprint: '' };
  s.bystander = await setUpBystander(url);
  s.fingerprint = await fingerprint(s);
  return s;
}

function killServer(s: Server): Promise<void> {
  return new Promise((resolve) => {
    if (s.child.exitCode !== null || s.child.signalCode !== null) return resolve();
    s.child.once('exit', () => resolve());
    s.child.kill('SIGKILL');
  });
}

t.teardown(async () => {
  if (server) await killServer(server);
});

interface Sent {
  method?: 'GET' | 'POST' | 'DELETE' | 'PUT';
  path: string;
  /** An object is sent as JSON (content-type application/json unless headers say otherwise). */
  body?: unknown;
  raw?: string | Buffer;
  headers?: Record<string, string>;
  timeoutMs?: number;
  /**
   * Sent over a raw TCP connection with these headers as they are (fetch cannot announce a
   * content-length it does not send): the answer is whatever arrives before the server closes or
   * stops talking. For a refusal the server gives from the headers alone.
   */
  overTcp?: boolean;
}

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  body: Obj;
  bytes: number;
}

/** One request with a deadline; a missing answer is an Error naming what happened. */
async function send(url: string, r: Sent): Promise<Answer> {
  if (r.overTcp) return sendOverTcp(url, r);
  const headers: Record<string, string> = { ...r.headers };
  let body: string | Buffer | undefined;
  if (r.raw !== undefined) body = r.raw;
  else if (r.body !== undefined) {
    body = JSON.stringify(r.body);
    headers['content-type'] ??= 'application/json';
  }
  const method = r.method ?? (body === undefined ? 'GET' : 'POST');
  const res = await fetch(`${url}${r.path}`, { method, headers, body, signal: AbortSignal.timeout(r.timeoutMs ?? TIMEOUT_MS) });
  const buf = Buffer.from(await res.arrayBuffer());
  const text = buf.toString('utf8');
  let parsed: Obj = {};
  if ((res.headers.get('content-type') ?? '').startsWith('application/json') && text.length > 0) parsed = JSON.parse(text) as Obj;
  return { status: res.status, headers: res.headers, text, body: parsed, bytes: buf.length };
}

async function sendOverTcp(url: string, r: Sent): Promise<Answer> {
  const { hostname, port } = new URL(url);
  const head = [`${r.method ?? 'POST'} ${r.path} HTTP/1.1`, `Host: ${hostname}`, ...Object.entries(r.headers ?? {}).map(([k, v]) => `${k}: ${v}`), '', ''].join('\r\n');
  const got = await new Promise<string>((resolve, reject) => {
    let data = '';
    const sock = connect(Number(port), hostname, () => sock.write(head + String(r.raw ?? '')));
    const timer = setTimeout(() => {
      sock.destroy();
      reject(Object.assign(new Error('no answer'), { name: 'TimeoutError' }));
    }, r.timeoutMs ?? TIMEOUT_MS);
    sock.on('data', (d: Buffer) => {
      data += d.toString();
      const [h, body] = data.split('\r\n\r\n');
      const len = /content-length: (\d+)/i.exec(h ?? '');
      if (len && body !== undefined && Buffer.byteLength(body) >= Number(len[1])) {
        clearTimeout(timer);
        sock.destroy();
        resolve(data);
      }
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(data);
    });
  });
  const [h = '', text = ''] = got.split('\r\n\r\n');
  const status = Number(/^HTTP\/1\.1 (\d+)/.exec(h)?.[1] ?? 0);
  const headers = new Headers();
  for (const line of h.split('\r\n').slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers.append(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  const body = (headers.get('content-type') ?? '').startsWith('application/json') && text ? (JSON.parse(text) as Obj) : {};
  return { status, headers, text, body, bytes: Buffer.byteLength(text) };
}

/** The API.md scatterlist: one segment at 0xffffc200 in a fresh default session (worked above). */
const API_SG = [
  { phys: '0x80001200', length: 3584 },
  { phys: '0x90000000', length: 8192 },
];

async function setUpBystander(url: string): Promise<string> {
  const created = await send(url, { path: '/v1/sessions', body: {} });
  if (created.status !== 201) throw new Error(`bystander create answered ${created.status}: ${created.text}`);
  const id = created.body.id as string;
  const calls: Sent[] = [
    { path: `/v1/sessions/${id}/map_sg`, body: { dir: 'to_device', sg: API_SG } }, // handle 1
    { path: `/v1/sessions/${id}/map_page`, body: { phys: '0x80000000', size: 4096, dir: 'from_device' } }, // handle 2
    { path: `/v1/sessions/${id}/alloc_coherent`, body: { size: 8192 } }, // handle 3
    { path: `/v1/sessions/${id}/cpu/write`, body: { phys: '0x80001200', data: Buffer.from('bystander bytes').toString('base64') } },
  ];
  for (const c of calls) {
    const r = await send(url, c);
    if (r.status !== 200) throw new Error(`bystander setup ${c.path} answered ${r.status}: ${r.text}`);
  }
  return id;
}

/** Everything the bystander answers about itself; reading changes none of it. */
async function fingerprint(s: Server): Promise<string> {
  const base = `/v1/sessions/${s.bystander}`;
  const parts: string[] = [];
  for (const p of ['', '/mappings', '/debug', '/faults']) {
    const r = await send(s.url, { path: `${base}${p}`, timeoutMs: 5000 });
    parts.push(`${r.status} ${r.text}`);
  }
  const read = await send(s.url, { path: `${base}/cpu/read`, body: { phys: '0x80001200', length: 15 }, timeoutMs: 5000 });
  parts.push(`${read.status} ${read.text}`);
  return parts.join('\n');
}

async function ensureServer(): Promise<Server> {
  server ??= await startServer();
  return server;
}

// ---- cases ------------------------------------------------------------------------------------

interface Ctx {
  url: string;
  /** A fresh default session of this case (deleted after it). */
  s: string;
  /** The bystander's id: cases may read it or use its handles elsewhere, never change it. */
  by: string;
}

interface Case {
  name: string;
  /** The scratch session's create body (default {}). */
  session?: unknown;
  /** Calls on the scratch session before the hostile one (each must answer 2xx). */
  setup?: (ctx: Ctx) => Sent[];
  req: (ctx: Ctx) => Sent;
  /** A 4xx is accepted when its message matches (the field or limit it names). */
  names?: RegExp;
  /** A 4xx is accepted only with one of these codes (the contract fixes it). */
  codes?: string[];
  /** A 2xx/3xx is accepted when this passes (the correct answer); without it, only a 4xx is. */
  ok?: (t: Test, a: Answer, ctx: Ctx) => void;
  heavy?: boolean;
}

const cases: Case[] = [];
const add = (c: Case): void => void cases.push(c);
const sess = (ctx: Ctx, p = ''): string => `/v1/sessions/${ctx.s}${p}`;
const hex = (n: number | bigint): string => `0x${n.toString(16)}`;

/** 2xx answers that only need the status and a JSON body (e.g. an accepted odd-but-valid input). */
const okStatus =
  (status: number) =>
  (t: Test, a: Answer): void => {
    t.equal(a.status, status, `answered ${status}`);
  };

/** A /batch answer whose single result is an HTTP error body naming `field`. */
const batchResultNames =
  (index: number, field: RegExp) =>
  (t: Test, a: Answer): void => {
    t.equal(a.status, 200);
    const r = ((a.body.results ?? []) as Obj[])[index] ?? {};
    t.ok(typeof r.code === 'string' && typeof r.statusCode === 'number' && r.statusCode >= 400 && r.statusCode < 500, `result ${index} is a 4xx error body: ${JSON.stringify(r).slice(0, 200)}`);
    t.match(asText(r.message), field, `result ${index} names ${String(field)}`);
  };

// -- sessions: create ----------------------------------------------------------------------------

add({
  name: 'create {} → 201 with the defaults Linux gives a device without dma_parms (semantics §2)',
  req: () => ({ path: '/v1/sessions', body: {} }),
  ok: (t, a) => {
    t.equal(a.status, 201);
    const c = a.body.config as Obj;
    t.equal(c.layout, 'linux');
    t.equal((c.device as Obj).dma_mask, '0xffffffff');
    t.equal((c.device as Obj).max_segment_size, 65536);
  },
});
add({ name: 'create with no body at all → 201 (API.md: an empty body or none)', req: () => ({ path: '/v1/sessions', method: 'POST' }), ok: okStatus(201), names: /body/ });
add({ name: 'create with an unknown field → 400 naming it', req: () => ({ path: '/v1/sessions', body: { foo: 1 } }), names: /foo/ });
add({ name: 'create with a __proto__ key → 400 (prototype poisoning refused)', req: () => ({ path: '/v1/sessions', raw: '{"__proto__":{"polluted":1}}', headers: { 'content-type': 'application/json' } }), names: /proto/i });
add({
  name: 'create with constructor.prototype → 400 (constructor poisoning refused)',
  req: () => ({ path: '/v1/sessions', raw: '{"constructor":{"prototype":{"polluted":1}}}', headers: { 'content-type': 'application/json' } }),
  names: /constructor|prototype/i,
});
add({ name: 'create with device.dma_mask 0 → 400 (dma_set_mask refuses a zero mask)', req: () => ({ path: '/v1/sessions', body: { device: { dma_mask: '0x0' } } }), names: /dma_mask/ });
add({ name: 'create with device.dma_mask 2^64 as hex → 400 naming dma_mask', req: () => ({ path: '/v1/sessions', body: { device: { dma_mask: '0x10000000000000000' } } }), names: /dma_mask/ });
add({ name: 'create with device.dma_mask 2^64 as a JSON number → 400 naming dma_mask', req: () => ({ path: '/v1/sessions', raw: '{"device":{"dma_mask":18446744073709551616}}', headers: { 'content-type': 'application/json' } }), names: /dma_mask/ });
add({ name: 'create with device.dma_mask −1 → 400 naming dma_mask', req: () => ({ path: '/v1/sessions', body: { device: { dma_mask: -1 } } }), names: /dma_mask/ });
add({ name: 'create with device.dma_mask "NaN" → 400 naming dma_mask', req: () => ({ path: '/v1/sessions', body: { device: { dma_mask: 'NaN' } } }), names: /dma_mask/ });
add({ name: 'create with device.dma_mask "Infinity" → 400 naming dma_mask', req: () => ({ path: '/v1/sessions', body: { device: { dma_mask: 'Infinity' } } }), names: /dma_mask/ });
add({ name: 'create with a 1000-digit hex mask (overflow) → 400 naming dma_mask', req: () => ({ path: '/v1/sessions', body: { device: { dma_mask: `0x${'f'.repeat(1000)}` } } }), names: /dma_mask/ });
add({ name: 'create with device.segment_boundary_mask not 2^n − 1 → 400 naming it', req: () => ({ path: '/v1/sessions', body: { device: { segment_boundary_mask: '0x1234' } } }), names: /segment_boundary_mask/ });
add({ name: 'create with device.max_segment_size 1e308 → 400 naming max_segment_size', req: () => ({ path: '/v1/sessions', body: { device: { max_segment_size: 1e308 } } }), names: /max_segment_size/ });
add({ name: 'create with a layout carrying a NUL → 400 naming layout', req: () => ({ path: '/v1/sessions', body: { layout: 'linux\u0000' } }), names: /layout/ });
add({ name: 'create with a unicode look-alike layout "lіnux" (Cyrillic і) → 400 naming layout', req: () => ({ path: '/v1/sessions', body: { layout: 'l\u0456nux' } }), names: /layout/ });
add({ name: 'create with a 1 MiB layout string → 400 naming layout', req: () => ({ path: '/v1/sessions', body: { layout: 'x'.repeat(1 << 20) } }), names: /layout/ });
add({ name: 'create with page_size 3000 → 400 naming page_size', req: () => ({ path: '/v1/sessions', body: { page_size: 3000 } }), names: /page_size/ });
add({ name: 'create with iommu.granule above page_size → 400 naming granule', req: () => ({ path: '/v1/sessions', body: { page_size: 4096, iommu: { granule: 65536 } } }), names: /granule/ });
add({ name: 'create with an aperture end below its start → 400 naming aperture', req: () => ({ path: '/v1/sessions', body: { iommu: { aperture: { start: '0x100000', end: '0x1000' } } } }), names: /aperture/ });
add({
  name: 'create with 65 reserved ranges (at most 64) → 400 naming reserved',
  req: () => ({ path: '/v1/sessions', body: { iommu: { reserved: Array.from({ length: 65 }, (_, i) => ({ start: hex(0x10000000 + i * 0x100000), end: hex(0x10000fff + i * 0x100000) })) } } }),
  names: /reserved/,
});
add({ name: 'create with memory_limit 1e300 → 400 naming memory_limit', req: () => ({ path: '/v1/sessions', body: { memory_limit: 1e300 } }), names: /memory_limit/ });
add({ name: 'create with memory_limit below 4096 → 400 naming memory_limit', req: () => ({ path: '/v1/sessions', body: { memory_limit: 1 } }), names: /memory_limit/ });
add({
  name: 'create with a 2^50-byte swiotlb pool → 4xx naming swiotlb or the budget',
  req: () => ({ path: '/v1/sessions', body: { swiotlb: { size: 2 ** 50 } } }),
  names: /swiotlb|DMAEMU_MEMORY_BUDGET|budget/i,
});
add({ name: 'create with a swiotlb size not a multiple of 2048 → 400 naming swiotlb.size', req: () => ({ path: '/v1/sessions', body: { swiotlb: { size: 3000 } } }), names: /swiotlb/ });
add({
  name: 'create with a duplicated key → JSON takes the last one (arm-legacy)',
  req: () => ({ path: '/v1/sessions', raw: '{"layout":"linux","layout":"arm-legacy"}', headers: { 'content-type': 'application/json' } }),
  ok: (t, a) => {
    t.equal(a.status, 201);
    t.equal((a.body.config as Obj).layout, 'arm-legacy');
  },
});
add({ name: 'create with a body nested 100 000 arrays deep → 400', req: () => ({ path: '/v1/sessions', raw: '['.repeat(100_000) + ']'.repeat(100_000), headers: { 'content-type': 'application/json' } }), names: /body|JSON/i });
add({
  name: 'create with an object nested 10 000 deep in an unknown field → 400 naming it',
  req: () => ({ path: '/v1/sessions', raw: `{"deep":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}`, headers: { 'content-type': 'application/json' } }),
  names: /deep/,
});
add({ name: 'create with text/plain → 415', req: () => ({ path: '/v1/sessions', raw: '{}', headers: { 'content-type': 'text/plain' } }), codes: ['DMAEMU_UNSUPPORTED_MEDIA_TYPE'], names: /json/i });
add({ name: 'create with application/x-www-form-urlencoded → 415', req: () => ({ path: '/v1/sessions', raw: 'layout=linux', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), codes: ['DMAEMU_UNSUPPORTED_MEDIA_TYPE'], names: /json/i });
add({ name: 'create with malformed JSON → 400 DMAEMU_MALFORMED_BODY', req: () => ({ path: '/v1/sessions', raw: '{"layout":', headers: { 'content-type': 'application/json' } }), codes: ['DMAEMU_MALFORMED_BODY'], names: /JSON/i });
add({ name: 'create with an empty JSON body → 201 or 400 naming the body', req: () => ({ path: '/v1/sessions', raw: '', headers: { 'content-type': 'application/json' } }), ok: okStatus(201), names: /body/i });
add({ name: 'create with the JSON body null → 201 or 400 naming the body', req: () => ({ path: '/v1/sessions', raw: 'null', headers: { 'content-type': 'application/json' } }), ok: okStatus(201), names: /body/i });
add({ name: 'create with a JSON array body → 400 naming the body', req: () => ({ path: '/v1/sessions', raw: '[]', headers: { 'content-type': 'application/json' } }), names: /body/i });
add({ name: 'create with a JSON string body → 400 naming the body', req: () => ({ path: '/v1/sessions', raw: '"linux"', headers: { 'content-type': 'application/json' } }), names: /body/i });
add({ name: 'create with a 10 000-character key → 400 naming the unknown field', req: () => ({ path: '/v1/sessions', body: { ['k'.repeat(10_000)]: 1 } }), names: /kkkk/ });
add({
  name: 'create announcing a 9 MiB body (over DMAEMU_BODY_LIMIT) → 413 before the body is read',
  req: () => ({ path: '/v1/sessions', raw: '{"layout":"', headers: { 'content-type': 'application/json', 'content-length': String(9 << 20) }, overTcp: true }),
  codes: ['DMAEMU_BODY_TOO_LARGE'],
  names: /DMAEMU_BODY_LIMIT|body/,
});
add({ name: 'create with trace and another field → 400 naming them', req: () => ({ path: '/v1/sessions', body: { trace: { ops: [] }, layout: 'linux' } }), names: /trace|layout/ });

// -- sessions: get / delete, odd ids -----------------------------------------------------------------

const notFound = /session|route/i;
add({ name: 'GET an id that never existed → 404', req: () => ({ path: '/v1/sessions/nope' }), codes: ['DMAEMU_SESSION_NOT_FOUND'], names: notFound });
add({ name: 'GET /v1/sessions/__proto__ → 404 (no prototype lookup)', req: () => ({ path: '/v1/sessions/__proto__' }), codes: ['DMAEMU_SESSION_NOT_FOUND'], names: notFound });
add({ name: 'GET /v1/sessions/constructor → 404', req: () => ({ path: '/v1/sessions/constructor' }), codes: ['DMAEMU_SESSION_NOT_FOUND'], names: notFound });
add({ name: 'GET /v1/sessions/hasOwnProperty → 404', req: () => ({ path: '/v1/sessions/hasOwnProperty' }), codes: ['DMAEMU_SESSION_NOT_FOUND'], names: notFound });
add({ name: 'DELETE /v1/sessions/__proto__ → 404', req: () => ({ path: '/v1/sessions/__proto__', method: 'DELETE' }), codes: ['DMAEMU_SESSION_NOT_FOUND'], names: notFound });
add({ name: 'GET a 300-character id → 404 (or 400 naming id)', req: () => ({ path: `/v1/sessions/${'a'.repeat(300)}` }), names: /session|route|id|url/i });
add({ name: 'GET an id of encoded dots (%2e%2e) → 404', req: () => ({ path: '/v1/sessions/%2e%2e' }), names: notFound });
add({ name: 'GET an id with a bad percent-escape (%zz) → 4xx', req: () => ({ path: '/v1/sessions/%zz' }), names: /session|route|url|id/i });
add({ name: 'GET an id of encoded NUL (%00) → 404', req: () => ({ path: '/v1/sessions/%00' }), names: notFound });
add({ name: 'GET an id in emoji → 404', req: () => ({ path: `/v1/sessions/${encodeURIComponent('🦀🦀')}` }), names: notFound });
add({ name: 'GET the session with a repeated odd query string → 200 (the summary)', req: (c) => ({ path: `${sess(c)}?x=1&x=2&__proto__=1` }), ok: okStatus(200), names: /x|__proto__|querystring/ });
add({
  name: 'DELETE a session twice → the second is 404',
  setup: (c) => [{ path: sess(c), method: 'DELETE' }],
  req: (c) => ({ path: sess(c), method: 'DELETE' }),
  codes: ['DMAEMU_SESSION_NOT_FOUND'],
  names: notFound,
});
add({
  name: 'DELETE with a body → 200 leak report, or 4xx naming the body',
  req: (c) => ({ path: sess(c), method: 'DELETE', body: { force: true } }),
  ok: (t, a) => {
    t.equal(a.status, 200);
    t.equal(a.body.leaked_mappings, 0);
  },
  names: /body|force/,
});

// -- map_sg -------------------------------------------------------------------------------------------

const mapSg = (c: Ctx, body: unknown, q = ''): Sent => ({ path: sess(c, `/map_sg${q}`), body });
add({
  name: 'map_sg of API.md’s list → one segment at 0xffffc200 (semantics §3, worked at the top)',
  req: (c) => mapSg(c, { dir: 'to_device', sg: API_SG }),
  ok: (t, a) => {
    t.equal(a.status, 200);
    t.same(a.body.segments, [{ dma_address: '0xffffc200', dma_length: 11776 }]);
    t.same(a.body.iova, { start: '0xffffc000', size: 16384 });
  },
});
add({ name: 'map_sg with an empty list → 400 naming sg', req: (c) => mapSg(c, { dir: 'to_device', sg: [] }), names: /sg/ });
add({
  name: 'map_sg of 4097 entries (over DMAEMU_MAX_SG_ENTRIES) → 4xx naming the limit',
  req: (c) => mapSg(c, { dir: 'to_device', sg: Array.from({ length: 4097 }, (_, i) => ({ phys: i * 8192, length: 4096 })) }),
  names: /DMAEMU_MAX_SG_ENTRIES|sg/,
});
add({ name: 'map_sg with a zero length → 400 naming length', req: (c) => mapSg(c, { dir: 'to_device', sg: [{ phys: '0x1000', length: 0 }] }), names: /length/ });
add({ name: 'map_sg with length 2^32 (over unsigned int) → 400 naming length', req: (c) => mapSg(c, { dir: 'to_device', sg: [{ phys: '0x1000', length: 2 ** 32 }] }), names: /length/ });
add({ name: 'map_sg with length −1 → 400 naming length', req: (c) => mapSg(c, { dir: 'to_device', sg: [{ phys: '0x1000', length: -1 }] }), names: /length/ });
add({ name: 'map_sg with length 1.5 → 400 naming length', req: (c) => mapSg(c, { dir: 'to_device', sg: [{ phys: '0x1000', length: 1.5 }] }), names: /length/ });
add({ name: 'map_sg with length as a string → 400 naming length', req: (c) => mapSg(c, { dir: 'to_device', sg: [{ phys: '0x1000', length: '4096' }] }), names: /length/ });
add({ name: 'map_sg with phys 2^52 (past PHYS_LIMIT) → 400 naming phys', req: (c) => mapSg(c, { dir: 'to_device', sg: [{ phys: hex(2 ** 52), length: 4096 }] }), names: /phys/ });
add({ name: 'map_sg with phys "0x" → 400 naming phys', req: (c) => mapSg(c, { dir: 'to_device', sg: [{ phys: '0x', length: 4096 }] }), names: /phys/ });
add({ name: 'map_sg with phys 1e20 as a number → 400 naming phys', req: (c) => mapSg(c, { dir: 'to_device', sg: [{ phys: 1e20, length: 4096 }] }), names: /phys/ });
add({ name: 'map_sg with phys " 0x1000" (leading space) → 400 naming phys', req: (c) => mapSg(c, { dir: 'to_device', sg: [{ phys: ' 0x1000', length: 4096 }] }), names: /phys/ });
add({ name: 'map_sg with phys "0x1000\\u0000" → 400 naming phys', req: (c) => mapSg(c, { dir: 'to_device', sg: [{ phys: '0x1000\u0000', length: 4096 }] }), names: /phys/ });
add({ name: 'map_sg with phys "-0x1000" → 400 naming phys', req: (c) => mapSg(c, { dir: 'to_device', sg: [{ phys: '-0x1000', length: 4096 }] }), names: /phys/ });
add({
  name: 'map_sg with phys "0X80000000" (upper-case prefix) → the same mapping as 0x80000000, or 400 naming phys',
  req: (c) => mapSg(c, { dir: 'to_device', sg: [{ phys: '0X80000000', length: 4096 }] }),
  ok: (t, a) => {
    t.equal(a.status, 200);
    t.same(a.body.segments, [{ dma_address: '0xfffff000', dma_length: 4096 }], '1 pfn at 0xfffff000');
  },
  names: /phys/,
});
add({ name: 'map_sg with dir "none" → 400 naming dir (the kernel BUGs on DMA_NONE)', req: (c) => mapSg(c, { dir: 'none', sg: API_SG }), names: /dir/ });
add({ name: 'map_sg with dir "TO_DEVICE" → 400 naming dir', req: (c) => mapSg(c, { dir: 'TO_DEVICE', sg: API_SG }), names: /dir/ });
add({ name: 'map_sg without dir → 400 naming dir', req: (c) => mapSg(c, { sg: API_SG }), names: /dir/ });
add({ name: 'map_sg with an unknown field → 400 naming it', req: (c) => mapSg(c, { dir: 'to_device', sg: API_SG, gfp: 'GFP_KERNEL' }), names: /gfp/ });
add({ name: 'map_sg with sg an object instead of a list → 400 naming sg', req: (c) => mapSg(c, { dir: 'to_device', sg: { 0: API_SG[0] } }), names: /sg/ });
add({ name: 'map_sg with a __proto__ key inside an entry → 400', req: (c) => ({ path: sess(c, '/map_sg'), raw: '{"dir":"to_device","sg":[{"phys":"0x1000","length":4096,"__proto__":{"x":1}}]}', headers: { 'content-type': 'application/json' } }), names: /proto|sg/i });
add({ name: 'map_sg ?pages=yes → 400 naming pages', req: (c) => mapSg(c, { dir: 'to_device', sg: API_SG }, '?pages=yes'), names: /pages/ });
add({ name: 'map_sg ?pages=true&pages=false (repeated) → 4xx naming pages, or 200', req: (c) => mapSg(c, { dir: 'to_device', sg: API_SG }, '?pages=true&pages=false'), ok: okStatus(200), names: /pages/ });
add({ name: 'map_sg ?unknown=1 → 400 naming it', req: (c) => mapSg(c, { dir: 'to_device', sg: API_SG }, '?unknown=1'), names: /unknown/ });
add({
  name: 'map_sg of 4096 entries of 4 GiB − 1 each behind a 32-bit mask → ENOMEM (IOVA space exhausted, §5) or 4xx naming a limit',
  req: (c) => mapSg(c, { dir: 'to_device', sg: Array.from({ length: 4096 }, (_, i) => ({ phys: i * 2 ** 32, length: 2 ** 32 - 1 })) }),
  ok: (t, a) => {
    t.equal(a.status, 200);
    t.equal(a.body.nents, 0, 'nents 0');
    t.equal((a.body.error as Obj | undefined)?.errno, 'ENOMEM', 'the 32-bit IOVA space cannot hold 16 TiB');
  },
  names: /DMAEMU_MAX_|DMAEMU_MEMORY_BUDGET|budget|memory_limit/,
  heavy: true,
});
add({
  name: 'map_sg of 64 entries of 4 GiB − 1 each behind a 48-bit mask → a mapping, or 4xx naming a limit or the budget',
  session: { device: { dma_mask: '0xffffffffffff' } },
  req: (c) => mapSg(c, { dir: 'to_device', sg: Array.from({ length: 64 }, (_, i) => ({ phys: i * 2 ** 32, length: 2 ** 32 - 1 })) }),
  ok: (t, a) => {
    t.equal(a.status, 200);
    t.ok(typeof a.body.handle === 'number' || (a.body.error as Obj | undefined)?.errno === 'ENOMEM', 'mapped, or ENOMEM');
  },
  names: /DMAEMU_MAX_|DMAEMU_MEMORY_BUDGET|budget|memory_limit/,
  heavy: true,
});

// -- map_page -----------------------------------------------------------------------------------------

const mapPage = (c: Ctx, body: unknown, q = ''): Sent => ({ path: sess(c, `/map_page${q}`), body });
add({
  name: 'map_page of 4096 bytes → dma_address 0xfffff000 (1 pfn below the 32-bit limit, §5)',
  req: (c) => mapPage(c, { phys: '0x80000000', size: 4096, dir: 'from_device' }),
  ok: (t, a) => {
    t.equal(a.status, 200);
    t.equal(a.body.dma_address, '0xfffff000');
  },
});
add({ name: 'map_page with size 0 → 400 naming size', req: (c) => mapPage(c, { phys: '0x1000', size: 0, dir: 'to_device' }), names: /size/ });
add({ name: 'map_page with size 2^32 → 400 naming size', req: (c) => mapPage(c, { phys: '0x1000', size: 2 ** 32, dir: 'to_device' }), names: /size/ });
add({ name: 'map_page with phys −4096 → 400 naming phys', req: (c) => mapPage(c, { phys: -4096, size: 4096, dir: 'to_device' }), names: /phys/ });
add({ name: 'map_page with skip_cpu_sync "yes" → 400 naming skip_cpu_sync', req: (c) => mapPage(c, { phys: '0x1000', size: 4096, dir: 'to_device', skip_cpu_sync: 'yes' }), names: /skip_cpu_sync/ });
add({ name: 'map_page with phys true → 400 naming phys', req: (c) => mapPage(c, { phys: true, size: 4096, dir: 'to_device' }), names: /phys/ });
add({
  name: 'map_page of 1 GiB with ?pages=true → 262 144 page rows, or 4xx naming pages or the answer size',
  session: { device: { dma_mask: '0xffffffffffff' } },
  req: (c) => ({ ...mapPage(c, { phys: '0x100000000', size: 2 ** 30, dir: 'to_device' }, '?pages=true'), timeoutMs: HEAVY_TIMEOUT_MS }),
  ok: (t, a) => {
    t.equal(a.status, 200);
    t.equal((a.body.pages as unknown[]).length, 2 ** 30 / 4096, 'one row per 4 KiB granule');
  },
  names: /pages|DMAEMU_MAX_RESPONSE_BYTES|DMAEMU_MAX_PAGE_ROWS/,
  heavy: true,
});

// -- unmap ----------------------------------------------------------------------------------------------

const unmap = (c: Ctx, body: unknown): Sent => ({ path: sess(c, '/unmap'), body });
add({ name: 'unmap the bystander’s handle 1 in another session → 404 (handles are per session)', req: (c) => unmap(c, { handle: 1 }), codes: ['DMAEMU_HANDLE_NOT_FOUND'], names: /handle/i });
add({ name: 'unmap handle 0 → 400 naming handle', req: (c) => unmap(c, { handle: 0 }), names: /handle/ });
add({ name: 'unmap handle 2^53 → 400 naming handle', req: (c) => unmap(c, { handle: 2 ** 53 }), names: /handle/ });
add({ name: 'unmap handle "1" (a string) → 400 naming handle', req: (c) => unmap(c, { handle: '1' }), names: /handle/ });
add({ name: 'unmap handle −1 → 400 naming handle', req: (c) => unmap(c, { handle: -1 }), names: /handle/ });
add({ name: 'unmap handle {"ref":0} outside a batch → 400 naming handle', req: (c) => unmap(c, { handle: { ref: 0 } }), names: /handle/ });
add({
  name: 'unmap a coherent buffer’s handle → 400 (free it with free_coherent)',
  setup: (c) => [{ path: sess(c, '/alloc_coherent'), body: { size: 4096 } }],
  req: (c) => unmap(c, { handle: 1 }),
  names: /handle|coherent/,
});
add({
  name: 'unmap the same handle twice → the second is 404 (dma-debug: unmapping unmapped memory)',
  setup: (c) => [mapPage(c, { phys: '0x1000', size: 4096, dir: 'to_device' }), unmap(c, { handle: 1 })],
  req: (c) => unmap(c, { handle: 1 }),
  codes: ['DMAEMU_HANDLE_NOT_FOUND'],
  names: /handle/i,
});

// -- sync -----------------------------------------------------------------------------------------------

const sync = (c: Ctx, body: unknown): Sent => ({ path: sess(c, '/sync'), body });
const onePage = (c: Ctx): Sent[] => [mapPage(c, { phys: '0x80000000', size: 4096, dir: 'from_device' })];
add({ name: 'sync for "gpu" → 400 naming for', setup: onePage, req: (c) => sync(c, { handle: 1, for: 'gpu' }), names: /for/ });
add({ name: 'sync with offset 2^53 → 400 naming offset', setup: onePage, req: (c) => sync(c, { handle: 1, for: 'cpu', offset: 2 ** 53 }), names: /offset/ });
add({
  name: 'sync past the end of the mapping → a dma-debug finding (check_sync: outside the allocated range) or 4xx naming offset/size',
  setup: onePage,
  req: (c) => sync(c, { handle: 1, for: 'cpu', offset: 4096, size: 4096 }),
  ok: (t, a) => {
    t.equal(a.status, 200);
    t.ok(Array.isArray(a.body.debug) && a.body.debug.length > 0, 'the answer carries the finding');
  },
  names: /offset|size/,
});
add({ name: 'sync a handle that was never mapped → 404', req: (c) => sync(c, { handle: 7, for: 'cpu' }), codes: ['DMAEMU_HANDLE_NOT_FOUND'], names: /handle/i });
add({
  name: 'sync for cpu of a from_device page → cache invalidate (the CPU must not see stale lines, semantics §6)',
  setup: onePage,
  req: (c) => sync(c, { handle: 1, for: 'cpu' }),
  ok: (t, a) => {
    t.equal(a.status, 200);
    t.equal(a.body.cache, 'invalidate');
  },
});

// -- alloc_coherent / free_coherent ---------------------------------------------------------------------

add({ name: 'alloc_coherent size 0 → 400 naming size', req: (c) => ({ path: sess(c, '/alloc_coherent'), body: { size: 0 } }), names: /size/ });
add({ name: 'alloc_coherent size "8192" (a string) → 400 naming size', req: (c) => ({ path: sess(c, '/alloc_coherent'), body: { size: '8192' } }), names: /size/ });
add({
  name: 'alloc_coherent of 2^32 − 1 bytes → refused with a 4xx naming the size or a limit, or ENOMEM',
  req: (c) => ({ path: sess(c, '/alloc_coherent'), body: { size: 2 ** 32 - 1 }, timeoutMs: HEAVY_TIMEOUT_MS }),
  ok: (t, a) => {
    t.equal(a.status, 200);
    t.equal(a.body.handle, null, 'no buffer');
    t.equal((a.body.error as Obj | undefined)?.errno, 'ENOMEM');
  },
  names: /size|memory_limit|DMAEMU_MEMORY|budget/i,
  heavy: true,
});
add({
  name: 'alloc_coherent 8192 → two zeroed pages mapped at 0xffffe000 (2 pfns below the 32-bit limit, §5)',
  req: (c) => ({ path: sess(c, '/alloc_coherent'), body: { size: 8192 } }),
  ok: (t, a) => {
    t.equal(a.status, 200);
    t.equal(a.body.dma_handle, '0xffffe000');
    t.equal((a.body.phys as unknown[]).length, 2);
  },
});
add({ name: 'free_coherent of a streaming handle → 400', setup: onePage, req: (c) => ({ path: sess(c, '/free_coherent'), body: { handle: 1 } }), names: /handle|coherent|streaming/ });
add({ name: 'free_coherent of handle 999 → 404', req: (c) => ({ path: sess(c, '/free_coherent'), body: { handle: 999 } }), codes: ['DMAEMU_HANDLE_NOT_FOUND'], names: /handle/i });

// -- flush -------------------------------------------------------------------------------------------------

add({
  name: 'flush {} on a fresh strict domain → nothing queued, nothing freed',
  req: (c) => ({ path: sess(c, '/flush'), body: {} }),
  ok: (t, a) => {
    t.equal(a.status, 200);
    t.same({ flushed: a.body.flushed, rcache_freed: a.body.rcache_freed }, { flushed: 0, rcache_freed: 0 });
  },
});
add({ name: 'flush {"rcache":"true"} → 400 naming rcache', req: (c) => ({ path: sess(c, '/flush'), body: { rcache: 'true' } }), names: /rcache/ });
add({ name: 'flush with an unknown field → 400 naming it', req: (c) => ({ path: sess(c, '/flush'), body: { all: true } }), names: /all/ });
add({
  name: 'flush depot_trim on arm-legacy (a linux-only extension) → 200 or 400 naming depot_trim',
  session: { layout: 'arm-legacy' },
  req: (c) => ({ path: sess(c, '/flush'), body: { depot_trim: true } }),
  ok: okStatus(200),
  names: /depot_trim/,
});

// -- /batch, JSON ---------------------------------------------------------------------------------------------

const batch = (c: Ctx, ops: unknown, timeoutMs?: number): Sent => ({ path: sess(c, '/batch'), body: { ops }, ...(timeoutMs ? { timeoutMs } : {}) });
add({ name: 'batch of no ops → 400 naming ops, or an empty answer', req: (c) => batch(c, []), ok: (t, a) => t.same(a.body.results, []), names: /ops/ });
add({
  name: 'batch of 1025 ops (over DMAEMU_MAX_BATCH_OPS) → 4xx naming the limit',
  req: (c) => batch(c, Array.from({ length: 1025 }, () => ({ op: 'flush' }))),
  names: /DMAEMU_MAX_BATCH_OPS|ops/,
});
add({ name: 'batch with ops an object → 400 naming ops', req: (c) => batch(c, { 0: { op: 'flush' } }), names: /ops/ });
add({ name: 'batch with an unknown op → 400 naming op', req: (c) => batch(c, [{ op: 'rm_rf' }]), names: /op/ });
add({ name: 'batch op with a __proto__ key → 400', req: (c) => ({ path: sess(c, '/batch'), raw: '{"ops":[{"op":"flush","__proto__":{"x":1}}]}', headers: { 'content-type': 'application/json' } }), names: /proto|ops/i });
const refCase = (name: string, ref: number): void =>
  add({
    name,
    req: (c) => batch(c, [{ op: 'unmap', handle: { ref } }, { op: 'map_page', phys: '0x1000', size: 4096, dir: 'to_device' }]),
    ok: batchResultNames(0, /ref|handle/),
    names: /ref|handle/,
  });
refCase('batch ref forward (unmap {"ref":1} before op 1 ran) → an error naming ref', 1);
refCase('batch ref to itself ({"ref":0} in op 0) → an error naming ref', 0);
refCase('batch ref out of range ({"ref":99}) → an error naming ref', 99);
add({ name: 'batch ref −1 → 400 naming ref', req: (c) => batch(c, [{ op: 'unmap', handle: { ref: -1 } }]), names: /ref|handle/ });
add({
  name: 'batch ref to an op that failed (map_page of size 0 refused) → an error for the unmap too',
  req: (c) => batch(c, [{ op: 'map_page', phys: '0x1000', size: 0, dir: 'to_device' }, { op: 'unmap', handle: { ref: 0 } }]),
  ok: batchResultNames(1, /ref|handle/),
  names: /size|ref/,
});
add({
  name: 'batch ref backward (map_page, then unmap {"ref":0}) → the unmap frees the IOVA the map took (0xfffff000, 4096)',
  req: (c) => batch(c, [{ op: 'map_page', phys: '0x1000', size: 4096, dir: 'to_device' }, { op: 'unmap', handle: { ref: 0 } }]),
  ok: (t, a) => {
    t.equal(a.status, 200);
    const r = a.body.results as Obj[];
    t.same(r[1]?.iova, { start: '0xfffff000', size: 4096 });
  },
});
add({
  name: 'batch unmap of the bystander’s handle 2 → a 404 result, the bystander keeps it',
  req: (c) => batch(c, [{ op: 'unmap', handle: 2 }]),
  ok: (t, a) => {
    t.equal(a.status, 200);
    t.equal(((a.body.results as Obj[])[0] ?? {}).code, 'DMAEMU_HANDLE_NOT_FOUND');
  },
  names: /handle/,
});

// -- /batch, binary -------------------------------------------------------------------------------------------

const BINARY = { 'content-type': 'application/vnd.dmaemu.batch' };
/** A binary /batch header: "DMAB", version, three zero bytes, u32 op count. */
function binHeader(count: number, version = 1, magic = 'DMAB'): Buffer {
  const b = Buffer.alloc(12);
  b.write(magic, 0, 'latin1');
  b.writeUInt8(version, 4);
  b.writeUInt32LE(count, 8);
  return b;
}
/** One unmap record: opcode 3, arg 0, flags 0, u32 handle. */
function unmapRecord(handle: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(3, 0);
  b.writeUInt32LE(handle, 4);
  return b;
}
const binBatch = (c: Ctx, raw: Buffer, timeoutMs?: number): Sent => ({ path: sess(c, '/batch'), raw, headers: BINARY, ...(timeoutMs ? { timeoutMs } : {}) });
add({ name: 'binary batch with a wrong magic → 400 naming the body', req: (c) => binBatch(c, Buffer.concat([binHeader(1, 1, 'XXXX'), unmapRecord(1)])), names: /batch|magic|body/i });
add({ name: 'binary batch of version 2 → 400 naming the version', req: (c) => binBatch(c, Buffer.concat([binHeader(1, 2), unmapRecord(1)])), names: /version|batch/i });
add({ name: 'binary batch of 0 ops → 400 naming ops', req: (c) => binBatch(c, binHeader(0)), names: /ops|count|batch/i });
add({ name: 'binary batch whose header says 1 op and carries none → 400 (truncated)', req: (c) => binBatch(c, binHeader(1)), names: /ops|truncat|batch/i });
add({ name: 'binary batch with bytes after the last op → 400', req: (c) => binBatch(c, Buffer.concat([binHeader(1), unmapRecord(1), Buffer.from([1, 2, 3])])), names: /after|trailing|batch|ops/i });
add({
  name: 'binary batch with opcode 9 → 400 naming the op',
  req: (c) => binBatch(c, Buffer.concat([binHeader(1), Buffer.from([9, 0, 0, 0, 0, 0, 0, 0])])),
  names: /ops\.0|opcode|op/,
});
add({ name: 'binary batch whose header claims 2^32 − 1 ops in 20 bytes → 4xx naming ops, at once', req: (c) => binBatch(c, Buffer.concat([binHeader(0xffffffff), unmapRecord(1)])), names: /ops|DMAEMU_MAX_BATCH_OPS|batch/i });
add({
  name: 'binary batch of 1 M unmap ops (8 MB) → 4xx naming DMAEMU_MAX_BATCH_OPS (from the header, before decoding)',
  req: (c) => {
    const ops = Buffer.alloc(1_000_000 * 8);
    for (let i = 0; i < 1_000_000; i++) {
      ops.writeUInt8(3, i * 8);
      ops.writeUInt32LE(1, i * 8 + 4);
    }
    return binBatch(c, Buffer.concat([binHeader(1_000_000), ops]), HEAVY_TIMEOUT_MS);
  },
  names: /DMAEMU_MAX_BATCH_OPS|ops/,
  heavy: true,
});
add({ name: 'the binary batch type on /map_sg → 415', req: (c) => ({ path: sess(c, '/map_sg'), raw: binHeader(1), headers: BINARY }), codes: ['DMAEMU_UNSUPPORTED_MEDIA_TYPE'], names: /json/i });
add({
  name: 'binary batch of one unmap of a never-mapped handle → a 404 result naming the handle',
  req: (c) => binBatch(c, Buffer.concat([binHeader(1), unmapRecord(5)])),
  ok: (t, a) => {
    t.equal(a.status, 200);
    t.equal(((a.body.results as Obj[])[0] ?? {}).code, 'DMAEMU_HANDLE_NOT_FOUND');
  },
});

// -- memory and the device's view -------------------------------------------------------------------------------

const b64 = (n: number, byte = 0x5a): string => Buffer.alloc(n, byte).toString('base64');
add({ name: 'cpu/write of 3 MiB + 1 (decoded) → 4xx naming data', req: (c) => ({ path: sess(c, '/cpu/write'), body: { phys: '0x80000000', data: b64(3 * 2 ** 20 + 3) } }), names: /data|3 MiB|BODY/i });
add({ name: 'cpu/write of data that is not base64 → 400 naming data', req: (c) => ({ path: sess(c, '/cpu/write'), body: { phys: '0x80000000', data: '!!!not base64!!!' } }), names: /data/ });
add({ name: 'cpu/write with data a number → 400 naming data', req: (c) => ({ path: sess(c, '/cpu/write'), body: { phys: '0x80000000', data: 42 } }), names: /data/ });
add({
  name: 'cpu/write of 16 bytes ending past 2^52 → 400 naming phys, or written',
  req: (c) => ({ path: sess(c, '/cpu/write'), body: { phys: hex(2 ** 52 - 8), data: b64(16) } }),
  ok: (t, a) => t.equal(a.body.written, 16),
  names: /phys|data/,
});
add({
  name: 'cpu/write of 3 MiB → written 3145728, then cpu/read of 1 MiB there reads it back',
  req: (c) => ({ path: sess(c, '/cpu/write'), body: { phys: '0x80000000', data: b64(3 * 2 ** 20) } }),
  ok: (t, a) => t.equal(a.body.written, 3 * 2 ** 20),
  names: /memory_limit|DMAEMU_MEMORY/,
});
add({ name: 'cpu/read of 1 MiB + 1 → 400 naming length', req: (c) => ({ path: sess(c, '/cpu/read'), body: { phys: '0x0', length: 2 ** 20 + 1 } }), names: /length/ });
add({ name: 'cpu/read of length 0 → 400 naming length', req: (c) => ({ path: sess(c, '/cpu/read'), body: { phys: '0x0', length: 0 } }), names: /length/ });
add({
  name: 'cpu/read of 1 MiB of RAM nobody wrote → 1 MiB of zeros',
  req: (c) => ({ path: sess(c, '/cpu/read'), body: { phys: '0x0', length: 2 ** 20 } }),
  ok: (t, a) => {
    t.equal(a.status, 200);
    const data = Buffer.from(asText(a.body.data), 'base64');
    t.equal(data.length, 2 ** 20);
    t.equal(data.indexOf(1), -1, 'all zero');
    t.ok(data.every((x) => x === 0), 'all zero');
  },
});
add({
  name: 'device/read of an unmapped IOVA → a translation fault, not data (the IOMMU blocks it)',
  req: (c) => ({ path: sess(c, '/device/read'), body: { dma_address: '0xfffff000', length: 64 } }),
  ok: (t, a) => {
    t.equal(a.status, 200);
    t.match((a.body.fault as Obj | undefined)?.reason, /translation/);
    t.notOk(a.body.data, 'no data');
  },
});
add({ name: 'device/write to dma_address 2^64 → 400 naming dma_address', req: (c) => ({ path: sess(c, '/device/write'), body: { dma_address: '0x10000000000000000', data: b64(4) } }), names: /dma_address/ });
add({ name: 'device/read with length "all" → 400 naming length', req: (c) => ({ path: sess(c, '/device/read'), body: { dma_address: '0x0', length: 'all' } }), names: /length/ });
add({
  name: 'device/write into the bystander’s mapping address from another session → a translation fault there, bystander untouched',
  req: (c) => ({ path: sess(c, '/device/write'), body: { dma_address: '0xffffc200', data: b64(16, 0xee) } }),
  ok: (t, a) => {
    t.equal(a.status, 200);
    t.match((a.body.fault as Obj | undefined)?.reason, /translation/, 'nothing is mapped there in this session');
  },
});

// -- traces ---------------------------------------------------------------------------------------------------------

const createFromTrace = (trace: unknown, timeoutMs = HEAVY_TIMEOUT_MS): Sent => ({ path: '/v1/sessions', body: { trace }, timeoutMs });
/** A trace accepted: 201, a session id, no mismatch (the ops carry no expect). */
const traceAccepted = (t: Test, a: Answer): void => {
  t.equal(a.status, 201);
  t.type(a.body.id, 'string');
  t.same((a.body.replay as Obj | undefined)?.mismatches ?? [], [], 'no mismatch');
};
const costly = /DMAEMU_MAX_|DMAEMU_MEMORY_BUDGET|budget|ops|length|limit|pages|sg/i;
add({
  name: 'GET /trace of a fresh session → its create body and no ops',
  req: (c) => ({ path: sess(c, '/trace') }),
  ok: (t, a) => {
    t.equal(a.status, 200);
    t.same(a.body.ops, []);
  },
});
add({
  name: 'GET /trace after a map_page → one op whose expect is the answer (dma_address 0xfffff000)',
  setup: (c) => [mapPage(c, { phys: '0x80000000', size: 4096, dir: 'to_device' })],
  req: (c) => ({ path: sess(c, '/trace') }),
  ok: (t, a) => {
    t.equal(a.status, 200);
    const ops = a.body.ops as Obj[];
    t.equal(ops.length, 1);
    t.equal((ops[0]?.expect as Obj | undefined)?.dma_address, '0xfffff000');
  },
});
add({
  name: 'killer: a trace of 400 × cpu_read of 1 MiB → the session, or 4xx naming the limit (no heap exhaustion)',
  req: () => createFromTrace({ ops: Array.from({ length: 400 }, () => ({ op: 'cpu_read', phys: 0, length: 1048576 })) }),
  ok: traceAccepted,
  names: costly,
  heavy: true,
});
add({
  name: 'killer: a trace of 500 000 flush ops → the session, or 4xx naming the limit',
  req: () => createFromTrace({ ops: Array.from({ length: 500_000 }, () => ({ op: 'flush' })) }),
  ok: traceAccepted,
  names: costly,
  heavy: true,
});
add({
  name: 'killer: a trace of 60 000 map_page ops → the session, or 4xx naming the limit',
  req: () => createFromTrace({ session: { device: { dma_mask: '0xffffffffffff' } }, ops: Array.from({ length: 60_000 }, (_, i) => ({ op: 'map_page', phys: (i % 4096) * 4096, size: 4096, dir: 'to_device' })) }),
  ok: traceAccepted,
  names: costly,
  heavy: true,
});
add({
  name: 'killer: a trace whose expect is nested 10 000 deep → 400 naming expect (or the mismatch, reported)',
  req: () => ({
    path: '/v1/sessions',
    raw: `{"trace":{"ops":[{"op":"flush","expect":{"flushed":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}}]}}`,
    headers: { 'content-type': 'application/json' },
    timeoutMs: HEAVY_TIMEOUT_MS,
  }),
  ok: (t, a) => {
    t.equal(a.status, 201);
    const m = ((a.body.replay as Obj | undefined)?.mismatches ?? []) as Obj[];
    t.equal(m.length, 1, 'flushed: 0 differs from the nested object');
    t.equal(m[0]?.field, 'flushed');
  },
  names: /expect|depth|nest/i,
  heavy: true,
});
add({ name: 'trace with an unknown op → 400 naming trace.ops.0.op', req: () => createFromTrace({ ops: [{ op: 'format_disk' }] }), names: /ops\.0/ });
add({ name: 'trace with ops an object → 400 naming ops', req: () => createFromTrace({ ops: { op: 'flush' } }), names: /ops/ });
add({ name: 'trace whose session has an unknown field → 400 naming it', req: () => createFromTrace({ session: { colour: 'red' }, ops: [] }), names: /colour/ });
add({ name: 'trace with a 1 MiB name (at most 4096) → 400 naming name', req: () => createFromTrace({ name: 'n'.repeat(1 << 20), ops: [] }), names: /name/ });
add({ name: 'trace with a cpu_write whose data is not base64 → 400 naming the op’s data', req: () => createFromTrace({ ops: [{ op: 'cpu_write', phys: 0, data: '%%%' }] }), names: /ops\.0|data/ });
add({
  name: 'trace with an unmap ref forward → a mismatch or an error naming ref, never a crash',
  req: () => createFromTrace({ ops: [{ op: 'unmap', ref: 1 }, { op: 'map_page', phys: 4096, size: 4096, dir: 'to_device' }] }),
  ok: okStatus(201),
  names: /ref/,
});
add({
  name: 'trace with an expect that differs → 201 listing the mismatch (map_page lands at 0xfffff000, not 0x1000)',
  req: () => createFromTrace({ ops: [{ op: 'map_page', phys: 4096, size: 4096, dir: 'to_device', expect: { dma_address: '0x1000' } }] }),
  ok: (t, a) => {
    t.equal(a.status, 201);
    const m = ((a.body.replay as Obj | undefined)?.mismatches ?? []) as Obj[];
    t.equal(m.length, 1);
    t.equal(m[0]?.field, 'dma_address');
  },
});

// -- compare --------------------------------------------------------------------------------------------------------

const compare = (body: unknown, timeoutMs?: number): Sent => ({ path: '/v1/compare', body, ...(timeoutMs ? { timeoutMs } : {}) });
const compared =
  (ops: number) =>
  (t: Test, a: Answer): void => {
    t.equal(a.status, 200);
    t.equal((a.body.ops as unknown[]).length, ops, `${ops} ops compared`);
    t.equal((a.body.columns as unknown[]).length, 4, 'linux, linux-4.4, arm-legacy, no-iommu');
  };
add({
  name: 'compare of API.md’s list → four columns; linux answers one segment at 0xffffc200',
  req: () => compare({ sg: API_SG }),
  ok: (t, a) => {
    compared(1)(t, a);
    const linux = ((a.body.ops as Obj[])[0]?.results as Obj).linux as Obj;
    t.same(linux.segments, [{ dma_address: '0xffffc200', dma_length: 11776 }]);
  },
});
add({ name: 'compare with both ops and sg → 400 naming body.ops', req: () => compare({ sg: API_SG, ops: [] }), names: /ops/ });
add({ name: 'compare with neither ops nor sg → 400 naming body.ops', req: () => compare({}), names: /ops/ });
add({ name: 'compare of 257 ops (at most 256) → 4xx naming ops', req: () => compare({ ops: Array.from({ length: 257 }, () => ({ op: 'flush' })) }), names: /ops|256/ });
add({ name: 'compare whose session has an unknown field → 400 naming it', req: () => compare({ session: { turbo: true }, sg: API_SG }), names: /turbo/ });
add({
  name: 'killer: compare of two map_page of 1 GiB with pages:true → the answer, or 4xx naming the limit',
  req: () => compare({ session: { device: { dma_mask: '0xffffffffffff' } }, ops: [0, 1].map((i) => ({ op: 'map_page', phys: hex(0x100000000 + i * 2 ** 30), size: 2 ** 30, dir: 'to_device', pages: true })) }, HEAVY_TIMEOUT_MS),
  ok: compared(2),
  names: costly,
  heavy: true,
});
add({
  name: 'killer: compare of 256 × cpu_read of 1 MiB → the answer, or 4xx naming the limit',
  req: () => compare({ ops: Array.from({ length: 256 }, () => ({ op: 'cpu_read', phys: 0, length: 1048576 })) }, HEAVY_TIMEOUT_MS),
  ok: compared(256),
  names: costly,
  heavy: true,
});
add({
  name: 'killer: compare of 110 × map_sg of 4096 entries → the answer, or 4xx naming the limit',
  req: () =>
    compare({ session: { device: { dma_mask: '0xffffffffffff' } }, ops: Array.from({ length: 110 }, (_, k) => ({ op: 'map_sg', dir: 'to_device', sg: Array.from({ length: 4096 }, (_, i) => [(k * 4096 + i) * 8192, 4096]) })) }, HEAVY_TIMEOUT_MS),
  ok: compared(110),
  names: costly,
  heavy: true,
});
add({
  name: 'killer: compare with 100 000 sg entries → 4xx naming sg, or each column refusing it naming sg',
  req: () => compare({ sg: Array.from({ length: 100_000 }, (_, i) => ({ phys: i * 8192, length: 4096 })) }, HEAVY_TIMEOUT_MS),
  ok: (t, a) => {
    compared(1)(t, a);
    const results = ((a.body.ops as Obj[])[0]?.results ?? {}) as Obj;
    for (const [column, r] of Object.entries(results)) t.match(asText((r as Obj).message), /sg/, `${column} refuses the list naming sg`);
  },
  names: /sg|DMAEMU_MAX_SG_ENTRIES/,
  heavy: true,
});
add({
  name: 'killer: 64 × map_page of 1 GiB with pages:true in one /batch → the answer, or 4xx naming the limit',
  session: { device: { dma_mask: '0xffffffffffff' } },
  req: (c) => batch(c, Array.from({ length: 64 }, (_, i) => ({ op: 'map_page', phys: hex(0x100000000 + i * 2 ** 30), size: 2 ** 30, dir: 'to_device', pages: true })), HEAVY_TIMEOUT_MS),
  ok: (t, a) => {
    t.equal(a.status, 200);
    t.equal((a.body.results as unknown[]).length, 64);
  },
  names: costly,
  heavy: true,
});

// -- tables and the picture ------------------------------------------------------------------------------------------

const twoPages = (c: Ctx): Sent[] => [mapPage(c, { phys: '0x80000000', size: 4096, dir: 'to_device' }), mapPage(c, { phys: '0x80001000', size: 4096, dir: 'to_device' })];
add({
  name: 'mappings ?limit=100000 of two mappings → both, next null',
  setup: twoPages,
  req: (c) => ({ path: sess(c, '/mappings?limit=100000') }),
  ok: (t, a) => {
    t.same((a.body.mappings as Obj[]).map((m) => m.handle), [1, 2]);
    t.equal(a.body.next, null);
  },
});
/** Query strings a table or the picture refuses: 400 naming the parameter. */
const BAD_QUERIES: [table: string, query: string, field: string][] = [
  ['mappings', 'limit=100001', 'limit'],
  ['mappings', 'limit=-1', 'limit'],
  ['mappings', 'limit=abc', 'limit'],
  ['mappings', 'limit=1e400', 'limit'],
  ['mappings', 'after=18446744073709551616', 'after'],
  ['mappings', 'foo=1', 'foo'],
  ['iova.svg', 'width=100000', 'width'],
  ['iova.svg', 'start=0x10000&end=0x1000', 'end'],
  ['iova.svg', 'start=0x10000000000000000', 'start'],
  ['iova.svg', 'scale=cubic', 'scale'],
];
for (const [table, query, field] of BAD_QUERIES) {
  add({ name: `${table} ?${query} → 400 naming ${field}`, req: (c) => ({ path: sess(c, `/${table}?${query}`) }), names: new RegExp(field) });
}
add({
  name: 'mappings ?limit=1&limit=2 (repeated) → 400 naming limit, or one page',
  setup: twoPages,
  req: (c) => ({ path: sess(c, '/mappings?limit=1&limit=2') }),
  ok: (t, a) => t.ok((a.body.mappings as unknown[]).length >= 1),
  names: /limit/,
});
add({
  name: 'mappings ?limit=1 → one row and next = its handle',
  setup: twoPages,
  req: (c) => ({ path: sess(c, '/mappings?limit=1') }),
  ok: (t, a) => {
    t.same((a.body.mappings as Obj[]).map((m) => m.handle), [1]);
    t.equal(a.body.next, 1);
  },
});
add({ name: 'debug of a fresh session → no findings', req: (c) => ({ path: sess(c, '/debug') }), ok: (t, a) => t.same(a.body.debug, []) });
add({ name: 'faults of a fresh session → no faults', req: (c) => ({ path: sess(c, '/faults') }), ok: (t, a) => t.same(a.body.faults, []) });
add({
  name: 'the bystander’s own mappings read from outside → its three mappings (reading changes nothing)',
  req: (c) => ({ path: `/v1/sessions/${c.by}/mappings` }),
  ok: (t, a) => t.same((a.body.mappings as Obj[]).map((m) => m.handle), [1, 2, 3]),
});
add({
  name: 'iova.svg of a session → an SVG image',
  setup: twoPages,
  req: (c) => ({ path: sess(c, '/iova.svg') }),
  ok: (t, a) => {
    t.equal(a.status, 200);
    t.match(a.headers.get('content-type') ?? '', /image\/svg\+xml/);
    t.match(a.text, /<svg/);
  },
});
add({ name: 'iova.svg of the bystander at width 8192 → an SVG image', req: (c) => ({ path: `/v1/sessions/${c.by}/iova.svg?width=8192` }), ok: (t, a) => t.match(a.text, /<svg/) });

// -- service, static files, swagger ---------------------------------------------------------------------------------------

add({ name: 'healthz → ok', req: () => ({ path: '/healthz' }), ok: (t, a) => t.equal(a.body.status, 'ok') });
add({ name: 'healthz with an unknown query → ok, or 4xx naming it', req: () => ({ path: '/healthz?verbose=1' }), ok: (t, a) => t.equal(a.body.status, 'ok'), names: /verbose/ });
add({ name: 'metrics → Prometheus text with dmaemu_dma_calls_total', req: () => ({ path: '/metrics' }), ok: (t, a) => t.match(a.text, /dmaemu_dma_calls_total/) });
add({ name: 'openapi.json → OpenAPI 3.1', req: () => ({ path: '/openapi.json' }), ok: (t, a) => t.equal(a.body.openapi, '3.1.0') });
add({ name: '/docs → the Swagger UI page', req: () => ({ path: '/docs' }), ok: (t, a) => t.ok(a.status === 200 || (a.status >= 300 && a.status < 400), `status ${a.status}`) });
add({ name: '/docs/../package.json (traversal) → not the file', req: () => ({ path: '/docs/static/..%2f..%2fpackage.json' }), names: /route|not found|static/i, ok: (t, a) => t.notMatch(a.text, /"name": "dmaemu"/) });
add({ name: '/ui → the explorer (HTML)', req: () => ({ path: '/ui' }), ok: (t, a) => t.match(a.text, /<!doctype html>/i) });
add({ name: '/ui with Range bytes=99999999- → 416 naming the range', req: () => ({ path: '/ui', headers: { range: 'bytes=99999999-' } }), codes: ['DMAEMU_RANGE_NOT_SATISFIABLE'], names: /range/i });
add({ name: '/ui with If-Match "nope" → 412 naming if-match', req: () => ({ path: '/ui', headers: { 'if-match': '"nope"' } }), codes: ['DMAEMU_PRECONDITION_FAILED'], names: /if-match/i });
add({ name: '/ui with If-Unmodified-Since 1970 → 412 naming it', req: () => ({ path: '/ui', headers: { 'if-unmodified-since': new Date(0).toUTCString() } }), codes: ['DMAEMU_PRECONDITION_FAILED'], names: /if-unmodified-since/i });
// Over raw TCP: fetch adds Cache-Control: no-cache to a conditional request, and the static
// server rightly answers no-cache with the whole file.
add({ name: '/ui with If-None-Match * → 304 (RFC 9110 §13.1.2)', req: () => ({ path: '/ui', method: 'GET', headers: { 'if-none-match': '*', connection: 'close' }, overTcp: true }), ok: okStatus(304) });
add({ name: '/ui/explorer.js with Range bytes=5-1 (invalid) → the whole file or 416', req: () => ({ path: '/ui/explorer.js', headers: { range: 'bytes=5-1' } }), ok: okStatus(200), names: /range/i });
add({ name: '/ui with Range of 1000 parts → 200, 206 or 416, never 5xx', req: () => ({ path: '/ui', headers: { range: `bytes=${Array.from({ length: 1000 }, (_, i) => `${i}-${i}`).join(',')}` } }), ok: (t, a) => t.ok(a.status === 200 || a.status === 206, `status ${a.status}`), names: /range/i });
add({ name: 'an unknown route → 404 DMAEMU_ROUTE_NOT_FOUND', req: () => ({ path: '/v2/sessions' }), codes: ['DMAEMU_ROUTE_NOT_FOUND'], names: /route/ });
add({ name: 'POST /healthz → 404 naming the route', req: () => ({ path: '/healthz', method: 'POST', body: {} }), codes: ['DMAEMU_ROUTE_NOT_FOUND'], names: /route/ });
add({ name: 'PUT /v1/sessions → 404 naming the route', req: () => ({ path: '/v1/sessions', method: 'PUT', body: {} }), codes: ['DMAEMU_ROUTE_NOT_FOUND'], names: /route/ });
add({ name: 'GET /v1/sessions/{id}/map_sg (wrong method) → 404 naming the route', req: (c) => ({ path: sess(c, '/map_sg') }), codes: ['DMAEMU_ROUTE_NOT_FOUND'], names: /route/ });
add({ name: 'a path of 10 000 characters → 404 (or 414)', req: () => ({ path: `/v1/${'x'.repeat(10_000)}` }), names: /route|uri|url/i });
// 4096 entries of 4 KiB, 8 KiB apart: each starts page-aligned (iova_off 0), so linux lays them
// back to back in one allocation of 4096 pages (a power of two already) at pfn 0x100000 − 4096 =
// 0xff000; __finalise_sg merges runs up to max_segment_size 64 KiB = 16 entries: 256 segments.
add({
  name: 'map_sg of 4096 scattered pages with ?explain=true&pages=true → 256 segments of 64 KiB from 0xff000000 (semantics §3, §5)',
  req: (c) => ({ ...mapSg(c, { dir: 'to_device', sg: Array.from({ length: 4096 }, (_, i) => ({ phys: 0x80000000 + i * 8192, length: 4096 })) }, '?explain=true&pages=true'), timeoutMs: HEAVY_TIMEOUT_MS }),
  ok: (t, a) => {
    t.equal(a.status, 200);
    t.equal(a.body.nents, 256);
    t.same(a.body.iova, { start: '0xff000000', size: 4096 * 4096 });
    t.equal((a.body.pages as unknown[]).length, 4096);
  },
  names: /DMAEMU_MAX_RESPONSE_BYTES|pages/,
  heavy: true,
});

// ---- the run -------------------------------------------------------------------------------------------------------

t.test(`the hostile suite has at least 100 cases (${cases.length})`, async (t) => {
  t.ok(cases.length >= 100);
});

for (const c of cases) {
  t.test(c.name, async (t) => {
    const s = await ensureServer();
    const created = await send(s.url, { path: '/v1/sessions', body: c.session ?? {} });
    if (created.status !== 201) throw new Error(`scratch session answered ${created.status}: ${created.text}`);
    const ctx: Ctx = { url: s.url, s: created.body.id as string, by: s.bystander };
    for (const step of c.setup?.(ctx) ?? []) {
      const r = await send(s.url, step);
      if (r.status >= 300) throw new Error(`setup ${step.path} answered ${r.status}: ${r.text}`);
    }

    let answer: Answer | undefined;
    let failure: string | undefined;
    try {
      answer = await send(s.url, c.req(ctx));
    } catch (err) {
      failure = `no answer: ${(err as Error).name === 'TimeoutError' ? `timed out after ${c.req(ctx).timeoutMs ?? TIMEOUT_MS} ms` : String(err)}`;
    }
    if (answer) judge(t, c, answer, ctx);
    else t.fail(failure ?? 'no answer');

    // The server must be alive and the bystander exactly as it was. Without an answer the
    // server is stuck or gone: it is restarted below without waiting on it again.
    let restart = failure !== undefined;
    if (restart) t.fail('the bystander could not be checked: the server gave no answer');
    else if (s.child.exitCode !== null || s.child.signalCode !== null) {
      t.fail(`the server died (exit ${String(s.child.exitCode)}, signal ${String(s.child.signalCode)}): ${s.stderr().slice(-600)}`);
      restart = true;
    } else {
      try {
        t.equal(await fingerprint(s), s.fingerprint, 'the bystander session answers exactly as before');
        if (answer?.status === 201 && typeof answer.body.id === 'string' && answer.body.id !== ctx.s) await send(s.url, { path: `/v1/sessions/${answer.body.id}`, method: 'DELETE' });
        await send(s.url, { path: `/v1/sessions/${ctx.s}`, method: 'DELETE', timeoutMs: 5000 });
      } catch (err) {
        t.fail(`the bystander did not answer after the case: ${String(err)}`);
        restart = true;
      }
    }
    if (restart) {
      await killServer(s);
      server = undefined;
    }
  });
}

function judge(t: Test, c: Case, a: Answer, ctx: Ctx): void {
  if (a.status >= 500) {
    t.fail(`answered ${a.status}: ${a.text.slice(0, 300)}`);
    return;
  }
  if (a.status >= 400) {
    const problems = errorViolations(a.status, a.body, a.text);
    t.same(problems, [], `${a.status} in API.md's error shape, no stack`);
    if (c.codes) t.ok(c.codes.includes(asText(a.body.code)), `code ${asText(a.body.code)} is one of ${c.codes.join(', ')}`);
    if (c.names) t.match(`${asText(a.body.code)} ${asText(a.body.message)}`, c.names, `${a.status} ${asText(a.body.code)} names ${String(c.names)}: ${asText(a.body.message).slice(0, 200)}`);
    else t.fail(`a 4xx where the correct answer was expected: ${a.status} ${a.text.slice(0, 300)}`);
    return;
  }
  if (c.ok) {
    c.ok(t, a, ctx);
    return;
  }
  t.fail(`answered ${a.status} where a 4xx naming ${String(c.names)} was expected: ${a.text.slice(0, 300)}`);
}
