#!/usr/bin/env node
// A minimal dmaemu harness (Node 20+, no dependencies): does this scatterlist come back as ONE
// contiguous IOVA range, as videobuf2-dma-contig or a DMA-BUF importer would need? Asks each
// layout, then cleans up. Usage: node examples/harness.mjs [base-url]
const base = process.argv[2] ?? process.env.DMAEMU_URL ?? 'http://127.0.0.1:3000';

async function call(method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${path} → ${res.status} ${json.code}: ${json.message}`);
  return json;
}

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

let failures = 0;
for (const c of cases) {
  const { id } = await call('POST', '/v1/sessions', c.session);
  try {
    const r = await call('POST', `/v1/sessions/${id}/map_sg`, { dir: 'to_device', sg });
    if (r.nents === 0) {
      failures++;
      console.log(`${c.name}: map_sg failed (${r.error.errno}: ${r.error.message})`);
      continue;
    }
    // Contiguous in IOVA even when split into segments? Each segment must start where the last ended.
    const contiguous = r.segments.every((s, i) => i === 0 || BigInt(s.dma_address) === BigInt(r.segments[i - 1].dma_address) + BigInt(r.segments[i - 1].dma_length));
    const verdict = r.nents === 1 ? 'one segment' : contiguous ? `${r.nents} segments, one contiguous IOVA range` : `${r.nents} segments with gaps between them`;
    console.log(`${c.name}: ${verdict}`);
    for (const s of r.segments) console.log(`    ${s.dma_address}  ${s.dma_length} bytes`);
    await call('POST', `/v1/sessions/${id}/unmap`, { handle: r.handle, dir: 'to_device', nents: sg.length });
  } finally {
    const report = await call('DELETE', `/v1/sessions/${id}`);
    if (report.leaked_mappings > 0) console.log(`    leaked: ${report.leaked_mappings}`);
  }
}
process.exit(failures === 0 ? 0 : 1);
