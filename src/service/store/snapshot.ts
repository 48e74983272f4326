// Snapshot format 0, read for migration only: the format dmaemu wrote before issue 23 (its
// compacted logs restore once through restoreSnapshot, and the journal rewrites them in the
// current format, src/core/state/codec.ts). encodeSnapshot stays so tests can make format-0
// snapshots of this build; the service never writes one. What follows is how format 0 works.
//
// A session's state as bytes, for compaction: the object graph under a Session (allocator
// trees, rcache magazines, handle table, RAM, cache lines, findings, faults, counters) cloned
// into V8's structured-serialization format, and restored *into* a freshly constructed Session
// of the same config. Restoring in place matters: a fresh Session wires closures between its
// parts (the device view iterates the session's own handle table), and those must keep
// pointing at the objects that now hold the restored data.
//
// Rules: data (primitives, arrays, typed arrays, Maps, Sets, plain objects, class instances)
// is copied; shared references and cycles stay shared (V8's serializer keeps identity);
// functions are not state (the fresh Session's own, at the same place, are kept); the objects
// a session shares with the service (config, limits, observer, budget: `externals`, listed in
// the same order by every process of this version) are written as their position in that list
// and come back as the restoring process's own. Class instances travel with their class name and get their
// prototype back from the fresh Session's graph; a snapshot whose graph holds something this
// cannot represent (a class the fresh graph does not know, or knows twice) is refused at encode
// time, so a compaction never writes a snapshot it could not read back.
//
// Shapes: an instance's own fields must be exactly those of the fresh graph's instance of its
// class, in encode and in restore. A snapshot is the object graph of the dmaemu that wrote it;
// one written before a class gained, lost or renamed a field (an upgrade across a refactor)
// would otherwise restore "successfully" into a session whose new fields are empty and whose
// old ones nothing reads. Refused instead, the session is not restored and its file is left as
// it is (the version that wrote it still reads it).

import { deserialize, serialize } from 'node:v8';

const CLASS = '\u0000class';
const KEEP = '\u0000keep';
const EXTERNAL = '\u0000external';

function indexOf(list: readonly object[]): Map<object, number> {
  const m = new Map<object, number>();
  list.forEach((o, i) => {
    if (!m.has(o)) m.set(o, i);
  });
  return m;
}

type Obj = Record<string, unknown>;

function isTyped(v: object): boolean {
  return ArrayBuffer.isView(v);
}

/** Constructor name → prototype (and own field names) of every class instance reachable from `root`. */
function prototypesOf(
  root: object,
  externals: ReadonlyMap<object, number>,
): { protos: Map<string, object>; ambiguous: Set<string>; shapes: Map<string, string[]> } {
  const protos = new Map<string, object>();
  const shapes = new Map<string, string[]>();
  const ambiguous = new Set<string>();
  const seen = new Set<object>();
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null || seen.has(v) || externals.has(v) || isTyped(v)) continue;
    seen.add(v);
    if (v instanceof Map) {
      for (const [k, x] of v) stack.push(k, x);
      continue;
    }
    if (v instanceof Set || Array.isArray(v)) {
      for (const x of v as Iterable<unknown>) stack.push(x);
      continue;
    }
    const proto = Object.getPrototypeOf(v) as object | null;
    if (proto && proto !== Object.prototype) {
      const name = (proto as { constructor?: { name?: string } }).constructor?.name ?? '';
      const had = protos.get(name);
      if (had && had !== proto) ambiguous.add(name);
      protos.set(name, proto);
      if (!shapes.has(name)) shapes.set(name, Object.keys(v));
    }
    for (const x of Object.values(v)) stack.push(x);
  }
  return { protos, ambiguous, shapes };
}

/** Why `keys` (an instance of class `name`) is not the fresh graph's shape of it, or null when it is. */
/**
 * Fields a class gained after the last format-0 snapshot was written (main at 2cf4a1e): such a
 * snapshot lacks them, and the field keeps the fresh instance's value — no format-0 session could
 * have used what they hold (DmaDevice.iova and LinuxIommuDma.iovaDomain: the two-step IOVA API's states and its handle on the allocator, issue 24).
 */
export const ADDED_SINCE_FORMAT_0: Readonly<Record<string, readonly string[]>> = { DmaDevice: ['iova'], LinuxIommuDma: ['iovaDomain'] };

function shapeMismatch(name: string, keys: readonly string[], shapes: ReadonlyMap<string, readonly string[]>): string | null {
  const added = ADDED_SINCE_FORMAT_0[name] ?? [];
  const want = shapes.get(name)?.filter((k) => keys.includes(k) || !added.includes(k));
  if (!want) return null; // a class only a populated session holds: nothing to compare with
  if (keys.length === want.length && keys.every((k, i) => k === want[i])) return null;
  const extra = keys.filter((k) => !want.includes(k));
  const missing = want.filter((k) => !keys.includes(k));
  const diff = [extra.length ? `fields ${extra.join(', ')} that this version's ${name} does not have` : '', missing.length ? `no ${missing.join(', ')}` : '']
    .filter(Boolean)
    .join(' and ');
  return `${name} has ${diff || 'its fields in another order'}`;
}

export class SnapshotError extends Error {}

/** Whether `bytes` are format 0: V8's serialization starts with its version tag, 0xFF. */
export function isV8GraphSnapshot(bytes: Buffer): boolean {
  return bytes[0] === 0xff;
}

/**
 * The state under `root` as bytes. `fresh` is a newly constructed object of the same kind and
 * config (it supplies the classes the restore will need); `externals` are the objects that are
 * shared with the service rather than owned (never copied).
 */
export function encodeSnapshot(root: object, fresh: object, externalList: readonly object[]): Buffer {
  const externals = indexOf(externalList);
  const { protos, ambiguous, shapes } = prototypesOf(fresh, externals);
  const memo = new Map<object, unknown>();
  const clone = (v: unknown): unknown => {
    if (typeof v === 'function') return { [KEEP]: true };
    if (typeof v === 'symbol') throw new SnapshotError('a symbol in session state');
    if (typeof v !== 'object' || v === null) return v;
    const ext = externals.get(v);
    if (ext !== undefined) return { [EXTERNAL]: ext };
    const done = memo.get(v);
    if (done !== undefined) return done;
    if (isTyped(v)) {
      memo.set(v, v);
      return v; // V8's serializer copies the bytes
    }
    if (v instanceof Map) {
      const out = new Map<unknown, unknown>();
      memo.set(v, out);
      for (const [k, x] of v) out.set(clone(k), clone(x));
      return out;
    }
    if (v instanceof Set) {
      const out = new Set<unknown>();
      memo.set(v, out);
      for (const x of v) out.add(clone(x));
      return out;
    }
    if (Array.isArray(v)) {
      const out = new Array<unknown>(v.length);
      memo.set(v, out);
      for (let i = 0; i < v.length; i++) out[i] = clone(v[i]);
      return out;
    }
    const out: Obj = {};
    memo.set(v, out);
    const proto = Object.getPrototypeOf(v) as object | null;
    if (proto && proto !== Object.prototype) {
      const name = (proto as { constructor?: { name?: string } }).constructor?.name ?? '';
      if (ambiguous.has(name)) throw new SnapshotError(`two classes named ${name} in session state`);
      if (protos.get(name) !== proto) throw new SnapshotError(`class ${name || '(anonymous)'} is not part of a fresh session`);
      const bad = shapeMismatch(name, Object.keys(v), shapes);
      if (bad) throw new SnapshotError(`session state's ${bad}`);
      out[CLASS] = name;
    }
    for (const key of Object.keys(v)) out[key] = clone((v as Obj)[key]);
    return out;
  };
  return serialize(clone(root));
}

/** Writes the state in `bytes` into `fresh` (a newly constructed object of the same kind and config). */
export function restoreSnapshot(fresh: object, bytes: Buffer, externalList: readonly object[]): void {
  const { protos, shapes } = prototypesOf(fresh, indexOf(externalList));
  const snap = deserialize(bytes) as unknown;
  const memo = new Map<object, unknown>();

  const revive = (sv: unknown, fv: unknown): unknown => {
    if (typeof sv !== 'object' || sv === null) return sv;
    const done = memo.get(sv);
    if (done !== undefined) return done;
    if (isTyped(sv)) return sv;
    if (sv instanceof Map) {
      const target = fv instanceof Map ? fv : new Map<unknown, unknown>();
      memo.set(sv, target);
      const old = new Map(target);
      target.clear();
      for (const [k, x] of sv) target.set(revive(k, undefined), revive(x, old.get(k)));
      return target;
    }
    if (sv instanceof Set) {
      const target = fv instanceof Set ? fv : new Set<unknown>();
      memo.set(sv, target);
      target.clear();
      for (const x of sv) target.add(revive(x, undefined));
      return target;
    }
    if (Array.isArray(sv)) {
      const target: unknown[] = Array.isArray(fv) ? fv : [];
      memo.set(sv, target);
      const old = target.slice();
      target.length = sv.length;
      for (let i = 0; i < sv.length; i++) target[i] = revive(sv[i], old[i]);
      return target;
    }
    const so = sv as Obj;
    if (so[KEEP] === true) {
      if (typeof fv !== 'function') throw new SnapshotError('a function in the snapshot has no counterpart in a fresh session');
      return fv;
    }
    const ext = so[EXTERNAL];
    if (typeof ext === 'number') {
      const o = externalList[ext];
      if (o === undefined) throw new SnapshotError(`the snapshot names shared object #${ext}, which this version's sessions do not have`);
      return o;
    }
    const name = so[CLASS];
    let target: Obj;
    if (typeof name === 'string') {
      const proto = protos.get(name);
      if (!proto) throw new SnapshotError(`the snapshot holds a ${name}, which this version's sessions do not have`);
      const bad = shapeMismatch(name, Object.keys(so).filter((k) => k !== CLASS), shapes);
      if (bad) throw new SnapshotError(`the snapshot's ${bad} (written by another dmaemu version?)`);
      target = typeof fv === 'object' && fv !== null && Object.getPrototypeOf(fv) === proto ? (fv as Obj) : (Object.create(proto) as Obj);
    } else {
      target = typeof fv === 'object' && fv !== null && Object.getPrototypeOf(fv) === Object.prototype ? (fv as Obj) : {};
    }
    memo.set(sv, target);
    for (const key of Object.keys(so)) {
      if (key === CLASS) continue;
      target[key] = revive(so[key], target[key]);
    }
    return target;
  };
  revive(snap, fresh);
}
