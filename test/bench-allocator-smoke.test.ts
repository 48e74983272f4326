// Keeps load/bench-allocator.ts from rotting: its core runs at tiny sizes, every cell is measured
// (or honestly skipped), and the machine-read last line keeps its exact shape. No timing is asserted.
import { test } from 'tap';
import { report, runAllocatorBench } from '../load/bench-allocator.js';

test('bench-allocator runs both patterns on both allocators and prints its last line', (t) => {
  const sizes = [50, 200, 400];
  const cells = runAllocatorBench({ sizes, fastMs: 5, modelBudgetMs: 10_000, modelMinOps: 3, modelMs: 5, log: () => {} });
  t.equal(cells.length, 2 * 2 * sizes.length, 'steady and walk × fast and model × sizes');
  for (const c of cells) t.ok(c.nsPerOp === null || (c.nsPerOp > 0 && c.ops > 0), `${c.pattern} ${c.impl} ${c.live}`);
  const lines = report(cells, sizes);
  t.match(lines[lines.length - 1], /^allocator: speedup_walk_pattern_100k=[\d.]+ growth_1m_vs_1k=[\d.]+ ns_per_op_100k=\d+$/);
  t.end();
});
