// Large answers as JSON text built in slices: the text JSON.stringify(value) would give, made
// piece by piece with a return to the event loop every SLICE_CHARS characters, so a
// multi-megabyte answer (65 536 page rows, compare's four columns, a /batch of big scatterlists)
// never holds other tenants up for its whole serialization (issue 22: no stall beyond 50 ms).
// Each slice is encoded to UTF-8 as it is finished; the answer goes out as one Buffer.
//
// Invariants: the output is byte for byte JSON.stringify(value) (same key order, undefined and
// functions dropped from objects and written null in arrays, toJSON called with its key, a
// cycle a TypeError); containers holding only primitives, and anything that is neither a plain
// object nor an array, are handed to JSON.stringify whole (they are small, or opaque).

import { setImmediate as tick } from 'node:timers/promises';

/** Characters of JSON made between two returns to the event loop (about a millisecond of work). */
export const SLICE_CHARS = 128 * 1024;

const isContainer = (v: unknown): v is object => typeof v === 'object' && v !== null;

function isPlain(v: object): boolean {
  if (Array.isArray(v)) return true;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** A plain object or array none of whose values is an object: JSON.stringify takes it whole. */
function isFlat(v: object): boolean {
  if (Array.isArray(v)) {
    for (const x of v) if (isContainer(x)) return false;
    return true;
  }
  for (const k in v) if (Object.hasOwn(v, k) && isContainer((v as Record<string, unknown>)[k])) return false;
  return true;
}

/** `v` as JSON.stringify sees it under `key`: toJSON applied once. */
function toJsonValue(v: unknown, key: string): unknown {
  if (isContainer(v) && typeof (v as { toJSON?: unknown }).toJSON === 'function') return (v as { toJSON: (k: string) => unknown }).toJSON(key);
  return v;
}

/** The JSON pieces of `v` (already through toJSON), or undefined where JSON.stringify gives undefined. */
function* pieces(v: unknown, open: Set<object>): Generator<string, void, undefined> {
  if (!isContainer(v) || !isPlain(v) || (isFlat(v) && typeof (v as { toJSON?: unknown }).toJSON !== 'function')) {
    const s = JSON.stringify(v) as string | undefined;
    yield s === undefined ? 'null' : s; // only an array element can be undefined here (objects skip theirs)
    return;
  }
  if (open.has(v)) throw new TypeError('Converting circular structure to JSON');
  open.add(v);
  if (Array.isArray(v)) {
    yield '[';
    for (let i = 0; i < v.length; i++) {
      if (i > 0) yield ',';
      const x = toJsonValue(v[i], String(i));
      if (x === undefined || typeof x === 'function' || typeof x === 'symbol') yield 'null';
      else yield* pieces(x, open);
    }
    yield ']';
  } else {
    yield '{';
    let first = true;
    for (const k of Object.keys(v)) {
      const x = toJsonValue((v as Record<string, unknown>)[k], k);
      if (x === undefined || typeof x === 'function' || typeof x === 'symbol') continue;
      yield first ? `${JSON.stringify(k)}:` : `,${JSON.stringify(k)}:`;
      first = false;
      yield* pieces(x, open);
    }
    yield '}';
  }
  open.delete(v);
}

/**
 * JSON.stringify(value) as UTF-8, made in slices of about SLICE_CHARS characters with a return to
 * the event loop between them. `value` must serialize to something (not undefined or a function).
 */
export async function stringifySliced(value: unknown): Promise<Buffer> {
  const top = toJsonValue(value, '');
  if (top === undefined || typeof top === 'function' || typeof top === 'symbol') throw new TypeError('nothing to serialize');
  const slices: Buffer[] = [];
  let part: string[] = [];
  let chars = 0;
  for (const p of pieces(top, new Set())) {
    part.push(p);
    chars += p.length;
    if (chars >= SLICE_CHARS) {
      slices.push(Buffer.from(part.join('')));
      part = [];
      chars = 0;
      await tick();
    }
  }
  slices.push(Buffer.from(part.join('')));
  return slices.length === 1 ? (slices[0] as Buffer) : Buffer.concat(slices);
}
