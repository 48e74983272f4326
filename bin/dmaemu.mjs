#!/usr/bin/env node
// The `dmaemu` command (package.json "bin"; `npx dmaemu map --sg 64K@0x90000000 ...` in a
// checkout). In a checkout with dev dependencies it runs client/cli.ts from source through tsx,
// so the answer is never that of a stale dist/; without them it runs the build
// (`npm run build` makes dist/client/cli.js).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const source = new URL('../client/cli.ts', import.meta.url);
const built = new URL('../dist/client/cli.js', import.meta.url);

async function load() {
  if (existsSync(fileURLToPath(source))) {
    try {
      const { register } = await import('tsx/esm/api');
      register();
      return await import(source.href);
    } catch (e) {
      if (e?.code !== 'ERR_MODULE_NOT_FOUND') throw e;
    }
  }
  if (existsSync(fileURLToPath(built))) return import(built.href);
  console.error('dmaemu: no build to run: run `npm run build` first (or `npm ci` for tsx)');
  process.exit(2);
}

const { main } = await load();
process.exitCode = await main(process.argv.slice(2));
