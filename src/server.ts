// Entry point of `npm start`: listens on HOST:PORT and stops cleanly on SIGINT/SIGTERM,
// letting in-flight requests finish (fastify.close waits for them).
import { buildApp } from './app.js';

const host = process.env.HOST ?? '127.0.0.1';
const port = Number.parseInt(process.env.PORT ?? '3000', 10);
const logLevel = process.env.LOG_LEVEL ?? 'info';

const app = await buildApp({ logLevel });
const address = await app.listen({ host, port });
console.log(`dmaemu listening on ${address}`);

let closing = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down');
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        app.log.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  });
}
