// Where a /batch request's time goes, in-process on one core, stage by stage: JSON.parse of the
// body, validation (zod's safeParse, as every route had it, or the compiled check + decoding pass
// /batch uses now), the core (Session.batch), serialization (the route's fast-json-stringify).
// The same 8-entry map_sg + unmap pairs as `npm run load` (d) and (e); each stage is timed over
// BENCH_BATCH_MS (default 1500) after a warm-up; CPU µs per request and ns per op are printed.
//   npx tsx load/bench-batch.ts

import { performance } from 'node:perf_hooks';
import type { z } from 'zod';
import { BatchBody, BatchResultWire } from '../schemas/batch.js';
import { batchValidatorCompiler } from '../src/service/http-batch-validator.js';
import { decodeBatchRequest, encodeBatchRequest, encodeBatchResults } from '../schemas/batch-binary.js';
import { serializerCompiler } from '../src/service/http-serializer.js';
import { SessionStore } from '../src/service/session-store.js';

const WINDOW_MS = Number(process.env.BENCH_BATCH_MS ?? 1500);

const SG = Array.from({ length: 8 }, (_, i) => ({ phys: `0x${(0x90000000 + i * 0x200000 + (i % 2) * 0x1000).toString(16)}`, length: 4096 }));

function body(pairs: number, sg: unknown): string {
  const ops: unknown[] = [];
  for (let i = 0; i < pairs; i++) ops.push({ op: 'map_sg', dir: 'to_device', sg }, { op: 'unmap', handle: { ref: 2 * i } });
  return JSON.stringify({ ops });
}

/**
 * Mean µs of this process's CPU time (user + system) per call of fn over the window, after a
 * warm-up of a third of it: CPU time, not wall time, so a machine shared with other work
 * inflates the figures less (it still does through caches and frequency).
 */
function time(fn: () => unknown): number {
  const until = (ms: number): number => {
    let n = 0;
    const end = performance.now() + ms;
    const c0 = process.cpuUsage();
    while (performance.now() < end) {
      for (let k = 0; k < 16; k++) fn();
      n += 16;
    }
    const c = process.cpuUsage(c0);
    return (c.user + c.system) / n;
  };
  until(WINDOW_MS / 3);
  return until(WINDOW_MS);
}

const validate = batchValidatorCompiler()({ schema: BatchBody, method: 'POST', url: '/batch', httpPart: 'body' });
const stringify = serializerCompiler({ schema: BatchResultWire });
const store = new SessionStore();
const session = store.create({});

type Input = z.output<typeof BatchBody>;
const compiled = (text: string): Input => (validate(JSON.parse(text)) as { value: Input }).value;
const zod = (text: string): Input => BatchBody.parse(JSON.parse(text));

console.log('form                      ops  bytes   parse µs  validate µs  core µs  serialize µs   total µs  ns/op');
for (const [name, text, ops, path] of [
  ['objects, zod (before)', body(32, SG), 64, zod],
  ['objects, compiled', body(32, SG), 64, compiled],
  ['compact, compiled', body(32, SG.map((e) => [e.phys, e.length])), 64, compiled],
  ['compact, compiled', body(512, SG.map((e) => [e.phys, e.length])), 1024, compiled],
  ['compact, int phys', body(512, SG.map((e) => [Number(e.phys), e.length])), 1024, compiled],
] as const) {
  const parse = time(() => JSON.parse(text));
  const check = time(() => path(text)) - parse;
  const input = path(text);
  const core = time(() => session.batch(path(text))) - parse - check; // each run needs a fresh input: decoding mutates it
  const out = session.batch(input);
  const ser = time(() => stringify(out));
  const total = parse + check + core + ser;
  console.log(
    `${name.padEnd(24)} ${String(ops).padStart(5)} ${String(text.length).padStart(6)} ${parse.toFixed(1).padStart(10)} ${check.toFixed(1).padStart(12)} ${core.toFixed(1).padStart(8)} ${ser.toFixed(1).padStart(13)} ${total.toFixed(1).padStart(10)} ${((total * 1000) / ops).toFixed(0).padStart(6)}`,
  );
}

// The binary form (schemas/batch-binary.ts): decoding is parse and check in one pass; results
// are packed instead of serialized (JSON records, none here, would go through `stringify`).
{
  const ops = (JSON.parse(body(512, SG.map((e) => [e.phys, e.length]))) as { ops: Parameters<typeof encodeBatchRequest>[0] }).ops;
  const bin = encodeBatchRequest(ops);
  const noJson = (): never => {
    throw new Error('no JSON records in this body');
  };
  const decode = (): Input => ({ ops: decodeBatchRequest(bin, noJson) });
  const parse = time(decode);
  const core = time(() => session.batch(decode())) - parse;
  const out = session.batch(decode());
  const ser = time(() => encodeBatchResults(ops, out.results, stringify));
  const total = parse + core + ser;
  console.log(
    `${'binary'.padEnd(24)} ${String(1024).padStart(5)} ${String(bin.length).padStart(6)} ${parse.toFixed(1).padStart(10)} ${'(in parse)'.padStart(12)} ${core.toFixed(1).padStart(8)} ${ser.toFixed(1).padStart(13)} ${total.toFixed(1).padStart(10)} ${((total * 1000) / 1024).toFixed(0).padStart(6)}`,
  );
}
