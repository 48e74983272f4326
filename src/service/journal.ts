// The journal: every call that reaches a session is appended to the op store with its answer,
// and answered only once the record is durable; on start, every stored session is rebuilt by
// replaying its log (from its snapshot, when it was compacted). Routes call `call` / `created`
// / `ended`; nothing else in the service writes to the store.
//
// What is logged: session creation (its validated input, memory_limit filled in), every
// session-scoped POST that reached the Session — including those that threw a DmaemuError,
// because some do so *after* an effect (an unmap of an unknown handle records a dma-debug
// finding first) — and the end of a session (DELETE or idle expiry). Requests refused before
// reaching a session (validation, unknown session) change nothing and are not logged.
//
// Compaction: when the records after a session's base outgrow `compactRatio` × the base and
// `compactMinBytes`, the base is replaced by a snapshot of the live state (its device's saved
// state, src/core/state/codec.ts: each structure's fields, named and versioned), so disk use
// stays within (1 + compactRatio) × snapshot + compactMinBytes. Below the floor the history is
// kept whole, so a short session (a bug report) can still be exported as a trace. A snapshot in
// the format before it (format 0, the V8 object graph: store/snapshot.ts) is still read, once,
// and the log rewritten in the current format right after (or refused, naming the class that
// changed, when this build's classes no longer have its fields).
//
// A failed write (disk full, I/O error): the calls whose records were not made durable answer
// 503 DMAEMU_PERSISTENCE_FAILED and must have had no effect, yet they already ran in memory.
// The session is therefore rebuilt from its durable log (store.recover() cuts the file back to
// its last durable byte; the rebuild is the restore a restart would do), and serves again from
// there; while that runs, its calls answer 503 without running. Chosen over running each call
// on a copy, which would cost every call a copy of the session to guard against a rare failure:
// this costs nothing until a write fails, then one restore of that session (bounded by
// compaction), and it gives exactly what a restart would. Only when the log's state on disk
// cannot be known (a compaction's rename failed half-way) does the session stop for good.
//
// Invariants: records reach the store in the order the calls ran (each is appended in the
// same turn as its call, before any await); after a failed append, the live session is the
// one its durable log rebuilds, or it refuses every call (broken).

import { DmaemuError } from '../core/errors.js';
import { errorBodyOf, replayRecord } from './replay.js';
import type { Session } from './session.js';
import type { SessionStore } from './session-store.js';
import { isV8GraphSnapshot, restoreSnapshot } from './store/snapshot.js';
import { DEVICE_STATE_MAGIC } from '../core/dma-device.js';
import type { CallName, CallRecord, CreateRecord, OpStore, StoredSession } from './store/op-store.js';
import type { StoreLog } from './store/file-op-store.js';
import type { ErrorBodyOut, SessionCreateInput } from '../../schemas/index.js';

export interface JournalOptions {
  /** Never compact a log smaller than this many bytes past its base (default 8 MiB). */
  compactMinBytes: number;
  /** Compact when the bytes past the base exceed this multiple of the base (default 4). */
  compactRatio: number;
}

export const DEFAULT_JOURNAL_OPTIONS: JournalOptions = { compactMinBytes: 8 * 1024 * 1024, compactRatio: 4 };

export interface RestoreReport {
  restored: number;
  failed: number;
  ms: number;
}

export class Journal {
  private readonly broken = new Set<string>();
  /** Sessions being rebuilt from their durable log after a failed write (their calls answer 503 meanwhile). */
  private readonly recovering = new Map<string, Promise<void>>();
  /** Calls each live session has made since creation (a snapshot records how many it folds in). */
  private readonly callCount = new Map<string, number>();
  /** Each live session's create record (the base a snapshot keeps). */
  private readonly creates = new Map<string, CreateRecord>();

  constructor(
    readonly store: OpStore,
    private readonly sessions: SessionStore,
    private readonly log: StoreLog,
    private readonly opts: JournalOptions = DEFAULT_JOURNAL_OPTIONS,
  ) {}

  created(s: Session, input: SessionCreateInput): Promise<void> {
    this.callCount.set(s.id, 0);
    const rec: CreateRecord = { t: 'create', at: s.lastUsed, id: s.id, input: { ...input, memory_limit: s.config.memoryLimit } };
    this.creates.set(s.id, rec);
    return this.durable(s.id, this.store.append(s.id, rec));
  }

  /** Runs `run` (the route's call into the core), logs it with its answer, and resolves once that is durable. */
  async call<T>(s: Session, op: CallName, body: unknown, query: unknown, run: () => T): Promise<T> {
    if (this.broken.has(s.id)) throw this.brokenError(s.id);
    if (this.recovering.has(s.id)) throw this.failedError(s.id, 'it is being rebuilt from its log after a failed write; retry');
    let out: T | undefined;
    let threw = false;
    let thrown: unknown;
    let err: ErrorBodyOut | undefined;
    try {
      out = run();
    } catch (e) {
      threw = true;
      thrown = e;
      err = errorBodyOf(e);
    }
    const rec: CallRecord = { t: 'call', at: s.lastUsed, op, in: body };
    if (query !== undefined) rec.q = query;
    if (err) rec.err = err;
    else rec.out = out;
    await this.record(s, rec);
    if (threw) throw thrown;
    return out as T;
  }

  /** Logs calls already made (a trace replayed into a new session), all in one group commit. */
  async recordAll(s: Session, calls: readonly { op: CallName; in: unknown; out?: unknown; err?: ErrorBodyOut }[]): Promise<void> {
    await Promise.all(calls.map((c) => this.record(s, { t: 'call', at: s.lastUsed, ...c })));
  }

  /** DELETE or idle expiry: the end record, then the log goes. */
  async ended(id: string, reason: 'deleted' | 'expired'): Promise<void> {
    this.callCount.delete(id);
    this.creates.delete(id);
    if (this.broken.delete(id)) return this.store.remove(id);
    await this.durable(id, this.store.append(id, { t: 'end', at: Date.now(), reason }));
    await this.store.remove(id);
  }

  /** The stored log of a live session (GET /trace). */
  history(id: string): Promise<StoredSession | null> {
    return this.store.load(id);
  }

  /** Rebuilds every stored session into `sessions`; a session that cannot be read or replayed is logged, naming its file, and skipped. */
  async restore(): Promise<RestoreReport> {
    const t0 = performance.now();
    const { sessions, problems } = await this.store.loadAll();
    for (const p of problems) this.log.error({ file: p.where }, p.message);
    let restored = 0;
    for (const st of sessions) {
      try {
        const migrated = this.restoreOne(st);
        restored++;
        if (migrated) await this.rewrite(st);
      } catch (err) {
        this.log.error({ file: st.where, err }, `${st.where}: session ${st.id} could not be rebuilt from its log (${(err as Error).message}); it is not restored (the file is left as it is)`);
        this.sessions.forget(st.id);
      }
    }
    return { restored, failed: problems.length + sessions.length - restored, ms: performance.now() - t0 };
  }

  /** Rebuilds one session; true when its snapshot was in format 0 (its log should be rewritten). */
  private restoreOne(st: StoredSession): boolean {
    const s = this.sessions.restore(st.id, st.create.input);
    const state = st.snapshot?.state;
    let migrated = false;
    if (state?.subarray(0, DEVICE_STATE_MAGIC.length).equals(DEVICE_STATE_MAGIC)) s.device.loadState(state);
    else if (state && isV8GraphSnapshot(state)) {
      restoreSnapshot(s, state, this.sessions.externalsOf(s));
      migrated = true;
    } else if (state) throw new Error(`its snapshot is in no format this dmaemu reads (first bytes ${state.subarray(0, 8).toString('hex')})`);
    let diverged = -1;
    st.calls.forEach((rec, i) => {
      if (!replayRecord(s, rec) && diverged < 0) diverged = i;
    });
    if (diverged >= 0) {
      // Determinism says this cannot happen with the same dmaemu; a different version may answer differently.
      this.log.warn({ file: st.where, call: diverged }, `${st.where}: replayed call ${diverged} answered differently than logged (a different dmaemu version?); the session is restored as this version computes it`);
    }
    s.lastUsed = st.calls[st.calls.length - 1]?.at ?? st.snapshot?.at ?? st.create.at;
    this.callCount.set(st.id, (st.snapshot?.calls ?? 0) + st.calls.length);
    this.creates.set(st.id, st.create);
    return migrated;
  }

  /** A session restored from a format-0 snapshot: its log becomes a current-format snapshot now, so the old reader is needed once. */
  private async rewrite(st: StoredSession): Promise<void> {
    const s = this.sessions.values();
    for (const x of s) {
      if (x.id !== st.id) continue;
      try {
        await this.store.compact(st.id, { create: st.create, calls: this.callCount.get(st.id) ?? 0, at: x.lastUsed, state: x.device.saveState() });
        this.log.info({ file: st.where }, `${st.where}: snapshot format 0 (V8 object graph) read and rewritten in the current format`);
      } catch (err) {
        // The old log is whole (compaction replaces it only once the new one is durable): the session goes on from it.
        this.log.warn({ file: st.where, err }, `${st.where}: could not rewrite a format-0 snapshot in the current format; it stays as it is`);
        await this.rollBack(st.id, err);
      }
      return;
    }
  }

  private async record(s: Session, rec: CallRecord): Promise<void> {
    this.callCount.set(s.id, (this.callCount.get(s.id) ?? 0) + 1);
    await this.durable(s.id, this.store.append(s.id, rec));
    await this.maybeCompact(s);
  }

  private async maybeCompact(s: Session): Promise<void> {
    const size = this.store.sizeOf(s.id);
    if (!size || this.broken.has(s.id) || this.recovering.has(s.id)) return;
    const past = size.total - size.base;
    if (past <= this.opts.compactMinBytes || past <= this.opts.compactRatio * size.base) return;
    const state = s.device.saveState();
    const create = this.creates.get(s.id);
    if (!create) return;
    try {
      await this.store.compact(s.id, { create, calls: this.callCount.get(s.id) ?? 0, at: s.lastUsed, state });
    } catch (err) {
      // The call that asked for it is durable already (and answered); the calls folded into the failed snapshot are not.
      await this.rollBack(s.id, err);
    }
  }

  private async durable(id: string, p: Promise<void>): Promise<void> {
    try {
      await p;
    } catch (err) {
      await this.rollBack(id, err);
      if (this.broken.has(id)) throw this.brokenError(id);
      throw this.failedError(id, 'the session is back at its last durable call; retry');
    }
  }

  /** Rebuilds session `id` from its durable log, once per failure however many calls it failed. */
  private rollBack(id: string, err: unknown): Promise<void> {
    let r = this.recovering.get(id);
    if (!r) {
      this.log.error({ session: id, err }, `session ${id}: its log could not be written; the calls not yet durable are undone and the session is rebuilt from its log`);
      r = this.rebuild(id).finally(() => this.recovering.delete(id));
      this.recovering.set(id, r);
    }
    return r;
  }

  private async rebuild(id: string): Promise<void> {
    try {
      const st = await this.store.recover(id);
      this.sessions.forget(id);
      if (st === null) {
        // Not even its creation was durable: it never existed.
        this.callCount.delete(id);
        this.creates.delete(id);
        return;
      }
      const budget = this.sessions.budget;
      budget.admitAll(true); // it held at least this much a moment ago
      try {
        this.restoreOne(st);
      } finally {
        budget.admitAll(false);
        budget.resync(this.sessions.values());
      }
    } catch (err) {
      this.broken.add(id);
      this.log.error({ session: id, err }, `session ${id}: its log could not be brought back to a known state; the session refuses further calls`);
    }
  }

  private failedError(id: string, why: string): DmaemuError {
    return new DmaemuError('DMAEMU_PERSISTENCE_FAILED', `session ${id}: this call could not be made durable, so it was not made: ${why} (see the service log)`);
  }

  private brokenError(id: string): DmaemuError {
    return new DmaemuError('DMAEMU_PERSISTENCE_FAILED', `session ${id}: a call could not be made durable and its log could not be brought back, so this session stopped; create a new session (see the service log)`);
  }
}
