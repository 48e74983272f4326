// Why a map_sg answer has the segments it has (`?explain=true`). The kernel rules are NOT restated
// here: each layout (layouts/*.ts, dma-direct.ts) records the reason at the point where it
// decides to start a new output segment, with the numbers it compared, and what (if any) device
// parameter would have let the entry join. This file only collects those records and words the
// verdict from them and from the final segments.
//
// Invariants: breaks are recorded in entry order, at most one per input entry (the entry that
// starts a new segment, never entry 0); the default path (no explanation asked) allocates
// nothing and pays one `if (why)` per decision.

import type { DmaSegment, SgEntry } from './mapping.js';

/** The rule that made entry `entry` start a new output segment. */
export type BreakRule =
  | 'max_segment_size'
  | 'segment_boundary'
  | 'entry_offset'
  | 'previous_partial'
  | 'arm_new_chunk'
  | 'v4.4_never_merges'
  | 'no_iommu'
  | 'swiotlb_bounce';

/**
 * The device parameters that would let the whole list be one segment, as far as this break is
 * concerned (at least these values). null: no device parameter would.
 */
export type BreakFix = { max_segment_size?: number; segment_boundary_mask?: bigint } | null;

export interface SgBreak {
  entry: number;
  rule: BreakRule;
  /** arm-legacy: which of __iommu_map_sg's three conditions started the chunk. */
  condition?: 'offset' | 'chunk_not_page_multiple' | 'max_segment_size';
  kernel: string;
  message: string;
  values: Record<string, number | string>;
  fix: BreakFix;
}

export interface SgFailureWhy {
  kernel: string;
  message: string;
  values: Record<string, number | string>;
}

/** What a layout fills while it maps, only when an explanation was asked for. */
export class SgExplainer {
  readonly breaks: SgBreak[] = [];
  failure: SgFailureWhy | undefined;

  brk(b: SgBreak): void {
    this.breaks.push(b);
  }

  fail(f: SgFailureWhy): void {
    this.failure = f;
  }
}

export interface ExplainOut {
  breaks: {
    before_entry: number;
    segment: number;
    rule: BreakRule;
    condition?: string;
    kernel: string;
    message: string;
    values: Record<string, number | string>;
  }[];
  contiguous_iova: boolean;
  one_segment: boolean;
  would_merge_with: { max_segment_size?: number; segment_boundary_mask?: string } | null;
  verdict: string;
  failure?: SgFailureWhy;
}

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/**
 * The verdict: are the segments one back-to-back IOVA range, are they one segment, and which
 * device parameters (the largest value each break asks for) would merge them — none when any
 * break comes from a rule no device parameter changes.
 */
export function explainOut(why: SgExplainer, segments: readonly DmaSegment[], addrOf: (s: DmaSegment) => bigint): ExplainOut {
  if (why.failure) {
    return {
      breaks: [],
      contiguous_iova: false,
      one_segment: false,
      would_merge_with: null,
      verdict: `the mapping failed: ${why.failure.message}`,
      failure: why.failure,
    };
  }
  let contiguous = true;
  for (let i = 1; i < segments.length; i++) {
    const a = segments[i - 1] as DmaSegment;
    if (addrOf(a) + BigInt(a.len) !== addrOf(segments[i] as DmaSegment)) contiguous = false;
  }
  const one = segments.length === 1;
  const breaks = why.breaks.map((b, k) => ({
    before_entry: b.entry,
    segment: k + 1,
    rule: b.rule,
    ...(b.condition ? { condition: b.condition } : {}),
    kernel: b.kernel,
    message: b.message,
    values: b.values,
  }));
  let merge: ExplainOut['would_merge_with'] = null;
  let blocker: SgBreak | undefined;
  if (!one) {
    let maxSeg = 0;
    let mask = -1n;
    for (const b of why.breaks) {
      if (b.fix === null) {
        blocker ??= b;
        continue;
      }
      if (b.fix.max_segment_size !== undefined && b.fix.max_segment_size > maxSeg) maxSeg = b.fix.max_segment_size;
      if (b.fix.segment_boundary_mask !== undefined && b.fix.segment_boundary_mask > mask) mask = b.fix.segment_boundary_mask;
    }
    if (!blocker) {
      merge = {};
      if (maxSeg > 0) merge.max_segment_size = maxSeg;
      if (mask >= 0n) merge.segment_boundary_mask = hex(mask);
    }
  }
  const range = contiguous ? 'one contiguous IOVA range' : 'not one contiguous IOVA range';
  let verdict: string;
  if (one) verdict = `${range}, one segment`;
  else {
    const parts: string[] = [];
    if (merge?.max_segment_size !== undefined) parts.push(`max_segment_size ≥ ${merge.max_segment_size}`);
    if (merge?.segment_boundary_mask !== undefined) parts.push(`segment_boundary_mask ≥ ${merge.segment_boundary_mask}`);
    const tail = merge
      ? `${parts.join(' and ')} would give one segment`
      : `no device parameter would give one segment (entry ${blocker?.entry ?? 0}: ${blocker?.rule ?? 'unknown'})`;
    verdict = `${range}, not one segment (${segments.length} segments); ${tail}`;
  }
  return { breaks, contiguous_iova: contiguous, one_segment: one, would_merge_with: merge, verdict };
}

/** Σ length: what max_segment_size must reach for a whole list to be one segment. */
export function totalLength(sg: readonly SgEntry[]): number {
  let t = 0;
  for (const s of sg) t += s.length;
  return t;
}
