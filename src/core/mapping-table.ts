// A session's live mappings (streaming and coherent) by handle, and what they hold of the IOVA
// space. The DMA device adds a mapping once its layout has mapped it and removes it on unmap or
// free; nothing else writes here.
//
// Invariants: handles start at 1 and grow by one per mapping, never reused (dma-debug tells a
// stale handle from a wild one by `issued`); `coherent` counts the live mappings of kind
// 'coherent'; `iovaBytes` is the sum of the layout's iovaBytes over the live mappings, minus
// those whose range a stray rule freed under them, plus the strays still holding theirs.

import { HandleTable } from './handle-table.js';
import type { DmaDirection } from './constants.js';
import { MAPPING_CODEC, type MapResult, type Mapping } from './mapping.js';
import { describe, field, nested, num } from './state/codec.js';

const HANDLES_STATE = HandleTable.state(MAPPING_CODEC, (m) => m.handle);

export class MappingTable {
  /** Saved state: the live mappings (with their handle table's pages), the next handle, the coherent count, the IOVA bytes held. */
  static readonly STATE = describe<MappingTable>('mapping-table', 1, [
    nested('handles', HANDLES_STATE, (o) => o.handles),
    field('nextHandle', num, (o) => o.nextHandle, (o, v) => (o.nextHandle = v)),
    field('coherent', num, (o) => o.coherent, (o, v) => (o.coherent = v)),
    field('iovaBytes', num, (o) => o.iovaBytes, (o, v) => (o.iovaBytes = v)),
  ]);

  private readonly handles = new HandleTable<Mapping>();
  private nextHandle = 1;
  private coherent = 0;
  private iovaBytes = 0;

  get(handle: number): Mapping | undefined {
    return this.handles.get(handle);
  }

  /** True when `handle` was given out once (it is live, or was unmapped or freed since). */
  issued(handle: number): boolean {
    return handle < this.nextHandle;
  }

  /** Live mappings in ascending handle order (those above `after`, when given). */
  values(after = 0): IterableIterator<Mapping> {
    return this.handles.values(after);
  }

  get size(): number {
    return this.handles.size;
  }

  get liveCoherent(): number {
    return this.coherent;
  }

  get liveStreaming(): number {
    return this.handles.size - this.coherent;
  }

  get iovaBytesInUse(): number {
    return this.iovaBytes;
  }

  /** Handle-table pages held (the memory budget charges them). */
  get pageCount(): number {
    return this.handles.pageCount;
  }

  /** The layout's result under the next handle (its IOVA bytes are counted by holdIova). */
  add(r: MapResult, kind: Mapping['kind'], dir: DmaDirection): Mapping {
    // Every mapping gets the same fields in the same order, whatever layout or call made it:
    // one hidden class keeps the hot path's property accesses monomorphic (layouts build their
    // results in different shapes, and adding fields later forked the shape per call site).
    const m: Mapping = {
      handle: this.nextHandle++,
      kind,
      dir,
      sg: r.sg,
      size: r.size,
      segments: r.segments,
      allocs: r.allocs,
      extents: r.extents,
      bounce: r.bounce,
      iovaGone: false,
      iovaHex: undefined,
      cpuOwned: false,
    };
    this.handles.set(m.handle, m);
    if (kind === 'coherent') this.coherent++;
    return m;
  }

  /** Takes `m` out of the live handles; its IOVA bytes are given back separately (releaseIova). */
  remove(m: Mapping): void {
    if (this.handles.delete(m.handle) && m.kind === 'coherent') this.coherent--;
  }

  holdIova(bytes: number): void {
    this.iovaBytes += bytes;
  }

  releaseIova(bytes: number): void {
    this.iovaBytes -= bytes;
  }
}
