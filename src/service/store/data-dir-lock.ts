// One owner per data dir: two services writing one session's log would overwrite each other's
// records (each appends at the offset it believes is the end). The file store takes this lock
// before it reads or writes anything and keeps it until close().
//
// The lock is proper-lockfile's (an atomic mkdir of <dir>/dmaemu.lock, its mtime refreshed every
// UPDATE_MS while held; a lock not refreshed for STALE_MS is stale and taken over). Why not flock:
// Node has no flock(2), and the native addons that add it need a compiler at install time;
// mkdir is atomic on every local filesystem and on NFS. Beside it, <dir>/dmaemu.lock.owner names
// the holder (pid, host, start time) for the refusal message, and lets a restart on the same
// host take over at once from a holder that is dead (kill -9, a crash, a container restart that
// reuses the pid) instead of waiting out STALE_MS.
//
// Invariants: while a FileOpStore is open, the lock directory exists and its owner file names
// this process; a process never takes a lock whose recorded holder is alive on this host.

import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';

/** A lock not refreshed for this long belongs to a process that is gone (or hung past saving). */
const STALE_MS = 10_000;
const UPDATE_MS = 2_000;

export interface LockOwner {
  pid: number;
  host: string;
  since: string;
}

export class DataDirLockedError extends Error {
  constructor(
    readonly dir: string,
    readonly owner: LockOwner | null,
  ) {
    const who = owner ? `process ${owner.pid} on host ${owner.host} (holding it since ${owner.since})` : 'another process (its owner file is not written yet or unreadable)';
    super(`data dir ${dir} is in use by ${who}; one dmaemu per data dir: stop that one, or give this one another DMAEMU_DATA_DIR`);
    this.name = 'DataDirLockedError';
  }
}

function readOwner(path: string): LockOwner | null {
  try {
    const o = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockOwner>;
    return typeof o.pid === 'number' && typeof o.host === 'string' && typeof o.since === 'string' ? { pid: o.pid, host: o.host, since: o.since } : null;
  } catch {
    return null;
  }
}

/** A holder on this host whose process no longer exists (or is us: a restart that got the same pid). */
function deadHere(owner: LockOwner | null): boolean {
  if (!owner || owner.host !== hostname()) return false;
  if (owner.pid === process.pid) return true;
  try {
    process.kill(owner.pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * Takes the data dir's lock or throws DataDirLockedError naming the holder. `onLost` is told
 * if the lock is taken away while held (its directory removed or its mtime not refreshable):
 * proper-lockfile's default would throw from a timer and kill the process.
 */
export function lockDataDir(dir: string, onLost: (err: Error) => void): () => void {
  const lockPath = join(dir, 'dmaemu.lock');
  const ownerPath = `${lockPath}.owner`;
  const opts = { lockfilePath: lockPath, realpath: false, stale: STALE_MS, update: UPDATE_MS, onCompromised: onLost };
  let release: () => void;
  try {
    release = lockfile.lockSync(dir, opts);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
    const owner = readOwner(ownerPath);
    if (!deadHere(owner)) throw new DataDirLockedError(dir, owner);
    rmSync(lockPath, { recursive: true, force: true }); // its holder is gone: recover the stale lock
    try {
      release = lockfile.lockSync(dir, opts);
    } catch (again) {
      if ((again as NodeJS.ErrnoException).code === 'ELOCKED') throw new DataDirLockedError(dir, readOwner(ownerPath)); // another start won the race
      throw again;
    }
  }
  const me: LockOwner = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
  writeFileSync(ownerPath, JSON.stringify(me) + '\n');
  return () => {
    rmSync(ownerPath, { force: true });
    try {
      release();
    } catch {
      // Already released or compromised (onLost was told): nothing left to give back.
    }
  };
}
