// npm run load:ftrace — how fast the kernel's dma events import (src/service/ftrace.ts), and how
// long the import holds the event loop at a time. The text is the 6.12 recording's event lines
// (test/kernel-recordings/linux-6.12-intel-iommu.trace.gz) repeated to 100 MB, as `cat trace`
// would print a long run. Baseline, measured in the same run on the same text: a scan that only
// finds the lines and matches each against the event-line pattern (readLine), with no event
// read and no op built; the ratio says what reading the events and building the traces cost
// on top. Then the same import as POST /v1/import/ftrace runs it, in a worker thread
// (src/service/ftrace-pool.ts), while perf_hooks watches this thread's event loop:
// the event-loop delay monitor's maximum is the longest any other request would have waited (the
// service's promise: under 50 ms). The in-thread import is watched too, for comparison: it
// yields every SLICE_MS, but its garbage collection (scavenges promoting the ops it keeps)
// still pauses the loop, which is why the service uses the worker.
// Last line (machine-read):
//   ftrace: events_per_s=<n> mb_per_s=<x> ratio_vs_scan=<r> worker_events_per_s=<w> max_loop_gap_ms=<g> max_loop_gap_at_limit_ms=<l> in_thread_max_gap_ms=<h>
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { gunzipSync } from 'node:zlib';
import { DEFAULT_MAX_IMPORT_EVENTS, importFtrace, readLine } from '../src/service/ftrace.js';
import { importInWorker } from '../src/service/ftrace-pool.js';

const TARGET = 100 * 1024 * 1024;

function buildText(): { text: string; copies: number } {
  const raw = gunzipSync(readFileSync(path.resolve('test/kernel-recordings/linux-6.12-intel-iommu.trace.gz'))).toString('utf8');
  const events = raw
    .split('\n')
    .map((l) => l.replace(/\r$/, ''))
    .filter((l) => l.includes(': dma_'))
    .join('\n') + '\n';
  const copies = Math.ceil(TARGET / events.length);
  return { text: events.repeat(copies), copies };
}

/** The offset just past the n-th line. */
function nthLineEnd(text: string, n: number): number {
  let at = 0;
  for (let k = 0; k < n && at >= 0; k++) at = text.indexOf('\n', at) + 1;
  return at > 0 ? at : text.length;
}

/** The baseline: lines found and matched, nothing else. */
function scan(text: string): number {
  let n = 0;
  let i = 0;
  while (i < text.length) {
    let j = text.indexOf('\n', i);
    if (j < 0) j = text.length;
    if (readLine(text.slice(i, j), n + 1)) n++;
    i = j + 1;
  }
  return n;
}

/**
 * The longest the event loop was held while `work` runs: perf_hooks' event-loop delay monitor
 * (a 5 ms timer whose lateness is recorded), so the watcher itself takes no core from the work.
 */
async function watched<T>(work: () => Promise<T>): Promise<{ out: T; maxGapMs: number; ticks: number }> {
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  const out = await work();
  h.disable();
  return { out, maxGapMs: h.max / 1e6, ticks: h.count };
}

async function main(): Promise<void> {
  const { text, copies } = buildText();
  const mb = text.length / (1024 * 1024);
  console.log(`# text: ${mb.toFixed(1)} MB, the recording's event lines × ${copies}`);
  const t0 = performance.now();
  const lines = scan(text);
  const scanMs = performance.now() - t0;
  console.log(`# baseline scan: ${lines} lines in ${scanMs.toFixed(0)} ms (${((lines / scanMs) * 1000).toFixed(0)} lines/s)`);
  // As POST /v1/import/ftrace gets a text/plain body: the bytes, handed to a worker.
  const bytes = Buffer.from(text, 'utf8');
  const t2 = performance.now();
  const w = await watched(() => importInWorker(bytes, { maxEvents: Number.MAX_SAFE_INTEGER, expect: true }));
  const wms = performance.now() - t2;
  const answerMb = w.out.length / 1048576;
  console.log(`# worker: ${answerMb.toFixed(1)} MB of JSON answer in ${wms.toFixed(0)} ms; ${w.ticks} delay samples on this thread, longest delay ${w.maxGapMs.toFixed(1)} ms`);
  // What the service takes at most by default: DMAEMU_MAX_IMPORT_EVENTS events, in the worker.
  const cut = nthLineEnd(text, DEFAULT_MAX_IMPORT_EVENTS);
  const small = Buffer.from(text.slice(0, cut), 'utf8');
  const smallMb = small.length / 1048576; // before the worker takes the buffer (transferred, it is empty here after)
  const s = await watched(() => importInWorker(small, { maxEvents: DEFAULT_MAX_IMPORT_EVENTS }));
  console.log(`# worker, ${DEFAULT_MAX_IMPORT_EVENTS} events (${smallMb.toFixed(1)} MB, the default limit): longest delay on this thread ${s.maxGapMs.toFixed(1)} ms`);
  const t1 = performance.now();
  const { out, maxGapMs, ticks } = await watched(() => importFtrace(text, { maxEvents: Number.MAX_SAFE_INTEGER, expect: true }));
  const ms = performance.now() - t1;
  const eps = (out.dma_events / ms) * 1000;
  const weps = (out.dma_events / wms) * 1000;
  let ops = 0;
  for (const d of out.devices) ops += d.trace.ops.length;
  console.log(`# in-thread import: ${out.dma_events} dma events → ${out.devices.length} device traces, ${ops} ops, ${out.unexpressed.length} unexpressed, in ${ms.toFixed(0)} ms`);
  console.log(`# in-thread event loop: ${ticks} delay samples during the import; longest delay ${maxGapMs.toFixed(1)} ms`);
  console.log(
    `ftrace: events_per_s=${eps.toFixed(0)} mb_per_s=${((mb / ms) * 1000).toFixed(1)} ratio_vs_scan=${(ms / scanMs).toFixed(2)} worker_events_per_s=${weps.toFixed(0)} max_loop_gap_ms=${w.maxGapMs.toFixed(1)} max_loop_gap_at_limit_ms=${s.maxGapMs.toFixed(1)} in_thread_max_gap_ms=${maxGapMs.toFixed(1)}`,
  );
}

await main();
