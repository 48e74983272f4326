// Rule (src/core/state/codec.ts, docs/persistence.md "Snapshots"): a snapshot restores exactly
// the session that was saved — every later call answers as it would have without the snapshot —
// in every layout; and the formats written so far keep loading:
//  - format 1 (each structure's fields, named and versioned): test/snapshots/state-v1-linux.oplog,
//    written by this build from test/snapshots/fixture-calls.mjs; a later format must still
//    read it (or migrate it) and give the same answers;
//  - format 0 (the V8 object graph, written up to issue 23): test/snapshots/v8-graph-linux.oplog,
//    written by main at 2cf4a1e from the same calls (make-snapshot-fixture.mjs); read once and
//    rewritten in the current format.
// Expected answers are never pasted: the restored session is compared with a twin that made the
// same calls without ever being snapshotted.
import t, { type Test } from 'tap';
import fc from 'fast-check';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_STORE_LIMITS, SessionStore } from '../src/service/session-store.js';
import type { Session } from '../src/service/session.js';
import { Journal } from '../src/service/journal.js';
import { FileOpStore } from '../src/service/store/file-op-store.js';
import { decodeFrames } from '../src/service/store/frames.js';
import { DEVICE_STATE_MAGIC } from '../src/core/dma-device.js';
import { dmaAddress } from '../src/core/dma-device.js';
import { StateError } from '../src/core/state/codec.js';
import { AllocCoherentBody, CpuReadBody, CpuWriteBody, DeviceReadBody, DeviceWriteBody, FlushBody, FreeCoherentBody, MapPageBody, MapSgBody, SyncBody, UnmapBody } from '../schemas/index.js';
import type { SessionCreateInput } from '../schemas/index.js';
// @ts-expect-error: a plain .mjs module shared with the fixture generators (no types)
import { FIXTURE_CALLS, FIXTURE_ID, FIXTURE_INPUT } from './snapshots/fixture-calls.mjs';

const tmp = mkdtempSync(join(tmpdir(), 'dmaemu-snapformats-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

const hex = (n: number | bigint): string => `0x${n.toString(16)}`;
const DIRS = ['to_device', 'from_device', 'bidirectional'] as const;

/** One call, abstractly: which live mapping an op touches is `pick` modulo the live count when it runs. */
type Op =
  | { t: 'map_sg'; dir: number; sg: { page: number; off: number; len: number }[] }
  | { t: 'map_page'; dir: number; page: number; size: number }
  | { t: 'alloc'; pages: number }
  | { t: 'unmap'; pick: number; wrongSize: boolean }
  | { t: 'free'; pick: number }
  | { t: 'unknown'; handle: number }
  | { t: 'sync'; pick: number; cpu: boolean }
  | { t: 'cpu_write'; page: number; off: number; len: number; seed: number }
  | { t: 'cpu_read'; page: number; len: number }
  | { t: 'dev_write'; pick: number; len: number; seed: number }
  | { t: 'dev_read'; pick: number; len: number }
  | { t: 'flush'; rcache: boolean; trim: boolean };

const page = fc.integer({ min: 0, max: 63 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constant('map_sg' as const), dir: fc.nat(2), sg: fc.array(fc.record({ page, off: fc.nat(7), len: fc.integer({ min: 64, max: 9000 }) }), { minLength: 1, maxLength: 4 }) }),
  fc.record({ t: fc.constant('map_page' as const), dir: fc.nat(2), page, size: fc.integer({ min: 64, max: 12000 }) }),
  fc.record({ t: fc.constant('alloc' as const), pages: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ t: fc.constant('unmap' as const), pick: fc.nat(), wrongSize: fc.boolean() }),
  fc.record({ t: fc.constant('free' as const), pick: fc.nat() }),
  fc.record({ t: fc.constant('unknown' as const), handle: fc.integer({ min: 100000, max: 100100 }) }),
  fc.record({ t: fc.constant('sync' as const), pick: fc.nat(), cpu: fc.boolean() }),
  fc.record({ t: fc.constant('cpu_write' as const), page, off: fc.nat(4000), len: fc.integer({ min: 1, max: 200 }), seed: fc.nat(255) }),
  fc.record({ t: fc.constant('cpu_read' as const), page, len: fc.integer({ min: 1, max: 5000 }) }),
  fc.record({ t: fc.constant('dev_write' as const), pick: fc.nat(), len: fc.integer({ min: 1, max: 64 }), seed: fc.nat(255) }),
  fc.record({ t: fc.constant('dev_read' as const), pick: fc.nat(), len: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ t: fc.constant('flush' as const), rcache: fc.boolean(), trim: fc.boolean() }),
);

const bytes = (len: number, seed: number): string => Buffer.from(Array.from({ length: len }, (_, i) => (seed + i * 37) & 0xff)).toString('base64');

/** Runs `op` on `s` and returns its answer, or the error code it threw (both are what a client sees). */
function apply(s: Session, op: Op): unknown {
  const live = [...s.device.table.values()];
  const pick = (n: number, kind?: 'coherent' | 'stream') => {
    const xs = live.filter((m) => (kind === undefined ? true : kind === 'coherent' ? m.kind === 'coherent' : m.kind !== 'coherent'));
    return xs.length === 0 ? undefined : xs[n % xs.length];
  };
  const addr = (n: number): string => {
    const m = pick(n);
    return m ? dmaAddress(m.segments[0], s.device.shift) : '0x12345000';
  };
  try {
    switch (op.t) {
      case 'map_sg':
        return s.mapSg(MapSgBody.parse({ dir: DIRS[op.dir], sg: op.sg.map((e) => ({ phys: hex(0x80000000 + e.page * 4096 + e.off * 64), length: e.len })) }));
      case 'map_page':
        return s.mapPage(MapPageBody.parse({ phys: hex(0x80000000 + op.page * 4096), size: op.size, dir: DIRS[op.dir] }));
      case 'alloc':
        return s.allocCoherent(AllocCoherentBody.parse({ size: op.pages * 4096 }));
      case 'unmap': {
        const m = pick(op.pick, 'stream');
        return m ? s.unmap(UnmapBody.parse(op.wrongSize ? { handle: m.handle, size: m.size + 1 } : { handle: m.handle })) : null;
      }
      case 'free': {
        const m = pick(op.pick, 'coherent');
        return m ? s.freeCoherent(FreeCoherentBody.parse({ handle: m.handle })) : null;
      }
      case 'unknown':
        return s.unmap(UnmapBody.parse({ handle: op.handle }));
      case 'sync': {
        const m = pick(op.pick, 'stream');
        return m ? s.sync(SyncBody.parse({ handle: m.handle, for: op.cpu ? 'cpu' : 'device' })) : null;
      }
      case 'cpu_write':
        return s.cpuWrite(CpuWriteBody.parse({ phys: hex(0x80000000 + op.page * 4096 + op.off), data: bytes(op.len, op.seed) }));
      case 'cpu_read':
        return s.cpuRead(CpuReadBody.parse({ phys: hex(0x80000000 + op.page * 4096), length: op.len }));
      case 'dev_write':
        return s.deviceWrite(DeviceWriteBody.parse({ dma_address: addr(op.pick), data: bytes(op.len, op.seed) }));
      case 'dev_read':
        return s.deviceRead(DeviceReadBody.parse({ dma_address: addr(op.pick), length: op.len }));
      case 'flush':
        return s.flush(FlushBody.parse({ rcache: op.rcache, depot_trim: op.trim }));
    }
  } catch (err) {
    return { threw: (err as { code?: string }).code ?? String(err) };
  }
}

/** Everything a client can read of a session without calling into it. */
function observe(s: Session): unknown {
  return { summary: { ...s.summary(), id: null }, mappings: s.mappingsTable(), debug: s.debugTable(), faults: s.faultsTable(), budget: s.budgetBytes };
}

const json = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `big:${x.toString(16)}` : x instanceof Uint8Array ? Buffer.from(x).toString('hex') : x));

const LAYOUTS: { name: string; input: SessionCreateInput }[] = [
  { name: 'linux (non-strict: flush queue, rcache)', input: { layout: 'linux', iommu: { strict: false } } },
  { name: 'linux-4.4 (strays)', input: { layout: 'linux-4.4' } },
  { name: 'arm-legacy', input: { layout: 'arm-legacy' } },
  // No IOMMU, and a mask that reaches only the first 128 KiB above 0x80000000: the rest bounces through swiotlb.
  { name: 'no IOMMU (dma-direct + swiotlb)', input: { iommu: null, device: { dma_mask: 0x8001ffffn } } },
];

for (const { name, input } of LAYOUTS) {
  t.test(`${name}: a session restored from its snapshot answers the next calls exactly as its never-snapshotted twin`, async (t) => {
    const store = new SessionStore();
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), fc.array(opArb, { minLength: 1, maxLength: 40 }), (before, after) => {
        const twin = store.create(input);
        for (const op of before) apply(twin, op);
        const state = twin.device.saveState();
        const restored = store.fresh(twin);
        restored.device.loadState(state);
        if (!restored.device.saveState().equals(state)) throw new Error('the restored session saves different state');
        if (json(observe(restored)) !== json(observe(twin))) throw new Error('the restored session reads differently');
        after.forEach((op, i) => {
          const a = json(apply(twin, op));
          const b = json(apply(restored, op));
          if (a !== b) throw new Error(`call ${i} after the restore (${op.t}) answered ${b}, the twin ${a}`);
        });
        if (json(observe(restored)) !== json(observe(twin))) throw new Error('the sessions differ after the calls');
        store.delete(twin.id);
      }),
      { numRuns: 40, seed: 23 },
    );
    t.pass('40 random histories: same state bytes, same tables, same answers');
  });
}

t.test('a snapshot with a structure of a newer version, or cut short, is refused naming the structure and the byte; never a silent empty session', async (t) => {
  const store = new SessionStore();
  const s = store.create({ layout: 'linux' });
  apply(s, { t: 'map_page', dir: 0, page: 1, size: 4096 });
  const state = s.device.saveState();
  // The first structure is dma-device: its name (u32 length + 10 bytes) then its u16 version, right after the magic.
  const newer = Buffer.from(state);
  newer.writeUInt16LE(2, DEVICE_STATE_MAGIC.length + 4 + 'dma-device'.length);
  t.throws(() => store.fresh(s).device.loadState(newer), new StateError(`dma-device at byte ${DEVICE_STATE_MAGIC.length} is version 2, written by a newer dmaemu: this one reads up to version 1`));
  // The state ends with budget-share's two numbers (charged, then derived: 8 bytes each). Cut 10
  // bytes: derived is gone and charged lost 2 of its 8, so reading charged is what fails.
  const cut = state.subarray(0, state.length - 10);
  t.throws(() => store.fresh(s).device.loadState(cut), { name: 'StateError', message: /^dma-device\.budget: budget-share\.charged: a number at byte \d+ runs past the end of the state/ }, 'cut short: refused, naming the field');
  t.throws(() => store.fresh(s).device.loadState(Buffer.from('DMAEMU-STATE\nnonsense')), { name: 'StateError' }, 'nonsense: refused');
});

/** Restores the fixture log `file` through the real journal and file store; the session and what was logged. */
async function restoreFixture(file: string): Promise<{ s: Session; lines: { level: string; msg: string }[]; dir: string }> {
  const dir = mkdtempSync(join(tmp, 'fixture-'));
  mkdirSync(join(dir, 'sessions'));
  copyFileSync(file, join(dir, 'sessions', `${FIXTURE_ID as string}.oplog`));
  const lines: { level: string; msg: string }[] = [];
  const log = { info: (_o: object, msg: string) => void lines.push({ level: 'info', msg }), warn: (_o: object, msg: string) => void lines.push({ level: 'warn', msg }), error: (_o: object, msg: string) => void lines.push({ level: 'error', msg }) };
  const sessions = new SessionStore({ ...DEFAULT_STORE_LIMITS, ttlMs: Number.MAX_SAFE_INTEGER }); // the fixtures were made in 2023 (virtual time)
  const journal = new Journal(new FileOpStore(dir, log), sessions, log);
  const r = await journal.restore();
  await journal.store.close();
  if (r.restored !== 1) throw new Error(`fixture not restored: ${JSON.stringify(lines)}`);
  return { s: sessions.get(FIXTURE_ID as string), lines, dir };
}

/** The fixture's calls made on a fresh session that is never snapshotted. */
function fixtureTwin(): Session {
  const store = new SessionStore();
  const s = store.restore(FIXTURE_ID as string, FIXTURE_INPUT as SessionCreateInput);
  const run: Record<string, (b: never) => unknown> = {
    map_sg: (b) => s.mapSg(b),
    map_page: (b) => s.mapPage(b),
    unmap: (b) => s.unmap(b),
    'cpu/write': (b) => s.cpuWrite(b),
    'device/write': (b) => s.deviceWrite(b),
    alloc_coherent: (b) => s.allocCoherent(b),
  };
  for (const [op, body] of FIXTURE_CALLS as [string, never][]) run[op]?.(body);
  return s;
}

/** The same 30 calls on both, answers compared. */
function sameNextAnswers(t: Test, restored: Session, twin: Session): void {
  const ops: Op[] = [];
  for (let i = 0; i < 30; i++) {
    const k = i % 6;
    ops.push(k === 0 ? { t: 'map_page', dir: i % 3, page: i, size: 4096 + i * 100 } : k === 1 ? { t: 'unmap', pick: i, wrongSize: false } : k === 2 ? { t: 'dev_write', pick: i, len: 8, seed: i } : k === 3 ? { t: 'cpu_read', page: 0, len: 64 } : k === 4 ? { t: 'alloc', pages: 1 } : { t: 'flush', rcache: i % 2 === 0, trim: false });
  }
  t.equal(json(observe(restored)), json(observe(twin)), 'the restored session reads as its twin: summary, mappings, findings, faults');
  t.same(ops.map((op) => json(apply(restored, op))), ops.map((op) => json(apply(twin, op))), 'and the next 30 calls answer the same');
}

t.test('format 0 (V8 object graph, written by main at 2cf4a1e): read once, the same session, and the log rewritten in the current format', async (t) => {
  const { s, lines, dir } = await restoreFixture(join(import.meta.dirname, 'snapshots', 'v8-graph-linux.oplog'));
  t.ok(lines.some((l) => l.level === 'info' && l.msg.includes('snapshot format 0 (V8 object graph) read and rewritten in the current format')), 'the migration is logged');
  const after = decodeFrames(readFileSync(join(dir, 'sessions', `${FIXTURE_ID as string}.oplog`))).frames;
  t.ok(after[1]?.payload.subarray(0, DEVICE_STATE_MAGIC.length).equals(DEVICE_STATE_MAGIC), 'the log now holds a current-format snapshot');
  sameNextAnswers(t, s, fixtureTwin());
});

t.test('format 1 (each structure named and versioned): the committed fixture restores the same session', async (t) => {
  const { s, lines } = await restoreFixture(join(import.meta.dirname, 'snapshots', 'state-v1-linux.oplog'));
  t.same(lines.filter((l) => l.level !== 'info'), [], 'nothing to warn about');
  sameNextAnswers(t, s, fixtureTwin());
});
