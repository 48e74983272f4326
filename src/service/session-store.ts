// The live sessions of one service, keyed by unguessable ids (128 random bits from the
// platform CSPRNG, base64url). Nothing is shared between sessions; idle ones expire after
// `ttlMs` so a forgotten harness cannot hold memory forever.
//
// Invariants: `sessions.size` ≤ limits.maxSessions; a session is reachable only by its id.

import { randomBytes } from 'node:crypto';
import { resolveConfig, type SessionConfig } from '../core/config.js';
import { configRequest } from './config-wire.js';
import { DmaemuError } from '../core/errors.js';
import { DEFAULT_SESSION_LIMITS, Session, type SessionLimits } from './session.js';
import { SILENT_OBSERVER, type DmaObserver } from '../core/observer.js';
import { BUDGET_ENV, BUDGET_SHARE, MemoryBudget, budgetFromEnv, defaultBudgetBytes } from '../core/memory-budget.js';
import { DEFAULT_REQUEST_LIMITS, REQUEST_LIMIT_ENV, type RequestLimits } from './execute.js';
import type { LeakReportOut, SessionCreateInput } from '../../schemas/index.js';
import { ADDED_SINCE_FORMAT_0 } from './store/snapshot.js';

export interface StoreLimits extends SessionLimits, RequestLimits {
  maxSessions: number;
  /** Idle time after which a session is dropped. */
  ttlMs: number;
  /** Default memory_limit of a session (bytes of emulated RAM it may touch). */
  memoryLimit: number;
  /** Bytes all sessions together may hold (DMAEMU_MEMORY_BUDGET; src/core/memory-budget.ts). */
  memoryBudget: number;
}

export const DEFAULT_STORE_LIMITS: StoreLimits = {
  ...DEFAULT_SESSION_LIMITS,
  ...DEFAULT_REQUEST_LIMITS,
  maxSessions: 1000,
  ttlMs: 60 * 60 * 1000,
  memoryLimit: 256 * 1024 * 1024,
  memoryBudget: defaultBudgetBytes(),
};

/** A positive integer from the environment variable `name`, `dflt` when unset; nonsense is refused at startup. */
export function positiveIntFromEnv(env: NodeJS.ProcessEnv, name: string, dflt: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return dflt;
  const v = Number(raw);
  if (!Number.isSafeInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  return v;
}

/** Limits from DMAEMU_* environment variables, defaults otherwise; nonsense is refused at startup. */
export function limitsFromEnv(env: NodeJS.ProcessEnv = process.env): StoreLimits {
  const pick = (name: string, dflt: number): number => positiveIntFromEnv(env, name, dflt);
  const d = DEFAULT_STORE_LIMITS;
  return {
    maxSessions: pick('DMAEMU_MAX_SESSIONS', d.maxSessions),
    ttlMs: pick('DMAEMU_SESSION_TTL_MS', d.ttlMs),
    maxMappings: pick('DMAEMU_MAX_MAPPINGS', d.maxMappings),
    maxSgEntries: pick('DMAEMU_MAX_SG_ENTRIES', d.maxSgEntries),
    maxPageRows: pick('DMAEMU_MAX_PAGE_ROWS', d.maxPageRows),
    maxBatchOps: pick('DMAEMU_MAX_BATCH_OPS', d.maxBatchOps),
    memoryLimit: pick('DMAEMU_MEMORY_LIMIT', d.memoryLimit),
    memoryBudget: budgetFromEnv(env),
    maxRequestCost: pick(REQUEST_LIMIT_ENV.maxRequestCost, d.maxRequestCost),
    maxResponseBytes: pick(REQUEST_LIMIT_ENV.maxResponseBytes, d.maxResponseBytes),
  };
}

export class SessionStore {
  private readonly sessions = new Map<string, Session>();
  private sweeper: NodeJS.Timeout | undefined;
  /** Told of every call, finding and fault of the sessions created from now on (/metrics). */
  observer: DmaObserver = SILENT_OBSERVER;
  /** Told of each session dropped for idling past ttlMs (the journal logs its end). */
  onExpired: ((id: string) => void) | undefined;

  /** The process-wide memory budget every session of this store is charged to. */
  readonly budget: MemoryBudget;

  constructor(
    readonly limits: StoreLimits = DEFAULT_STORE_LIMITS,
    private readonly now: () => number = Date.now,
  ) {
    const derived = limits.memoryBudget === defaultBudgetBytes();
    this.budget = new MemoryBudget(limits.memoryBudget, derived ? `${BUDGET_ENV} unset: ${BUDGET_SHARE * 100}% of the V8 heap limit or of memory` : `${BUDGET_ENV}=${limits.memoryBudget}`);
  }

  /** Starts the idle sweep (unref'd: it never keeps the process alive). */
  startSweeping(everyMs = Math.min(60_000, this.limits.ttlMs)): void {
    this.sweeper ??= setInterval(() => this.sweep(), everyMs).unref();
  }

  stopSweeping(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  create(input: SessionCreateInput): Session {
    return this.admit(this.prepare(input));
  }

  /**
   * A new session, charged its creation but not registered: no id a client holds reaches it
   * (a trace is replayed into it first); `admit` registers it, `discard` gives its share back.
   */
  prepare(input: SessionCreateInput): Session {
    this.sweep();
    this.checkRoom();
    const config = resolveConfig(configRequest(input), { memoryLimit: this.limits.memoryLimit });
    const id = randomBytes(16).toString('base64url');
    const s = this.construct(id, config);
    s.chargeCreation(); // may refuse: the session is not registered yet
    s.lastUsed = this.now();
    return s;
  }

  /** Registers a prepared session (the live-session limit is checked again: others may have been created meanwhile). */
  admit(s: Session): Session {
    try {
      this.checkRoom();
    } catch (err) {
      s.releaseBudget();
      throw err;
    }
    s.lastUsed = this.now();
    this.sessions.set(s.id, s);
    return s;
  }

  /** A prepared session that will not be admitted: its share of the budget goes back. */
  discard(s: Session): void {
    s.releaseBudget();
  }

  private checkRoom(): void {
    if (this.sessions.size >= this.limits.maxSessions) {
      throw new DmaemuError('DMAEMU_TOO_MANY_SESSIONS', `the live-session limit (DMAEMU_MAX_SESSIONS=${this.limits.maxSessions}) is reached; delete a session first`);
    }
  }

  /** A session rebuilt after a restart (src/service/journal.ts): its old id, its logged creation input; no limit applies. */
  restore(id: string, input: SessionCreateInput): Session {
    const s = this.construct(id, resolveConfig(configRequest(input), { memoryLimit: this.limits.memoryLimit }));
    s.chargeCreation(); // never refused while the app restores (budget.admitAll)
    this.sessions.set(id, s);
    return s;
  }

  /** Drops a session without ending it (a restore that failed half-way). */
  forget(id: string): void {
    this.sessions.get(id)?.releaseBudget();
    this.sessions.delete(id);
  }

  /** A new, empty session like `s` (same id and config), never registered: what a snapshot restores into. */
  fresh(s: Session): Session {
    return this.construct(s.id, s.config);
  }

  /**
   * What a session was given rather than owns (config, limits, the observer, anything shared
   * between sessions), in an order that is the same in every process running this version: a
   * snapshot names these by position and neither copies nor replaces them. Found as the
   * objects two fresh sessions of the same config have in common.
   */
  externalsOf(s: Session): object[] {
    const given: object[] = [s.config, s.limits, this.observer, SILENT_OBSERVER];
    const skip = new Set(given);
    const reach = (root: object): object[] => {
      const seen = new Set<object>();
      const order: object[] = [];
      const stack: unknown[] = [root];
      while (stack.length > 0) {
        const v = stack.pop();
        if (typeof v !== 'object' || v === null || seen.has(v) || skip.has(v) || ArrayBuffer.isView(v)) continue;
        seen.add(v);
        order.push(v);
        if (v instanceof Map) for (const [k, x] of v) stack.push(k, x);
        else if (v instanceof Set || Array.isArray(v)) for (const x of v as Iterable<unknown>) stack.push(x);
        else {
          // Format 0 numbered the shared objects in the graph as it was then: fields added since
          // (snapshot.ts ADDED_SINCE_FORMAT_0) are not walked, so the numbering stays the same.
          const added = ADDED_SINCE_FORMAT_0[v.constructor.name] ?? [];
          for (const [k, x] of Object.entries(v)) if (!added.includes(k)) stack.push(x);
        }
      }
      return order;
    };
    const first = new Set(reach(this.fresh(s)));
    return [...given, ...reach(this.fresh(s)).filter((o) => first.has(o))];
  }

  private construct(id: string, config: SessionConfig): Session {
    return new Session(id, config, this.limits, this.observer, this.budget);
  }

  get(id: string): Session {
    const s = this.sessions.get(id);
    if (!s || this.expired(s)) {
      if (s) {
        this.sessions.delete(id);
        s.releaseBudget();
        this.onExpired?.(id);
      }
      throw new DmaemuError('DMAEMU_SESSION_NOT_FOUND', 'no live session has this id (never created, deleted, or idle past DMAEMU_SESSION_TTL_MS)');
    }
    s.lastUsed = this.now();
    return s;
  }

  delete(id: string): LeakReportOut {
    const s = this.get(id);
    this.sessions.delete(id);
    s.releaseBudget();
    return s.close();
  }

  /** The memory-only trace buffer's bytes for session `id`, charged to (or given back from) its budget share. */
  holdTrace(id: string, bytes: number): boolean {
    return this.sessions.get(id)?.holdBytes(bytes) ?? false;
  }

  get size(): number {
    return this.sessions.size;
  }

  values(): IterableIterator<Session> {
    return this.sessions.values();
  }

  /** Drops idle sessions; returns how many. */
  sweep(): number {
    let n = 0;
    for (const [id, s] of this.sessions) {
      if (this.expired(s)) {
        this.sessions.delete(id);
        s.releaseBudget();
        this.onExpired?.(id);
        n++;
      }
    }
    return n;
  }

  clear(): void {
    for (const s of this.sessions.values()) s.releaseBudget();
    this.sessions.clear();
  }

  private expired(s: Session): boolean {
    return this.now() - s.lastUsed > this.limits.ttlMs;
  }
}
