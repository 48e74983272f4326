// npm run load: the service in its own process (one core), autocannon in this one (the other),
// all traffic on 127.0.0.1, every phase bounded in time, everything stopped at the end.
//   (a) hello:  a minimal Fastify GET with the same logger settings (context)
//   (b) stub:   map_sg + unmap bodies validated by the same schemas, precomputed answers
//   (c) pairs:  map_sg of 8 scattered 4 KiB entries, then unmap of the handle it returned
//   (d) batch:  /batch of 512 map_sg + 512 unmap ops (1024 ops per request, DMAEMU_MAX_BATCH_OPS'
//               default) in the binary form, both ways (schemas/batch-binary.ts: the body
//               application/vnd.dmaemu.batch, Accept application/vnd.dmaemu.batch-results)
//   (f) batch, JSON: the same ops as JSON, scatterlists in the compact form ([phys, length] tuples)
//   (e) batch, object form: 32 map_sg + 32 unmap ops with {phys, length} entries (64 ops per
//               request: the request (d) was before the compact form), for comparison
// ops/s = results/s (every op answers one result); half map_sg of the 8 entries of (c), half
// unmap of the handle the map_sg before it returned ({"ref": i}).
// (b) and (c) run with the same connections, no pipelining: each unmap needs the handle its
// map_sg answered, so a connection alternates the two requests.
// Last line, exactly:
// load: hello_rps=<a> stub_rps=<s> mapunmap_pairs_per_s=<b> ratio=<2b/s> ratio_hello=<2b/a> batch_ops_per_s=<c>
//       batch_ratio_hello=<c/a> batch_object_ops_per_s=<e> batch_ops_per_server_cpu_s=<(d) ops per CPU second of the server>
//       batch_json_ops_per_s=<f>

import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { autocannon, createSession, JSON_HEADERS, pairRequests, SG, type AcResult } from './load-kit.js';
import { startServer, stop } from './load-server-process.js';
import { BATCH_BINARY_TYPE, BATCH_RESULTS_BINARY_TYPE, decodeBatchResults, encodeBatchRequest, type BatchOpIn } from '../schemas/batch-binary.js';


const SMOKE = process.env.LOAD_SMOKE === '1';
const DURATION_S = Number(process.env.LOAD_DURATION_S ?? 10);
const CONNECTIONS = Number(process.env.LOAD_CONNECTIONS ?? 16);


function bounds(): Record<string, unknown> {
  return SMOKE ? { amount: 200, connections: 4 } : { duration: DURATION_S, connections: CONNECTIONS };
}

const WARMUP_S = Number(process.env.LOAD_WARMUP_S ?? 3);

const SLICES = SMOKE ? 1 : 3;

/** Ops per compact /batch request (DMAEMU_MAX_BATCH_OPS's default). */
const BATCH_OPS = 1024;

/**
 * utime + stime of a process in seconds, from /proc/<pid>/stat (fields 14 and 15, in USER_HZ =
 * 100 ticks per second); undefined where there is no /proc. What the server spent, whatever else
 * the machine was running: a figure a shared machine distorts much less than requests per second.
 */
function cpuSeconds(child: ChildProcess): number | undefined {
  try {
    const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

async function run(title: string, opts: Record<string, unknown>, warm = false, server?: ChildProcess): Promise<AcResult> {
  // Each phase first runs unmeasured, so the JIT has compiled the route it is about to measure.
  if (!SMOKE && !warm) await autocannon({ duration: WARMUP_S, connections: CONNECTIONS, pipelining: 1, ...opts });
  const slice = title.includes('slice') ? { duration: DURATION_S / SLICES } : {};
  const cpu0 = server && cpuSeconds(server);
  const r = await autocannon({ ...bounds(), ...slice, pipelining: 1, ...opts });
  const cpu1 = server && cpuSeconds(server);
  if (cpu0 !== undefined && cpu1 !== undefined) r.serverCpuS = cpu1 - cpu0;
  return report(title, r);
}

function report(title: string, r: AcResult): AcResult {
  const bad = r.non2xx + r.errors + r.timeouts;
  // Requests over the whole bounded run (autocannon's `average` is of per-second buckets).
  r.requests.average = r.requests.total / r.duration;
  const cpu = r.serverCpuS === undefined ? '' : `, server CPU ${r.serverCpuS.toFixed(2)} s of ${r.duration.toFixed(1)} s`;
  console.log(`${title.padEnd(40)} ${String(Math.round(r.requests.average)).padStart(8)} req/s  (${r.requests.total} requests, ${bad} failed${cpu})`);
  if (bad > 0) throw new Error(`${title}: ${bad} requests failed`);
  return r;
}

function emptyResult(): AcResult {
  return { requests: { average: 0, total: 0 }, non2xx: 0, errors: 0, timeouts: 0, duration: 0 };
}

function add(sum: AcResult, r: AcResult): void {
  sum.requests.total += r.requests.total;
  sum.duration += r.duration;
  sum.non2xx += r.non2xx;
  sum.errors += r.errors;
  sum.timeouts += r.timeouts;
}


/** One binary request before the run: autocannon counts statuses only, so check the answer is whole once. */
async function checkBinaryAnswer(url: string, body: Buffer, headers: Record<string, string>): Promise<void> {
  const r = await fetch(url, { method: 'POST', headers, body });
  if (r.status !== 200) throw new Error(`binary /batch answered ${r.status}: ${await r.text()}`);
  const results = decodeBatchResults(new Uint8Array(await r.arrayBuffer()));
  const failed = results.filter((x) => !('handle' in x) || x.handle === null);
  if (results.length !== BATCH_OPS || failed.length > 0) throw new Error(`binary /batch: ${results.length} results, ${failed.length} failed: ${JSON.stringify(failed[0])}`);
}

async function main(): Promise<void> {
  const hello = await startServer({ HELLO: '1' });
  let a: AcResult;
  try {
    a = await run('(a) hello-world GET', { url: hello.url });
  } finally {
    await stop(hello.child);
  }

  const svc = await startServer({});
  try {
    const id = await createSession(svc.url);
    // (b) and (c) are compared as a ratio, so they run as interleaved slices (b c b c …) and
    // their totals are summed: drift of a shared 2-core machine hits both alike.
    const s = emptyResult();
    const c = emptyResult();
    for (let k = 0; k < SLICES; k++) {
      add(s, await run(`(b) stub map_sg+unmap, slice ${k + 1}/${SLICES}`, { url: svc.url, requests: pairRequests(`/v1/sessions/${id}/stub`) }, k > 0));
      add(c, await run(`(c) map_sg(8)+unmap, slice ${k + 1}/${SLICES}`, { url: svc.url, requests: pairRequests(`/v1/sessions/${id}`) }, k > 0));
    }
    report('(b) stub map_sg+unmap (requests)', s);
    report('(c) map_sg(8)+unmap (requests)', c);
    // A bounded run can stop between a map_sg and its unmap: at most one pair per connection
    // per run (the warm-up and each slice).
    const summary = (await (await fetch(`${svc.url}/v1/sessions/${id}`)).json()) as { live_mappings: number };
    if (summary.live_mappings > CONNECTIONS * (SLICES + 1)) throw new Error(`${summary.live_mappings} mappings left live after the pairs phase: unmap is failing`);

    const batchOpsOf = (pairs: number, sg: unknown): BatchOpIn[] => {
      const ops: unknown[] = [];
      for (let i = 0; i < pairs; i++) ops.push({ op: 'map_sg', dir: 'to_device', sg }, { op: 'unmap', handle: { ref: 2 * i } });
      return ops as BatchOpIn[];
    };
    const batchBody = (pairs: number, sg: unknown): string => JSON.stringify({ ops: batchOpsOf(pairs, sg) });
    const batch = (title: string, body: string | Buffer, headers: Record<string, string> = JSON_HEADERS): Promise<AcResult> =>
      run(title, { url: svc.url, requests: [{ method: 'POST', path: `/v1/sessions/${id}/batch`, headers, body }] }, false, svc.child);
    const compact = SG.map((e) => [e.phys, e.length]);
    const binary = encodeBatchRequest(batchOpsOf(BATCH_OPS / 2, compact));
    const binaryHeaders = { 'content-type': BATCH_BINARY_TYPE, accept: BATCH_RESULTS_BINARY_TYPE };
    await checkBinaryAnswer(`${svc.url}/v1/sessions/${id}/batch`, binary, binaryHeaders);
    const d = await batch(`(d) /batch of ${BATCH_OPS} ops, binary (requests)`, binary, binaryHeaders);
    const fJson = await batch(`(f) /batch of ${BATCH_OPS} ops, JSON compact (requests)`, batchBody(BATCH_OPS / 2, compact));
    const e = await batch('(e) /batch of 64 ops, objects (requests)', batchBody(32, SG));

    const helloRps = a.requests.average;
    const stubRps = s.requests.average;
    const pairs = c.requests.average / 2;
    const batchOps = d.requests.average * BATCH_OPS;
    const batchObjectOps = e.requests.average * 64;
    const batchJsonOps = fJson.requests.average * BATCH_OPS;
    // Ops per second of server CPU (0 without /proc): what one core would give with nothing else running.
    const batchOpsPerCpu = d.serverCpuS ? (d.requests.total * BATCH_OPS) / d.serverCpuS : 0;
    const f = (x: number, digits = 0): string => x.toFixed(digits);
    console.log(`connections=${SMOKE ? 4 : CONNECTIONS} pipelining=1 duration=${SMOKE ? 'amount 200' : `${DURATION_S}s`} per phase, LOG_LEVEL=${process.env.LOG_LEVEL ?? 'info'} (logs to a pipe drained and dropped)`);
    console.log(
      `load: hello_rps=${f(helloRps)} stub_rps=${f(stubRps)} mapunmap_pairs_per_s=${f(pairs)} ratio=${f((2 * pairs) / stubRps, 3)} ratio_hello=${f((2 * pairs) / helloRps, 3)} batch_ops_per_s=${f(batchOps)}` +
        ` batch_ratio_hello=${f(batchOps / helloRps, 2)} batch_object_ops_per_s=${f(batchObjectOps)} batch_ops_per_server_cpu_s=${f(batchOpsPerCpu)}` +
        ` batch_json_ops_per_s=${f(batchJsonOps)}`,
    );
  } finally {
    await stop(svc.child);
  }
}

await main();
