// Saved state as a format, not a heap dump (QEMU's VMStateDescription, in small): each structure
// a session holds describes its state once — a name, a version and its fields in order — and
// writeState / readState turn it into bytes and back. The description sits next to the structure
// (a static STATE inside its class, where its private fields are in reach), so a renamed private
// field changes nothing on disk, and a change of what is saved is a new version, next to the old
// one's migration.
//
// On disk, a structure is: its name (string), its version (u16), the byte length of its fields
// (u32), then each field by its codec. A reader refuses, naming the structure and the byte
// offset: another structure's name, a version newer than it knows, an older version without a
// migration, and fields that do not use exactly the length written. Never a silent default.
//
// Numbers are f64 (pfns reach 2^52, every count is an integer below 2^53), strings UTF-8 with a
// u32 length, arrays and maps a u32 count then their items.
//
// Invariants: readState(writeState(x)) restores every field the description lists; a reader never
// reads past its buffer (StateError instead); decoding arbitrary bytes never throws anything else.

export class StateError extends Error {
  override name = 'StateError';
}

export class StateWriter {
  private buf = Buffer.allocUnsafe(1 << 16);
  private at = 0;

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.at + n) size *= 2;
    const b = Buffer.allocUnsafe(size);
    this.buf.copy(b, 0, 0, this.at);
    this.buf = b;
  }

  get offset(): number {
    return this.at;
  }

  u8(v: number): void {
    this.room(1);
    this.buf[this.at++] = v;
  }

  u16(v: number): void {
    this.room(2);
    this.buf.writeUInt16LE(v, this.at);
    this.at += 2;
  }

  u32(v: number): void {
    this.room(4);
    this.buf.writeUInt32LE(v, this.at);
    this.at += 4;
  }

  /** Overwrites the u32 at `at` (a length known once the fields are written). */
  patchU32(at: number, v: number): void {
    this.buf.writeUInt32LE(v, at);
  }

  f64(v: number): void {
    this.room(8);
    this.buf.writeDoubleLE(v, this.at);
    this.at += 8;
  }

  bytes(v: Uint8Array): void {
    this.u32(v.length);
    this.room(v.length);
    this.buf.set(v, this.at);
    this.at += v.length;
  }

  str(v: string): void {
    this.bytes(Buffer.from(v, 'utf8'));
  }

  finish(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.at));
  }
}

export class StateReader {
  private at: number;

  constructor(
    private readonly buf: Buffer,
    at = 0,
  ) {
    this.at = at;
  }

  get offset(): number {
    return this.at;
  }

  private need(n: number, what: string): void {
    if (this.at + n > this.buf.length) throw new StateError(`${what} at byte ${this.at} runs past the end of the state (${this.buf.length} bytes)`);
  }

  u8(): number {
    this.need(1, 'a u8');
    return this.buf[this.at++] as number;
  }

  u16(): number {
    this.need(2, 'a u16');
    const v = this.buf.readUInt16LE(this.at);
    this.at += 2;
    return v;
  }

  u32(): number {
    this.need(4, 'a u32');
    const v = this.buf.readUInt32LE(this.at);
    this.at += 4;
    return v;
  }

  f64(): number {
    this.need(8, 'a number');
    const v = this.buf.readDoubleLE(this.at);
    this.at += 8;
    return v;
  }

  bytes(): Uint8Array {
    const n = this.u32();
    this.need(n, `${n} bytes`);
    const v = new Uint8Array(n);
    v.set(this.buf.subarray(this.at, this.at + n));
    this.at += n;
    return v;
  }

  str(): string {
    const n = this.u32();
    this.need(n, `a string of ${n} bytes`);
    const v = this.buf.toString('utf8', this.at, this.at + n);
    this.at += n;
    return v;
  }
}

/** How one value is written and read. */
export interface Codec<V> {
  write(w: StateWriter, v: V): void;
  read(r: StateReader): V;
}

export const num: Codec<number> = { write: (w, v) => w.f64(v), read: (r) => r.f64() };
export const bool: Codec<boolean> = { write: (w, v) => w.u8(v ? 1 : 0), read: (r) => r.u8() !== 0 };
export const str: Codec<string> = { write: (w, v) => w.str(v), read: (r) => r.str() };
export const u8s: Codec<Uint8Array> = { write: (w, v) => w.bytes(v), read: (r) => r.bytes() };
/** A signed 64-bit value (a DMA address) as its decimal text: exact, whatever its size. */
export const bigint: Codec<bigint> = { write: (w, v) => w.str(v.toString()), read: (r) => BigInt(r.str()) };

/** One of a fixed set of strings (an enum): refused when the state holds another. */
export function oneOf<const T extends string>(values: readonly T[]): Codec<T> {
  return {
    write: (w, v) => w.str(v),
    read: (r) => {
      const at = r.offset;
      const v = r.str();
      if (!(values as readonly string[]).includes(v)) throw new StateError(`${JSON.stringify(v)} at byte ${at} is none of ${values.join(', ')}`);
      return v as T;
    },
  };
}

export function list<V>(item: Codec<V>): Codec<V[]> {
  return {
    write: (w, v) => {
      w.u32(v.length);
      for (const x of v) item.write(w, x);
    },
    read: (r) => {
      const n = r.u32();
      const out: V[] = [];
      for (let i = 0; i < n; i++) out.push(item.read(r));
      return out;
    },
  };
}

export function nullable<V>(item: Codec<V>): Codec<V | null> {
  return {
    write: (w, v) => {
      w.u8(v === null ? 0 : 1);
      if (v !== null) item.write(w, v);
    },
    read: (r) => (r.u8() === 0 ? null : item.read(r)),
  };
}

/** A typed array: its length, then each element as `one` writes it. */
function typed<A extends Float64Array | Uint32Array>(make: (n: number) => A, one: Codec<number>): Codec<A> {
  return {
    write: (w, v) => {
      w.u32(v.length);
      for (const x of v) one.write(w, x);
    },
    read: (r) => {
      const out = make(r.u32());
      for (let i = 0; i < out.length; i++) out[i] = one.read(r);
      return out;
    },
  };
}

export const f64s: Codec<Float64Array> = typed((n) => new Float64Array(n), num);
export const u32s: Codec<Uint32Array> = typed((n) => new Uint32Array(n), { write: (w, v) => w.u32(v), read: (r) => r.u32() });

/** A plain record, its fields in the order given (that order is the format). */
export function record<T extends object>(fields: { [K in keyof T]: Codec<T[K]> }, order: readonly (keyof T)[]): Codec<T> {
  return {
    write: (w, v) => {
      for (const k of order) fields[k].write(w, v[k]);
    },
    read: (r) => {
      const out = {} as T;
      for (const k of order) out[k] = fields[k].read(r);
      return out;
    },
  };
}

/** A field of structure T: how it is read from and written into an instance. */
export interface Field<T> {
  readonly name: string;
  write(w: StateWriter, o: T): void;
  read(r: StateReader, o: T): void;
}

export function field<T, V>(name: string, codec: Codec<V>, get: (o: T) => V, set: (o: T, v: V) => void): Field<T> {
  return { name, write: (w, o) => codec.write(w, get(o)), read: (r, o) => set(o, codec.read(r)) };
}

/** A list the structure holds in an array it never replaces (readonly): restored into that array. */
export function listIn<T, V>(name: string, item: Codec<V>, get: (o: T) => V[]): Field<T> {
  return field(name, list(item), get, (o, v) => {
    const a = get(o);
    a.length = 0;
    a.push(...v);
  });
}

/** A structure inside this one, with its own name and version (restored into the instance `get` returns). */
export function nested<T, C>(name: string, desc: StateDescription<C>, get: (o: T) => C): Field<T> {
  return { name, write: (w, o) => writeState(w, desc, get(o)), read: (r, o) => readState(r, desc, get(o)) };
}

/** One instance's state, whatever its structure: what a holder of an interface (DmaOps) saves through. */
export interface StateRef {
  write(w: StateWriter): void;
  read(r: StateReader): void;
}

export function stateRef<T>(desc: StateDescription<T>, o: T): StateRef {
  return { write: (w) => writeState(w, desc, o), read: (r) => readState(r, desc, o) };
}

/** A part known by its interface only (a layout's ops): saved through the StateRef it gives. */
export function part<T>(name: string, get: (o: T) => StateRef): Field<T> {
  return { name, write: (w, o) => get(o).write(w), read: (r, o) => get(o).read(r) };
}

export interface StateDescription<T> {
  /** Stable on disk: never renamed (a new name is a new structure). */
  readonly name: string;
  readonly version: number;
  readonly fields: readonly Field<T>[];
  /** Per older version still read: reads that version's fields into the instance. Absent: refused. */
  readonly migrations?: Readonly<Record<number, (r: StateReader, o: T) => void>>;
  /** Runs after the fields are read (derived state rebuilt: an index, a stale flag). */
  readonly loaded?: (o: T) => void;
}

export function describe<T>(name: string, version: number, fields: readonly Field<T>[], more: Pick<StateDescription<T>, 'migrations' | 'loaded'> = {}): StateDescription<T> {
  return { name, version, fields, ...more };
}

export function writeState<T>(w: StateWriter, desc: StateDescription<T>, o: T): void {
  w.str(desc.name);
  w.u16(desc.version);
  const lenAt = w.offset;
  w.u32(0);
  for (const f of desc.fields) f.write(w, o);
  w.patchU32(lenAt, w.offset - lenAt - 4);
}

export function readState<T>(r: StateReader, desc: StateDescription<T>, o: T): void {
  const at = r.offset;
  const name = r.str();
  if (name !== desc.name) throw new StateError(`expected the state of ${desc.name} at byte ${at}, found ${JSON.stringify(name.slice(0, 40))}`);
  const version = r.u16();
  const length = r.u32();
  const from = r.offset;
  if (version > desc.version) throw new StateError(`${desc.name} at byte ${at} is version ${version}, written by a newer dmaemu: this one reads up to version ${desc.version}`);
  if (version < desc.version) {
    const migrate = desc.migrations?.[version];
    if (!migrate) throw new StateError(`${desc.name} at byte ${at} is version ${version}, which this dmaemu no longer reads (it reads version ${desc.version})`);
    migrate(r, o);
  } else {
    for (const f of desc.fields) {
      try {
        f.read(r, o);
      } catch (err) {
        if (err instanceof StateError) throw new StateError(`${desc.name}.${f.name}: ${err.message}`);
        throw err;
      }
    }
  }
  if (r.offset - from !== length) throw new StateError(`${desc.name} at byte ${at}: its fields took ${r.offset - from} bytes, the state says ${length}`);
  desc.loaded?.(o);
}
