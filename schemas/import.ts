// POST /v1/import/ftrace: the kernel's dma tracepoints as text in, one dmaemu trace per device
// out, with every event a trace could not express (src/service/ftrace.ts; docs/ftrace.md).
import { z } from 'zod';
import { SessionCreateBody } from './session.js';
import { TraceDocument } from './trace.js';

/**
 * A POST /v1/sessions body, checked as one but kept as written (hex strings stay strings): it
 * is copied into each trace's `session`, which is posted back as JSON.
 */
const SessionAsWritten = z
  .record(z.string(), z.unknown())
  .superRefine((v, ctx) => {
    const r = SessionCreateBody.safeParse(v);
    if (!r.success) for (const i of r.error.issues) ctx.addIssue({ code: 'custom', path: i.path, message: i.message });
  })
  .meta({ description: 'A POST /v1/sessions body (layout, device limits, iommu)' });

export const ImportFtraceOptions = {
  session: SessionAsWritten.optional().meta({
    description: "Every device's session body. The device's bus, and for a device whose dma_addr is always phys + one offset `iommu: null` and `dma_offset`, are taken from the trace unless given here",
  }),
  devices: z.record(z.string(), SessionAsWritten).optional().meta({ description: 'Per device name: its own session body instead of `session`' }),
  device: z.string().min(1).max(256).optional().meta({ description: 'Import only this device' }),
  expect: z.boolean().optional().meta({ description: "Put the kernel's answers in each op's `expect` (default true), so replaying the trace reports where dmaemu differs" }),
};

export const ImportFtraceBody = z
  .strictObject({
    text: z.string().meta({ description: 'The trace as `trace-cmd report`, tracefs `trace` or `trace_pipe` print it' }),
    ...ImportFtraceOptions,
  })
  .meta({ id: 'ImportFtraceRequest' });

/** With a text/plain body (the trace itself), the options that fit a query string. */
export const ImportFtraceQuery = z.strictObject({
  device: ImportFtraceOptions.device,
  expect: z
    .enum(['true', 'false', '1', '0'])
    .optional()
    .transform((v) => (v === undefined ? undefined : v === 'true' || v === '1'))
    .meta({ description: "As `expect` in the JSON body (default true)" }),
});

export const ImportedDevice = z.object({
  device: z.string().meta({ description: 'The device name the events carry (dev_name)' }),
  events: z.number().int().meta({ description: 'dma events of this device in the text' }),
  inferred: z
    .object({
      bus: z.enum(['pci', 'platform']),
      iommu: z.boolean(),
      dma_offset: z.string().optional(),
      reason: z.string(),
    })
    .meta({ description: 'What the trace itself shows about the device' }),
  trace: TraceDocument.meta({ description: 'POST it to /v1/sessions as `{ "trace": … }`, or to /v1/compare' }),
});

export const ImportFtraceResult = z
  .object({
    devices: z.array(ImportedDevice),
    unexpressed: z
      .array(z.object({ line: z.number().int(), device: z.string(), event: z.string(), reason: z.string() }))
      .meta({ description: 'Every event no dmaemu op can express, with its line and why (nothing is dropped silently)' }),
    lines: z.number().int(),
    dma_events: z.number().int(),
    other_events: z.number().int().meta({ description: 'Events of other subsystems, skipped' }),
  })
  .meta({ id: 'ImportFtraceResult' });
