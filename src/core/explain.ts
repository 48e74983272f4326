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

/** Device parameters, at least these values (null: no device parameter). */
export type BreakFix = { max_segment_size?: number; segment_boundary_mask?: bigint } | null;

export interface SgBreak {
  entry: number;
  rule: BreakRule;
  /** arm-legacy: which of __iommu_map_sg's three conditions started the chunk. */
  condition?: 'offset' | 'chunk_not_page_multiple' | 'max_segment_size';
  kernel: string;
  message: string;
  values: Record<string, number | string>;
}

/**
 * What stands between the list and one segment: every kind of break that would still happen on
 * the way to one segment, not only the first failing test of each break. `dma_length_limit`: the
 * list is longer than one unsigned int sg_dma_len can hold; `iova_space`: one arm-legacy chunk of
 * the whole list does not fit one bitmap of the mapping (__alloc_iova never spans two).
 */
export type ObstacleRule = BreakRule | 'dma_length_limit' | 'iova_space';

export interface SgObstacle {
  rule: ObstacleRule;
  condition?: SgBreak['condition'];
  /** The input entries it would break before (for iova_space and dma_length_limit: the last entry). */
  entries: number[];
  /** The device parameters that remove it on a fresh session, or null: none does. */
  fix: BreakFix;
  message: string;
}

export interface SgFailureWhy {
  kernel: string;
  message: string;
  values: Record<string, number | string>;
}

/** What a layout fills while it maps, only when an explanation was asked for. */
export class SgExplainer {
  readonly breaks: SgBreak[] = [];
  readonly obstacles: SgObstacle[] = [];
  failure: SgFailureWhy | undefined;

  brk(b: SgBreak): void {
    this.breaks.push(b);
  }

  obstacle(o: SgObstacle): void {
    this.obstacles.push(o);
  }

  /** A layout that never concatenates: every recorded break stands, grouped by its rule. */
  everyBreakStands(): void {
    const byRule = new Map<string, SgObstacle>();
    for (const b of this.breaks) {
      const key = `${b.rule}/${b.condition ?? ''}`;
      const o = byRule.get(key);
      if (o) o.entries.push(b.entry);
      else {
        const fresh: SgObstacle = { rule: b.rule, entries: [b.entry], fix: null, message: b.message };
        if (b.condition) fresh.condition = b.condition;
        byRule.set(key, fresh);
        this.obstacles.push(fresh);
      }
    }
  }

  fail(f: SgFailureWhy): void {
    this.failure = f;
  }
}

type WireFix = { max_segment_size?: number; segment_boundary_mask?: string };

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
  obstacles: { rule: ObstacleRule; condition?: string; entries: number[]; fixed_by: WireFix | null; message: string }[];
  contiguous_iova: boolean;
  one_segment: boolean;
  would_merge_with: WireFix | null;
  verdict: string;
  failure?: SgFailureWhy;
}

const hex = (v: bigint): string => `0x${v.toString(16)}`;

function wireFix(f: NonNullable<BreakFix>): WireFix {
  const out: WireFix = {};
  if (f.max_segment_size !== undefined) out.max_segment_size = f.max_segment_size;
  if (f.segment_boundary_mask !== undefined) out.segment_boundary_mask = hex(f.segment_boundary_mask);
  return out;
}

/** "entry 4" or "entries 1, 3, 4" (the first eight, then how many in all). */
function entryList(entries: readonly number[]): string {
  if (entries.length === 1) return `entry ${entries[0] ?? 0}`;
  const shown = entries.slice(0, 8).join(', ');
  return entries.length > 8 ? `entries ${shown}, … (${entries.length} in all)` : `entries ${shown}`;
}

const kindOf = (o: SgObstacle): string => (o.condition ? `${o.rule} (${o.condition})` : o.rule);

function fixWords(f: WireFix): string {
  const parts: string[] = [];
  if (f.max_segment_size !== undefined) parts.push(`max_segment_size ≥ ${f.max_segment_size}`);
  if (f.segment_boundary_mask !== undefined) parts.push(`segment_boundary_mask ≥ ${f.segment_boundary_mask}`);
  return parts.join(' and ');
}

/**
 * The verdict: are the segments one back-to-back IOVA range, are they one segment, and which
 * device parameters would merge them. The parameters are those every fixable obstacle asks for
 * (the largest value of each); there are none when any obstacle has no fix, and then the verdict
 * names every obstacle, the fixable ones with what they would need as well.
 */
export function explainOut(why: SgExplainer, segments: readonly DmaSegment[], addrOf: (s: DmaSegment) => bigint): ExplainOut {
  if (why.failure) {
    return {
      breaks: [],
      obstacles: [],
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
  const standing = one ? [] : why.obstacles;
  const obstacles = standing.map((o) => ({
    rule: o.rule,
    ...(o.condition ? { condition: o.condition } : {}),
    entries: o.entries,
    fixed_by: o.fix ? wireFix(o.fix) : null,
    message: o.message,
  }));
  const range = contiguous ? 'one contiguous IOVA range' : 'not one contiguous IOVA range';
  if (one) return { breaks, obstacles, contiguous_iova: contiguous, one_segment: true, would_merge_with: null, verdict: `${range}, one segment` };

  let maxSeg = 0;
  let mask = -1n;
  for (const o of standing) {
    if (o.fix?.max_segment_size !== undefined && o.fix.max_segment_size > maxSeg) maxSeg = o.fix.max_segment_size;
    if (o.fix?.segment_boundary_mask !== undefined && o.fix.segment_boundary_mask > mask) mask = o.fix.segment_boundary_mask;
  }
  const needed: NonNullable<BreakFix> = {};
  if (maxSeg > 0) needed.max_segment_size = maxSeg;
  if (mask >= 0n) needed.segment_boundary_mask = mask;
  const blockers = standing.filter((o) => o.fix === null);
  const fixable = standing.filter((o) => o.fix !== null);
  let tail: string;
  let merge: WireFix | null = null;
  if (blockers.length === 0 && fixable.length > 0) {
    merge = wireFix(needed);
    tail = `${fixWords(merge)} would give one segment`;
  } else if (blockers.length === 0) {
    tail = 'no device parameter would give one segment (the layout recorded no obstacle)';
  } else {
    tail = `no device parameter would give one segment (${blockers.map((o) => `${entryList(o.entries)}: ${kindOf(o)}`).join('; ')})`;
    if (fixable.length > 0) {
      tail += `, and ${fixWords(wireFix(needed))} would be needed as well (${fixable.map((o) => `${entryList(o.entries)}: ${kindOf(o)}`).join('; ')})`;
    }
  }
  const verdict = `${range}, not one segment (${segments.length} segments); ${tail}`;
  return { breaks, obstacles, contiguous_iova: contiguous, one_segment: false, would_merge_with: merge, verdict };
}

/** Σ length: what max_segment_size must reach for a whole list to be one segment. */
export function totalLength(sg: readonly SgEntry[]): number {
  let t = 0;
  for (const s of sg) t += s.length;
  return t;
}
