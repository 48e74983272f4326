// The client as a harness depends on it (README "The client as a dependency"): `npm pack` makes a
// tarball, a scratch project outside the repository installs it by path (offline, from npm's
// cache), a consumer is type-checked against the emitted .d.ts under the settings harnesses use
// (strict, non-strict, and strict with exactOptionalPropertyTypes, noPropertyAccessFromIndexSignature
// and noUncheckedIndexedAccess, all without skipLibCheck), a map answer's handle is a number only
// after narrowing on `error` (an unnarrowed use fails to compile), and the compiled consumer runs
// against a live service on 127.0.0.1.
import t from 'tap';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildApp } from '../src/service/app.js';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tsc = path.join(root, 'node_modules/typescript/bin/tsc');
const scratch = mkdtempSync(path.join(tmpdir(), 'dmaemu-harness-'));
t.teardown(() => rmSync(scratch, { recursive: true, force: true }));

type LockEntry = { version?: string; resolved?: string; integrity?: string; dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> } & Record<string, unknown>;
type Lock = { packages: Record<string, LockEntry> };

/**
 * The scratch project's package-lock: the tarball, @types/node, and every package they need at the
 * path and version this repository's lock resolved (so `npm ci --offline` installs them from the
 * cache `npm ci` filled here, and no registry is asked).
 */
function scratchLock(tarball: string, tarballIntegrity: string): Lock {
  const lock = JSON.parse(readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as Lock;
  const own = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string>; bin: Record<string, string> };
  const typesNode = lock.packages['node_modules/@types/node']?.version ?? '';
  const picked: Record<string, LockEntry> = {};
  /** Node's lookup: the nearest node_modules/<name> from `from` up to the top. */
  const resolve = (from: string, name: string): string | undefined => {
    for (let dir = from; ; dir = dir.slice(0, Math.max(0, dir.lastIndexOf('/node_modules/')))) {
      const at = `${dir ? `${dir}/` : ''}node_modules/${name}`;
      if (lock.packages[at]) return at;
      if (!dir) return undefined;
    }
  };
  const visit = (from: string, deps: Record<string, string>, optional: boolean): void => {
    for (const name of Object.keys(deps)) {
      const at = resolve(from, name);
      if (!at) {
        if (optional) continue;
        throw new Error(`package-lock.json has no ${name} for ${from || 'the root'}`);
      }
      if (picked[at]) continue;
      const { dev: _d, devOptional: _o, peer: _p, ...entry } = lock.packages[at] as LockEntry;
      picked[at] = entry;
      visit(at, entry.dependencies ?? {}, false);
      visit(at, entry.optionalDependencies ?? {}, true);
    }
  };
  visit('', { ...own.dependencies, '@types/node': typesNode }, false);
  return {
    name: 'harness',
    lockfileVersion: 3,
    requires: true,
    packages: {
      '': { name: 'harness', dependencies: { dmaemu: `file:${tarball}`, '@types/node': typesNode } },
      'node_modules/dmaemu': { version: own.version, resolved: `file:${tarball}`, integrity: tarballIntegrity, license: 'MIT', dependencies: own.dependencies, bin: own.bin },
      ...picked,
    },
  } as Lock;
}

const HARNESS = `// A harness as its author would write it: the 2015 thread's {64k, 16k, 64k} list through map_sg.
import { createDmaemuClient, DmaemuHttpError, type MapSgAnswer } from 'dmaemu/client';

const url = process.argv[2] ?? 'http://127.0.0.1:3000';
const dmaemu = createDmaemuClient(url);
const s = await dmaemu.createSession({ layout: 'linux', device: { bus: 'platform', dma_mask: '0xffffffff' } });
const r: MapSgAnswer = await s.mapSg({
  dir: 'to_device',
  sg: [
    { phys: '0x90000000', length: 65536 },
    { phys: '0x91000000', length: 16384 },
    { phys: '0x92000000', length: 65536 },
  ],
});
if (r.error) throw new Error(\`map_sg failed: \${r.error.errno}\`);
const handle: number = r.handle; // narrowed: no error, so a handle
const tooBig = await s.mapPage({ phys: '0x80000000', size: 65536, dir: 'from_device' });
const failed = tooBig.handle === null ? tooBig.error.errno : 'mapped';
await s.unmap({ handle });
if (tooBig.handle !== null) await s.unmap({ handle: tooBig.handle });
let code = '';
try {
  await dmaemu.session('no-such-session').summary();
} catch (e) {
  if (e instanceof DmaemuHttpError) code = e.code ?? '';
}
const report = await s.close();
console.log(JSON.stringify({ segments: r.segments, iova: r.iova, failed, code, leaked: report.leaked_mappings }));
`;

// Without narrowing, the handle of a map answer is number | null: using it as a number must not compile.
const UNNARROWED = `import { createDmaemuClient } from 'dmaemu/client';
const s = await createDmaemuClient('http://127.0.0.1:1').createSession();
const r = await s.mapPage({ phys: '0x80000000', size: 4096, dir: 'to_device' });
const handle: number = r.handle;
console.log(handle);
`;

const SETTINGS: Record<string, Record<string, unknown>> = {
  strict: { strict: true },
  'non-strict': { strict: false },
  'strict + exactOptionalPropertyTypes + noPropertyAccessFromIndexSignature + noUncheckedIndexedAccess': {
    strict: true,
    exactOptionalPropertyTypes: true,
    noPropertyAccessFromIndexSignature: true,
    noUncheckedIndexedAccess: true,
  },
};

function tsconfig(extra: Record<string, unknown>, files: string[], outDir?: string): string {
  const compilerOptions = { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2022'], types: ['node'], skipLibCheck: false, ...(outDir ? { outDir } : { noEmit: true }), ...extra };
  return JSON.stringify({ compilerOptions, files }, null, 2);
}

async function typeCheck(project: string): Promise<{ ok: boolean; out: string }> {
  return run(process.execPath, [tsc, '-p', project], { cwd: scratch }).then(
    (r) => ({ ok: true, out: r.stdout }),
    (e: { stdout?: string; message?: string }) => ({ ok: false, out: e.stdout ?? e.message ?? '' }),
  );
}

t.test('npm pack gives a tarball of built JS and .d.ts, without sources or tests', async (t) => {
  const packDir = path.join(scratch, 'pack');
  mkdirSync(packDir);
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', packDir], { cwd: root, maxBuffer: 16 << 20 });
  const [info] = JSON.parse(stdout.slice(stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
  if (!info) return t.fail('npm pack printed no package');
  const files = info.files.map((f) => f.path);
  t.ok(files.includes('dist/client/index.js') && files.includes('dist/client/index.d.ts'), 'the client, built, with its declarations');
  t.ok(files.includes('dist/src/service/server.js'), 'the service, built (node node_modules/dmaemu/dist/src/service/server.js)');
  t.same(files.filter((f) => /\.ts$/.test(f) && !f.endsWith('.d.ts')), [], 'no TypeScript sources');
  t.same(files.filter((f) => /^(test|load|conformance|examples)\/|^dist\/(test|load|conformance|examples)\//.test(f)), [], 'no tests, benchmarks or harnesses');
  const tarball = path.join(packDir, readdirSync(packDir)[0] ?? '');
  const integrity = `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`;
  const lock = scratchLock(tarball, integrity);
  // The harness's package.json as README shows it: the tarball by path, and dmaemu's overrides
  // (npm applies only the root project's), which keep two of fastify's dependencies on releases
  // that support Node 20.
  const { overrides } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { overrides: unknown };
  const dependencies = { dmaemu: `file:${tarball}`, '@types/node': lock.packages['node_modules/@types/node']?.version };
  writeFileSync(path.join(scratch, 'package.json'), JSON.stringify({ name: 'harness', private: true, type: 'module', dependencies, overrides }, null, 2));
  writeFileSync(path.join(scratch, 'package-lock.json'), JSON.stringify(lock, null, 2));
  const ci = await run('npm', ['ci', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: scratch, maxBuffer: 16 << 20 });
  t.notMatch(ci.stderr, /EBADENGINE/, `no engine warning on Node ${process.version}`);
  const installed = JSON.parse(readFileSync(path.join(scratch, 'node_modules/dmaemu/package.json'), 'utf8')) as { exports: { './client': { types: string } } };
  t.equal(installed.exports['./client'].types, './dist/client/index.d.ts', 'exports point the types at the emitted .d.ts');
});

const app = await buildApp({ logLevel: 'silent' });
const url = await app.listen({ host: '127.0.0.1', port: 0 });
t.teardown(() => app.close());

writeFileSync(path.join(scratch, 'harness.ts'), HARNESS);
writeFileSync(path.join(scratch, 'unnarrowed.ts'), UNNARROWED);

for (const [name, extra] of Object.entries(SETTINGS)) {
  t.test(`the consumer type-checks against the installed .d.ts under ${name} settings, without skipLibCheck`, async (t) => {
    const slug = name.replace(/\W+/g, '-');
    const out = path.join(scratch, `out-${slug}`);
    writeFileSync(path.join(scratch, `tsconfig.${slug}.json`), tsconfig(extra, ['harness.ts'], out));
    const checked = await typeCheck(`tsconfig.${slug}.json`);
    t.ok(checked.ok, 'no compile errors', checked.ok ? {} : { tsc: checked.out });
    // The compiled consumer against a live service. Worked by hand (semantics §3, §5): 36 granules,
    // size-aligned to 64 below the 32-bit limit: pfn (0x100000 − 36) & ~63 = 0xfffc0; __finalise_sg
    // joins nothing past 64 KiB, so three segments back to back. 64 KiB at 0x80000000 from_device
    // fits too: the mapPage answer is a handle, not a failure.
    const { stdout } = await run(process.execPath, [path.join(out, 'harness.js'), url], { cwd: scratch });
    t.same(JSON.parse(stdout), {
      segments: [
        { dma_address: '0xfffc0000', dma_length: 65536 },
        { dma_address: '0xfffd0000', dma_length: 16384 },
        { dma_address: '0xfffd4000', dma_length: 65536 },
      ],
      iova: { start: '0xfffc0000', size: 147456 },
      failed: 'mapped',
      code: 'DMAEMU_SESSION_NOT_FOUND',
      leaked: 0,
    });
  });
}

t.test('under strict settings a map answer’s handle is number | null until narrowed on error', async (t) => {
  writeFileSync(path.join(scratch, 'tsconfig.unnarrowed.json'), tsconfig({ strict: true }, ['unnarrowed.ts']));
  const checked = await typeCheck('tsconfig.unnarrowed.json');
  t.notOk(checked.ok, 'does not compile');
  t.match(checked.out, /unnarrowed\.ts\(4,7\): error TS2322: Type 'number \| null' is not assignable to type 'number'/);
});
