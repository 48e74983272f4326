// GET /ui: the session explorer (ui/index.html and ui/explorer.js, plain HTML and a JS module,
// no build step). Files are sent by @fastify/static from documented routes (serve: false), so
// the OpenAPI document lists every route the app has.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { ErrorBody } from '../schemas/index.js';

/** ui/ beside the sources (tsx: routes/ → ../ui) or beside the build (dist/routes/ → ../../ui). */
export function uiRoot(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const dir of [path.resolve(here, '../ui'), path.resolve(here, '../../ui')]) {
    if (existsSync(path.join(dir, 'index.html'))) return dir;
  }
  throw new Error(`the explorer's files (ui/index.html) are not beside ${here}`);
}

const FILES = [
  { url: '/ui', file: 'index.html', type: 'text/html', operationId: 'ui', summary: 'The session explorer (HTML): create a session, map a scatterlist, see segments, pages, the IOVA picture, findings, faults, three layouts side by side' },
  { url: '/ui/explorer.js', file: 'explorer.js', type: 'application/javascript', operationId: 'ui_script', summary: "The explorer's script (an ES module)" },
] as const;

export const uiPlugin: FastifyPluginAsync = async (app) => {
  await app.register(fastifyStatic, { root: uiRoot(), serve: false });
  for (const f of FILES) {
    app.get(
      f.url,
      {
        schema: {
          tags: ['service'],
          operationId: f.operationId,
          summary: f.summary,
          produces: [f.type],
          response: {
            200: z.string().meta({ description: `${f.file} (${f.type})` }),
            412: ErrorBody.meta({ description: 'DMAEMU_PRECONDITION_FAILED: If-Match or If-Unmodified-Since does not hold' }),
            416: ErrorBody.meta({ description: 'DMAEMU_RANGE_NOT_SATISFIABLE: Range past the end (Content-Range gives the length)' }),
          },
        },
      },
      (_req, reply) => reply.type(`${f.type}; charset=utf-8`).sendFile(f.file),
    );
  }
};
