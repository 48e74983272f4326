// Loads the example vectors: every test/vectors/*.json, plus those of a directory named by
// DMAEMU_VECTORS_DIR (your own cases; a file of the same name wins). The maintainers' upstream
// folder of vectors is also read when it happens to sit beside the repository; a clone needs
// nothing but test/vectors/. Any *.json dropped in is run by the vector tests without code changes.

import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface VectorOp {
  op: string;
  ref?: number;
  expect?: Record<string, unknown>;
  [k: string]: unknown;
}

export interface Vector {
  file: string;
  name: string;
  rule: string;
  session: Record<string, unknown>;
  ops: VectorOp[];
}

const here = dirname(fileURLToPath(import.meta.url));
export const VECTOR_DIRS = [resolve(here, '../vectors'), resolve(here, '../../../shared/vectors'), ...(process.env.DMAEMU_VECTORS_DIR ? [process.env.DMAEMU_VECTORS_DIR] : [])];

export function loadVectors(): Vector[] {
  const byFile = new Map<string, Vector>();
  for (const dir of VECTOR_DIRS) {
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.json')).sort()) {
      const v = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Omit<Vector, 'file'>;
      byFile.set(f, { file: f, ...v });
    }
  }
  return [...byFile.values()];
}

/** A vector op as a /batch op: `ref: i` at the top level names the handle of op i. */
export function toBatchOp(op: VectorOp): Record<string, unknown> {
  const { expect: _e, ref, ...rest } = op;
  return ref === undefined ? rest : { ...rest, handle: { ref } };
}
