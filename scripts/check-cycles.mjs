#!/usr/bin/env node
// Import cycles among src/, routes/ and schemas/ (run by `npm run lint`): prints every cycle and
// exits 1 if there is one. A cycle makes module order matter at load time (a value imported
// across it can be undefined when first read) and means two files cannot be understood apart.
//
// Type-only imports count too: they vanish at run time, but a type cycle is the same design
// knot, and counting them keeps the rule simple to state. Only relative specifiers are
// followed ('./x.js' resolves to x.ts, as TypeScript's NodeNext resolution does); packages are
// outside the graph. No dependency: a regex over the sources is enough because every import
// in this tree is a static `import`/`export ... from` statement (or a literal `import('...')`).
//
// Invariant: the graph's nodes are exactly the .ts files under ROOTS; each strongly connected
// component with more than one file, or one file importing itself, is reported once, as a
// path that walks the cycle.

import { readdirSync, readFileSync, existsSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ROOTS = ['src', 'routes', 'schemas'];

function tsFiles(dir) {
  const out = [];
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...tsFiles(p));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

// `import ... from '...'`, `export ... from '...'`, `import '...'`, `import('...')`; comments are
// stripped first so an example in a comment is not an edge.
const SPEC = /(?:\bimport\s+(?:type\s+)?(?:[^'";]*?\sfrom\s*)?|\bexport\s+(?:type\s+)?[^'";]*?\sfrom\s*|\bimport\s*\(\s*)['"]([^'"]+)['"]/g;

function stripComments(src) {
  return src.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
}

function resolveSpec(from, spec) {
  if (!spec.startsWith('.')) return null;
  const base = resolve(dirname(from), spec);
  for (const c of [base.replace(/\.js$/, '.ts'), base, `${base}.ts`, join(base, 'index.ts')]) {
    if (c.endsWith('.ts') && existsSync(c) && statSync(c).isFile()) return c;
  }
  return null;
}

const files = ROOTS.flatMap((r) => tsFiles(join(ROOT, r))).sort();
const inGraph = new Set(files);
const edges = new Map();
for (const f of files) {
  const src = stripComments(readFileSync(f, 'utf8'));
  const to = new Set();
  for (const m of src.matchAll(SPEC)) {
    const t = resolveSpec(f, m[1]);
    if (t && inGraph.has(t)) to.add(t);
  }
  edges.set(f, [...to].sort());
}

// Tarjan's strongly connected components, iterative (no recursion limit on deep chains).
let counter = 0;
const index = new Map();
const low = new Map();
const onStack = new Set();
const stack = [];
const components = [];
for (const start of files) {
  if (index.has(start)) continue;
  const work = [[start, 0]];
  index.set(start, counter);
  low.set(start, counter++);
  stack.push(start);
  onStack.add(start);
  while (work.length > 0) {
    const frame = work[work.length - 1];
    const [v, i] = frame;
    const next = edges.get(v);
    if (i < next.length) {
      frame[1]++;
      const w = next[i];
      if (!index.has(w)) {
        index.set(w, counter);
        low.set(w, counter++);
        stack.push(w);
        onStack.add(w);
        work.push([w, 0]);
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v), index.get(w)));
      }
      continue;
    }
    work.pop();
    if (work.length > 0) {
      const parent = work[work.length - 1][0];
      low.set(parent, Math.min(low.get(parent), low.get(v)));
    }
    if (low.get(v) === index.get(v)) {
      const comp = [];
      let w;
      do {
        w = stack.pop();
        onStack.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || edges.get(v).includes(v)) components.push(comp.sort());
    }
  }
}

/** A walk around the component from its first file back to it, through component files only. */
function cyclePath(comp) {
  const inComp = new Set(comp);
  const first = comp[0];
  const prev = new Map([[first, null]]);
  const queue = [first];
  while (queue.length > 0) {
    const v = queue.shift();
    for (const w of edges.get(v)) {
      if (!inComp.has(w)) continue;
      if (w === first) {
        const path = [first];
        for (let x = v; x !== null && x !== first; x = prev.get(x)) path.splice(1, 0, x);
        return [...path, first];
      }
      if (!prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return comp;
}

const rel = (f) => relative(ROOT, f);
for (const comp of components) {
  console.error(`import cycle (${comp.length} file${comp.length === 1 ? '' : 's'}): ${cyclePath(comp).map(rel).join(' -> ')}`);
  if (comp.length > 2) console.error(`  all files in it: ${comp.map(rel).join(', ')}`);
}
if (components.length > 0) {
  console.error(`check-cycles: ${components.length} import cycle${components.length === 1 ? '' : 's'} among ${ROOTS.join('/, ')}/`);
  process.exit(1);
}
console.log(`check-cycles: no import cycles among ${files.length} files of ${ROOTS.join('/, ')}/`);
