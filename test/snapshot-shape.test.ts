// Rule (src/service/store/snapshot.ts, "Shapes"): a snapshot restores only into a session whose
// classes have exactly the fields the snapshot's instances have. A snapshot is the object graph
// of the dmaemu that wrote it; one written by a build whose classes had other fields (the
// Session before issue 17's split held `mappings` and `strays` itself) must be refused, naming
// the class and the fields, instead of restoring into a session with empty new fields, and a
// live session whose state has grown a field its class does not declare is never written.
import t from 'tap';
import { deserialize, serialize } from 'node:v8';
import { SessionStore } from '../src/service/session-store.js';
import { encodeSnapshot, restoreSnapshot, SnapshotError } from '../src/service/store/snapshot.js';
import type { Session } from '../src/service/session.js';
import { MapSgBody } from '../schemas/dma.js';

const CLASS = '\u0000class';
type Obj = Record<string, unknown>;

function populated(): { store: SessionStore; s: Session } {
  const store = new SessionStore();
  const s = store.create({});
  // Two 8 KiB buffers, one left mapped: the snapshot holds a live mapping and a freed range.
  const a = s.mapSg(MapSgBody.parse({ sg: [{ phys: '0x100000', length: 8192 }], dir: 'to_device' }));
  s.mapSg(MapSgBody.parse({ sg: [{ phys: '0x200000', length: 8192 }], dir: 'from_device' }));
  if (!('handle' in a) || typeof a.handle !== 'number') throw new Error('map_sg failed');
  s.unmap({ handle: a.handle });
  return { store, s };
}

/** The snapshot's bytes with `edit` applied to the decoded graph (what another build would have written). */
function edited(bytes: Buffer, edit: (root: Obj) => void): Buffer {
  const root = deserialize(bytes) as Obj;
  edit(root);
  return serialize(root);
}

/** The first class-tagged object named `name` under `root`. */
function findClass(root: unknown, name: string): Obj {
  const seen = new Set<unknown>();
  const stack = [root];
  while (stack.length) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null || seen.has(v)) continue;
    seen.add(v);
    if ((v as Obj)[CLASS] === name) return v as Obj;
    const children: unknown[] = v instanceof Map ? [...(v as Map<unknown, unknown>).values()] : Object.values(v);
    stack.push(...children);
  }
  throw new Error(`no ${name} in the snapshot`);
}

t.test('a snapshot of this build restores into a fresh session of the same config: the next IOVA is the same', async (t) => {
  const { store, s } = populated();
  const bytes = encodeSnapshot(s, store.fresh(s), store.externalsOf(s));
  const back = store.fresh(s);
  restoreSnapshot(back, bytes, store.externalsOf(back));
  const next = MapSgBody.parse({ sg: [{ phys: '0x300000', length: 4096 }], dir: 'to_device' });
  t.same(back.mapSg(next), s.mapSg(next), 'the restored allocator places the next mapping where the original does');
});

t.test("a snapshot whose Session has the pre-split fields is refused, naming them and the missing one", async (t) => {
  const { store, s } = populated();
  const old = edited(encodeSnapshot(s, store.fresh(s), store.externalsOf(s)), (root) => {
    // The Session before issue 17 held its table and v4.4 strays itself, and had no device.
    root.mappings = new Map();
    root.strays = [];
    delete root.device;
  });
  const back = store.fresh(s);
  let err: unknown;
  try {
    restoreSnapshot(back, old, store.externalsOf(back));
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof SnapshotError, 'refused as a SnapshotError (the journal logs it and leaves the file as it is)');
  t.match((err as Error).message, /Session has fields mappings, strays that this version's Session does not have and no device/);
});

t.test('a field renamed deep in the graph is refused, naming its class', async (t) => {
  const { store, s } = populated();
  const old = edited(encodeSnapshot(s, store.fresh(s), store.externalsOf(s)), (root) => {
    const table = findClass(root, 'MappingTable');
    const [first] = Object.keys(table).filter((k) => k !== CLASS);
    if (!first) throw new Error('MappingTable has no fields');
    table[`${first}Old`] = table[first];
    delete table[first];
  });
  t.throws(() => restoreSnapshot(store.fresh(s), old, store.externalsOf(s)), /MappingTable has fields \w+Old that this version's MappingTable does not have and no \w+ \(written by another dmaemu version\?\)/);
});

t.test('a live session carrying a field its class does not declare is never written', async (t) => {
  const { store, s } = populated();
  (s.device as unknown as Obj).grafted = 1;
  t.throws(() => encodeSnapshot(s, store.fresh(s), store.externalsOf(s)), /session state's DmaDevice has fields grafted that this version's DmaDevice does not have/);
});
