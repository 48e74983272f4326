// Where the service's pino lines go when nobody passed a stream: stdout, written synchronously
// (as pino's default destination does), but a line that cannot be written never kills the
// process. pino's default (sonic-boom) emits 'error' on a failed write, and nothing listens: a
// full disk under a redirected stdout (ENOSPC) took the whole service down. Here a failed write
// is retried on stderr, and a line neither takes is dropped; both are counted (/metrics:
// dmaemu_log_lines_lost_total{outcome}) and nothing is thrown.
//
// Short writes loop until the line is out (writeSync may write part of it); EAGAIN (stdout a
// full non-blocking pipe) is retried for at most RETRY_MS, then treated as a failure: a stalled
// log reader must not stall every tenant for longer than that.
//
// Invariant: write() returns normally whatever the descriptors do.

import { writeSync } from 'node:fs';

const RETRY_MS = 20;

/** Lines that did not reach stdout: written to stderr instead, or dropped. */
export const LOG_LINES_LOST = { stderr: 0, dropped: 0 };

type Write = (fd: number, buf: Uint8Array, offset: number, length: number) => number;

function writeLine(write: Write, fd: number, buf: Uint8Array): void {
  let done = 0;
  let deadline = 0;
  while (done < buf.length) {
    let n: number;
    try {
      n = write(fd, buf, done, buf.length - done);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      const now = performance.now();
      if (deadline === 0) deadline = now + RETRY_MS;
      else if (now > deadline) throw err;
      continue;
    }
    if (n <= 0) throw Object.assign(new Error('log write wrote nothing'), { code: 'ENOSPC' });
    done += n;
  }
}

/** A pino destination on stdout (fd 1) that falls back to stderr (fd 2), then drops; `write` is injectable for tests. */
export function safeStdout(write: Write = (fd, buf, off, len) => writeSync(fd, buf, off, len), out = 1, err = 2): { write(line: string): void } {
  return {
    write(line: string): void {
      const buf = Buffer.from(line);
      try {
        writeLine(write, out, buf);
        return;
      } catch {
        // stdout failed: try stderr
      }
      try {
        writeLine(write, err, buf);
        LOG_LINES_LOST.stderr++;
      } catch {
        LOG_LINES_LOST.dropped++;
      }
    },
  };
}
