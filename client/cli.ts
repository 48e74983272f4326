// `dmaemu map`: the segment table Linux would give a scatterlist, for a quick question from a
// shell. Without --url the emulator runs in this process (the same core and the same zod
// schemas the service uses: no server needed); with --url it asks a running service through
// the typed client. Exit status: 0 answered, 1 Linux failed a map (the table says why),
// 2 the question itself was wrong (usage, or a value the service would answer 400 to).
//
//   dmaemu map --layout all --sg 64K@0x90000000,16K@0x91000000,64K@0x92000000
//   dmaemu import-ftrace trace.txt [--device 0000:00:03.0] [--json]

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ZodError } from 'zod';
import { MapSgBody, SessionCreateBody, type MapSgOut } from '../schemas/index.js';
import { LAYOUTS, type Layout } from '../src/core/constants.js';
import { DmaemuError } from '../src/core/errors.js';
import { SessionStore } from '../src/service/session-store.js';
import { importFtrace, type ImportResult } from '../src/service/ftrace.js';
import { VERSION } from '../src/service/version.js';
import { createDmaemuClient, DmaemuHttpError, type RequestBody } from './index.js';

const USAGE = `dmaemu ${VERSION}: the Linux DMA API on an emulated IOMMU

usage: dmaemu map --sg SIZE@PHYS[,SIZE@PHYS...] [options]
       dmaemu import-ftrace FILE [--device NAME] [--json] [device options] [--url URL]

import-ftrace reads the kernel's dma events (trace-cmd report, tracefs trace or trace_pipe
output; docs/ftrace.md) and prints one dmaemu trace per device (--json: the whole answer of
POST /v1/import/ftrace), the device options below setting each trace's session.

  --sg LIST                   the scatterlist: SIZE@PHYS entries, comma-separated; SIZE is
                              bytes (decimal, 0x hex, or with a K/M suffix), PHYS a byte address
  --layout L                  linux (default), linux-4.4, arm-legacy, a comma list, or all
  --dir D                     to_device (default), from_device, bidirectional
  --max-segment-size N        dma_parms max_segment_size (default 65536: no dma_parms)
  --segment-boundary-mask M   e.g. 0xffff (default: the layout's Linux default)
  --dma-mask M                streaming DMA mask (default 0xffffffff)
  --bus B                     platform (default) or pci
  --granule G                 IOMMU granule: 4096 (default), 16384, 65536
  --no-iommu                  dma-direct + swiotlb instead of an IOMMU
  --pages                     also list IOVA -> phys rows, one per IOMMU granule
  --json                      print the service's JSON answers instead of a table
  --url URL                   ask the dmaemu service at URL instead of running in-process
  --device NAME               import-ftrace: only this device (dev_name, e.g. 0000:00:03.0)
  -h, --help / -v, --version
`;

class UsageError extends Error {}

/** "64K" / "0x10000" / "65536" → bytes. */
function parseSize(text: string, what: string): number {
  const m = /^(0x[0-9a-f]+|\d+)([km]?)$/i.exec(text.trim());
  if (!m || m[1] === undefined) throw new UsageError(`${what}: "${text}" is not a size (65536, 0x10000, 64K, 1M)`);
  const unit = { '': 1, k: 1024, m: 1024 * 1024 }[(m[2] ?? '').toLowerCase()] ?? 1;
  return Number(m[1]) * unit;
}

/** "65536@0x90000000,16K@0x91000000" → wire scatterlist entries. */
export function parseSg(text: string): { phys: string; length: number }[] {
  return text.split(',').map((item, i) => {
    const at = item.indexOf('@');
    if (at < 0) throw new UsageError(`--sg entry ${i} ("${item}") must be SIZE@PHYS`);
    const phys = item.slice(at + 1).trim();
    return { length: parseSize(item.slice(0, at), `--sg entry ${i}`), phys: /^\d+$/.test(phys) ? '0x' + BigInt(phys).toString(16) : phys };
  });
}

interface Question {
  layouts: Layout[];
  session: (layout: Layout) => RequestBody<'/v1/sessions'>;
  body: RequestBody<'/v1/sessions/{id}/map_sg'>;
  pages: boolean;
  json: boolean;
  url: string | undefined;
}

/** The session a device option set describes (the schemas check every value later). */
function sessionOf(values: { 'max-segment-size'?: string | undefined; 'segment-boundary-mask'?: string | undefined; 'dma-mask'?: string | undefined; bus?: string | undefined; granule?: string | undefined; 'no-iommu'?: boolean | undefined }): { device: Record<string, unknown>; iommu: Record<string, unknown> | null | undefined } {
  const device: Record<string, unknown> = {};
  if (values['max-segment-size'] !== undefined) device.max_segment_size = parseSize(values['max-segment-size'], '--max-segment-size');
  if (values['segment-boundary-mask'] !== undefined) device.segment_boundary_mask = values['segment-boundary-mask'];
  if (values['dma-mask'] !== undefined) device.dma_mask = values['dma-mask'];
  if (values.bus !== undefined) device.bus = values.bus;
  const iommu = values['no-iommu'] ? null : values.granule !== undefined ? { granule: parseSize(values.granule, '--granule') } : undefined;
  return { device, iommu };
}

const DEVICE_OPTIONS = {
  'max-segment-size': { type: 'string' },
  'segment-boundary-mask': { type: 'string' },
  'dma-mask': { type: 'string' },
  bus: { type: 'string' },
  granule: { type: 'string' },
  'no-iommu': { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
  url: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
  version: { type: 'boolean', short: 'v', default: false },
} as const;

/** `dmaemu import-ftrace FILE`: in-process (the service's own reader), or POSTed to --url as text/plain. */
async function importCommand(argv: string[], out: (s: string) => void): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { ...DEVICE_OPTIONS, device: { type: 'string' }, layout: { type: 'string' } } });
  if (values.help) return (out(USAGE), 0);
  const file = positionals[1];
  if (file === undefined || positionals.length > 2) throw new UsageError('import-ftrace needs one FILE (the trace-cmd report or tracefs trace text)');
  const { device, iommu } = sessionOf(values);
  const session: Record<string, unknown> = { ...(values.layout ? { layout: values.layout } : {}), ...(Object.keys(device).length > 0 ? { device } : {}), ...(iommu === undefined ? {} : { iommu }) };
  const text = readFileSync(file, 'utf8');
  let r: ImportResult;
  if (values.url) {
    const client = createDmaemuClient(values.url);
    const { data, error, response } = await client.http.POST('/v1/import/ftrace', { body: { text, session, ...(values.device ? { device: values.device } : {}) } });
    if (!data) throw new DmaemuHttpError(response.status, error);
    r = data;
  } else {
    if (Object.keys(session).length > 0) SessionCreateBody.parse(session);
    r = await importFtrace(text, { session, device: values.device, maxEvents: Number.MAX_SAFE_INTEGER });
  }
  if (values.json) return (out(JSON.stringify(r, null, 2) + '\n'), 0);
  out(importSummary(r));
  return 0;
}

/** One line per device and per kind of event that could not be expressed. */
export function importSummary(r: ImportResult): string {
  const lines = [`${r.lines} lines, ${r.dma_events} dma events, ${r.other_events} other events`];
  for (const d of r.devices) {
    lines.push(`${d.device}: ${d.events} events -> ${d.trace.ops.length} ops; ${d.inferred.reason}; session ${JSON.stringify(d.trace.session)}`);
  }
  const kinds = new Map<string, { n: number; first: number }>();
  for (const u of r.unexpressed) {
    const k = `${u.event}: ${u.reason.replace(/\(line \d+\)/, '(line …)').replace(/\b\d+ entries were merged into \d+ segments/, 'entries were merged')}`;
    const c = kinds.get(k) ?? { n: 0, first: u.line };
    c.n++;
    kinds.set(k, c);
  }
  for (const [k, c] of kinds) lines.push(`not expressed: ${c.n} × ${k} (first at line ${c.first})`);
  lines.push('--json prints the traces: POST one to /v1/sessions as {"trace": …}, or to /v1/compare');
  return lines.join('\n') + '\n';
}

function question(argv: string[]): Question | 'help' | 'version' {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      sg: { type: 'string' },
      layout: { type: 'string', default: 'linux' },
      dir: { type: 'string', default: 'to_device' },
      ...DEVICE_OPTIONS,
      pages: { type: 'boolean', default: false },
    },
  });
  if (values.help) return 'help';
  if (values.version) return 'version';
  if (positionals[0] !== 'map' || positionals.length > 1) throw new UsageError(positionals.length === 0 ? 'which command? (map)' : `unknown command "${positionals.join(' ')}"`);
  if (!values.sg) throw new UsageError('map needs --sg SIZE@PHYS[,...]');

  const names = values.layout === 'all' ? [...LAYOUTS] : values.layout.split(',').map((l) => l.trim());
  const layouts = names.map((l) => {
    if (!(LAYOUTS as readonly string[]).includes(l)) throw new UsageError(`--layout: "${l}" is not one of ${LAYOUTS.join(', ')}, all`);
    return l as Layout;
  });
  const { device, iommu } = sessionOf(values);
  const sg = parseSg(values.sg);
  return {
    layouts,
    // The schemas check every value (a bad mask or bus is the same 400 the service gives).
    session: (layout) => ({ layout, device, ...(iommu === undefined ? {} : { iommu }) }),
    body: { dir: values.dir, sg } as RequestBody<'/v1/sessions/{id}/map_sg'>,
    pages: values.pages,
    json: values.json,
    url: values.url,
  };
}

/** One layout's answer, in-process: the service's own core and schemas. */
function mapInProcess(q: Question, layout: Layout): MapSgOut {
  const store = new SessionStore();
  const s = store.create(SessionCreateBody.parse(q.session(layout)));
  return s.mapSg(MapSgBody.parse(q.body), q.pages);
}

async function mapOverHttp(q: Question, layout: Layout): Promise<MapSgOut> {
  const client = createDmaemuClient(q.url ?? '');
  const s = await client.createSession(q.session(layout));
  try {
    return await s.mapSg(q.body, { pages: q.pages });
  } finally {
    await s.close();
  }
}

/** The table a person reads: one line per segment, then where the IOVA came from. */
export function table(layout: string, r: MapSgOut): string {
  if (r.error) return `${layout}: map_sg failed, nents 0: ${r.error.errno} (${r.error.message})\n`;
  const w = Math.max(13, ...r.segments.map((s) => s.dma_address.length + 2));
  const lines = [`${layout}: nents ${r.nents}`, `  #  ${'dma_address'.padEnd(w)}dma_length`];
  r.segments.forEach((s, i) => lines.push(`  ${String(i).padEnd(3)}${s.dma_address.padEnd(w)}${s.dma_length}`));
  if (r.iova_ranges.length > 0) {
    const ranges = r.iova_ranges.map((a) => `${a.start} +${a.size}`).join(', ');
    lines.push(`  IOVA: ${ranges} (${r.iova_ranges.length} allocation${r.iova_ranges.length === 1 ? '' : 's'})`);
  } else lines.push('  no IOMMU: dma-direct addresses');
  if (r.bounced) lines.push('  bounced through swiotlb');
  for (const p of r.pages ?? []) lines.push(`  page ${p.iova} -> ${p.phys}`);
  for (const d of r.debug ?? []) lines.push(`  dma-debug ${d.check}: ${d.message}`);
  return lines.join('\n') + '\n';
}

export async function main(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s), err: (s: string) => void = (s) => process.stderr.write(s)): Promise<number> {
  try {
    if (argv.find((a) => !a.startsWith('-')) === 'import-ftrace') return await importCommand(argv, out);
    const q = question(argv);
    if (q === 'help') return (out(USAGE), 0);
    if (q === 'version') return (out(`${VERSION}\n`), 0);
    let failed = false;
    const answers: Record<string, MapSgOut> = {};
    for (const layout of q.layouts) {
      const r = q.url ? await mapOverHttp(q, layout) : mapInProcess(q, layout);
      failed ||= r.error !== undefined;
      answers[layout] = r;
      if (!q.json) out(table(layout, r));
    }
    if (q.json) out(JSON.stringify(q.layouts.length === 1 ? answers[q.layouts[0] as Layout] : answers, null, 2) + '\n');
    return failed ? 1 : 0;
  } catch (e) {
    if (e instanceof UsageError || (e instanceof TypeError && 'code' in e && String(e.code).startsWith('ERR_PARSE_ARGS'))) {
      err(`dmaemu: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    if (e instanceof ZodError) {
      const i = e.issues[0];
      err(`dmaemu: ${i ? `${i.path.map(String).join('.')}: ${i.message}` : e.message}\n`);
      return 2;
    }
    if (e instanceof DmaemuError || (e instanceof DmaemuHttpError && e.status < 500)) {
      err(`dmaemu: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}
