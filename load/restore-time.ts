// npm run load:restore: how long a restart takes to rebuild a session of 1 M calls. Writes the
// log in-process through the real journal and file store (group commit, fdatasync) into a
// fresh tmp dir — map_page / unmap churn holding ~1000 live mappings, with a CPU write every 16
// calls — then times a cold restore (read, check, replay) and checks the restored session
// answers like the original. Twice: with the whole log replayed (compaction off), and with the
// default compaction (a snapshot plus the tail). RESTORE_OPS=<n> for another size.
// Then the snapshot alone, in both formats, in this run: a session holding SNAPSHOT_MAPPINGS
// (default 100 000) live mappings and some RAM and cache is saved and restored through format 0
// (the V8 object graph, read for migration only) and format 1 (src/core/state/codec.ts), median of 3.
// Last line, exactly:
// restore: ops=<n> log_mb=<a> restore_s=<b> replay_calls_per_s=<c> compacted_log_mb=<d> restore_compacted_s=<e> snapshot_mappings=<m> v0_mb=<f> v0_restore_s=<g> v1_mb=<h> v1_restore_s=<i> v1_over_v0=<j>

import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DEFAULT_JOURNAL_OPTIONS, Journal, type JournalOptions } from '../src/service/journal.js';
import { SessionStore } from '../src/service/session-store.js';
import { FileOpStore } from '../src/service/store/file-op-store.js';
import type { Session } from '../src/service/session.js';
import { encodeSnapshot, restoreSnapshot } from '../src/service/store/snapshot.js';

const OPS = Number(process.env.RESTORE_OPS ?? 1_000_000);
const log = { info: () => {}, warn: (o: object, m: string) => console.warn(m, o), error: (o: object, m: string) => console.error(m, o) };

function dirBytes(dir: string): number {
  const d = path.join(dir, 'sessions');
  return readdirSync(d).reduce((n, f) => n + statSync(path.join(d, f)).size, 0);
}

async function write(dir: string, opts: JournalOptions): Promise<{ id: string; summary: unknown; seconds: number }> {
  const sessions = new SessionStore();
  const journal = new Journal(new FileOpStore(dir, log), sessions, log, opts);
  const input = { layout: 'linux' as const };
  const s = sessions.create(input);
  await journal.created(s, input);
  const t0 = performance.now();
  const live: number[] = [];
  let pending: Promise<unknown>[] = [];
  for (let i = 0; i < OPS; i++) {
    const k = i % 16;
    if (k === 15) {
      const body = { phys: 0x80000000 + (i % 4096) * 64, data: 'AAECAwQFBgc=' };
      pending.push(journal.call(s, 'cpu/write', body, undefined, () => s.cpuWrite(body)));
    } else if (live.length < 1000) {
      const body = { phys: 0x80000000 + (i % 8192) * 4096, size: 4096, dir: 'to_device' as const };
      const out = s.mapPage(body);
      pending.push(journal.call(s, 'map_page', body, { pages: false }, () => out));
      if (typeof out.handle === 'number') live.push(out.handle);
    } else {
      const body = { handle: live.splice((i * 7919) % live.length, 1)[0] as number };
      pending.push(journal.call(s, 'unmap', body, undefined, () => s.unmap(body)));
    }
    // Bounded memory: wait for this group's durability every 4096 calls (one group commit or a few).
    if (pending.length === 4096) {
      await Promise.all(pending);
      pending = [];
    }
  }
  await Promise.all(pending);
  const seconds = (performance.now() - t0) / 1000;
  await journal.store.close();
  return { id: s.id, summary: s.summary(), seconds };
}

async function restore(dir: string, id: string): Promise<{ seconds: number; session: Session }> {
  const sessions = new SessionStore();
  const journal = new Journal(new FileOpStore(dir, log), sessions, log);
  const t0 = performance.now();
  const r = await journal.restore();
  const seconds = (performance.now() - t0) / 1000;
  if (r.restored !== 1) throw new Error(`restored ${r.restored} sessions, expected 1`);
  const session = sessions.get(id);
  await journal.store.close();
  return { seconds, session };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/** Save + restore of one big session's snapshot in format 0 and format 1: sizes and median restore seconds. */
function snapshotFormats(mappings: number): { v0Mb: number; v0S: number; v1Mb: number; v1S: number } {
  const sessions = new SessionStore();
  const s = sessions.create({ layout: 'linux' });
  for (let i = 0; i < mappings; i++) s.mapPage({ phys: 0x80000000 + (i % 65536) * 4096, size: 4096, dir: i % 3 === 0 ? 'from_device' : 'to_device' });
  for (let i = 0; i < 1024; i++) s.cpuWrite({ phys: 0x80000000 + i * 4096, data: 'AAECAwQFBgc=' });
  const v0 = encodeSnapshot(s, sessions.fresh(s), sessions.externalsOf(s));
  const v1 = s.device.saveState();
  const time = (f: () => void): number => {
    const t0 = performance.now();
    f();
    return (performance.now() - t0) / 1000;
  };
  const v0S: number[] = [];
  const v1S: number[] = [];
  for (let k = 0; k < 3; k++) {
    // Interleaved, each into its own fresh session: the machine's load hits both alike.
    v0S.push(time(() => {
      const f = sessions.fresh(s);
      restoreSnapshot(f, v0, sessions.externalsOf(f));
    }));
    v1S.push(time(() => sessions.fresh(s).device.loadState(v1)));
  }
  const check = sessions.fresh(s);
  check.device.loadState(v1);
  if (JSON.stringify(check.summary()) !== JSON.stringify(s.summary())) throw new Error('format 1 restored a different summary');
  return { v0Mb: v0.length / 2 ** 20, v0S: median(v0S), v1Mb: v1.length / 2 ** 20, v1S: median(v1S) };
}

async function main(): Promise<void> {
  const root = mkdtempSync(path.join(tmpdir(), 'dmaemu-restore-time-'));
  try {
    const full = path.join(root, 'full');
    // The map_page calls above run before journal.call sees them (so the handle is known): the
    // journal still logs them in order, as the route would.
    const a = await write(full, { ...DEFAULT_JOURNAL_OPTIONS, compactMinBytes: Number.MAX_SAFE_INTEGER });
    const logMb = dirBytes(full) / 2 ** 20;
    console.log(`wrote ${OPS} calls in ${a.seconds.toFixed(1)} s (${(OPS / a.seconds).toFixed(0)} calls/s in-process, fdatasync group commit), log ${logMb.toFixed(1)} MiB`);
    const ra = await restore(full, a.id);
    if (JSON.stringify(ra.session.summary()) !== JSON.stringify(a.summary)) throw new Error('restored summary differs from the original');
    console.log(`restored by replaying the whole log in ${ra.seconds.toFixed(2)} s (${(OPS / ra.seconds).toFixed(0)} calls/s); summary identical`);

    const compacted = path.join(root, 'compacted');
    const b = await write(compacted, DEFAULT_JOURNAL_OPTIONS);
    const compactedMb = dirBytes(compacted) / 2 ** 20;
    const rb = await restore(compacted, b.id);
    if (JSON.stringify(rb.session.summary()) !== JSON.stringify(b.summary)) throw new Error('restored (compacted) summary differs from the original');
    console.log(`with default compaction: log ${compactedMb.toFixed(1)} MiB, restored (snapshot + tail) in ${rb.seconds.toFixed(2)} s; summary identical`);
    const m = Number(process.env.SNAPSHOT_MAPPINGS ?? 100_000);
    const f = snapshotFormats(m);
    console.log(`snapshot of ${m} live mappings: format 0 (V8 graph) ${f.v0Mb.toFixed(1)} MiB restored in ${f.v0S.toFixed(3)} s, format 1 ${f.v1Mb.toFixed(1)} MiB in ${f.v1S.toFixed(3)} s (medians of 3)`);
    console.log(
      `restore: ops=${OPS} log_mb=${logMb.toFixed(1)} restore_s=${ra.seconds.toFixed(2)} replay_calls_per_s=${(OPS / ra.seconds).toFixed(0)} compacted_log_mb=${compactedMb.toFixed(1)} restore_compacted_s=${rb.seconds.toFixed(2)} ` +
        `snapshot_mappings=${m} v0_mb=${f.v0Mb.toFixed(1)} v0_restore_s=${f.v0S.toFixed(3)} v1_mb=${f.v1Mb.toFixed(1)} v1_restore_s=${f.v1S.toFixed(3)} v1_over_v0=${(f.v1S / f.v0S).toFixed(2)}`,
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
