// The durable truth of a session: its creation input, then every call that reached it, in the
// order it ran, each with its answer (the emulator is deterministic, so replaying the calls
// rebuilds the state). This module is the one interface the service depends on; an embedded
// file store (file-op-store.ts) and an in-memory one (memory-op-store.ts) implement it, and a
// shared store for several replicas (PostgreSQL, ...) would be a third.
//
// Invariants every implementation keeps: records of a session come back in append order;
// an append's promise resolves only once the record is durable (for the memory store: stored);
// a record that was never resolved may be lost, a resolved one never is; a rejected one is not
// in the log recover() returns, nor is any record of the session appended after it; after
// compact(), a load returns the base and then only the records appended after it.

import type { ErrorBodyOut, SessionCreateInput } from '../../../schemas/index.js';

/** The session-scoped calls, named as their route paths (the journal logs what routes/ ran). */
export const CALLS = [
  'map_sg',
  'map_page',
  'unmap',
  'sync',
  'alloc_coherent',
  'free_coherent',
  'flush',
  'batch',
  'cpu/write',
  'cpu/read',
  'device/write',
  'device/read',
] as const;
export type CallName = (typeof CALLS)[number];

export interface CreateRecord {
  t: 'create';
  /** Wall-clock ms (idle expiry survives a restart). */
  at: number;
  id: string;
  /** The validated input, with memory_limit filled in so the log does not depend on the environment. */
  input: SessionCreateInput;
}

export interface CallRecord {
  t: 'call';
  at: number;
  op: CallName;
  /** The validated, decoded body the route handed the core. */
  in: unknown;
  /** The decoded query string, when the route has one (?pages=). */
  q?: unknown;
  /** The answer (200), or the error body of a call that threw after reaching the session. */
  out?: unknown;
  err?: ErrorBodyOut;
}

export interface EndRecord {
  t: 'end';
  at: number;
  reason: 'deleted' | 'expired';
}

export type OpRecord = CreateRecord | CallRecord | EndRecord;

/** Where a compacted log starts: the session as it was after `calls` calls. */
export interface SnapshotBase {
  create: CreateRecord;
  /** Calls folded into the snapshot (their records are gone: no trace before this point). */
  calls: number;
  at: number;
  state: Buffer;
}

export interface StoredSession {
  id: string;
  /** Where this session lives (a file path for the file store), for messages. */
  where: string;
  create: CreateRecord;
  snapshot: SnapshotBase | null;
  /** Call records after the create record or the snapshot. */
  calls: CallRecord[];
  /** True when the last record is an end record (deleted or expired before a crash finished the removal). */
  ended: boolean;
}

export interface LoadProblem {
  where: string;
  message: string;
}

export interface OpStore {
  /** Human-readable description for the startup log line. */
  readonly description: string;
  /** Appends one record; resolves once it is durable. */
  append(sessionId: string, record: OpRecord): Promise<void>;
  /** Every stored session, and what could not be read (each naming its file); never throws for one bad session. */
  loadAll(): Promise<{ sessions: StoredSession[]; problems: LoadProblem[] }>;
  /** One session's log (for GET /trace); null when the store holds none. */
  load(sessionId: string): Promise<StoredSession | null>;
  /** Bytes the session's log holds now, and how many of them are its base (create or snapshot). */
  sizeOf(sessionId: string): { total: number; base: number } | null;
  /** Replaces everything stored so far for the session with `base` (records appended later follow it). */
  compact(sessionId: string, base: SnapshotBase): Promise<void>;
  /**
   * After an append or compaction of the session failed (its promise rejected): brings its log
   * back to the records that are durable and returns them (null: not even its creation is, and
   * it is gone). Until then every append of the session is refused. Throws when the log's state
   * cannot be known; the session must then stop.
   */
  recover(sessionId: string): Promise<StoredSession | null>;
  /** Forgets the session (after its end record is durable). */
  remove(sessionId: string): Promise<void>;
  /** Makes every pending append durable and releases files. */
  close(): Promise<void>;
}

// ---- JSON records -----------------------------------------------------------------------------
// Decoded inputs carry bigints (addresses, masks); JSON has none, so they travel as {"$big":"0x…"}.

const BIG = '$big';

function bigReplacer(_key: string, v: unknown): unknown {
  return typeof v === 'bigint' ? { [BIG]: `0x${v.toString(16)}` } : v;
}

function bigReviver(_key: string, v: unknown): unknown {
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    const b = o[BIG];
    if (typeof b === 'string' && Object.keys(o).length === 1) return BigInt(b);
  }
  return v;
}

export function encodeJson(value: unknown): string {
  try {
    return JSON.stringify(value); // the common case has no bigint, and no replacer is the fast path
  } catch (err) {
    if (err instanceof TypeError) return JSON.stringify(value, bigReplacer);
    throw err;
  }
}

export function decodeJson(text: string): unknown {
  return text.includes(`"${BIG}"`) ? JSON.parse(text, bigReviver) : JSON.parse(text);
}

/** A structural check of a decoded record: enough to name what is wrong in a damaged or foreign log. */
export function asRecord(v: unknown): OpRecord | string {
  if (typeof v !== 'object' || v === null) return 'a record is not an object';
  const r = v as Record<string, unknown>;
  if (typeof r.at !== 'number') return 'a record has no time';
  if (r.t === 'create') return typeof r.id === 'string' && typeof r.input === 'object' && r.input !== null ? (v as CreateRecord) : 'a create record lacks id or input';
  if (r.t === 'call') return typeof r.op === 'string' && (CALLS as readonly string[]).includes(r.op) ? (v as CallRecord) : `unknown call ${JSON.stringify(r.op)}`;
  if (r.t === 'end') return v as EndRecord;
  return `unknown record type ${JSON.stringify(r.t)}`;
}
