// What a damaged data dir does to a restart (issue 12, item 3 (b), (c)): a torn last record
// (the crash came mid-append, so that call was never acknowledged) is dropped with a log line
// and the session restored without it; a file damaged in the middle, or not an op log at all,
// gets an error naming the file, and every other session still loads. Never a crash.
import t from 'tap';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../src/service/app.js';
import { decodeFrames } from '../src/service/store/frames.js';
import { asText, client, type Obj } from './helpers/http.js';

const tmp = mkdtempSync(join(tmpdir(), 'dmaemu-damage-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

/** A service on `dir` whose log lines are kept (parsed) for the test to read. */
async function start(dir: string) {
  const lines: Obj[] = [];
  const app = await buildApp({ logLevel: 'info', dataDir: dir, logStream: { write: (l: string) => void lines.push(JSON.parse(l) as Obj) } });
  return { app, c: client(app), lines };
}

const MAP = { phys: '0x80000000', size: 4096, dir: 'to_device' };

t.test('a torn last record is dropped with a log line, and the session comes back without that call', async (t) => {
  const dir = join(tmp, 'torn');
  const a = await start(dir);
  const s = await a.c.session({ layout: 'linux' });
  for (let i = 0; i < 3; i++) await a.c.post(`${s.url}/map_page`, MAP);
  await a.app.close();
  const file = join(dir, 'sessions', `${s.id}.oplog`);
  // Cut the third map's record short, as a crash in the middle of its write would.
  const frames = decodeFrames(readFileSync(file)).frames;
  const last = frames[frames.length - 1];
  truncateSync(file, (last?.offset ?? 0) + 20);

  const b = await start(dir);
  t.teardown(() => b.app.close());
  const warn = b.lines.find((l) => l.msg === 'op store: dropping a torn last record');
  t.ok(warn, 'a log line says a torn record was dropped');
  t.equal(warn?.file, file, 'naming the file');
  t.equal(warn?.level, 40, 'at warn level');
  const sum = (await b.c.get(s.url)).body;
  t.equal((sum.counters as Obj).map_page, 2, 'two maps were durable, the torn third is gone');
  t.equal(sum.live_mappings, 2);
  // The tail was cut off on disk: the next call appends after the last good record, and a second restart reads it all.
  const next = (await b.c.post(`${s.url}/map_page`, MAP)).body;
  // linux, 4 KiB pages, 32-bit mask: top-down from 0xffffffff, one pfn each: 0xfffff000, 0xffffe000, then 0xffffd000.
  t.equal(next.dma_address, '0xffffd000', 'the next map takes the IOVA the torn one would have had');
  await b.app.close();
  const c = await start(dir);
  t.teardown(() => c.app.close());
  t.notOk(c.lines.some((l) => asText(l.msg).includes('torn')), 'nothing torn the second time');
  t.equal(((await c.c.get(s.url)).body.counters as Obj).map_page, 3);
});

t.test('a damaged or foreign file gets an error naming it; the other sessions still load', async (t) => {
  const dir = join(tmp, 'corrupt');
  const a = await start(dir);
  const good = await a.c.session({ layout: 'linux' });
  const bad = await a.c.session({ layout: 'arm-legacy' });
  for (let i = 0; i < 3; i++) {
    await a.c.post(`${good.url}/map_page`, MAP);
    await a.c.post(`${bad.url}/map_page`, MAP);
  }
  await a.app.close();
  const sessions = join(dir, 'sessions');
  const badFile = join(sessions, `${bad.id}.oplog`);
  // Flip one byte inside the second record: its checksum fails and records follow it.
  const buf = readFileSync(badFile);
  const second = decodeFrames(buf).frames[1];
  const at = (second?.offset ?? 0) + 12;
  buf[at] = (buf[at] ?? 0) ^ 0x20;
  writeFileSync(badFile, buf);
  writeFileSync(join(sessions, 'notes.txt'), 'somebody left this here\n');
  const foreign = join(sessions, 'AAAAAAAAAAAAAAAAAAAAAA.oplog');
  writeFileSync(foreign, '{"not":"an op log"}\n');
  writeFileSync(join(sessions, 'my copy.oplog'), readFileSync(join(sessions, `${good.id}.oplog`)));
  // A crash between creating a session's file and writing its first bytes: never acknowledged, removed.
  const empty = join(sessions, 'BBBBBBBBBBBBBBBBBBBBBB.oplog');
  appendFileSync(empty, '');

  const b = await start(dir);
  t.teardown(() => b.app.close());
  const errors = b.lines.filter((l) => l.level === 50).map((l) => asText(l.msg));
  t.ok(errors.some((m) => m.startsWith(badFile) && /damaged at byte \d+ \(checksum mismatch, with an intact record at byte \d+ after it\)/.test(m)), 'the damaged file is named, with where and why', { errors });
  t.ok(errors.some((m) => m.startsWith(join(sessions, 'notes.txt')) && m.includes('not an op log of this service')), 'a stray file is named');
  t.ok(errors.some((m) => m.startsWith(foreign) && m.includes('not an op log')), 'a file with an op log name but other content is named');
  t.ok(errors.some((m) => m.startsWith(join(sessions, 'my copy.oplog')) && m.includes('not an op log of this service')), 'a file whose name is not a session id is named');
  t.ok(b.lines.some((l) => l.level === 40 && l.file === empty && l.msg === 'op store: removing a log whose creation never completed'), 'an empty log is removed with a warning');
  t.notOk(existsSync(empty));
  t.equal(((await b.c.get(good.url)).body.counters as Obj).map_page, 3, 'the good session is restored');
  t.equal((await b.c.get(bad.url)).status, 404, 'the damaged one is not (rather than restored wrong)');
  t.same(readFileSync(badFile).subarray(0, 16), buf.subarray(0, 16), 'the damaged file is left for a human to look at');
  t.equal((await b.c.post('/v1/sessions', {})).status, 201, 'and the service works');
  const started = b.lines.find((l) => l.msg === 'op store opened');
  t.equal(started?.restored, 1);
  t.equal(started?.failed, 4);
});
