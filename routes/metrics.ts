// GET /metrics in Prometheus text through prom-client: request durations by route; the
// emulator's own gauges (live sessions, live mappings, IOVA bytes in use), computed at scrape;
// and counters of what the core did (src/core/observer.ts): DMA calls by op and kernel result,
// dma-debug findings by check, device faults by reason. The call counters sit on the hot path of
// every call (a /batch makes a thousand), so a call costs an array increment, published to
// prom-client at scrape.
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { z } from 'zod';
import { KERNEL_ERRNOS, type KernelErrno } from '../src/core/constants.js';
import { DMA_CALLS, type DmaCall, type DmaObserver } from '../src/core/observer.js';
import { LOG_LINES_LOST } from '../src/service/log-destination.js';

/** The `result` label of dmaemu_dma_calls_total: "ok", or the errno Linux would return. */
const RESULTS = ['ok', ...KERNEL_ERRNOS] as const;

/**
 * The `reason` label of dmaemu_device_faults_total. A fault's text names addresses and
 * handles (unbounded label values); the label is its class, from the words the emulator uses.
 */
export function faultClass(reason: string): string {
  if (reason.includes('translation fault')) return 'translation';
  if (reason.includes('permission fault')) return 'permission';
  if (reason.includes('dma_mask')) return 'dma_mask';
  if (reason.includes('dma_offset')) return 'dma_offset';
  return 'address_space';
}

/** Counters for the core's observer, with every child handle cached. */
function coreCounters(register: Registry): DmaObserver {
  // A call only bumps a plain number; the Counter takes what was added since the last scrape
  // in its collect(). prom-client's inc() (label checks, hashing) cost ~6 % of a 1024-op /batch.
  const tally = new Float64Array(DMA_CALLS.length * RESULTS.length);
  const published = new Float64Array(tally.length);
  const children: { inc(v: number): void }[] = [];
  const calls = new Counter({
    name: 'dmaemu_dma_calls_total',
    help: 'DMA-API calls completed, by op and kernel result (ok, or the errno Linux returns); /batch ops included',
    labelNames: ['op', 'result'] as const,
    registers: [register],
    collect() {
      for (let i = 0; i < tally.length; i++) {
        const delta = (tally[i] as number) - (published[i] as number);
        if (delta > 0) children[i]?.inc(delta);
        published[i] = tally[i] as number;
      }
    },
  });
  const findings = new Counter({ name: 'dmaemu_debug_findings_total', help: 'dma-debug findings, by check', labelNames: ['check'] as const, registers: [register] });
  const faults = new Counter({ name: 'dmaemu_device_faults_total', help: 'Device accesses that faulted, by reason', labelNames: ['reason'] as const, registers: [register] });
  // Children made up front: every (op, result) series exists from the first scrape, at 0.
  for (const op of DMA_CALLS) {
    for (const r of RESULTS) {
      const c = calls.labels(op, r);
      c.inc(0); // a child is exposed only once it has a value
      children.push(c);
    }
  }
  const base = new Map(DMA_CALLS.map((op, i) => [op, i * RESULTS.length] as const));
  const byCheck = new Map<string, ReturnType<typeof findings.labels>>();
  const byFault = new Map<string, ReturnType<typeof faults.labels>>();
  return {
    call(op: DmaCall, errno: KernelErrno | null) {
      const b = base.get(op);
      if (b === undefined) return;
      const i = b + (errno === null ? 0 : RESULTS.indexOf(errno));
      tally[i] = (tally[i] as number) + 1;
    },
    finding(check: string) {
      let c = byCheck.get(check);
      if (!c) byCheck.set(check, (c = findings.labels(check)));
      c.inc();
    },
    fault(reason: string) {
      const k = faultClass(reason);
      let c = byFault.get(k);
      if (!c) byFault.set(k, (c = faults.labels(k)));
      c.inc();
    },
  };
}

const plugin: FastifyPluginAsync = async (fastify) => {
  const register = new Registry();
  collectDefaultMetrics({ register, prefix: 'dmaemu_' });
  const store = fastify.store;
  store.observer = coreCounters(register);
  const duration = new Histogram({
    name: 'dmaemu_http_request_duration_seconds',
    help: 'HTTP request duration by route',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1],
    registers: [register],
  });
  const sum = (f: (s: { liveMappings: number; iovaBytesInUse: number }) => number): number => {
    let n = 0;
    for (const s of store.values()) n += f(s);
    return n;
  };
  new Gauge({ name: 'dmaemu_sessions_live', help: 'Live sessions', registers: [register], collect() { this.set(store.size); } });
  new Gauge({ name: 'dmaemu_mappings_live', help: 'Live mappings and coherent buffers, all sessions', registers: [register], collect() { this.set(sum((s) => s.liveMappings)); } });
  new Gauge({ name: 'dmaemu_iova_bytes_in_use', help: 'IOVA bytes held by live mappings, all sessions', registers: [register], collect() { this.set(sum((s) => s.iovaBytesInUse)); } });
  // The process-wide memory budget (src/core/memory-budget.ts): its limit, what sessions hold of it, and refusals since start.
  const budget = store.budget;
  new Gauge({ name: 'dmaemu_memory_budget_bytes', help: 'The memory budget all sessions share (DMAEMU_MEMORY_BUDGET)', registers: [register], collect() { this.set(budget.limit); } });
  new Gauge({ name: 'dmaemu_memory_accounted_bytes', help: 'Estimated bytes all sessions hold of the memory budget', registers: [register], collect() { this.set(budget.used); } });
  new Gauge({ name: 'dmaemu_memory_budget_refusals', help: 'Calls refused with DMAEMU_MEMORY_BUDGET since start', registers: [register], collect() { this.set(budget.refusals); } });

  // Log lines stdout did not take (src/service/log-destination.ts): written to stderr instead, or dropped.
  const logPublished = { stderr: 0, dropped: 0 };
  new Counter({
    name: 'dmaemu_log_lines_lost_total',
    help: 'Log lines that could not be written to stdout (ENOSPC, EIO, ...), by outcome: stderr (written there instead) or dropped',
    labelNames: ['outcome'] as const,
    registers: [register],
    collect() {
      for (const k of ['stderr', 'dropped'] as const) {
        this.labels(k).inc(LOG_LINES_LOST[k] - logPublished[k]);
        logPublished[k] = LOG_LINES_LOST[k];
      }
    },
  });

  fastify.addHook('onResponse', async (req, reply) => {
    duration.observe({ method: req.method, route: req.routeOptions.url ?? 'unmatched', status_code: reply.statusCode }, reply.elapsedTime / 1000);
  });

  fastify.withTypeProvider<ZodTypeProvider>().get(
    '/metrics',
    {
      schema: {
        tags: ['service'],
        operationId: 'metrics',
        summary: 'Prometheus metrics (text exposition format)',
        produces: ['text/plain'],
        response: { 200: z.string().meta({ description: 'Prometheus text format' }) },
      },
    },
    async (_req, reply) => {
      void reply.type(register.contentType);
      return register.metrics();
    },
  );
};

// fastify-plugin: the onResponse hook must see every route, not only this plugin's.
export const metricsPlugin = fp(plugin, { name: 'dmaemu-metrics' });
