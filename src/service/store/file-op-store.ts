// The embedded op store: one append-only file per session under <dataDir>/sessions/, framed
// and checksummed (frames.ts), made durable by group commit — every append of one event-loop
// turn goes out in one write and one fdatasync per file, then all their promises resolve.
//
// A write is whole or it failed: writeSync may write fewer bytes than asked (a full disk), so
// every write loops until all bytes are out or an error comes back. A failed append is cut
// back off the file (ftruncate to where it started, which needs no free space), so the file
// stays a clean prefix of records; the store then refuses the session's appends until the
// journal calls recover(), which waits for the file's fdatasyncs in flight, cuts the file back to
// its last durable byte, and hands the journal that durable log to rebuild the session from. The
// zeros preallocated past the log are a speed-up only: failing to write them fails nothing.
//
// Invariants: a file's content is always MAGIC + a base (create record, or snapshot record +
// state frame) + call records in the order they ran, possibly followed by one torn frame after
// a crash (cut off at the next load); a compaction writes the new file beside the old one and
// renames it over it, so a crash leaves either log whole; a new or renamed file's directory
// entry is fsynced before any append to it is acknowledged; `durable` ≤ `written` and every
// byte below `durable` has been fdatasynced with no failure since; the data dir is locked
// (data-dir-lock.ts) from the constructor to close().

import { ftruncateSync, mkdirSync, readdirSync, readFileSync, truncateSync, unlinkSync, writeSync } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { lockDataDir } from './data-dir-lock.js';
import { decodeFrames, encodeFrame, MAGIC, type Frame } from './frames.js';
import {
  asRecord,
  decodeJson,
  encodeJson,
  type CallRecord,
  type CreateRecord,
  type LoadProblem,
  type OpRecord,
  type OpStore,
  type SnapshotBase,
  type StoredSession,
} from './op-store.js';

export interface StoreLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

const SUFFIX = '.oplog';
/** How a snapshot record's JSON starts (op-store.ts encodeJson of { t: 'snapshot', … }). */
const SNAPSHOT_HEAD = Buffer.from('{"t":"snapshot"');
const TMP = '.compacting';
/** Session ids are base64url (session-store.ts); anything else in the directory is not ours. */
const ID = /^[A-Za-z0-9_-]{1,128}$/;

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

interface LogFile {
  path: string;
  fh: FileHandle | null;
  /** Bytes on disk once everything pending is written. */
  total: number;
  base: number;
  pending: Buffer[];
  waiters: Waiter[];
  compactTo: Buffer | null;
  removing: boolean;
  /** fdatasyncs running on this file. */
  syncs: Set<Promise<void>>;
  /** Bytes of log on disk (where the next write goes) and the file's size, zeros past `written`. */
  written: number;
  allocated: number;
  /** Bytes fdatasynced with no failure since (what a crash now would leave), and the base they hold. */
  durable: number;
  durableBase: number;
  /** Set by a failed write or sync: every append is refused until recover(). */
  failed: unknown;
  /** An fdatasync failed: bytes written before it may be lost, so `durable` stops growing until recover(). */
  syncFailed: boolean;
  /** A failure recover() cannot undo (the file was replaced, its directory entry is in doubt). */
  lost: boolean;
}

/** The writes the store makes, injectable so that tests without root can give it short writes and ENOSPC. */
export interface StoreIo {
  writeSync(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number;
}

const NODE_IO: StoreIo = { writeSync };

/** Writes all of buf at `position`, looping over short writes; throws when the disk takes nothing more. */
export function writeAll(io: StoreIo, fd: number, buf: Uint8Array, position: number): void {
  let done = 0;
  while (done < buf.length) {
    const n = io.writeSync(fd, buf, done, buf.length - done, position + done);
    if (n <= 0) throw Object.assign(new Error(`write returned ${n} after ${done} of ${buf.length} bytes`), { code: 'ENOSPC' });
    done += n;
  }
}

function newFile(path: string, o: Partial<LogFile> = {}): LogFile {
  return { path, fh: null, total: 0, base: 0, pending: [], waiters: [], compactTo: null, removing: false, syncs: new Set(), written: 0, allocated: 0, durable: 0, durableBase: 0, failed: null, syncFailed: false, lost: false, ...o };
}

interface Batch {
  id: string;
  f: LogFile;
  /** Where the file's log ends once this batch is written (durable once its fdatasync returns). */
  end: number;
  base: number;
  data: Buffer[];
  compact: Buffer | null;
  remove: boolean;
  waiters: Waiter[];
}

/** fdatasyncs in flight at once (libuv runs them on its 4 threads). */
const MAX_SYNCS = 3;
/**
 * Appends overwrite zeros written ahead of time, GROW bytes at a go: an fdatasync that must also
 * commit a larger file size costs ~3× one that only flushes data (0.6 vs 0.2 ms measured here).
 */
const GROW = 256 * 1024;
const ZEROS = Buffer.alloc(GROW);

function failedBefore(f: LogFile): Error {
  return new Error(`op store: an earlier record of ${f.path} could not be written; this one is dropped with it`, { cause: f.failed });
}

/** Whether a torn frame at `offset` is part of a snapshot base (the snapshot record or its state frame), not an appended call. */
function inBase(frames: readonly Frame[], buf: Buffer, offset: number): boolean {
  const first = frames[0];
  if (frames.length === 1 && first?.kind === 'J') return first.payload.subarray(0, SNAPSHOT_HEAD.length).equals(SNAPSHOT_HEAD);
  return frames.length === 0 && buf.subarray(offset + 9, offset + 9 + SNAPSHOT_HEAD.length).equals(SNAPSHOT_HEAD);
}

export class FileOpStore implements OpStore {
  readonly description: string;
  private readonly dir: string;
  private readonly files = new Map<string, LogFile>();
  private readonly dirty = new Set<string>();
  private flushing: Promise<void> | null = null;
  private readonly syncs = new Set<Promise<void>>();
  private scheduled = false;
  private readonly unlock: () => void;
  /** Preallocations that could not be written (a nearly full disk): no data was lost by them. */
  preallocFailures = 0;

  constructor(
    dataDir: string,
    private readonly log: StoreLog,
    /** false only for benchmarks measuring what fsync costs; never in service. */
    private readonly sync = true,
    private readonly io: StoreIo = NODE_IO,
  ) {
    this.dir = join(dataDir, 'sessions');
    mkdirSync(this.dir, { recursive: true });
    this.unlock = lockDataDir(dataDir, (err) => this.log.error({ err, dir: dataDir }, `op store: the lock on data dir ${dataDir} was lost; another process may now write the same logs`));
    this.description = `files under ${this.dir}`;
  }

  append(sessionId: string, record: OpRecord): Promise<void> {
    const frame = encodeFrame('J', Buffer.from(encodeJson(record)));
    let f = this.files.get(sessionId);
    if (!f) {
      if (record.t !== 'create') return Promise.reject(new Error(`op store: session ${sessionId} has no log to append to`));
      f = newFile(join(this.dir, sessionId + SUFFIX), { total: MAGIC.length, base: frame.length, pending: [MAGIC] });
      this.files.set(sessionId, f);
    }
    if (f.failed) return Promise.reject(failedBefore(f));
    f.pending.push(frame);
    f.total += frame.length;
    return this.enqueue(sessionId, f);
  }

  compact(sessionId: string, base: SnapshotBase): Promise<void> {
    const f = this.files.get(sessionId);
    if (!f) return Promise.reject(new Error(`op store: session ${sessionId} has no log to compact`));
    if (f.failed) return Promise.reject(failedBefore(f));
    const head = encodeFrame('J', Buffer.from(encodeJson({ t: 'snapshot', create: base.create, calls: base.calls, at: base.at })));
    const state = encodeFrame('S', base.state);
    // Whatever is still pending is inside the snapshot: the new file replaces it.
    f.compactTo = Buffer.concat([MAGIC, head, state]);
    f.pending = [];
    f.total = f.base = f.compactTo.length;
    return this.enqueue(sessionId, f);
  }

  remove(sessionId: string): Promise<void> {
    const f = this.files.get(sessionId);
    if (!f) return Promise.resolve();
    f.removing = true;
    return this.enqueue(sessionId, f);
  }

  /**
   * After a failed append or compaction of the session: waits for its file's fdatasyncs in
   * flight, cuts the file back to its last durable byte and makes that durable, and returns the
   * durable log (null when not even the creation was durable: the file is gone). Throws when
   * the file cannot be brought back to a known state; the session must then stop.
   */
  async recover(sessionId: string): Promise<StoredSession | null> {
    const f = this.files.get(sessionId);
    if (!f) return null;
    while (f.syncs.size > 0) await Promise.allSettled([...f.syncs]);
    if (f.lost) throw new Error(`op store: ${f.path} was being replaced when the write failed; its state on disk is not known`);
    for (const w of f.waiters) w.reject(failedBefore(f));
    f.waiters = [];
    f.pending = [];
    f.compactTo = null;
    if (f.durable < MAGIC.length + 1 || f.durable < f.durableBase) {
      // The creation itself never became durable: the session does not exist.
      await f.fh?.close();
      this.files.delete(sessionId);
      await unlink(f.path).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      return null;
    }
    if (f.fh) {
      ftruncateSync(f.fh.fd, f.durable);
      if (this.sync) await f.fh.datasync();
    }
    f.written = f.allocated = f.total = f.durable;
    f.base = f.durableBase;
    f.failed = null;
    f.syncFailed = false;
    const r = this.readLog(sessionId, f.path, false);
    if ('problem' in r) throw new Error(r.problem?.message ?? `op store: ${f.path} holds no session after recovery`);
    return r.session;
  }

  sizeOf(sessionId: string): { total: number; base: number } | null {
    const f = this.files.get(sessionId);
    return f ? { total: f.total, base: f.base } : null;
  }

  async load(sessionId: string): Promise<StoredSession | null> {
    if (!ID.test(sessionId)) return null;
    const f = this.files.get(sessionId);
    if (!f) return null;
    if (f.pending.length > 0 || f.compactTo) await this.drain();
    const r = this.readLog(sessionId, f.path, false);
    return 'session' in r ? r.session : null;
  }

  async loadAll(): Promise<{ sessions: StoredSession[]; problems: LoadProblem[] }> {
    const sessions: StoredSession[] = [];
    const problems: LoadProblem[] = [];
    for (const name of readdirSync(this.dir).sort()) {
      const path = join(this.dir, name);
      if (name.endsWith(TMP)) {
        // A compaction that crashed before its rename: the old log is whole and still in place.
        this.log.warn({ file: path }, 'op store: removing an unfinished compaction');
        unlinkSync(path);
        continue;
      }
      const id = name.slice(0, -SUFFIX.length);
      if (!name.endsWith(SUFFIX) || !ID.test(id)) {
        problems.push({ where: path, message: `${path}: not an op log of this service (expected <session id>${SUFFIX}); left alone` });
        continue;
      }
      const r = this.readLog(id, path, true);
      if ('problem' in r) {
        if (r.problem) problems.push(r.problem);
        continue;
      }
      if (r.session.ended) {
        unlinkSync(path); // deleted or expired; the crash came before the removal
        continue;
      }
      sessions.push(r.session);
      const size = r.bytes;
      this.files.set(id, newFile(path, { total: size, base: r.baseBytes, written: size, allocated: r.fileBytes, durable: size, durableBase: r.baseBytes }));
    }
    return { sessions, problems };
  }

  async close(): Promise<void> {
    try {
      await this.drain();
      for (const f of this.files.values()) await f.fh?.close();
      this.files.clear();
    } finally {
      this.unlock();
    }
  }

  // ---- reading ---------------------------------------------------------------------------------

  private readLog(id: string, path: string, repair: boolean): { session: StoredSession; bytes: number; baseBytes: number; fileBytes: number } | { problem: LoadProblem | null } {
    const bad = (message: string) => ({ problem: { where: path, message: `${path}: ${message}; this session is not restored (the file is left as it is)` } });
    let buf: Buffer;
    try {
      buf = readFileSync(path);
    } catch (err) {
      return bad(`cannot be read (${(err as Error).message})`);
    }
    const d = decodeFrames(buf);
    if (d.problem?.kind === 'foreign') return bad('not an op log (its first bytes are not the dmaemu op-log header)');
    if (d.problem?.kind === 'corrupt') return bad(`damaged at byte ${d.problem.offset} (${d.problem.reason})`);
    if (d.problem?.kind === 'torn' && inBase(d.frames, buf, d.problem.offset)) {
      // A snapshot is written whole into a new file and renamed into place: cut short, it is damage, not a torn append.
      return bad(`its snapshot is cut short at byte ${d.problem.offset} (the file ends inside it)`);
    }
    if (d.problem?.kind === 'torn' && repair) {
      // A crash mid-append: that record was never acknowledged (acks wait for fdatasync).
      this.log.warn({ file: path, offset: d.problem.offset, dropped_bytes: buf.length - d.validBytes }, 'op store: dropping a torn last record');
      truncateSync(path, d.validBytes);
    }
    const frames = d.frames;
    if (frames.length === 0) {
      if (repair) {
        this.log.warn({ file: path }, 'op store: removing a log whose creation never completed');
        unlinkSync(path);
      }
      return { problem: null };
    }
    const records: OpRecord[] = [];
    let snapshot: SnapshotBase | null = null;
    let create: CreateRecord | null = null;
    let baseBytes = 0;
    for (let i = 0; i < frames.length; i++) {
      const fr = frames[i] as Frame;
      if (fr.kind === 'S') return bad(`a state frame at byte ${fr.offset} without a snapshot record before it`);
      let v: unknown;
      try {
        v = decodeJson(fr.payload.toString('utf8'));
      } catch {
        return bad(`the record at byte ${fr.offset} is not JSON`);
      }
      if (i === 0 && typeof v === 'object' && v !== null && (v as { t?: unknown }).t === 'snapshot') {
        const s = v as { create: unknown; calls: unknown; at: unknown };
        const c = asRecord(s.create);
        const state = frames[1];
        if (typeof c === 'string' || c.t !== 'create' || typeof s.calls !== 'number' || typeof s.at !== 'number' || state?.kind !== 'S') {
          return bad('its snapshot record is malformed');
        }
        create = c;
        snapshot = { create: c, calls: s.calls, at: s.at, state: Buffer.from(state.payload) };
        baseBytes = state.offset + 9 + state.payload.length;
        i++;
        continue;
      }
      const r = asRecord(v);
      if (typeof r === 'string') return bad(`the record at byte ${fr.offset}: ${r}`);
      if (i === 0) {
        if (r.t !== 'create') return bad('it does not start with a create record');
        create = r;
        baseBytes = fr.offset + 9 + fr.payload.length;
        continue;
      }
      if (r.t === 'create') return bad(`a second create record at byte ${fr.offset}`);
      records.push(r);
    }
    if (!create) return bad('it has no create record');
    if (create.id !== id) return bad(`its create record names session ${create.id}, not the file's ${id}`);
    const last = records[records.length - 1];
    const ended = last?.t === 'end';
    const calls = records.filter((r): r is CallRecord => r.t === 'call');
    if (calls.length !== records.length - (ended ? 1 : 0)) return bad('an end record is followed by more records');
    return { session: { id, where: path, create, snapshot, calls, ended }, bytes: d.validBytes, baseBytes, fileBytes: d.problem?.kind === 'torn' && repair ? d.validBytes : buf.length };
  }

  // ---- group commit ----------------------------------------------------------------------------

  private enqueue(sessionId: string, f: LogFile): Promise<void> {
    this.dirty.add(sessionId);
    const p = new Promise<void>((resolve, reject) => f.waiters.push({ resolve, reject }));
    if (!this.scheduled) {
      this.scheduled = true;
      // setImmediate: every append made while this turn's requests ran joins the same write.
      setImmediate(() => void this.kick());
    }
    return p;
  }

  private async kick(): Promise<void> {
    this.scheduled = false;
    if (this.flushing) return; // the running flush loops again when it finds more work
    this.flushing = this.flushLoop();
    try {
      await this.flushing;
    } finally {
      this.flushing = null;
    }
  }

  private async flushLoop(): Promise<void> {
    while (this.dirty.size > 0) {
      const ids = [...this.dirty];
      this.dirty.clear();
      const work = ids.map((id) => ({ id, f: this.files.get(id) })).filter((w): w is { id: string; f: LogFile } => w.f !== undefined);
      const batches = work.map(({ id, f }) => {
        const b: Batch = { id, f, end: f.total, base: f.base, data: f.pending, compact: f.compactTo, remove: f.removing, waiters: f.waiters };
        f.pending = [];
        f.compactTo = null;
        f.waiters = [];
        return b;
      });
      const results = await Promise.allSettled(batches.map((b) => this.writePhase(b)));
      let dirErr: unknown = null;
      if (this.sync && results.some((r) => r.status === 'fulfilled' && r.value.entryChanged)) {
        try {
          await this.syncDir();
        } catch (err) {
          dirErr = err;
        }
      }
      batches.forEach((b, i) => {
        const r = results[i] as PromiseSettledResult<{ entryChanged: boolean; needsSync: boolean }>;
        const err = r.status === 'rejected' ? (r.reason as unknown) : dirErr;
        if (err) return this.settle(b, err);
        if (r.status === 'fulfilled' && r.value.needsSync) return this.syncPhase(b);
        if (b.remove) this.files.delete(b.id);
        if (b.compact) b.f.lost = false; // renamed and its directory entry synced: the new file is the log
        if (b.compact || !this.sync) this.advance(b);
        this.settle(b, null);
      });
      // The next batch's write may go out while this one's fdatasync runs (that overlap is what lets
      // a few connections keep the disk busy), but no more than MAX_SYNCS of them at once.
      while (this.syncs.size >= MAX_SYNCS) await Promise.race(this.syncs);
    }
  }

  /** An appended batch's fdatasync; its waiters resolve when it is done (it also covers every earlier write to the file). */
  private syncPhase(b: Batch): void {
    const fh = b.f.fh;
    if (!fh) return this.settle(b, new Error('op store: no open file to sync'));
    const p: Promise<void> = fh.datasync().then(
      () => {
        this.advance(b);
        this.settle(b, null);
      },
      (err: unknown) => {
        b.f.syncFailed = true;
        this.settle(b, err);
      },
    );
    const done = p.finally(() => {
      this.syncs.delete(done);
      b.f.syncs.delete(done);
    });
    this.syncs.add(done);
    b.f.syncs.add(done);
  }

  /** b's bytes are on disk: the durable prefix grows to its end, unless an fdatasync failed first (earlier bytes may be lost). */
  private advance(b: Batch): void {
    if (b.f.syncFailed || b.end < b.f.durable) return;
    b.f.durable = b.end;
    b.f.durableBase = b.base;
  }

  private settle(b: Batch, err: unknown): void {
    if (err) {
      this.log.error({ err, file: b.f.path }, 'op store: write failed');
      const f = b.f;
      if (!f.failed) f.failed = err;
      // Records queued after the failed ones ran on the state those made: they cannot be kept either.
      for (const w of f.waiters) w.reject(failedBefore(f));
      f.waiters = [];
      f.pending = [];
      f.compactTo = null;
    }
    for (const w of b.waiters) {
      if (err) w.reject(err);
      else w.resolve();
    }
  }

  /** Writes one file's batch (appends: their fdatasync follows in syncPhase; compaction and removal: made durable here). */
  private async writePhase(b: Batch): Promise<{ entryChanged: boolean; needsSync: boolean }> {
    const { f, data, compact, remove } = b;
    let entryChanged = false;
    // A file is not closed or replaced under a running fdatasync.
    if ((compact || remove) && f.syncs.size > 0) await Promise.allSettled([...f.syncs]);
    if (compact) {
      const tmp = f.path + TMP;
      const whole = Buffer.concat([compact, ...data]);
      try {
        const out = await open(tmp, 'w');
        try {
          writeAll(this.io, out.fd, whole, 0);
          if (this.sync) await out.datasync();
        } finally {
          await out.close();
        }
      } catch (err) {
        await unlink(tmp).catch(() => undefined); // the old log is whole and still in place
        throw err;
      }
      await f.fh?.close();
      f.fh = null;
      try {
        await rename(tmp, f.path);
      } catch (err) {
        f.lost = true; // which file now holds the session is not certain
        throw err;
      }
      f.lost = true; // until the directory entry is fsynced (the flush loop does it next)
      entryChanged = true;
      f.written = f.allocated = whole.length;
      f.durable = 0; // the old file's bytes are gone; the new file's become durable with the directory sync
    } else if (data.length > 0) {
      if (!f.fh) {
        entryChanged = data[0] === MAGIC; // first write of a new session: its file is being created
        f.fh = await open(f.path, entryChanged ? 'w+' : 'r+');
      }
      const buf = data.length === 1 ? (data[0] as Buffer) : Buffer.concat(data);
      // A synchronous write into the page cache costs a few µs; an async one costs a thread-pool
      // round trip on every call's path to its answer (the fdatasync that follows stays async).
      try {
        writeAll(this.io, f.fh.fd, buf, f.written);
      } catch (err) {
        // Cut the partial batch off (shrinking needs no free space), so the file stays whole records.
        ftruncateSync(f.fh.fd, f.written);
        f.allocated = f.written;
        throw err;
      }
      f.written += buf.length;
      if (f.written > f.allocated) this.preallocate(f);
    }
    if (remove) {
      await f.fh?.close();
      f.fh = null;
      await unlink(f.path).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      return { entryChanged: true, needsSync: false };
    }
    if (compact && !f.fh) f.fh = await open(f.path, 'r+');
    return { entryChanged, needsSync: this.sync && !compact && data.length > 0 };
  }

  /**
   * Zeros past the log, GROW bytes at a go: this batch's fdatasync then commits the file size once
   * for the next GROW bytes of appends. On a nearly full disk they may not fit: that costs speed,
   * not data (the appended records are whole), so it is counted and the file keeps its size.
   */
  private preallocate(f: LogFile): void {
    const fd = f.fh?.fd;
    if (fd === undefined) return;
    try {
      writeAll(this.io, fd, ZEROS, f.written);
      f.allocated = f.written + GROW;
    } catch (err) {
      this.preallocFailures++;
      if (this.preallocFailures === 1 || this.preallocFailures % 1000 === 0) {
        this.log.warn({ err, file: f.path, failures: this.preallocFailures }, 'op store: could not preallocate space after a log (disk full?); records are still written whole');
      }
      try {
        ftruncateSync(fd, f.written); // drop the zeros that did fit: the file ends at its last record
      } catch {
        // Zeros past the log are harmless where they are (frames.ts reads them as its end).
      }
      f.allocated = f.written;
    }
  }

  private async syncDir(): Promise<void> {
    const d = await open(this.dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }

  private async drain(): Promise<void> {
    while (this.dirty.size > 0 || this.flushing || this.syncs.size > 0) {
      if (this.flushing) await this.flushing;
      else if (this.dirty.size > 0) await this.kick();
      else await Promise.allSettled([...this.syncs]);
    }
  }
}
