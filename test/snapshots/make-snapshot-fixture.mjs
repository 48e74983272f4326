// Writes a compacted op log of the fixed calls in fixture-calls.mjs, its snapshot in the format
// the given build writes. The committed fixtures (test/snapshot-formats.test.ts restores them):
//   v8-graph-linux.oplog  format 0, the V8 object graph: main at 2cf4a1e built into a dir
//                         (npx tsc -p tsconfig.json --outDir <dir>), then
//                         node test/snapshots/make-snapshot-fixture.mjs <dir> test/snapshots/v8-graph-linux.oplog
//   state-v1-linux.oplog  format 1 (src/core/state/codec.ts): npm run build, then
//                         node test/snapshots/make-snapshot-fixture.mjs dist test/snapshots/state-v1-linux.oplog
// A fixture is written once and never regenerated: it stands for what that version wrote.
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const dist = path.resolve(process.argv[2] ?? 'dist');
const { Journal } = await import(pathToFileURL(path.join(dist, 'src/service/journal.js')).href);
const { SessionStore } = await import(pathToFileURL(path.join(dist, 'src/service/session-store.js')).href);
const { FileOpStore } = await import(pathToFileURL(path.join(dist, 'src/service/store/file-op-store.js')).href);
const { decodeFrames } = await import(pathToFileURL(path.join(dist, 'src/service/store/frames.js')).href);
const { FIXTURE_CALLS, FIXTURE_ID, FIXTURE_INPUT } = await import(pathToFileURL(path.resolve('test/snapshots/fixture-calls.mjs')).href);

const dir = mkdtempSync(path.join(tmpdir(), 'dmaemu-fixture-'));
const log = { info() {}, warn: console.warn, error: console.error };
const sessions = new SessionStore();
const never = { compactMinBytes: Number.MAX_SAFE_INTEGER, compactRatio: 1 };
const journal = new Journal(new FileOpStore(dir, log), sessions, log, never);
const s = sessions.restore(FIXTURE_ID, FIXTURE_INPUT);
s.lastUsed = 1_700_000_000_000;
await journal.created(s, FIXTURE_INPUT);
const run = { map_sg: (b) => s.mapSg(b), map_page: (b) => s.mapPage(b), unmap: (b) => s.unmap(b), 'cpu/write': (b) => s.cpuWrite(b), 'device/write': (b) => s.deviceWrite(b), flush: (b) => s.flush(b), alloc_coherent: (b) => s.allocCoherent(b) };
// The snapshot is taken after call 7 (the journal compacts after a call once the log is past its
// thresholds: lowered for that one call), so the log is that snapshot and a tail of 3 calls.
for (const [i, [op, body]] of FIXTURE_CALLS.entries()) {
  journal.opts = i === 7 ? { compactMinBytes: 1, compactRatio: 1 } : never;
  await journal.call(s, op, body, undefined, () => run[op](body));
}
await journal.store.close();
const file = readdirSync(path.join(dir, 'sessions'))[0];
const out = path.resolve(process.argv[3] ?? 'fixture.oplog');
copyFileSync(path.join(dir, 'sessions', file), out);
truncateSync(out, decodeFrames(readFileSync(out)).validBytes); // without the preallocated zeros
rmSync(dir, { recursive: true, force: true });
console.log(`wrote ${out} from ${file}`);
