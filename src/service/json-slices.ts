// Large answers as JSON text built in slices: the text JSON.stringify(value) would give, made
// piece by piece with a return to the event loop every SLICE_CHARS characters, so a
// multi-megabyte answer (65 536 page rows, compare's four columns, a /batch of big scatterlists)
// never holds other tenants up for its whole serialization (issue 22: no stall beyond 50 ms).
// Each slice is encoded to UTF-8 as it is finished; the answer goes out as one Buffer.
//
// Invariants: the output is byte for byte JSON.stringify(value) (same key order, undefined and
// functions dropped from objects and written null in arrays, toJSON called with its key, a
// cycle a TypeError); a value of at most SMALL_VALUES nested values, a run of such array
// elements, and anything that is neither a plain object nor an array, are handed to
// JSON.stringify whole (they are small, or opaque), which keeps the cost near JSON.stringify's.

import { setImmediate as tick } from 'node:timers/promises';

/** Characters of JSON made between two returns to the event loop (about a millisecond of work). */
export const SLICE_CHARS = 128 * 1024;

/** A value of at most this many nested values (itself included) is handed to JSON.stringify whole. */
const SMALL_VALUES = 64;
/** Consecutive small elements of an array are stringified together, up to this many values. */
const RUN_VALUES = 2048;

const isContainer = (v: unknown): v is object => typeof v === 'object' && v !== null;
const hasToJson = (v: unknown): boolean => isContainer(v) && typeof (v as { toJSON?: unknown }).toJSON === 'function';
const omitted = (v: unknown): boolean => v === undefined || typeof v === 'function' || typeof v === 'symbol';

function isPlain(v: object): boolean {
  if (Array.isArray(v)) return true;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** How many values `v` holds, itself included; counting stops once it is over `limit`. */
function valuesIn(v: unknown, limit: number): number {
  let n = 0;
  const stack: unknown[] = [v];
  while (stack.length > 0) {
    const x = stack.pop();
    if (++n + stack.length > limit) return limit + 1;
    if (!isContainer(x)) continue;
    if (Array.isArray(x)) {
      if (n + stack.length + x.length > limit) return limit + 1;
      for (const y of x) stack.push(y);
    } else {
      for (const k in x) {
        stack.push((x as Record<string, unknown>)[k]);
        if (n + stack.length > limit) return limit + 1;
      }
    }
  }
  return n;
}

/** `v` as JSON.stringify sees it under `key`: toJSON applied once. */
function toJsonValue(v: unknown, key: string): unknown {
  return hasToJson(v) ? (v as { toJSON: (k: string) => unknown }).toJSON(key) : v;
}

type Frame = { array: unknown[]; i: number } | { object: Record<string, unknown>; keys: string[]; i: number; first: boolean };

/** The text made so far: whole slices as UTF-8, the current one as pieces. */
class Slices {
  readonly done: Buffer[] = [];
  private part: string[] = [];
  chars = 0;

  push(s: string): void {
    this.part.push(s);
    this.chars += s.length;
  }

  /** Ends the current slice. */
  cut(): void {
    this.done.push(Buffer.from(this.part.join('')));
    this.part = [];
    this.chars = 0;
  }
}

/**
 * JSON.stringify(value) as UTF-8, made in slices of about SLICE_CHARS characters with a return to
 * the event loop between them. `value` must serialize to something (not undefined or a function).
 */
export async function stringifySliced(value: unknown): Promise<Buffer> {
  const top = toJsonValue(value, '');
  if (omitted(top)) throw new TypeError('nothing to serialize');
  const out = new Slices();
  const open = new Set<object>();
  const stack: Frame[] = [];
  /** Writes `x` (through toJSON already, not omitted): whole when small or opaque, else opens it. */
  const write = (x: unknown): void => {
    if (!isContainer(x) || !isPlain(x) || (!hasToJson(x) && valuesIn(x, SMALL_VALUES) <= SMALL_VALUES)) {
      out.push(JSON.stringify(x) ?? 'null');
      return;
    }
    if (open.has(x)) throw new TypeError('Converting circular structure to JSON');
    open.add(x);
    if (Array.isArray(x)) {
      out.push('[');
      stack.push({ array: x as unknown[], i: 0 });
    } else {
      out.push('{');
      stack.push({ object: x as Record<string, unknown>, keys: Object.keys(x), i: 0, first: true });
    }
  };
  write(top);
  for (let f = stack.at(-1); f; f = stack.at(-1)) {
    if ('array' in f) {
      const a = f.array;
      if (f.i >= a.length) {
        out.push(']');
        open.delete(a);
        stack.pop();
        continue;
      }
      // A run of small elements (no toJSON of their own: theirs would get the run's index) in one call.
      let j = f.i;
      for (let n = 0; j < a.length && n < RUN_VALUES && !hasToJson(a[j]); j++) {
        const k = valuesIn(a[j], SMALL_VALUES);
        if (k > SMALL_VALUES) break;
        n += k;
      }
      if (j > f.i) {
        const run = JSON.stringify(a.slice(f.i, j));
        out.push(f.i > 0 ? `,${run.slice(1, -1)}` : run.slice(1, -1));
        f.i = j;
      } else {
        if (f.i > 0) out.push(',');
        const x = toJsonValue(a[f.i], String(f.i));
        f.i++;
        if (omitted(x)) out.push('null');
        else write(x);
      }
    } else {
      if (f.i >= f.keys.length) {
        out.push('}');
        open.delete(f.object);
        stack.pop();
        continue;
      }
      const k = f.keys[f.i++] as string;
      const x = toJsonValue(f.object[k], k);
      if (omitted(x)) continue;
      out.push(f.first ? `${JSON.stringify(k)}:` : `,${JSON.stringify(k)}:`);
      f.first = false;
      write(x);
    }
    if (out.chars >= SLICE_CHARS) {
      out.cut();
      await tick();
    }
  }
  out.cut();
  return out.done.length === 1 ? (out.done[0] as Buffer) : Buffer.concat(out.done);
}
