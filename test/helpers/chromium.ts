// Finds a headless Chromium for the browser tests, so `npm ci && npm test` passes on a fresh
// machine with no manual step and no root. In order:
//   1. CHROMIUM_PATH, when set (any Chromium you trust, e.g. /usr/bin/chromium);
//   2. the build inside the @sparticuz/chromium devDependency (Linux x64): its binary ships in
//      the npm package, brotli-compressed, and is unpacked once per version into
//      node_modules/.cache/dmaemu-chromium/<version>/ (the same browser on every machine);
//   3. Debian's /usr/bin/chromium (other architectures);
// otherwise it throws with the exact command that fixes it. Never a skip: a browser test that
// does not run has not passed.
//
// The bundled build links only libnss3, libnspr4 and libexpat1 from the system; a machine
// without them gets that in the error message too.

import { existsSync, mkdirSync, renameSync, rmSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type LaunchOptions } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Flags that work here: no sandbox as root, no GPU, and no phoning home on a closed network. */
export const CHROMIUM_ARGS: readonly string[] = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

const FIX =
  'no Chromium for the browser tests: run `npm ci` (it installs @sparticuz/chromium, a Linux x64 build), ' +
  'or `apt-get install -y chromium`, or set CHROMIUM_PATH to a Chromium binary';

let found: Promise<string> | undefined;

/** The path of a Chromium binary (unpacking the bundled one on first use). */
export function chromiumPath(): Promise<string> {
  found ??= locate();
  return found;
}

/** A headless Chromium launched with CHROMIUM_ARGS (plus `extra`); close it in a teardown. */
export async function launchChromium(extra: LaunchOptions = {}): Promise<Browser> {
  const executablePath = await chromiumPath();
  return chromium.launch({ ...extra, executablePath, args: [...CHROMIUM_ARGS, ...(extra.args ?? [])] });
}

async function locate(): Promise<string> {
  const explicit = process.env.CHROMIUM_PATH;
  if (explicit) {
    if (!existsSync(explicit)) throw new Error(`CHROMIUM_PATH=${explicit} does not exist; ${FIX}`);
    return explicit;
  }
  if (process.platform === 'linux' && process.arch === 'x64') {
    const bundled = await unpackBundled();
    if (bundled) return bundled;
  }
  for (const p of ['/usr/bin/chromium', '/usr/bin/chromium-browser']) if (existsSync(p)) return p;
  throw new Error(FIX);
}

/**
 * Unpacks @sparticuz/chromium into a directory of its own version. The package unpacks into
 * os.tmpdir(), and reuses whatever `chromium` it finds there (another version's, or a half-
 * written one from a parallel test file), so it runs with TMPDIR pointing at a fresh private
 * directory that is renamed into place whole: two test files racing both end with a complete
 * browser. (TMPDIR is this process's only for the few seconds of the first unpacking, before
 * the test has started anything else.)
 */
async function unpackBundled(): Promise<string | undefined> {
  const require = createRequire(import.meta.url);
  let entry: string;
  try {
    entry = require.resolve('@sparticuz/chromium'); // <pkg>/build/cjs/index.cjs (package.json is not exported)
  } catch {
    return undefined; // installed without devDependencies
  }
  const pkgJson = path.join(path.dirname(entry), '..', '..', 'package.json');
  const version = (JSON.parse(readFileSync(pkgJson, 'utf8')) as { version: string }).version;
  const dir = path.join(root, 'node_modules', '.cache', 'dmaemu-chromium', version);
  const binary = path.join(dir, 'chromium');
  if (existsSync(binary)) return binary;

  const scratch = `${dir}.${process.pid}.tmp`;
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  const { default: Sparticuz } = await import('@sparticuz/chromium');
  const savedTmp = process.env.TMPDIR;
  process.env.TMPDIR = scratch;
  try {
    await Sparticuz.executablePath();
  } finally {
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
  }
  try {
    renameSync(scratch, dir);
  } catch {
    // Another test file got there first with its own complete copy.
    rmSync(scratch, { recursive: true, force: true });
  }
  return existsSync(binary) ? binary : undefined;
}
