// The fixed sequence of calls behind the committed snapshot fixtures (make-*-fixture.mjs), and
// what test/snapshot-formats.test.ts replays into a twin to compare with the restored session.
// Decoded bodies, as the routes hand them to the session (addresses as numbers and bigints).
export const FIXTURE_ID = 'snapshotFixtureLinux0001';
/** A non-strict linux session (the flush queue holds frees), non-coherent (the CPU cache holds lines). */
export const FIXTURE_INPUT = { layout: 'linux', iommu: { strict: false }, memory_limit: 268435456 };
export const FIXTURE_CALLS = [
  ['map_page', { phys: 0x80000000, size: 4096, dir: 'to_device' }],
  ['map_sg', { dir: 'from_device', sg: [{ phys: 0x90000000, length: 65536 }, { phys: 0x91000000, length: 16384 }, { phys: 0x92000000, length: 65536 }] }],
  ['cpu/write', { phys: 0x80000000, data: 'AAECAwQFBgc=' }],
  ['map_page', { phys: 0x80004000, size: 8192, dir: 'bidirectional' }],
  ['unmap', { handle: 1 }],
  ['alloc_coherent', { size: 12288 }],
  ['device/write', { dma_address: 0xfffc0000n, data: '3q2+796tvu8=' }],
  ['unmap', { handle: 3 }],
  ['device/write', { dma_address: 0x10000n, data: 'AA==' }],
  ['map_page', { phys: 0x80008000, size: 4096, dir: 'from_device' }],
];
