// Which op store the service journals to, from its options and environment:
//   DMAEMU_DATA_DIR=<dir>   op logs under <dir>/sessions/ (created if missing); restored on start
//   DMAEMU_DATA_DIR=off     (or unset, for buildApp) memory only: nothing survives a restart
//   DMAEMU_COMPACT_MIN_BYTES, DMAEMU_COMPACT_RATIO   when a log is compacted (src/service/journal.ts)
// `npm start` (src/service/server.ts) defaults to ./data; buildApp() callers (the tests) stay in memory
// unless they pass a dir, so a test never writes outside the tmp dir it chose. One service per
// data dir: the file store locks it (store/data-dir-lock.ts) until the app closes.

import { DEFAULT_JOURNAL_OPTIONS, Journal, type JournalOptions } from './journal.js';
import { positiveIntFromEnv, type SessionStore } from './session-store.js';
import { FileOpStore, type StoreIo, type StoreLog } from './store/file-op-store.js';
import { MemoryOpStore } from './store/memory-op-store.js';

/** The data dir from DMAEMU_DATA_DIR: null for unset, empty or "off". */
export function dataDirFromEnv(env: NodeJS.ProcessEnv = process.env): string | null {
  const v = env.DMAEMU_DATA_DIR;
  return v === undefined || v === '' || v === 'off' ? null : v;
}

export function journalOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): JournalOptions {
  const pick = (name: string, dflt: number): number => positiveIntFromEnv(env, name, dflt);
  return {
    compactMinBytes: pick('DMAEMU_COMPACT_MIN_BYTES', DEFAULT_JOURNAL_OPTIONS.compactMinBytes),
    compactRatio: pick('DMAEMU_COMPACT_RATIO', DEFAULT_JOURNAL_OPTIONS.compactRatio),
  };
}

/** The journal over the data dir's file store (which locks the dir: throws DataDirLockedError when another process holds it), or memory. */
export function openJournal(dataDir: string | null, sessions: SessionStore, log: StoreLog, opts: JournalOptions = journalOptionsFromEnv(), io?: StoreIo): Journal {
  const store = dataDir === null ? new MemoryOpStore((id, bytes) => sessions.holdTrace(id, bytes)) : new FileOpStore(dataDir, log, true, io);
  const journal = new Journal(store, sessions, log, opts);
  sessions.onExpired = (id) => {
    journal.ended(id, 'expired').catch((err: unknown) => log.error({ session: id, err }, 'could not log the expiry of a session'));
  };
  return journal;
}
