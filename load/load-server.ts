// The server side of `npm run load`, in its own process: the real app plus, for context, a stub
// that validates the same map_sg / unmap bodies with the same zod schemas and serializer and
// answers a precomputed response of the same shape — what HTTP + JSON cost by themselves.
// HELLO=1 serves a minimal Fastify hello-world instead, with the same logger settings.
// Prints "listening on <url>" and stops on SIGTERM.

import Fastify from 'fastify';
import { buildApp } from '../src/service/app.js';
import { callRoute } from '../routes/route-kit.js';
import { CALL_TABLE } from '../src/service/calls.js';
import type { MapSgOut, UnmapOut } from '../schemas/index.js';

const logLevel = process.env.LOG_LEVEL ?? 'info';

const STUB_MAP: MapSgOut = {
  handle: 1,
  nents: 1,
  segments: [{ dma_address: '0xffff8000', dma_length: 32768 }],
  iova: { start: '0xffff8000', size: 32768 },
  iova_ranges: [{ start: '0xffff8000', size: 32768 }],
};
const STUB_UNMAP: UnmapOut = { handle: 1, iova: { start: '0xffff8000', size: 32768 } };

async function main(): Promise<void> {
  let app;
  if (process.env.HELLO === '1') {
    app = Fastify({ logger: { level: logLevel } });
    app.get('/', async () => ({ hello: 'world' }));
  } else {
    app = await buildApp({ logLevel });
    // Same plugin helper, schemas and serializer as the real routes; the session lookup is the
    // only core call left (stub answers are fixed).
    callRoute(app, CALL_TABLE.map_sg, { stub: { path: 'stub/map_sg', answer: STUB_MAP } });
    callRoute(app, CALL_TABLE.unmap, { stub: { path: 'stub/unmap', answer: STUB_UNMAP } });
  }
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  console.log(`listening on ${url}`);
  process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
}

await main();
