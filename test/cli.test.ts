// `dmaemu map` spawned for real (bin/dmaemu.mjs, as `npx dmaemu` runs it), in-process and with
// --url against a listening server. Expected tables are README's walk-through of the 2015
// thread's {64k, 16k, 64k} list, worked by hand from the rules (semantics §3–§5):
// - linux: 36 granules in one range at (0x100000 − 36) & ~63 = pfn 0xfffc0; __finalise_sg
//   cannot join past max_segment_size 64 KiB, so three segments back to back.
// - linux-4.4: each entry padded to start aligned to its own power-of-two size (the 16 KiB
//   entry ends at 0x14000, the last starts at 0x20000): 0x30000 rounded to 0x40000, 64 pfns
//   at 0xfffc0; never merged.
// - arm-legacy: a new chunk whenever 64 KiB would be exceeded, each its own allocation, first
//   fit from aperture start 0 with 2^order alignment: 0x0, 0x10000, 0x20000.
import t from 'tap';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildApp } from '../src/service/app.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = path.join(root, 'bin', 'dmaemu.mjs');
const THREAD = '65536@0x90000000,16384@0x91000000,65536@0x92000000';

async function dmaemu(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [bin, ...args], { cwd: root, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
  }
}

/** The [dma_address, dma_length] rows of one layout's table. */
function rows(stdout: string, layout: string): [string, number][] {
  const block = stdout.split(/^(?=\S)/m).find((b) => b.startsWith(`${layout}:`)) ?? '';
  return [...block.matchAll(/^ {2}\d+\s+(0x[0-9a-f]+)\s+(\d+)$/gm)].map((m) => [m[1] ?? '', Number(m[2])]);
}

const LINUX: [string, number][] = [['0xfffc0000', 65536], ['0xfffd0000', 16384], ['0xfffd4000', 65536]];
const LINUX_44: [string, number][] = [['0xfffc0000', 65536], ['0xfffd0000', 16384], ['0xfffe0000', 65536]];
const ARM: [string, number][] = [['0x0', 65536], ['0x10000', 16384], ['0x20000', 65536]];

t.test('dmaemu map --layout all, in-process: the thread list in three layouts', async (t) => {
  const r = await dmaemu('map', '--layout', 'all', '--sg', THREAD);
  t.equal(r.code, 0, r.stderr);
  t.same(rows(r.stdout, 'linux'), LINUX);
  t.same(rows(r.stdout, 'linux-4.4'), LINUX_44);
  t.same(rows(r.stdout, 'arm-legacy'), ARM);
  t.match(r.stdout, /linux: nents 3\n[\s\S]*IOVA: 0xfffc0000 \+147456 \(1 allocation\)/);
  t.match(r.stdout, /IOVA: 0xfffc0000 \+262144 \(1 allocation\)/, 'linux-4.4 over-allocates to 256 KiB');
  t.match(r.stdout, /\(3 allocations\)/, 'arm-legacy: one allocation per chunk');
});

t.test('max_segment_size 4294967295: linux returns one 144 KiB segment', async (t) => {
  const r = await dmaemu('map', '--sg', '64K@0x90000000,16K@0x91000000,64K@0x92000000', '--max-segment-size', '4294967295');
  t.equal(r.code, 0, r.stderr);
  t.same(rows(r.stdout, 'linux'), [['0xfffc0000', 147456]]);
});

t.test('--url asks a running service and gets the same answer; --json prints the wire answer', async (t) => {
  const app = await buildApp({ logLevel: 'silent' });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.close());
  const r = await dmaemu('map', '--url', url, '--layout', 'linux,arm-legacy', '--sg', THREAD);
  t.equal(r.code, 0, r.stderr);
  t.same(rows(r.stdout, 'linux'), LINUX);
  t.same(rows(r.stdout, 'arm-legacy'), ARM);
  t.equal(app.store.size, 0, 'the CLI deleted the sessions it made');
  const j = await dmaemu('map', '--url', url, '--json', '--sg', THREAD);
  const answer = JSON.parse(j.stdout) as { nents: number; segments: { dma_address: string; dma_length: number }[] };
  t.equal(answer.nents, 3);
  t.same(answer.segments.map((s) => [s.dma_address, s.dma_length]), LINUX);
});

t.test('a map Linux fails exits 1 with the errno; a wrong question exits 2 naming what is wrong', async (t) => {
  // A 16-bit dma_mask leaves pfns 1..15 (4 KiB granule): 64 KiB needs 16, so -ENOMEM.
  const fail = await dmaemu('map', '--sg', '64K@0x90000000', '--dma-mask', '0xffff');
  t.equal(fail.code, 1);
  t.match(fail.stdout, /linux: map_sg failed, nents 0: ENOMEM/);
  const noSg = await dmaemu('map');
  t.equal(noSg.code, 2);
  t.match(noSg.stderr, /map needs --sg/);
  const badEntry = await dmaemu('map', '--sg', '4096');
  t.equal(badEntry.code, 2);
  t.match(badEntry.stderr, /--sg entry 0 \("4096"\) must be SIZE@PHYS/);
  const unknown = await dmaemu('map', '--sg', '4K@0x80000000', '--frobnicate');
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /--frobnicate/);
  const badMask = await dmaemu('map', '--sg', '4K@0x80000000', '--segment-boundary-mask', '0x1234');
  t.equal(badMask.code, 2);
  t.match(badMask.stderr, /segment_boundary_mask/, 'the field is named, as a 400 would name it');
});

t.test('dmaemu import-ftrace: the 6.12 excerpt, in-process and with --url, gives the golden trace of 0000:00:03.0; a bad line exits 2 naming it', async (t) => {
  const excerpt = path.join(root, 'test/kernel-recordings/ftrace/linux-6.12-excerpt.trace');
  const golden = JSON.parse(readFileSync(path.join(root, 'test/kernel-recordings/ftrace/linux-6.12-excerpt.0000-00-03.0.golden.json'), 'utf8')) as unknown;
  const local = await dmaemu('import-ftrace', excerpt, '--device', '0000:00:03.0', '--json');
  t.equal(local.code, 0, local.stderr);
  t.same((JSON.parse(local.stdout) as { devices: unknown[] }).devices, [golden]);
  const summary = await dmaemu('import-ftrace', excerpt);
  // 12 header lines + 256 event lines; 00:04.0's four merged maps and their unmaps are listed.
  t.match(summary.stdout, /^268 lines, 256 dma events, 0 other events$/m);
  t.match(summary.stdout, /^not expressed: 6 × dma_map_sg: entries were merged/m);
  const app = await buildApp({ logLevel: 'silent', dataDir: null });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.close());
  const remote = await dmaemu('import-ftrace', excerpt, '--device', '0000:00:03.0', '--json', '--url', url);
  t.equal(remote.code, 0, remote.stderr);
  t.same((JSON.parse(remote.stdout) as { devices: unknown[] }).devices, [golden]);
  const bad = path.join(root, 'test/kernel-recordings/ftrace/linux-7.x-formats.golden.json'); // JSON, not a trace
  const r = await dmaemu('import-ftrace', bad);
  t.equal(r.code, 2);
  t.match(r.stderr, /^dmaemu: text: line 1: not an ftrace event line/);
});
