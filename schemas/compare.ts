// POST /v1/compare: a session config plus a trace (or one scatterlist), replayed under the three
// map_sg layouts and without an IOMMU; one row per op with each column's answer and the fields
// that differ between them.
import { z } from 'zod';
import { LAYOUTS } from '../src/core/constants.js';
import { Direction, ErrorBody } from './common.js';
import { BatchResultWire } from './batch.js';
import { SgEntry } from './dma.js';
import { Fault } from './memory.js';
import { SessionConfig, SessionCreateBody } from './session.js';
import { TraceOp } from './trace.js';

/** A compare replays its ops four times in temporary sessions: this many at most. */
export const MAX_COMPARE_OPS = 256;
/** `vary`: at most this many device variants (the product of the lists). */
export const MAX_COMPARE_VARIANTS = 16;

const HexMask = z.string().regex(/^0[xX][0-9a-fA-F]{1,16}$/, 'must be a hex string like "0xffff" (at most 64 bits)');

/** Device parameters to try, each a list of values; every combination is one variant. */
export const CompareVary = z
  .strictObject({
    max_segment_size: z.array(z.number().int().min(0).max(0xffffffff)).min(1).max(MAX_COMPARE_VARIANTS).optional(),
    segment_boundary_mask: z.array(HexMask).min(1).max(MAX_COMPARE_VARIANTS).optional(),
    dma_mask: z.array(HexMask).min(1).max(MAX_COMPARE_VARIANTS).optional(),
    granule: z.array(z.union([z.literal(4096), z.literal(16384), z.literal(65536)])).min(1).max(3).optional(),
  })
  .meta({ description: `Device parameters to vary, e.g. {"max_segment_size": [65536, 4294967295]}: each combination runs in the session's layout, side by side in \`varied\` (at most ${MAX_COMPARE_VARIANTS})` });

/** `ftrace`: the ops come from the kernel's dma events (POST /v1/import/ftrace), for one device. */
export const CompareFtrace = z
  .strictObject({
    text: z.string().meta({ description: 'The trace as trace-cmd report, tracefs trace or trace_pipe print it' }),
    device: z.string().min(1).max(256).optional().meta({ description: 'The device whose events to compare; needed when the text holds several' }),
  })
  .meta({ description: "Compare a device's traced calls: imported as POST /v1/import/ftrace does, `session` as its options (docs/ftrace.md)" });

const THREAD_SG = [
  { phys: '0x90000000', length: 65536 },
  { phys: '0x91000000', length: 16384 },
  { phys: '0x92000000', length: 65536 },
];

export const CompareBody = z
  .strictObject({
    name: z.string().max(4096).optional(),
    rule: z.string().max(4096).optional(),
    session: SessionCreateBody.optional().meta({ description: 'A POST /v1/sessions body; `layout` and `iommu: null` are set per column' }),
    ops: z
      .array(TraceOp)
      .min(1)
      .max(MAX_COMPARE_OPS)
      .optional()
      .meta({ description: 'A trace in the format of test/vectors and GET /trace (`ref: i` = the handle op i returned); `expect` is ignored' }),
    dir: Direction.optional().meta({ description: 'With `sg`: the direction of the one map_sg (default to_device)' }),
    sg: z.array(SgEntry).min(1).optional().meta({ description: 'The common case: a single map_sg of this scatterlist instead of `ops`' }),
    ftrace: CompareFtrace.optional(),
    vary: CompareVary.optional(),
  })
  .superRefine((b, ctx) => {
    const given = [b.ops, b.sg, b.ftrace].filter((x) => x !== undefined).length;
    if (given !== 1) ctx.addIssue({ code: 'custom', path: ['ops'], message: 'give either ops (a trace), sg (one scatterlist) or ftrace (the kernel\'s dma events): exactly one' });
    if (b.vary) {
      const lists = Object.values(b.vary).filter((l) => l !== undefined);
      const n = lists.reduce((p, l) => p * l.length, 1);
      if (lists.length === 0) ctx.addIssue({ code: 'custom', path: ['vary'], message: 'name at least one device parameter to vary' });
      if (n > MAX_COMPARE_VARIANTS) ctx.addIssue({ code: 'custom', path: ['vary'], message: `${n} combinations, more than ${MAX_COMPARE_VARIANTS}` });
    }
    if (b.ops !== undefined && b.dir !== undefined) ctx.addIssue({ code: 'custom', path: ['dir'], message: 'dir goes with sg; each op of a trace carries its own' });
  })
  .meta({ id: 'CompareRequest', example: { session: { device: { max_segment_size: 65536 } }, dir: 'to_device', sg: THREAD_SG } });

const wireItem = BatchResultWire.shape.results.element;

/** One column's answer to one op: the single call's answer (or its error body), memory answers included. */
export const CompareAnswer = wireItem
  .extend({ data: z.string().optional(), written: z.number().int().optional(), fault: Fault.optional() })
  .nullable()
  .meta({ description: "The op's answer in that column; null when the column's config was refused" });

/** The columns of a compare, in answer order: every layout, then dma-direct without an IOMMU. */
export const COMPARE_COLUMNS = [...LAYOUTS, 'no-iommu'] as const;
export type CompareColumn = (typeof COMPARE_COLUMNS)[number];

export const CompareColumnName = z.enum(COMPARE_COLUMNS);

const CompareResults = z.object(Object.fromEntries(COMPARE_COLUMNS.map((c) => [c, CompareAnswer])) as Record<CompareColumn, typeof CompareAnswer>);

export const CompareResult = z
  .object({
    columns: z.array(
      z.object({
        column: CompareColumnName,
        config: SessionConfig.nullable(),
        error: ErrorBody.optional().meta({ description: 'Why this column could not be set up (e.g. arm-legacy maps at most 4 GiB of aperture)' }),
      }),
    ),
    ops: z.array(
      z.object({
        op: z.number().int().meta({ description: 'Index of the op' }),
        name: z.string(),
        results: CompareResults,
        differs: z.array(z.string()).meta({ description: 'Fields whose values are not the same in every column (debug by check and message; explain.verdict for map_sg)' }),
        same: z.boolean(),
      }),
    ),
    varied: z
      .object({
        layout: z.string().meta({ description: "The session's layout (or no-iommu), in which every variant ran" }),
        columns: z.array(
          z.object({
            set: z.record(z.string(), z.union([z.number(), z.string()])).meta({ description: 'The varied parameters of this column' }),
            config: SessionConfig.nullable(),
            error: ErrorBody.optional(),
          }),
        ),
        ops: z.array(
          z.object({
            op: z.number().int(),
            name: z.string(),
            results: z.array(CompareAnswer).meta({ description: "One answer per variant, in `columns` order" }),
            differs: z.array(z.string()),
            same: z.boolean(),
          }),
        ),
      })
      .optional()
      .meta({ description: 'With `vary`: the sequence under each combination of the varied device parameters, side by side' }),
    imported: z
      .object({
        device: z.string(),
        unexpressed: z.array(z.object({ line: z.number().int(), device: z.string(), event: z.string(), reason: z.string() })),
      })
      .optional()
      .meta({ description: 'With `ftrace`: the device compared, and its events no op could express (left out)' }),
  })
  .meta({ id: 'CompareResult' });
