// Compile-time ties between a wire schema and the core type it mirrors. The core keeps its own
// interfaces (it must not import zod) and the wire's come from zod; where both describe one
// shape, the schema file states `type _X = Assert<Exact<Core, z.output<typeof Schema>>>`, so a
// field added, dropped or retyped on one side only fails `tsc` ("'false' does not satisfy the
// constraint 'true'") instead of drifting.

/** true when A and B are mutually assignable and name the same keys (optional ones included). */
export type Exact<A, B> = [A] extends [B]
  ? [B] extends [A]
    ? [keyof A] extends [keyof B]
      ? [keyof B] extends [keyof A]
        ? true
        : false
      : false
    : false
  : false;

/** Compiles only when T is `true`. */
export type Assert<T extends true> = T;
