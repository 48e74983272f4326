// The op store of a service without a data dir: nothing survives a restart, and the log only
// serves GET /trace. It keeps each session's first call records, encoded as JSON (a record holds
// the call's whole input and answer: kept as live objects, one /batch of 1024 ops could pin
// megabytes, and 2048 of them gigabytes, outside the memory budget). It keeps at most `maxCalls`
// records and `maxBytes` of JSON per session, and only what the memory budget lets it `hold`
// (the bytes are charged to the session's share). A session past either cap loses its history —
// its trace would not replay — gives the bytes back, and says so through `snapshot` (a base with
// no state), as a compacted file log does.
//
// Invariant: for a session, `calls` holds its first calls in order, or nothing once over a cap;
// `bytes` is the JSON length of `calls`, and exactly that much is held through `hold`.

import { decodeJson, encodeJson } from './op-store.js';
import type { CallRecord, CreateRecord, LoadProblem, OpRecord, OpStore, SnapshotBase, StoredSession } from './op-store.js';

interface Held {
  create: CreateRecord;
  calls: string[];
  bytes: number;
  dropped: number;
  lastAt: number;
}

export const DEFAULT_MEMORY_TRACE_CALLS = 2048;
/** JSON bytes of trace kept per session: a few thousand ordinary calls, a bug report's worth. */
export const DEFAULT_MEMORY_TRACE_BYTES = 4 * 1024 * 1024;

/** Charges (bytes > 0; false: no room, nothing charged) or gives back (bytes < 0) a session's trace bytes. */
export type TraceHold = (sessionId: string, bytes: number) => boolean;

export class MemoryOpStore implements OpStore {
  readonly description = 'memory only (set DMAEMU_DATA_DIR to persist)';
  private readonly held = new Map<string, Held>();

  constructor(
    private readonly hold: TraceHold = () => true,
    private readonly maxCalls = DEFAULT_MEMORY_TRACE_CALLS,
    private readonly maxBytes = DEFAULT_MEMORY_TRACE_BYTES,
  ) {}

  append(sessionId: string, record: OpRecord): Promise<void> {
    if (record.t === 'create') this.held.set(sessionId, { create: record, calls: [], bytes: 0, dropped: 0, lastAt: record.at });
    else {
      const h = this.held.get(sessionId);
      if (h && record.t === 'call') {
        h.lastAt = record.at;
        if (h.dropped > 0) h.dropped++;
        else this.keep(sessionId, h, record);
      }
    }
    return Promise.resolve();
  }

  private keep(sessionId: string, h: Held, record: CallRecord): void {
    if (h.calls.length < this.maxCalls) {
      const json = encodeJson(record);
      if (h.bytes + json.length <= this.maxBytes && this.hold(sessionId, json.length)) {
        h.calls.push(json);
        h.bytes += json.length;
        return;
      }
    }
    h.dropped = h.calls.length + 1;
    h.calls = [];
    this.hold(sessionId, -h.bytes);
    h.bytes = 0;
  }

  loadAll(): Promise<{ sessions: StoredSession[]; problems: LoadProblem[] }> {
    return Promise.resolve({ sessions: [], problems: [] });
  }

  load(sessionId: string): Promise<StoredSession | null> {
    const h = this.held.get(sessionId);
    if (!h) return Promise.resolve(null);
    const snapshot: SnapshotBase | null = h.dropped > 0 ? { create: h.create, calls: h.dropped, at: h.lastAt, state: Buffer.alloc(0) } : null;
    return Promise.resolve({ id: sessionId, where: 'memory', create: h.create, snapshot, calls: h.calls.map((j) => decodeJson(j) as CallRecord), ended: false });
  }

  /** Appends never fail here: there is nothing to bring back. */
  recover(sessionId: string): Promise<StoredSession | null> {
    return this.load(sessionId);
  }

  sizeOf(): null {
    return null; // nothing to compact: the cap above bounds it
  }

  compact(): Promise<void> {
    return Promise.resolve();
  }

  remove(sessionId: string): Promise<void> {
    // The session's budget share (trace bytes included) is given back whole when it ends.
    this.held.delete(sessionId);
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.held.clear();
    return Promise.resolve();
  }
}
