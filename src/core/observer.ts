// What the core tells whoever watches it (the service's /metrics): each DMA-API call with its
// kernel result, each dma-debug finding, each device fault. The core calls these on its hot
// path, so an observer must be cheap; the default one does nothing.
//
// Invariant: every call a session completes is reported exactly once, whether it came alone
// or inside a /batch; a call refused with an HTTP error (DmaemuError) is not a DMA call and is
// not reported (the request metrics count it).

import type { KernelErrno } from './constants.js';

/** The DMA-API calls a session makes. */
export type DmaCall = 'map_sg' | 'map_page' | 'unmap' | 'sync' | 'alloc_coherent' | 'free_coherent' | 'flush';

export const DMA_CALLS: readonly DmaCall[] = ['map_sg', 'map_page', 'unmap', 'sync', 'alloc_coherent', 'free_coherent', 'flush'];

export interface DmaObserver {
  /** A call finished; `errno` is null when Linux would have succeeded. */
  call(op: DmaCall, errno: KernelErrno | null): void;
  /** dma-debug reported `check` (its name, e.g. "unmap_size"). */
  finding(check: string): void;
  /** The device faulted; `reason` is the fault's text. */
  fault(reason: string): void;
}

export const SILENT_OBSERVER: DmaObserver = {
  call() {},
  finding() {},
  fault() {},
};
