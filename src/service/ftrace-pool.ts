// Runs ftrace imports off the event loop: one worker thread per import (ftrace-worker.ts), at
// most MAX_RUNNING at once, the rest waiting in order. A worker has its own heap, so neither
// the parse nor its garbage collection pauses the service's other requests; the bytes go in
// and the JSON answer comes back as transferred buffers (no copy, nothing parsed here).
import { Worker } from 'node:worker_threads';
import { DmaemuError, internal } from '../core/errors.js';
import type { ImportOptions } from './ftrace.js';
import type { ImportJob, ImportReply } from './ftrace-worker.js';

const MAX_RUNNING = 2;
// Built: ftrace-worker.js beside this file; from source (tsx, tests): ftrace-worker.ts.
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const WORKER = new URL(FROM_SOURCE ? './ftrace-worker.ts' : './ftrace-worker.js', import.meta.url);
// From source (tsx, the tests) a worker does not inherit the TypeScript loader: it registers
// tsx itself (a devDependency, as in bin/dmaemu.mjs) before loading the worker module.
const BOOT_FROM_SOURCE = `(async () => { (await import('tsx/esm/api')).register(); await import(${JSON.stringify(WORKER.href)}); })()`;
let running = 0;
const waiting: (() => void)[] = [];

async function slot(): Promise<void> {
  if (running < MAX_RUNNING) {
    running++;
    return;
  }
  await new Promise<void>((resolve) => waiting.push(resolve));
}

function release(): void {
  const next = waiting.shift();
  if (next) next();
  else running--;
}

/** The import's answer as JSON bytes, or the DmaemuError the worker refused it with. */
export async function importInWorker(text: string | Uint8Array, opts: ImportOptions): Promise<Buffer> {
  await slot();
  try {
    const bytes = typeof text === 'string' ? new TextEncoder().encode(text) : text;
    const worker = FROM_SOURCE ? new Worker(BOOT_FROM_SOURCE, { eval: true }) : new Worker(WORKER);
    try {
      const reply = await new Promise<ImportReply>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
        worker.once('exit', (code) => reject(internal(`the ftrace import worker exited (${code}) before answering`)));
        const job: ImportJob = { bytes, opts };
        worker.postMessage(job, bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? [bytes.buffer as ArrayBuffer] : []);
      });
      if (!reply.ok) throw new DmaemuError(reply.code, reply.message, reply.field);
      return Buffer.from(reply.json.buffer, reply.json.byteOffset, reply.json.byteLength);
    } finally {
      await worker.terminate();
    }
  } finally {
    release();
  }
}
