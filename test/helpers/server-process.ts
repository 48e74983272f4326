// For tests that run the real server as a child process: the URL it prints once it listens.

import type { ChildProcess } from 'node:child_process';

/** Resolves with the `listening on http://127.0.0.1:N` URL; rejects if the child exits first (`more` adds e.g. its stderr). */
export function listeningUrl(child: ChildProcess, more: () => string = () => ''): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m?.[1]) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`server exited early with ${String(code)}: ${out}${more()}`)));
  });
}
