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
  })
  .superRefine((b, ctx) => {
    if ((b.ops === undefined) === (b.sg === undefined)) ctx.addIssue({ code: 'custom', path: ['ops'], message: 'give either ops (a trace) or sg (one scatterlist), not both or neither' });
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
  })
  .meta({ id: 'CompareResult' });
