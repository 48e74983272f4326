// The service starts with `npm start`'s entry point, answers /healthz on a real socket and
// exits 0 on SIGTERM (API.md "Service"), draining what is in flight and closing the rest.
import { test } from 'tap';
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { listeningUrl } from './helpers/server-process.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

test('server listens on HOST:PORT, prints its URL and exits 0 on SIGTERM', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/service/server.ts')], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const url = await listeningUrl(child);
  const res = await fetch(`${url}/healthz`);
  t.equal(res.status, 200);
  t.same(await res.json(), { status: 'ok', sessions: 0 });
  const code = await new Promise<number | null>((resolve) => {
    child.once('exit', (c) => resolve(c));
    child.kill('SIGTERM');
  });
  t.equal(code, 0, 'exit code after SIGTERM');
});

/** A raw TCP connection to the server, with everything it received and whether it closed. */
interface RawConn {
  socket: Socket;
  received: () => string;
  closed: Promise<void>;
}

function rawConnect(port: number): Promise<RawConn> {
  return new Promise((resolve, reject) => {
    let data = '';
    const socket = connect(port, '127.0.0.1', () => resolve({ socket, received: () => data, closed }));
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.on('data', (d: Buffer) => (data += d.toString()));
    socket.once('error', reject);
  });
}

/** Resolves once `pred` holds, polling every 20 ms; rejects after `ms` naming `what`. */
async function until(pred: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('SIGTERM: the request in flight is answered, idle keep-alive and bare connections are closed, and the process exits 0 (before a 10 s kill)', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/service/server.ts')], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  const ceiling: { kill?: NodeJS.Timeout } = {};
  t.teardown(() => {
    clearTimeout(ceiling.kill);
    child.kill('SIGKILL');
  });
  const port = Number(new URL(await listeningUrl(child)).port);

  // 1. An idle keep-alive connection: one request answered, then nothing.
  const idle = await rawConnect(port);
  idle.socket.write('GET /healthz HTTP/1.1\r\nHost: dmaemu\r\nConnection: keep-alive\r\n\r\n');
  await until(() => idle.received().includes('"status":"ok"'), 30_000, 'the idle connection’s first answer');
  // 2. A connection that never sends a request.
  const bare = await rawConnect(port);
  // 3. A request in flight: its headers and half its body are in, the rest comes after the signal.
  const body = JSON.stringify({ layout: 'linux' });
  const busy = await rawConnect(port);
  busy.socket.write(`POST /v1/sessions HTTP/1.1\r\nHost: dmaemu\r\nConnection: keep-alive\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`);
  await new Promise((r) => setTimeout(r, 500)); // the headers reach the server and the request starts

  child.kill('SIGTERM');
  // The ceiling that keeps this test bounded if the server never exits: a failure, not a hang.
  ceiling.kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await new Promise((r) => setTimeout(r, 200)); // the drain has begun
  busy.socket.write(body.slice(5));

  await until(() => busy.received().includes('\r\n\r\n'), 9000, 'the in-flight answer');
  const head = busy.received().split('\r\n\r\n')[0] ?? '';
  t.match(head, /^HTTP\/1\.1 201 /, 'the request in flight is answered: 201 Created');
  t.match(head, /\r\nconnection: close/i, 'its answer ends the connection (Connection: close)');
  const code = await exited;
  t.equal(code, 0, 'exit code 0 after SIGTERM, reached before the 10 s kill');
  for (const [name, c] of [['idle keep-alive', idle], ['bare', bare], ['in-flight', busy]] as const) {
    await c.closed;
    t.pass(`the ${name} connection was closed`);
  }
});
