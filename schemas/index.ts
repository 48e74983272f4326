// Every wire type in one import for routes and the core's signatures.
import type { z } from 'zod';
import type * as B from './batch.js';
import type * as D from './dma.js';
import type * as M from './memory.js';
import type * as S from './session.js';
import type * as T from './tables.js';

export * from './common.js';
export * from './session.js';
export * from './dma.js';
export * from './memory.js';
export * from './tables.js';
export * from './batch.js';

/** What a request body is after validation (addresses already bigint). */
export type SessionCreateInput = z.output<typeof S.SessionCreateBody>;
export type SessionConfigOut = z.output<typeof S.SessionConfig>;
export type SessionSummaryOut = z.output<typeof S.SessionSummary>;
export type LeakReportOut = z.output<typeof S.LeakReport>;
export type MapSgInput = z.output<typeof D.MapSgBody>;
export type MapSgOut = z.output<typeof D.MapSgResult>;
export type MapPageInput = z.output<typeof D.MapPageBody>;
export type MapPageOut = z.output<typeof D.MapPageResult>;
export type UnmapInput = z.output<typeof D.UnmapBody>;
export type UnmapOut = z.output<typeof D.UnmapResult>;
export type SyncInput = z.output<typeof D.SyncBody>;
export type SyncOut = z.output<typeof D.SyncResult>;
export type AllocCoherentInput = z.output<typeof D.AllocCoherentBody>;
export type AllocCoherentOut = z.output<typeof D.AllocCoherentResult>;
export type FreeCoherentInput = z.output<typeof D.FreeCoherentBody>;
export type FreeCoherentOut = z.output<typeof D.FreeCoherentResult>;
export type FlushInput = z.output<typeof D.FlushBody>;
export type FlushOut = z.output<typeof D.FlushResult>;
export type CpuWriteInput = z.output<typeof M.CpuWriteBody>;
export type CpuReadInput = z.output<typeof M.CpuReadBody>;
export type DeviceWriteInput = z.output<typeof M.DeviceWriteBody>;
export type DeviceReadInput = z.output<typeof M.DeviceReadBody>;
export type MemoryOut = z.output<typeof M.MemoryResult>;
export type FaultOut = z.output<typeof M.Fault>;
export type MappingsOut = z.output<typeof T.MappingsResult>;
export type MappingRowOut = z.output<typeof T.MappingRow>;
export type DebugOut = z.output<typeof T.DebugResult>;
export type FaultsOut = z.output<typeof T.FaultsResult>;
export type DebugFindingOut = z.output<typeof import('./common.js').DebugFinding>;
export type BatchInput = z.output<typeof B.BatchBody>;
export type BatchOpInput = z.output<typeof B.BatchOp>;
export type BatchOut = z.output<typeof B.BatchResult>;
export type ErrorBodyOut = z.output<typeof import('./common.js').ErrorBody>;
