// The elements of one array in a JSON text, counted without parsing it: a trace of half a
// million ops is refused from its count (docs/api.md "Request limits") before JSON.parse spends
// most of a second building it (310 ms on this machine for 7.5 MB of `{"op":"flush"}`, all of it
// a stall for every other tenant). The scan walks the text in slices of SCAN_CHARS characters
// with a return to the event loop between them (issue 22: no stall beyond 50 ms).
//
// Invariants: a count is given only for a text that scanned as well formed at the level of
// brackets and strings (its values are JSON.parse's business); a key given twice counts its
// last array, as JSON.parse keeps the last; `null` when the text has no such array or is
// malformed, and then the caller parses as before and gets JSON.parse's error.

import { setImmediate as tick } from 'node:timers/promises';
import type { RequestLimits } from './execute.js';
import { refuseOpCount } from './http-batch-validator.js';
import { parseJsonBody } from './json-body.js';

/** Characters scanned between two returns to the event loop (a few milliseconds). */
export const SCAN_CHARS = 1 << 20;

const QUOTE = 34;
const BACKSLASH = 92;
const OPEN_OBJECT = 123;
const CLOSE_OBJECT = 125;
const OPEN_ARRAY = 91;
const CLOSE_ARRAY = 93;
const COMMA = 44;
const COLON = 58;

/** Index of the quote that ends the string whose opening quote is at `open`, or -1. */
function stringEnd(text: string, open: number): number {
  let q = text.indexOf('"', open + 1);
  while (q !== -1) {
    let slashes = 0;
    for (let k = q - 1; text.charCodeAt(k) === BACKSLASH; k--) slashes++;
    if (slashes % 2 === 0) return q;
    q = text.indexOf('"', q + 1);
  }
  return -1;
}

const isSpace = (c: number): boolean => c === 32 || c === 9 || c === 10 || c === 13;

/**
 * How many elements the array at `path` (object keys from the top, e.g. ['trace', 'ops']) holds
 * in the JSON `text`, or null (no such array, or a malformed text).
 */
export async function countArrayAt(text: string, path: readonly string[]): Promise<number | null> {
  // One entry per open container: is it an object, the key it was opened under, is it the target.
  const open: { object: boolean; target: boolean; onPath: boolean }[] = [];
  let key: string | null = null; // the last key read in the innermost object
  let expectKey = false;
  let count: number | null = null;
  let current = 0;
  let empty = true;
  let nextYield = SCAN_CHARS;
  for (let i = 0; i < text.length; i++) {
    if (i >= nextYield) {
      nextYield = i + SCAN_CHARS;
      await tick();
    }
    const c = text.charCodeAt(i);
    if (isSpace(c)) continue;
    const top = open[open.length - 1];
    if (top?.target && empty && c !== CLOSE_ARRAY) {
      empty = false;
      current = 1;
    }
    if (c === QUOTE) {
      const end = stringEnd(text, i);
      if (end === -1) return null;
      if (expectKey && top?.onPath && open.length <= path.length) key = text.slice(i + 1, end);
      i = end;
      continue;
    }
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      const depth = open.length; // the new container's parent depth
      const parentOnPath = depth === 0 || (top?.onPath === true && top.object);
      const onPath = parentOnPath && (depth === 0 ? c === OPEN_OBJECT : key === path[depth - 1]);
      const target = onPath && c === OPEN_ARRAY && depth === path.length;
      open.push({ object: c === OPEN_OBJECT, target, onPath: onPath && !target && c === OPEN_OBJECT });
      if (target) {
        current = 0;
        empty = true;
      }
      expectKey = c === OPEN_OBJECT;
      key = null;
      continue;
    }
    if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      const closed = open.pop();
      if (!closed || closed.object !== (c === CLOSE_OBJECT)) return null;
      if (closed.target) count = current;
      expectKey = false;
      continue;
    }
    if (c === COMMA) {
      if (top?.target) current++;
      expectKey = top?.object === true;
      continue;
    }
    if (c === COLON) expectKey = false;
  }
  return open.length === 0 ? count : null;
}

/** Where each route's ops are in its JSON body, and the op limit of a /batch. */
const OPS_AT: Record<string, { path: readonly string[]; batch: boolean }> = {
  '/v1/sessions': { path: ['trace', 'ops'], batch: false },
  '/v1/sessions/:id/batch': { path: ['ops'], batch: true },
  '/v1/compare': { path: ['ops'], batch: false },
};

/** Bodies shorter than this are parsed at once: JSON.parse takes well under a millisecond on them. */
export const RAW_COUNT_FROM = 64 * 1024;

/**
 * The application/json body of a request to `route` (its pattern): a long body of a route that
 * takes ops has them counted on the raw text first, and refused from the count alone as the
 * parsed body would be (http-batch-validator.ts refuseOpCount), then it is parsed (json-body.ts).
 */
export async function parseJsonRequest(route: string | undefined, text: string, limits: RequestLimits & { maxBatchOps: number }): Promise<unknown> {
  const at = route === undefined ? undefined : OPS_AT[route];
  if (at && text.length >= RAW_COUNT_FROM) {
    const ops = await countArrayAt(text, at.path);
    if (ops !== null) refuseOpCount(ops, limits, at.batch ? limits.maxBatchOps : undefined);
  }
  return parseJsonBody(text);
}
