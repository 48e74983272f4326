// npm run bench:picture — GET /iova.svg's work at 1k, 100k and 1M live mappings, in-process:
// the picture (src/core/iova-picture.ts: every live range placed in a pixel column) and the SVG
// markup (src/service/iova-svg.ts), against a baseline measured in the same run: one bare walk over the
// same live mappings summing their allocation sizes (the floor any picture of them pays). Each
// cell is the median of 7 interleaved slices. Prints a table and, last, a machine-read line:
//   picture: ratio_1m=<picture+svg ÷ baseline at 1M> ms_1m=<picture+svg ms at 1M> bytes_1m=<svg bytes>
import { pathToFileURL } from 'node:url';
import { SessionCreateBody } from '../schemas/session.js';
import { iovaPicture } from '../src/core/iova-picture.js';
import { LEFT, RIGHT, pictureToSvg } from '../src/service/iova-svg.js';
import { SessionStore } from '../src/service/session-store.js';
import type { Session } from '../src/service/session.js';

const SIZES = [1_000, 100_000, 1_000_000];
const SLICES = 7;
const COLUMNS = 1200 - LEFT - RIGHT;
const DIRS = ['to_device', 'from_device', 'bidirectional'] as const;

function build(n: number): Session {
  // 64-bit mask: a million 4 KiB pages fit below 2^48; directions alternate.
  const s = new SessionStore().create(SessionCreateBody.parse({ device: { dma_mask: '0xffffffffffffffff' } }));
  for (let i = 0; i < n; i++) {
    const r = s.mapPage({ phys: 0x80000000 + (i % 4096) * 4096, size: 4096, dir: DIRS[i % 3] as (typeof DIRS)[number] });
    if (r.handle === null) throw new Error(`map ${i} failed`);
  }
  return s;
}

function baseline(s: Session): number {
  let bytes = 0;
  for (const m of s.iovaState().mappings) for (const a of m.allocs) bytes += a.bytes;
  return bytes;
}

function picture(s: Session): number {
  const p = iovaPicture(s.config, s.iovaState(), { columns: COLUMNS, scale: 'log' });
  return pictureToSvg(p, { title: 'bench', tooltip: 'bench', note: 'log' }).length;
}

function ms(fn: () => number): { ms: number; out: number } {
  const t0 = process.hrtime.bigint();
  const out = fn();
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, out };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

export function main(): void {
  const sessions = SIZES.map(build);
  const base: number[][] = SIZES.map(() => []);
  const pic: number[][] = SIZES.map(() => []);
  const bytes: number[] = SIZES.map(() => 0);
  for (let k = 0; k < SLICES; k++) {
    sessions.forEach((s, i) => {
      (base[i] as number[]).push(ms(() => baseline(s)).ms);
      const r = ms(() => picture(s));
      (pic[i] as number[]).push(r.ms);
      bytes[i] = r.out;
    });
  }
  console.log('live mappings | baseline walk ms | picture+svg ms | ratio | svg bytes');
  let last = '';
  SIZES.forEach((n, i) => {
    const b = median(base[i] as number[]);
    const p = median(pic[i] as number[]);
    console.log(`${String(n).padStart(13)} | ${b.toFixed(2).padStart(16)} | ${p.toFixed(2).padStart(14)} | ${(p / b).toFixed(1).padStart(5)} | ${bytes[i]}`);
    if (n === 1_000_000) last = `picture: ratio_1m=${(p / b).toFixed(2)} ms_1m=${p.toFixed(1)} bytes_1m=${bytes[i]}`;
  });
  console.log(last);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) main();
