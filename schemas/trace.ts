// Traces: a session as a replayable document, in the vector format of test/vectors —
// GET /v1/sessions/{id}/trace answers one, POST /v1/sessions with `trace` rebuilds a session
// from one and reports every answer that differs from the op's `expect`.
import { z } from 'zod';
import { SessionCreateBody, SessionCreated } from './session.js';

const TRACE_OPS = ['map_sg', 'map_page', 'unmap', 'sync', 'alloc_coherent', 'free_coherent', 'flush', 'cpu_write', 'cpu_read', 'device_write', 'device_read'] as const;

// Loose on purpose: the op's own fields are checked by the body schema of that op (/batch's
// ops, the memory calls' bodies) when the trace is replayed, and errors name `trace.ops.<i>.<field>`.
export const TraceOp = z
  .looseObject({
    op: z.enum(TRACE_OPS),
    ref: z.number().int().min(0).optional().meta({ description: 'The handle returned by op `ref` of this trace (for unmap, sync, free_coherent)' }),
    expect: z
      .record(z.string(), z.unknown())
      .optional()
      .meta({ description: 'The fields of the answer this op must give; each one that differs is reported' }),
  })
  .meta({
    id: 'TraceOp',
    description: "A /batch op (map_sg, map_page, unmap, sync, alloc_coherent, free_coherent, flush) or a memory call (cpu_write, cpu_read, device_write, device_read) with that call's body fields",
  });

export const Trace = z
  .object({
    name: z.string().max(4096).optional(),
    rule: z.string().max(4096).optional(),
    session: SessionCreateBody.optional().meta({ description: 'The POST /v1/sessions body the session was created with' }),
    ops: z.array(TraceOp),
  })
  .meta({ id: 'Trace', description: 'A session as config + ops, each op with its answer as `expect` (the format of test/vectors)' });

export const SessionCreateRequest = SessionCreateBody.extend({
  trace: Trace.optional().meta({ description: 'Rebuild the session from this trace instead (no other field may be given): its config, then its ops in order' }),
}).meta({ id: 'SessionCreateRequest' });

export const Mismatch = z.object({
  op: z.number().int().meta({ description: 'Index of the op in the trace' }),
  field: z.string(),
  expected: z.unknown(),
  got: z.unknown(),
});

export const ReplayReport = z
  .object({
    ops: z.number().int().meta({ description: 'Ops replayed' }),
    mismatches: z.array(Mismatch),
  })
  .meta({ id: 'ReplayReport' });

export const SessionCreatedReplay = SessionCreated.extend({
  replay: ReplayReport.optional().meta({ description: 'Present when the session was rebuilt from a trace' }),
}).meta({ id: 'SessionCreatedReplay' });

/** GET /trace's answer: a Trace, with the session body as it was given (addresses as hex strings). */
export const TraceDocument = z
  .object({
    name: z.string(),
    rule: z.string(),
    session: z.record(z.string(), z.unknown()).meta({ description: 'The POST /v1/sessions body, memory_limit filled in' }),
    ops: z.array(z.record(z.string(), z.unknown()).meta({ description: 'A TraceOp: the op, its body fields, `ref` for handles, `expect` = the answer' })),
  })
  .meta({ id: 'TraceDocument' });
