// /batch in binary: the same ops and the same results as the JSON form, packed, for harnesses
// that push hundreds of thousands of DMA calls a second. Parsing, checking and serializing JSON
// cost ~60 % of a JSON /batch (load/README.md); here a scatterlist entry is 12 bytes read with a
// DataView. The format is documented for users in docs/api.md ("Binary /batch"); this file is
// its one definition, shared by the service (decode ops, encode results) and client/ (the
// reverse), so the two cannot drift.
//
// Invariants:
// - A binary body decodes to exactly the objects the JSON form decodes to (phys as a number,
//   entries as {phys, length}), so nothing past decoding can tell the forms apart; a binary
//   answer decodes to exactly the JSON answer. test/batch-binary.test.ts checks both on random
//   batches against the JSON form.
// - Every value is range-checked as BatchBody checks it, and a bad body is refused with the
//   field named as the JSON form names it (body.ops.3.sg.1.length); nothing is run.
// - What the fixed records cannot carry (other ops, optional fields, errors, findings, pages,
//   explanations) travels as a JSON record: the format never loses information.
//
// All integers little-endian. A 64-bit address is two u32 (low word first). The name tuples
// are src/core/constants.ts's: their order is the format's.
//   request:  "DMAB" u8 version=1, u8[3]=0, u32 count, then count op records
//     op header: u8 opcode, u8 arg, u8 flags, u8 0
//     0 json      u32 n, n bytes: one op object of the JSON form (UTF-8)
//     1 map_sg    arg=dir (index in DMA_DIRECTIONS), flags bit0=skip_cpu_sync; u32 nents, nents × (u32 phys_lo, u32 phys_hi, u32 length)
//     2 map_page  arg=dir (index in DMA_DIRECTIONS), flags bit0=skip_cpu_sync; u32 phys_lo, u32 phys_hi, u32 size
//     3 unmap     flags bit0=skip_cpu_sync, bit1=handle is a ref (index of an earlier op); u32 handle
//     4 sync      arg=for (index in SYNC_TARGETS: 0 cpu, 1 device), flags bit1=ref; u32 handle (the whole mapping, its direction)
//   answer:   "DMAR" u8 version=1, u8[3]=0, u32 count, then count result records
//     result header: u8 kind, u8 arg, u8 0, u8 0
//     0 json      u32 n, n bytes: the result object of the JSON form
//     1 map_sg    u32 handle, u32 nents, nents × (u32 addr_lo, u32 addr_hi, u32 dma_length),
//                 u32 nranges, nranges × (u32 start_lo, u32 start_hi, f64 size); iova = the first range, or null if none
//     2 map_page  arg=has iova; u32 handle, u32 addr_lo, u32 addr_hi, [u32 start_lo, u32 start_hi, f64 size]
//     3 unmap     arg=has iova; u32 handle, [u32 start_lo, u32 start_hi, f64 size]
//     4 sync      arg=cache (index in CACHE_OPS); u32 handle, f64 bounced_bytes

import type { z } from 'zod';
import { CACHE_OPS, DMA_DIRECTIONS, SYNC_TARGETS, type CacheOp, type DmaDirection } from '../src/core/constants.js';
import type { BatchBody, BatchResultItem } from './batch.js';

/** Content type of a binary /batch body. */
export const BATCH_BINARY_TYPE = 'application/vnd.dmaemu.batch';
/** Content type of a binary /batch answer: sent when the request's Accept names it. */
export const BATCH_RESULTS_BINARY_TYPE = 'application/vnd.dmaemu.batch-results';

export const OP = { json: 0, map_sg: 1, map_page: 2, unmap: 3, sync: 4 } as const;
const REQUEST_MAGIC = 0x42414d44; // "DMAB" read as a little-endian u32
const RESULTS_MAGIC = 0x52414d44; // "DMAR"
const VERSION = 1;
const SKIP_CPU_SYNC = 1;
const REF = 2;
const U32 = 0x1_0000_0000;
const PHYS_HI_LIMIT = 2 ** 20; // phys < 2^52 (PHYS_LIMIT)

export type BatchOps = z.output<typeof BatchBody>['ops'];
export type BatchOpIn = z.input<typeof BatchBody>['ops'][number];
type BatchOp = BatchOps[number];
export type BatchResult = z.output<typeof BatchResultItem>;

/** A refused body: `field` as the JSON form names it, `message` what is wrong. */
export class BatchBinaryError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = 'BatchBinaryError';
  }
}

// ---- writing --------------------------------------------------------------------------------

/** A little-endian byte writer that grows by doubling. */
class Writer {
  private buf: Buffer;
  private view: DataView;
  pos = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }
  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
    this.view = new DataView(next.buffer, next.byteOffset, next.byteLength);
  }
  header(a: number, b: number, c: number): void {
    this.room(4);
    this.buf[this.pos] = a;
    this.buf[this.pos + 1] = b;
    this.buf[this.pos + 2] = c;
    this.buf[this.pos + 3] = 0;
    this.pos += 4;
  }
  u32(v: number): void {
    this.room(4);
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
  }
  /** A non-negative integer below 2^64 given as a number (exact below 2^53). */
  u64(v: number): void {
    this.u32(v % U32);
    this.u32(Math.floor(v / U32));
  }
  /** A "0x…" address of up to 16 hex digits. */
  hex64(s: string): void {
    const digits = s.length - 2;
    if (digits <= 8) {
      this.u32(Number.parseInt(s, 16));
      this.u32(0);
    } else {
      this.u32(Number.parseInt(s.slice(-8), 16));
      this.u32(Number.parseInt(s.slice(0, -8), 16));
    }
  }
  f64(v: number): void {
    this.room(8);
    this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
  }
  json(v: unknown, stringify: (v: unknown) => string = JSON.stringify): void {
    const text = stringify(v);
    const n = Buffer.byteLength(text);
    this.u32(n);
    this.room(n);
    this.buf.write(text, this.pos, 'utf8');
    this.pos += n;
  }
  done(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

// ---- reading --------------------------------------------------------------------------------

class Reader {
  readonly view: DataView;
  pos = 0;
  constructor(readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  need(n: number, field: string): void {
    if (this.pos + n > this.buf.length) throw new BatchBinaryError(field, `truncated: needs ${n} more bytes at offset ${this.pos}, the body has ${this.buf.length - this.pos}`);
  }
  u8(): number {
    return this.buf[this.pos++] as number;
  }
  u32(): number {
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  f64(): number {
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }
  text(n: number): string {
    const s = Buffer.from(this.buf.buffer, this.buf.byteOffset + this.pos, n).toString('utf8');
    this.pos += n;
    return s;
  }
}

function readHeader(r: Reader, magic: number, what: string): number {
  r.need(12, 'body');
  if (r.u32() !== magic) throw new BatchBinaryError('body', `not a binary ${what} (the first 4 bytes must be "${Buffer.from(new Uint32Array([magic]).buffer).toString('latin1')}")`);
  const version = r.u8();
  if (version !== VERSION) throw new BatchBinaryError('body', `format version ${version} is not supported (this service speaks ${VERSION})`);
  r.pos += 3;
  return r.u32();
}

// ---- requests -------------------------------------------------------------------------------

const hexIn = (v: string | number): number => (typeof v === 'number' ? v : Number.parseInt(v, 16));

/**
 * `ops` (the JSON form's op objects) as a binary body. Ops and fields the fixed records cannot
 * carry go as JSON records, so any valid JSON batch has a binary twin.
 */
export function encodeBatchRequest(ops: readonly BatchOpIn[]): Buffer {
  const w = new Writer(16 + ops.length * 24);
  w.u32(REQUEST_MAGIC);
  w.header(VERSION, 0, 0);
  w.u32(ops.length);
  for (const op of ops) {
    const skip = 'skip_cpu_sync' in op && op.skip_cpu_sync === true ? SKIP_CPU_SYNC : 0;
    if (op.op === 'map_sg' && fixed(op, MAP_SG_KEYS)) {
      w.header(OP.map_sg, DMA_DIRECTIONS.indexOf(op.dir), skip);
      w.u32(op.sg.length);
      for (const e of op.sg) {
        w.u64(hexIn(Array.isArray(e) ? e[0] : e.phys));
        w.u32(Array.isArray(e) ? e[1] : e.length);
      }
    } else if (op.op === 'map_page' && fixed(op, MAP_PAGE_KEYS)) {
      w.header(OP.map_page, DMA_DIRECTIONS.indexOf(op.dir), skip);
      w.u64(hexIn(op.phys));
      w.u32(op.size);
    } else if ((op.op === 'unmap' && fixed(op, UNMAP_KEYS)) || (op.op === 'sync' && fixed(op, SYNC_KEYS))) {
      const h = op.handle;
      const n = typeof h === 'number' ? h : h.ref;
      if (op.op === 'unmap') w.header(OP.unmap, 0, skip | (typeof h === 'number' ? 0 : REF));
      else w.header(OP.sync, SYNC_TARGETS.indexOf(op.for), typeof h === 'number' ? 0 : REF);
      w.u32(n);
    } else {
      w.header(OP.json, 0, 0);
      w.json(op);
    }
  }
  return w.done();
}

const MAP_SG_KEYS = new Set(['op', 'dir', 'sg', 'skip_cpu_sync']);
const MAP_PAGE_KEYS = new Set(['op', 'dir', 'phys', 'size', 'skip_cpu_sync']);
const UNMAP_KEYS = new Set(['op', 'handle', 'skip_cpu_sync']);
const SYNC_KEYS = new Set(['op', 'handle', 'for']);

/**
 * `op` fits its fixed record: no field beyond `keys`, skip_cpu_sync (if given) true, a handle or
 * ref below 2^32. Anything else goes as a JSON record, so it decodes to exactly what was sent.
 */
function fixed(op: BatchOpIn, keys: ReadonlySet<string>): boolean {
  const o = op as Record<string, unknown>;
  for (const k in o) if (!keys.has(k) || o[k] === undefined) return false;
  if ('skip_cpu_sync' in o && o.skip_cpu_sync !== true) return false;
  const h = o.handle as number | { ref: number } | undefined;
  return h === undefined || (typeof h === 'number' ? h < U32 : h.ref < U32);
}

function dirOf(arg: number, field: string): DmaDirection {
  const d = DMA_DIRECTIONS[arg];
  if (d === undefined) throw new BatchBinaryError(field, `direction ${arg} is not one of 0..3 (${DMA_DIRECTIONS.join(', ')})`);
  return d;
}

function physAt(r: Reader, field: string): number {
  const lo = r.u32();
  const hi = r.u32();
  if (hi >= PHYS_HI_LIMIT) throw new BatchBinaryError(field, 'must be below 2^52 (PHYS_MASK)');
  return hi * U32 + lo;
}

function lengthAt(r: Reader, field: string): number {
  const n = r.u32();
  if (n === 0) throw new BatchBinaryError(field, 'must be at least 1 (a zero-length entry is a caller error)');
  return n;
}

function handleAt(r: Reader, flags: number, field: string): number | { ref: number } {
  const n = r.u32();
  if (flags & REF) return { ref: n };
  if (n === 0) throw new BatchBinaryError(field, 'handles start at 1');
  return n;
}

/** The op count a request body's header states, read before anything is decoded; null when it is not a binary batch of this version (decoding says why). */
export function requestOpCount(body: Uint8Array): number | null {
  if (body.length < 12) return null;
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  return view.getUint32(0, true) === REQUEST_MAGIC && body[4] === VERSION ? view.getUint32(8, true) : null;
}

/**
 * A binary body as the op objects BatchBody's JSON form decodes to. `jsonOp` checks and decodes
 * a JSON record's object as one op of the JSON form (the service passes zod's BatchOp), throwing
 * BatchBinaryError with the field under `prefix`.
 */
export function decodeBatchRequest(body: Uint8Array, jsonOp: (value: unknown, prefix: string) => BatchOp): BatchOps {
  const r = new Reader(body);
  const count = readHeader(r, REQUEST_MAGIC, 'batch');
  if (count === 0) throw new BatchBinaryError('body.ops', 'must hold at least 1 op');
  // Every record is at least 8 bytes: a count the body cannot hold is refused before any work.
  if (count * 8 > body.length - r.pos) throw new BatchBinaryError('body.ops', `${count} ops cannot fit in the ${body.length - r.pos} bytes that follow the header`);
  const ops: BatchOp[] = new Array<BatchOp>(count);
  for (let k = 0; k < count; k++) {
    const at = `body.ops.${k}`;
    r.need(4, at);
    const code = r.u8();
    const arg = r.u8();
    const flags = r.u8();
    const pad = r.u8();
    if (pad !== 0) throw new BatchBinaryError(at, 'byte 3 of an op header must be 0');
    switch (code) {
      case OP.json: {
        r.need(4, at);
        const n = r.u32();
        r.need(n, at);
        let value: unknown;
        try {
          value = JSON.parse(r.text(n));
        } catch {
          throw new BatchBinaryError(at, 'a JSON record must hold one JSON op object');
        }
        ops[k] = jsonOp(value, at);
        break;
      }
      case OP.map_sg: {
        checkFlags(flags, SKIP_CPU_SYNC, at);
        const dir = dirOf(arg, `${at}.dir`);
        r.need(4, at);
        const nents = r.u32();
        if (nents === 0) throw new BatchBinaryError(`${at}.sg`, 'must hold at least 1 entry');
        r.need(nents * 12, `${at}.sg`);
        const sg = new Array<{ phys: number; length: number }>(nents);
        for (let i = 0; i < nents; i++) sg[i] = { phys: physAt(r, `${at}.sg.${i}.phys`), length: lengthAt(r, `${at}.sg.${i}.length`) };
        ops[k] = flags & SKIP_CPU_SYNC ? { op: 'map_sg', dir, sg, skip_cpu_sync: true } : { op: 'map_sg', dir, sg };
        break;
      }
      case OP.map_page: {
        checkFlags(flags, SKIP_CPU_SYNC, at);
        const dir = dirOf(arg, `${at}.dir`);
        r.need(12, at);
        const phys = physAt(r, `${at}.phys`);
        const size = lengthAt(r, `${at}.size`);
        ops[k] = flags & SKIP_CPU_SYNC ? { op: 'map_page', dir, phys, size, skip_cpu_sync: true } : { op: 'map_page', dir, phys, size };
        break;
      }
      case OP.unmap: {
        checkFlags(flags, SKIP_CPU_SYNC | REF, at);
        if (arg !== 0) throw new BatchBinaryError(at, 'byte 1 of an unmap header must be 0');
        r.need(4, at);
        const handle = handleAt(r, flags, `${at}.handle`);
        ops[k] = flags & SKIP_CPU_SYNC ? { op: 'unmap', handle, skip_cpu_sync: true } : { op: 'unmap', handle };
        break;
      }
      case OP.sync: {
        checkFlags(flags, REF, at);
        const dirFor = SYNC_TARGETS[arg];
        if (dirFor === undefined) throw new BatchBinaryError(`${at}.for`, `must be 0 (cpu) or 1 (device), not ${arg}`);
        r.need(4, at);
        ops[k] = { op: 'sync', for: dirFor, handle: handleAt(r, flags, `${at}.handle`) };
        break;
      }
      default:
        throw new BatchBinaryError(`${at}.op`, `opcode ${code} is not one of 0 (json), 1 (map_sg), 2 (map_page), 3 (unmap), 4 (sync)`);
    }
  }
  if (r.pos !== body.length) throw new BatchBinaryError('body', `${body.length - r.pos} bytes follow the last of the ${count} ops`);
  return ops;
}

function checkFlags(flags: number, allowed: number, field: string): void {
  if (flags & ~allowed) throw new BatchBinaryError(field, `flags 0x${flags.toString(16)} set bits this op does not define`);
}

// ---- results --------------------------------------------------------------------------------

type Range = { start: string; size: number };
const sameRange = (a: Range, b: Range | undefined): boolean => b !== undefined && a.start === b.start && a.size === b.size;
const smallHandle = (h: unknown): h is number => typeof h === 'number' && h > 0 && h < U32;

/**
 * The answer of a batch as a binary body; a result the fixed records cannot carry goes as JSON,
 * through `stringify` (the service passes the JSON answer's own serializer, so a JSON record
 * is byte for byte that result in the JSON answer).
 */
export function encodeBatchResults(ops: readonly { op: string }[], results: readonly BatchResult[], stringify: (v: unknown) => string = JSON.stringify): Buffer {
  const w = new Writer(16 + results.length * 40);
  w.u32(RESULTS_MAGIC);
  w.header(VERSION, 0, 0);
  w.u32(results.length);
  for (let k = 0; k < results.length; k++) {
    const res = results[k] as Record<string, unknown>;
    const kind = ops[k]?.op;
    const keys = Object.keys(res).length;
    if (kind === 'map_sg' && keys === 5 && smallHandle(res.handle)) {
      const ranges = res.iova_ranges as Range[];
      const iova = res.iova as Range | null;
      const segments = res.segments as { dma_address: string; dma_length: number }[];
      if ((iova === null ? ranges.length === 0 : sameRange(iova, ranges[0])) && segments.length === res.nents) {
        w.header(OP.map_sg, 0, 0);
        w.u32(res.handle);
        w.u32(segments.length);
        for (const s of segments) {
          w.hex64(s.dma_address);
          w.u32(s.dma_length);
        }
        w.u32(ranges.length);
        for (const g of ranges) {
          w.hex64(g.start);
          w.f64(g.size);
        }
        continue;
      }
    } else if ((kind === 'map_page' && keys === 3) || (kind === 'unmap' && keys === 2)) {
      if (smallHandle(res.handle)) {
        const iova = res.iova as Range | null;
        w.header(kind === 'map_page' ? OP.map_page : OP.unmap, iova === null ? 0 : 1, 0);
        w.u32(res.handle);
        if (kind === 'map_page') w.hex64(res.dma_address as string);
        if (iova !== null) {
          w.hex64(iova.start);
          w.f64(iova.size);
        }
        continue;
      }
    } else if (kind === 'sync' && keys === 3 && smallHandle(res.handle)) {
      w.header(OP.sync, CACHE_OPS.indexOf(res.cache as CacheOp), 0);
      w.u32(res.handle);
      w.f64(res.bounced_bytes as number);
      continue;
    }
    w.header(OP.json, 0, 0);
    w.json(res, stringify);
  }
  return w.done();
}

function hexOf(r: Reader): string {
  const lo = r.u32();
  const hi = r.u32();
  return hi === 0 ? '0x' + lo.toString(16) : '0x' + hi.toString(16) + lo.toString(16).padStart(8, '0');
}

function rangeOf(r: Reader): Range {
  const start = hexOf(r);
  return { start, size: r.f64() };
}

/** A binary answer as the JSON form's `results`. */
export function decodeBatchResults(body: Uint8Array): BatchResult[] {
  const r = new Reader(body);
  const count = readHeader(r, RESULTS_MAGIC, 'batch answer');
  const out: BatchResult[] = [];
  for (let k = 0; k < count; k++) {
    const at = `results.${k}`;
    r.need(4, at);
    const kind = r.u8();
    const arg = r.u8();
    r.pos += 2;
    r.need(4, at);
    if (kind === OP.json) {
      const n = r.u32();
      r.need(n, at);
      out.push(JSON.parse(r.text(n)) as BatchResult);
      continue;
    }
    const handle = r.u32();
    if (kind === OP.map_sg) {
      r.need(4, at);
      const nents = r.u32();
      r.need(nents * 12 + 4, at);
      const segments = [];
      for (let i = 0; i < nents; i++) segments.push({ dma_address: hexOf(r), dma_length: r.u32() });
      const n = r.u32();
      r.need(n * 16, at);
      const iova_ranges: Range[] = [];
      for (let i = 0; i < n; i++) iova_ranges.push(rangeOf(r));
      out.push({ handle, nents, segments, iova: iova_ranges[0] ? { ...iova_ranges[0] } : null, iova_ranges });
    } else if (kind === OP.map_page) {
      r.need(8 + (arg ? 16 : 0), at);
      const dma_address = hexOf(r);
      out.push({ handle, dma_address, iova: arg ? rangeOf(r) : null });
    } else if (kind === OP.unmap) {
      r.need(arg ? 16 : 0, at);
      out.push({ handle, iova: arg ? rangeOf(r) : null });
    } else if (kind === OP.sync) {
      r.need(8, at);
      const cache = CACHE_OPS[arg];
      if (cache === undefined) throw new BatchBinaryError(at, `cache ${arg} is not one of 0..3`);
      out.push({ handle, cache, bounced_bytes: r.f64() });
    } else throw new BatchBinaryError(at, `record kind ${kind} is not one of 0..4`);
  }
  return out;
}
