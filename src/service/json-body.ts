// The application/json body parser. JSON.parse, then a refusal of the keys that poison a
// prototype when a body is later merged into an object: `__proto__` anywhere, and `constructor`
// holding `prototype`. Fastify's own parser refuses them too, but with "Body is not valid JSON",
// which names neither the key nor where it is; this one says `body.sg.0.__proto__: …`, as every
// other 400 names its field (API.md "Conventions").

import { DmaemuError } from '../core/errors.js';

const malformed = (message: string, field = 'body'): DmaemuError => new DmaemuError('DMAEMU_MALFORMED_BODY', message, field);

export function parseJsonBody(text: string): unknown {
  if (text.length === 0) throw malformed('empty, yet the content-type is application/json (send {} or no content-type)');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw malformed(`not valid JSON (${(err as Error).message})`);
  }
  // Only a body whose text holds one of the keys can carry it: the walk is skipped otherwise.
  if (text.includes('__proto__') || text.includes('constructor')) refusePoisonKeys(value);
  return value;
}

/** Walks the parsed value with an explicit stack (a body may nest deeper than the call stack). */
function refusePoisonKeys(root: unknown): void {
  const stack: { v: unknown; at: string }[] = [{ v: root, at: 'body' }];
  for (let top = stack.pop(); top; top = stack.pop()) {
    const { v, at } = top;
    if (typeof v !== 'object' || v === null) continue;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) stack.push({ v: v[i] as unknown, at: `${at}.${i}` });
      continue;
    }
    if (Object.hasOwn(v, '__proto__')) throw malformed('a __proto__ key is refused (prototype poisoning)', `${at}.__proto__`);
    const ctor: unknown = Object.hasOwn(v, 'constructor') ? (v as Record<string, unknown>).constructor : undefined;
    if (typeof ctor === 'object' && ctor !== null && Object.hasOwn(ctor, 'prototype')) {
      throw malformed('a constructor.prototype key is refused (prototype poisoning)', `${at}.constructor.prototype`);
    }
    for (const [k, x] of Object.entries(v)) stack.push({ v: x, at: `${at}.${k}` });
  }
}
