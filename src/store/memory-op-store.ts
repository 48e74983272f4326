// The op store of a service without a data dir: nothing survives a restart, and the log only
// serves GET /trace. It keeps each session's first `maxCalls` call records (as the objects the
// journal handed it, no copy); a session that makes more calls loses its history — its trace
// would not replay — and says so through `snapshot` (a base with no state), as a compacted
// file log does.
//
// Invariant: for a session, `calls` holds its first calls in order, or nothing once over the cap.

import type { CallRecord, CreateRecord, LoadProblem, OpRecord, OpStore, SnapshotBase, StoredSession } from './op-store.js';

interface Held {
  create: CreateRecord;
  calls: CallRecord[];
  dropped: number;
  lastAt: number;
}

export const DEFAULT_MEMORY_TRACE_CALLS = 2048;

export class MemoryOpStore implements OpStore {
  readonly description = 'memory only (set DMAEMU_DATA_DIR to persist)';
  private readonly held = new Map<string, Held>();

  constructor(private readonly maxCalls = DEFAULT_MEMORY_TRACE_CALLS) {}

  append(sessionId: string, record: OpRecord): Promise<void> {
    if (record.t === 'create') this.held.set(sessionId, { create: record, calls: [], dropped: 0, lastAt: record.at });
    else {
      const h = this.held.get(sessionId);
      if (h && record.t === 'call') {
        h.lastAt = record.at;
        if (h.dropped > 0) h.dropped++;
        else if (h.calls.length < this.maxCalls) h.calls.push(record);
        else {
          h.dropped = h.calls.length + 1;
          h.calls = [];
        }
      }
    }
    return Promise.resolve();
  }

  loadAll(): Promise<{ sessions: StoredSession[]; problems: LoadProblem[] }> {
    return Promise.resolve({ sessions: [], problems: [] });
  }

  load(sessionId: string): Promise<StoredSession | null> {
    const h = this.held.get(sessionId);
    if (!h) return Promise.resolve(null);
    const snapshot: SnapshotBase | null = h.dropped > 0 ? { create: h.create, calls: h.dropped, at: h.lastAt, state: Buffer.alloc(0) } : null;
    return Promise.resolve({ id: sessionId, where: 'memory', create: h.create, snapshot, calls: h.calls, ended: false });
  }

  sizeOf(): null {
    return null; // nothing to compact: the cap above bounds it
  }

  compact(): Promise<void> {
    return Promise.resolve();
  }

  remove(sessionId: string): Promise<void> {
    this.held.delete(sessionId);
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.held.clear();
    return Promise.resolve();
  }
}
