#!/usr/bin/env node
// A minimal dmaemu harness on the typed client (client/index.ts): does this scatterlist come
// back as ONE contiguous IOVA range, as videobuf2-dma-contig or a DMA-BUF importer would need?
// Asks each layout, then cleans up; exits 1 if Linux failed a map or something leaked.
//
//   npm run build && node examples/harness.mjs [base-url]     (default http://127.0.0.1:3000)
//
// `dmaemu/client` is this package's own export (dist/client/index.js once built); a harness in
// TypeScript imports the same module and gets every body and answer typed.
import { createDmaemuClient } from 'dmaemu/client';

const dmaemu = createDmaemuClient(process.argv[2] ?? process.env.DMAEMU_URL ?? 'http://127.0.0.1:3000');

// The 2015 thread's list: 64 KiB, 16 KiB, 64 KiB, physically scattered.
const sg = [
  { phys: '0x90000000', length: 65536 },
  { phys: '0x91000000', length: 16384 },
  { phys: '0x92000000', length: 65536 },
];

const cases = [
  { name: 'linux (today), default max_segment_size 64 KiB', session: { layout: 'linux' } },
  { name: 'linux (today), max_segment_size UINT_MAX', session: { layout: 'linux', device: { max_segment_size: 0xffffffff } } },
  { name: 'linux-4.4 (as merged in 2015)', session: { layout: 'linux-4.4' } },
  { name: 'arm-legacy (arch/arm)', session: { layout: 'arm-legacy', iommu: { aperture: { start: '0x10000000', end: '0x1fffffff' } } } },
];

/** Each segment starts where the previous one ended. */
const contiguous = (segments) =>
  segments.every((s, i) => i === 0 || BigInt(s.dma_address) === BigInt(segments[i - 1].dma_address) + BigInt(segments[i - 1].dma_length));

let failures = 0;
for (const c of cases) {
  const s = await dmaemu.createSession(c.session);
  try {
    const r = await s.mapSg({ dir: 'to_device', sg });
    if (r.error) {
      failures++;
      console.log(`${c.name}: map_sg failed (${r.error.errno}: ${r.error.message})`);
      continue;
    }
    const verdict = r.nents === 1 ? 'one segment' : contiguous(r.segments) ? `${r.nents} segments, one contiguous IOVA range` : `${r.nents} segments with gaps between them`;
    console.log(`${c.name}: ${verdict}`);
    for (const seg of r.segments) console.log(`    ${seg.dma_address}  ${seg.dma_length} bytes`);
    await s.unmap({ handle: r.handle, dir: 'to_device', nents: sg.length });
  } finally {
    const report = await s.close();
    if (report.leaked_mappings > 0) {
      failures++;
      console.log(`    leaked: ${report.leaked_mappings}`);
    }
  }
}
process.exit(failures === 0 ? 0 : 1);
