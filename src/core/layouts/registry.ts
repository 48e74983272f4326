// Layout name → its whole behaviour (layout.ts). The one place a layout's name is looked up:
// config, the DMA device and the memory model ask here, never compare names themselves.
//
// Invariant: every name of LAYOUTS (constants.ts) has exactly one spec, whose `name` is that
// name (the Record type makes a missing one a compile error).

import type { Layout } from '../constants.js';
import { NO_IOMMU } from '../dma-direct.js';
import type { SessionConfig } from '../session-config.js';
import { ARM_LEGACY_LAYOUT } from './arm-legacy.js';
import type { DmaBackend, LayoutSpec } from './layout.js';
import { LINUX_4_4_LAYOUT } from './linux-4.4.js';
import { LINUX_LAYOUT } from './linux.js';

const LAYOUT_SPECS: Readonly<Record<Layout, LayoutSpec>> = {
  linux: LINUX_LAYOUT,
  'linux-4.4': LINUX_4_4_LAYOUT,
  'arm-legacy': ARM_LEGACY_LAYOUT,
};

export function layoutSpec(layout: Layout): LayoutSpec {
  return LAYOUT_SPECS[layout];
}

/** What runs a session's calls: its layout over the IOMMU, or dma-direct without one. */
export function backendOf(config: Pick<SessionConfig, 'layout' | 'iommu'>): DmaBackend {
  return config.iommu ? LAYOUT_SPECS[config.layout] : NO_IOMMU;
}
