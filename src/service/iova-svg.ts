// Draws a computed IOVA picture (src/core/iova-picture.ts) as SVG markup, through xmlbuilder2 (it
// escapes every attribute and text, and keeps the namespace right). Everything the picture
// decides (positions, aggregation, ticks) is already in the Picture; this only lays it out.
//
// Each span is a <rect class="span"> with data-lane, data-cat, data-start, data-end (exclusive)
// and data-count, so a test or a script can read the drawing back without guessing colours.

import { create } from 'xmlbuilder2';
import type { XMLBuilder } from 'xmlbuilder2/lib/interfaces.js';
import { LANES, TICK_CHAR, type Category, type Lane, type Picture, type Span } from '../core/iova-picture.js';

/** Columns left of the plot (lane names) and right of it. */
export const LEFT = 88;
export const RIGHT = 16;

export const COLOURS: Record<Category, string> = {
  to_device: '#1f77b4',
  from_device: '#ff7f0e',
  bidirectional: '#9467bd',
  map_sg: '#2ca02c',
  map_page: '#17becf',
  coherent: '#8c564b',
  reserved: '#7f7f7f',
  rcache: '#bcbd22',
  flush_queue: '#e377c2',
  stray: '#d62728',
};

const LANE_TITLE: Record<Lane, string> = { dir: 'direction', kind: 'kind', allocator: 'allocator' };
const LANE_Y: Record<Lane, number> = { dir: 62, kind: 96, allocator: 130 };
const LANE_H: Record<Lane, number> = { dir: 28, kind: 28, allocator: 20 };
const AXIS_Y = 156;
const LEGEND_Y = 192;
const HEIGHT = 262;
const MARKER_LABEL: Record<string, string> = { cached_node: 'cached_node', cached32_node: 'cached32_node', '4GiB': '4 GiB', dma_mask: 'dma_mask' };

export interface SvgHeading {
  title: string;
  /** The SVG's own <title> (what a browser shows on hover). */
  tooltip: string;
  /** One line under the legend: what the scale is. */
  note: string;
}

export function pictureToSvg(p: Picture, heading: SvgHeading): string {
  const width = LEFT + p.columns + RIGHT;
  const svg = create().ele('svg', {
    xmlns: 'http://www.w3.org/2000/svg',
    width,
    height: HEIGHT,
    viewBox: `0 0 ${width} ${HEIGHT}`,
    'font-family': 'ui-monospace, Menlo, Consolas, monospace',
    'font-size': 10,
    'data-window-start': p.window.start,
    'data-window-end': p.window.end,
    'data-scale': p.scale,
    'data-mappings': p.mappings,
    'data-drawn': p.drawn,
  });
  svg.ele('title').txt(heading.tooltip);
  const background = svg.ele('rect', { x: 0, y: 0, width, height: HEIGHT, fill: '#ffffff' });
  svg.ele('text', { x: 8, y: 16, 'font-size': 12, 'font-weight': 'bold' }).txt(heading.title);

  const plot = svg.ele('g', { transform: `translate(${LEFT},0)` });
  for (const lane of Object.keys(LANES) as Lane[]) {
    svg.ele('text', { x: 8, y: LANE_Y[lane] + LANE_H[lane] / 2 + 3 }).txt(LANE_TITLE[lane]);
    for (const panel of p.panels) {
      plot.ele('rect', { class: 'free', x: panel.x, y: LANE_Y[lane], width: panel.w, height: LANE_H[lane], fill: '#f1f1f1' });
    }
  }
  const spans = plot.ele('g', { class: 'spans', 'shape-rendering': 'crispEdges' });
  for (const s of p.spans) span(spans, s);

  // Panel edges (the 4 GiB split of the log scale) and markers.
  for (const panel of p.panels.slice(1)) {
    plot.ele('line', { x1: panel.x, x2: panel.x, y1: 40, y2: AXIS_Y, stroke: '#000', 'stroke-width': 1 });
  }
  let labelRow = 0;
  for (const m of p.markers) {
    const g = plot.ele('g', { class: 'marker', 'data-marker': m.name, 'data-addr': m.addr });
    g.ele('title').txt(`${MARKER_LABEL[m.name] ?? m.name} at ${m.addr}`);
    if (m.name === '4GiB' || m.name === 'dma_mask') {
      g.ele('line', { x1: m.x, x2: m.x, y1: 40, y2: AXIS_Y, stroke: m.name === '4GiB' ? '#000' : '#d62728', 'stroke-dasharray': '4 3' });
      g.ele('text', { x: m.x + 3, y: 48, fill: m.name === '4GiB' ? '#000' : '#d62728' }).txt(MARKER_LABEL[m.name] ?? m.name);
    } else {
      // cached nodes: a triangle pointing at the range the next walk starts below.
      const y = 58;
      g.ele('path', { d: `M${m.x - 4},${y - 7} L${m.x + 4},${y - 7} L${m.x},${y} Z`, fill: '#000' });
      const anchorEnd = m.x > p.columns - 120;
      g.ele('text', { x: anchorEnd ? m.x - 6 : m.x + 6, y: 30 + 10 * labelRow, 'text-anchor': anchorEnd ? 'end' : 'start' }).txt(`${m.name} ${m.addr}`);
      labelRow = (labelRow + 1) % 2;
    }
  }

  const axis = plot.ele('g', { class: 'axis' });
  axis.ele('line', { x1: 0, x2: p.columns, y1: AXIS_Y, y2: AXIS_Y, stroke: '#000' });
  for (const t of p.ticks) {
    const w = t.label.length * TICK_CHAR;
    const anchor = t.x < w / 2 ? 'start' : t.x > p.columns - w / 2 ? 'end' : 'middle';
    axis.ele('line', { x1: t.x, x2: t.x, y1: AXIS_Y, y2: AXIS_Y + 5, stroke: '#000' });
    axis.ele('text', { class: 'tick', x: t.x, y: AXIS_Y + 16, 'text-anchor': anchor }).txt(t.label);
  }

  const legend = svg.ele('g', { class: 'legend', transform: `translate(8,${LEGEND_Y})` });
  let x = 0;
  let row = 0;
  for (const lane of Object.keys(LANES) as Lane[]) {
    // Only what this session can draw (Picture.legend): no rcache or strays where its layout has none.
    for (const c of (LANES[lane] as readonly Category[]).filter((k) => p.legend.includes(k))) {
      const text = c === 'stray' ? 'stray (v4.4 unmap left it)' : c.replace('_', ' ');
      const w = 22 + text.length * 6.2;
      if (x + w > width - 16) {
        x = 0;
        row++;
      }
      legend.ele('rect', { x, y: row * 16, width: 12, height: 10, fill: COLOURS[c] });
      legend.ele('text', { x: x + 16, y: row * 16 + 9 }).txt(text);
      x += w + 8;
    }
    x += 12;
  }
  const noteY = LEGEND_Y + (row + 1) * 16 + 12;
  svg.ele('text', { x: 8, y: noteY, fill: '#444' }).txt(heading.note);
  // The height follows the legend's rows (a narrow picture wraps them).
  const height = noteY + 10;
  svg.att('height', String(height)).att('viewBox', `0 0 ${width} ${height}`);
  background.att('height', String(height));
  return svg.end({ headless: false });
}

function span(parent: XMLBuilder, s: Span): void {
  const n = Object.values(s.counts).reduce((a, b) => a + b, 0);
  const parts = Object.entries(s.counts).map(([k, v]) => `${v} ${k}`);
  const r = parent.ele('rect', {
    class: 'span',
    'data-lane': s.lane,
    'data-cat': s.category,
    'data-start': s.start,
    'data-end': s.end,
    'data-count': n,
    x: s.x,
    y: LANE_Y[s.lane],
    width: s.w,
    height: LANE_H[s.lane],
    fill: COLOURS[s.category],
  });
  r.ele('title').txt(`${s.category} ${s.start}–${s.end}${parts.length ? `: ${parts.join(', ')}` : ''}${s.bytes ? `, ${s.bytes} bytes` : ''}`);
}
