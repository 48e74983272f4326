// Keeps `npm run bench` and `npm run load` from rotting: each script runs in its smoke mode (a
// few hundred requests / a few milliseconds per size) and must print its machine-read last line
// in the exact shape issue 7 fixes. Nothing about speed is asserted here: that is the
// benchmarks' job, not the test suite's.
import { test } from 'tap';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function runScript(script: string, env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, script)], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => resolve({ code, out }));
  });
}

const lastLine = (s: string): string => s.trim().split('\n').pop() ?? '';

test('npm run bench (smoke): map_sg(8)+unmap pairs in-process, last line', async (t) => {
  const r = await runScript('load/bench-map.ts', { BENCH_SMOKE: '1' });
  t.equal(r.code, 0, r.out);
  t.match(lastLine(r.out), /^bench: pairs_per_s_100k=\d+ growth_1m_vs_1k=[\d.]+$/);
});

test('npm run load (smoke): hello, stub, pairs and batch over loopback, last line', async (t) => {
  const r = await runScript('load/load-http.ts', { LOAD_SMOKE: '1', LOG_LEVEL: 'warn' });
  t.equal(r.code, 0, r.out);
  t.match(lastLine(r.out), /^load: hello_rps=\d+ stub_rps=\d+ mapunmap_pairs_per_s=\d+ ratio=[\d.]+ ratio_hello=[\d.]+ batch_ops_per_s=\d+ batch_ratio_hello=[\d.]+ batch_object_ops_per_s=\d+ batch_ops_per_server_cpu_s=\d+ batch_json_ops_per_s=\d+$/);
  t.match(r.out, /\(c\) map_sg\(8\)\+unmap .* 0 failed/, 'no request failed');
});

test('npm run load:persist (smoke): map/unmap pairs with persistence off and on, last line', async (t) => {
  const r = await runScript('load/load-persist.ts', { LOAD_SMOKE: '1', LOG_LEVEL: 'warn' });
  t.equal(r.code, 0, r.out);
  t.match(lastLine(r.out), /^persist: pairs_per_s_off=\d+ pairs_per_s_on=\d+ ratio=[\d.]+$/);
  t.notMatch(r.out, /[1-9]\d* failed/, 'no request failed');
});

test('npm run load:stall (smoke): every kind next to a /healthz probe, one line each and the last line', async (t) => {
  const r = await runScript('load/stall.ts', { STALL_SMOKE: '1' });
  t.equal(r.code, 0, r.out);
  for (const kind of ['trace_import', 'compare', 'batch_json', 'batch_binary', 'map_sg_pages', 'map_page_pages', 'mappings_list']) {
    t.match(r.out, new RegExp(`^stall: kind=${kind} size=\\d+ status=2\\d\\d requests=1 ms=\\d+ worst_ms=[\\d.]+ p99_ms=[\\d.]+$`, 'm'), `${kind}: answered 2xx, one line`);
  }
  t.match(lastLine(r.out), /^stall: worst_ms=[\d.]+ p99_ms=[\d.]+ baseline_p99_ms=[\d.]+ ratio_p99=[\d.]+$/);
});

test('npm run load:attack-rss (smoke): a short mixed attack, the server alive and the bystander intact, last line', async (t) => {
  const r = await runScript('load/attack-rss.ts', { FILL_SECONDS: '2', ATTACK_SECONDS: '2' });
  t.equal(r.code, 0, r.out);
  t.match(lastLine(r.out), /^attack-rss: heap_mb=512 budget_mb=\d+ margin_mb=160 peak_rss_mb=\d+ over_mb=-?\d+ budget_full_s=(\d+|never) alive=true bystander_ok=true$/);
});
