// The thread POST /v1/import/ftrace parses in (ftrace-pool.ts starts it): the parse, and the
// garbage of a large trace, then never pause the service's own event loop. In: the trace's
// bytes (transferred) and the options; out: the answer as JSON bytes (transferred), or the
// DmaemuError that refused it.
import { parentPort } from 'node:worker_threads';
import { DmaemuError } from '../core/errors.js';
import { importFtrace, type ImportOptions } from './ftrace.js';

export interface ImportJob {
  bytes: Uint8Array;
  opts: ImportOptions;
}

export type ImportReply = { ok: true; json: Uint8Array } | { ok: false; code: DmaemuError['code']; message: string; field: string | undefined };

const port = parentPort;
if (port) {
  port.on('message', (job: ImportJob) => {
    const text = new TextDecoder().decode(job.bytes);
    importFtrace(text, job.opts).then(
      (r) => {
        const json = new TextEncoder().encode(JSON.stringify(r));
        port.postMessage({ ok: true, json } satisfies ImportReply, [json.buffer]);
      },
      (err: unknown) => {
        if (err instanceof DmaemuError) {
          // The message already starts with its field: send the bare text and the field apart.
          const bare = err.field && err.message.startsWith(`${err.field}: `) ? err.message.slice(err.field.length + 2) : err.message;
          port.postMessage({ ok: false, code: err.code, message: bare, field: err.field } satisfies ImportReply);
        } else port.postMessage({ ok: false, code: 'DMAEMU_INTERNAL', message: String(err), field: undefined } satisfies ImportReply);
      },
    );
  });
}
