// Entry point of `npm start`: listens on HOST:PORT and stops cleanly on SIGINT/SIGTERM,
// letting in-flight requests finish (fastify.close waits for them), closing idle connections,
// and exiting within 5 s whatever the clients do (forceAfterGrace). The signal handlers go in
// first: as PID 1 in a container, a SIGTERM that arrives while the app is still starting must
// not be ignored (node's default would be to ignore it there).
import { parseArgs } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import { dataDirFromEnv } from './persistence.js';
import { DataDirLockedError } from './store/data-dir-lock.js';

const host = process.env.HOST ?? '127.0.0.1';
const port = Number.parseInt(process.env.PORT ?? '3000', 10);
const logLevel = process.env.LOG_LEVEL ?? 'info';

/** Filled once the app exists; the signal handlers may run before that. */
const started: { app?: FastifyInstance } = {};
let closing = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (closing) return;
    closing = true;
    const app = started.app;
    if (!app) process.exit(0); // nothing started yet: nothing to drain
    app.log.info({ signal }, 'shutting down');
    forceAfterGrace(app);
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        app.log.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  });
}

/**
 * How long the drain may take. Idle keep-alive connections close at once and answers in flight
 * end their connection (app.ts drainOnClose); what remains after DRAIN_GRACE_MS is a connection
 * that never sent a whole request (opened bare, or a body still trickling in), which Node's
 * server.close() does not count as idle: those are cut, so the process exits within 5 s of the
 * signal whatever its clients do. EXIT_DEADLINE_MS is the backstop if close still hangs.
 */
const DRAIN_GRACE_MS = 3000;
const EXIT_DEADLINE_MS = 4500;

function forceAfterGrace(app: FastifyInstance): void {
  setTimeout(() => {
    app.log.warn({ graceMs: DRAIN_GRACE_MS }, 'connections still open after the drain grace: closing them');
    app.server.closeAllConnections();
  }, DRAIN_GRACE_MS).unref();
  setTimeout(() => {
    app.log.error({ deadlineMs: EXIT_DEADLINE_MS }, 'shutdown did not finish in time: exiting');
    process.exit(1);
  }, EXIT_DEADLINE_MS).unref();
}

// Where sessions persist (docs/persistence.md): DMAEMU_DATA_DIR ("off": memory only), else
// --data-dir=<dir> (`npm start` passes ./data), else memory only — so a test that spawns this
// file never leaves sessions in the working directory.
const { values: flags } = parseArgs({ options: { 'data-dir': { type: 'string' } }, strict: false });
const flagDir = typeof flags['data-dir'] === 'string' ? flags['data-dir'] : null;
const dataDir = process.env.DMAEMU_DATA_DIR === undefined ? flagDir : dataDirFromEnv();
const app = await buildApp({ logLevel, dataDir }).catch((err: unknown) => {
  if (!(err instanceof DataDirLockedError)) throw err;
  console.error(`dmaemu: not started: ${err.message}`); // the holder, named: no stack trace to dig through
  process.exit(1);
});
started.app = app;
await app.listen({ host, port });
if (closing) await app.close();
const bound = app.server.address();
const shown = typeof bound === 'object' && bound ? `http://${host.includes(':') ? `[${host}]` : host}:${bound.port}` : String(bound);
// One log format: this line is a pino line like every other, written whatever LOG_LEVEL says
// (scripts and tests wait for it), as `msg: "dmaemu listening on http://…"` with the `url`.
app.log.child({}, { level: 'info' }).info({ url: shown }, `dmaemu listening on ${shown}`);
