// The explorer's files (/ui, /ui/explorer.js) answer conditional and range requests the way
// RFC 9110 says, and the static server's refusals keep their status through the error handler
// (src/service/http-errors.ts) instead of becoming 500 DMAEMU_INTERNAL.
import t from 'tap';
import { statSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/service/app.js';
import { uiRoot } from '../routes/ui.js';
import { client, type Client } from './helpers/http.js';

let app: FastifyInstance;
let c: Client;
t.before(async () => {
  app = await buildApp({ logLevel: 'silent', dataDir: null });
  await app.ready();
  c = client(app);
});
t.teardown(async () => app.close());

const FILES = [
  { url: '/ui', file: 'index.html' },
  { url: '/ui/explorer.js', file: 'explorer.js' },
];

for (const f of FILES) {
  const size = statSync(path.join(uiRoot(), f.file)).size;

  t.test(`${f.url}: a Range past the end is 416 DMAEMU_RANGE_NOT_SATISFIABLE with Content-Range bytes */length (RFC 9110 §15.5.17)`, async (t) => {
    const r = await c.get(f.url, { headers: { range: 'bytes=99999999-' } });
    t.equal(r.status, 416);
    t.equal(r.body.code, 'DMAEMU_RANGE_NOT_SATISFIABLE');
    t.match(r.body.message, 'headers.range', 'the message names the header');
    t.equal(r.headers['content-range'], `bytes */${size}`, 'Content-Range gives the representation length');
  });

  t.test(`${f.url}: a satisfiable Range is 206 with those bytes (RFC 9110 §14.2)`, async (t) => {
    const r = await c.get(f.url, { headers: { range: 'bytes=0-9' } });
    t.equal(r.status, 206);
    t.equal(r.text.length, 10, 'bytes 0..9 inclusive');
    t.equal(r.headers['content-range'], `bytes 0-9/${size}`);
  });

  t.test(`${f.url}: If-Match with an entity tag the file does not have is 412 DMAEMU_PRECONDITION_FAILED (RFC 9110 §13.1.1)`, async (t) => {
    const r = await c.get(f.url, { headers: { 'if-match': '"nope"' } });
    t.equal(r.status, 412);
    t.equal(r.body.code, 'DMAEMU_PRECONDITION_FAILED');
    t.match(r.body.message, 'headers.if-match');
  });

  t.test(`${f.url}: If-Unmodified-Since before the file's mtime is 412, after it 200 (RFC 9110 §13.1.4)`, async (t) => {
    const before = await c.get(f.url, { headers: { 'if-unmodified-since': new Date(0).toUTCString() } });
    t.equal(before.status, 412);
    t.equal(before.body.code, 'DMAEMU_PRECONDITION_FAILED');
    t.match(before.body.message, 'headers.if-unmodified-since');
    // An HTTP date has whole seconds: one day ahead is past the mtime whatever its fraction.
    const after = await c.get(f.url, { headers: { 'if-unmodified-since': new Date(Date.now() + 86_400_000).toUTCString() } });
    t.equal(after.status, 200);
    t.equal(Buffer.byteLength(after.text), size, 'the whole file');
  });

  t.test(`${f.url}: If-None-Match with the file's own ETag, or *, is 304 with no body (RFC 9110 §13.1.2)`, async (t) => {
    const first = await c.get(f.url);
    t.equal(first.status, 200);
    const etag = first.headers.etag;
    t.type(etag, 'string', 'the file has an ETag');
    for (const tag of [String(etag), '*']) {
      const r = await c.get(f.url, { headers: { 'if-none-match': tag } });
      t.equal(r.status, 304, `If-None-Match: ${tag}`);
      t.equal(r.text, '');
    }
    const other = await c.get(f.url, { headers: { 'if-none-match': '"nope"' } });
    t.equal(other.status, 200, 'another tag: the file again');
  });
}
