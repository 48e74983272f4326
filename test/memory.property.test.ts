// Issue 6's property: for random sequences of CORRECT DMA-API usage — the CPU fills a buffer,
// maps it to_device and the device reads it; the device fills a from_device buffer and the CPU
// reads it after unmap or sync_for_cpu; bidirectional both ways; coherent buffers with no sync —
// what the CPU reads (and what the device reads) always equals a plain coherent memory: a Map of
// bytes. Random offsets and lengths (cache lines shared with untouched bytes), scatterlists over
// several frames, coherent and non-coherent devices, every IOMMU layout and no IOMMU (direct,
// bounced because above dma_mask, or swiotlb forced). A correct sequence also leaves no dma-debug
// finding, no IOMMU fault and no leak.
//
// "Correct" is the DMA API's contract: the CPU touches a streaming buffer only while it owns it
// (before map, after unmap or sync_for_cpu, until sync_for_device); a from_device buffer is
// wholly written by the device before the CPU reads it (its other bytes are undefined by the API —
// on a non-coherent arm-legacy / linux-4.4 map they are invalidated away).
import fc from 'fast-check';
import t from 'tap';
import type { Session } from '../src/service/session.js';
import {
  allocCoherent,
  cpuRead,
  cpuWrite,
  deviceRead,
  deviceWrite,
  freeCoherent,
  hx,
  mapPage,
  mapSg,
  pattern,
  session,
  sync,
  unmap,
  type Dir,
} from './helpers/dma-core.js';

type Layout = 'linux' | 'linux-4.4' | 'arm-legacy' | 'none';

interface Config {
  layout: Layout;
  coherent: boolean;
  pageSize: number;
  gShift: number;
  force: boolean;
}

interface Piece {
  frame: number;
  high: boolean; // above 4 GiB: bounced without an IOMMU
  off: number;
  len: number;
}

interface Tx {
  kind: 'to_device' | 'from_device' | 'bidirectional' | 'coherent';
  pieces: Piece[];
  usePage: boolean; // map_page for a one-piece buffer
  warm: boolean; // the CPU reads the buffer before mapping (stale lines in its cache)
  viaSync: boolean; // exchange ownership with sync_* before the unmap
  seed: number;
  partialAt: number; // bidirectional: where the device's write starts (mod size) …
  partialLen: number; // … and how long it is
}

const FRAME = 0x10000;

function physOf(p: Piece): number {
  return (p.high ? 0x100000000 : 0x80000000) + p.frame * FRAME + p.off;
}

const configArb: fc.Arbitrary<Config> = fc.record({
  layout: fc.constantFrom<Layout>('linux', 'linux-4.4', 'arm-legacy', 'none'),
  coherent: fc.boolean(),
  pageSize: fc.constantFrom(4096, 16384, 65536),
  gShift: fc.constantFrom(12, 14, 16),
  force: fc.boolean(),
});

const pieceArb = fc.record({
  frame: fc.integer({ min: 0, max: 15 }),
  high: fc.boolean(),
  off: fc.nat({ max: FRAME - 1 }),
  len: fc.oneof(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1, max: 0x3000 })),
});

const txArb: fc.Arbitrary<Tx> = fc.record({
  kind: fc.constantFrom<Tx['kind']>('to_device', 'from_device', 'bidirectional', 'coherent'),
  pieces: fc.uniqueArray(pieceArb, { minLength: 1, maxLength: 4, selector: (p) => `${p.frame}:${p.high}` }).map((ps) =>
    ps.map((p) => ({ ...p, off: p.off % (FRAME - p.len) })),
  ),
  usePage: fc.boolean(),
  warm: fc.boolean(),
  viaSync: fc.boolean(),
  seed: fc.nat({ max: 255 }),
  partialAt: fc.nat(),
  partialLen: fc.integer({ min: 1, max: 0x4000 }),
});

function open(c: Config): Session {
  const device = { bus: 'platform', dma_mask: '0xffffffff', coherent: c.coherent };
  if (c.layout === 'none') return session({ device, iommu: null, page_size: c.pageSize, swiotlb: { force: c.force } });
  // linux-4.4 runs with granule = page: a larger page makes v4.4 hand out page-offset addresses.
  const granule = c.layout === 'linux-4.4' ? c.pageSize : Math.min(2 ** c.gShift, c.pageSize);
  return session({ device, iommu: { granule }, layout: c.layout, page_size: c.pageSize });
}

/** The plain coherent memory the emulator must agree with. */
class RefMemory {
  private readonly bytes = new Map<number, number>();
  write(phys: number, data: Uint8Array): void {
    data.forEach((b, i) => this.bytes.set(phys + i, b));
  }
  read(phys: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = this.bytes.get(phys + i) ?? 0;
    return out;
  }
}

/** A buffer = its pieces back to back; the device sees it as segments, in the same order. */
class DmaBuffer {
  readonly size: number;
  constructor(readonly pieces: { phys: number; len: number }[]) {
    this.size = pieces.reduce((a, p) => a + p.len, 0);
  }
  /** Calls fn(phys, from, n) for the pieces covering [from, from + n) of the stream. */
  each(from: number, n: number, fn: (phys: number, at: number, len: number) => void): void {
    let pos = 0;
    for (const p of this.pieces) {
      const lo = Math.max(from, pos);
      const hi = Math.min(from + n, pos + p.len);
      if (lo < hi) fn(p.phys + lo - pos, lo, hi - lo);
      pos += p.len;
    }
  }
}

class World {
  readonly ref = new RefMemory();
  constructor(readonly s: Session) {}

  fail(msg: string): never {
    throw new Error(msg);
  }

  cpuFill(buf: DmaBuffer, data: Uint8Array): void {
    buf.each(0, buf.size, (phys, at, len) => {
      const part = data.subarray(at, at + len);
      cpuWrite(this.s, phys, part);
      this.ref.write(phys, part);
    });
  }

  /** The CPU reads the buffer; it must see the reference. */
  cpuCheck(buf: DmaBuffer, what: string): void {
    buf.each(0, buf.size, (phys, _at, len) => {
      const got = cpuRead(this.s, phys, len);
      const want = this.ref.read(phys, len);
      if (!equal(got, want)) this.fail(`${what}: CPU read at ${hx(phys)}+${len} differs from the coherent reference (first at +${firstDiff(got, want)})`);
    });
  }

  /** Device access over the segments: the stream [from, from + n). */
  device(segments: { dma_address: string; dma_length: number }[], from: number, n: number, fn: (addr: bigint, at: number, len: number) => void): void {
    let pos = 0;
    for (const sg of segments) {
      const lo = Math.max(from, pos);
      const hi = Math.min(from + n, pos + sg.dma_length);
      if (lo < hi) fn(BigInt(sg.dma_address) + BigInt(lo - pos), lo, hi - lo);
      pos += sg.dma_length;
    }
  }

  deviceCheck(buf: DmaBuffer, segments: { dma_address: string; dma_length: number }[], what: string): void {
    this.device(segments, 0, buf.size, (addr, at, len) => {
      const r = deviceRead(this.s, addr, len);
      if (r.out.fault) this.fail(`${what}: device read faulted: ${r.out.fault.reason}`);
      const want = new Uint8Array(len);
      buf.each(at, len, (phys, a, n) => want.set(this.ref.read(phys, n), a - at));
      if (!equal(r.data ?? new Uint8Array(0), want)) this.fail(`${what}: device read at ${hx(addr)}+${len} differs from what the CPU wrote`);
    });
  }

  deviceFill(buf: DmaBuffer, segments: { dma_address: string; dma_length: number }[], from: number, data: Uint8Array, what: string): void {
    this.device(segments, from, data.length, (addr, at, len) => {
      const w = deviceWrite(this.s, addr, data.subarray(at - from, at - from + len));
      if (w.fault) this.fail(`${what}: device write faulted: ${w.fault.reason}`);
      buf.each(at, len, (phys, a, n) => this.ref.write(phys, data.subarray(a - from, a - from + n)));
    });
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function firstDiff(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** How often the interesting cases came up. */
const stats = { txs: 0, bounced: 0, nonCoherent: 0 };

function runTx(w: World, tx: Tx, n: number): void {
  const s = w.s;
  const what = `tx ${n} (${tx.kind})`;
  if (tx.kind === 'coherent') {
    const size = tx.pieces.reduce((a, p) => a + p.len, 0);
    const cb = allocCoherent(s, size);
    if (cb.handle === null) w.fail(`${what}: alloc_coherent failed: ${cb.error?.message ?? ''}`);
    const buf = new DmaBuffer([{ phys: Number(cb.phys[0]), len: size }]);
    w.cpuCheck(buf, `${what} fresh coherent buffer`); // zeroed: the reference forgets freed pages
    w.cpuFill(buf, pattern(size, tx.seed));
    const segs = [{ dma_address: cb.dma_handle, dma_length: size }];
    w.deviceCheck(buf, segs, what);
    w.deviceFill(buf, segs, tx.partialAt % size, pattern(Math.min(tx.partialLen, size - (tx.partialAt % size)), tx.seed + 1), what);
    w.cpuCheck(buf, what);
    freeCoherent(s, cb.handle);
    // The pages go back to the allocator; a later alloc_coherent zeroes them, so forget them.
    buf.each(0, size, (phys, _a, len) => w.ref.write(phys, new Uint8Array(len)));
    return;
  }
  const buf = new DmaBuffer(tx.pieces.map((p) => ({ phys: physOf(p), len: p.len })));
  if (tx.warm) w.cpuCheck(buf, `${what} before map`);
  const dir: Dir = tx.kind;
  if (dir !== 'from_device') w.cpuFill(buf, pattern(buf.size, tx.seed));
  const onePage = tx.usePage && buf.pieces.length === 1;
  const first = buf.pieces[0] as { phys: number; len: number };
  const r = onePage ? mapPage(s, first.phys, first.len, dir) : mapSg(s, buf.pieces.map((p) => ({ phys: p.phys, length: p.len })), dir);
  if (r.handle === null) w.fail(`${what}: map failed: ${r.error?.message ?? ''}`);
  const handle = r.handle;
  const segments = 'segments' in r ? r.segments : [{ dma_address: r.dma_address, dma_length: first.len }];

  if (dir === 'to_device') {
    w.deviceCheck(buf, segments, what);
    if (tx.viaSync) {
      // Reuse: the CPU takes the buffer back, refills it, gives it to the device again.
      sync(s, handle, 'cpu');
      w.cpuFill(buf, pattern(buf.size, tx.seed + 7));
      sync(s, handle, 'device');
      w.deviceCheck(buf, segments, `${what} after reuse`);
    }
  } else if (dir === 'from_device') {
    w.deviceFill(buf, segments, 0, pattern(buf.size, tx.seed + 3), what);
    if (tx.viaSync) {
      sync(s, handle, 'cpu');
      w.cpuCheck(buf, `${what} after sync_for_cpu`);
      sync(s, handle, 'device');
      w.deviceFill(buf, segments, 0, pattern(buf.size, tx.seed + 5), `${what} second fill`);
    }
  } else {
    w.deviceCheck(buf, segments, what);
    const at = tx.partialAt % buf.size;
    w.deviceFill(buf, segments, at, pattern(Math.min(tx.partialLen, buf.size - at), tx.seed + 11), what);
    if (tx.viaSync) {
      sync(s, handle, 'cpu');
      w.cpuCheck(buf, `${what} after sync_for_cpu`);
      w.cpuFill(buf, pattern(buf.size, tx.seed + 13));
      sync(s, handle, 'device');
      w.deviceCheck(buf, segments, `${what} after sync_for_device`);
    }
  }
  unmap(s, handle);
  w.cpuCheck(buf, `${what} after unmap`);
  if ('bounced' in r && r.bounced) stats.bounced++;
}

t.test('correct map/sync/access/unmap sequences: the CPU and the device always agree with a coherent memory', async (t) => {
  const t0 = Date.now();
  const runs = Number(process.env.DMAEMU_PROPERTY_RUNS ?? 150);
  fc.assert(
    fc.property(configArb, fc.array(txArb, { minLength: 1, maxLength: 8 }), (c, txs) => {
      const s = open(c);
      const w = new World(s);
      txs.forEach((tx, n) => {
        runTx(w, tx, n);
        stats.txs++;
        if (!c.coherent) stats.nonCoherent++;
      });
      const debug = s.debugTable().debug;
      if (debug.length > 0) throw new Error(`a correct sequence drew dma-debug findings: ${JSON.stringify(debug)}`);
      const faults = s.faultsTable().faults;
      if (faults.length > 0) throw new Error(`a correct sequence faulted: ${JSON.stringify(faults)}`);
      const leaks = s.close();
      if (leaks.leaks.length > 0) throw new Error(`a correct sequence leaked: ${JSON.stringify(leaks.leaks)}`);
    }),
    { numRuns: runs },
  );
  t.pass(`${runs} random sessions in ${Date.now() - t0} ms: ${JSON.stringify(stats)}`);
});
