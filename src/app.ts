// Builds the Fastify application. Kept separate from server.ts so tests can `inject`
// without opening a socket.
import Fastify, { type FastifyInstance } from 'fastify';

export interface AppOptions {
  logLevel?: string;
}

export async function buildApp(opts: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: { level: opts.logLevel ?? 'info' },
  });
  app.get('/healthz', async () => ({ status: 'ok' }));
  return app;
}
