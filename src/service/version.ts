// The service's version, from package.json (the one number Swagger UI, /openapi.json and the
// CLI show). This file runs from src/ under tsx and from dist/src/ once built, so the nearest
// package.json above it is the project's either way.

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function readVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const p = path.join(dir, 'package.json');
    if (existsSync(p)) return (JSON.parse(readFileSync(p, 'utf8')) as { version: string }).version;
    const up = path.dirname(dir);
    if (up === dir) throw new Error('dmaemu: no package.json above src/service/version.ts');
    dir = up;
  }
}

export const VERSION: string = readVersion();
