// Integer helpers for pfn arithmetic. pfns reach 2^52, past JavaScript's 32-bit bitwise
// operators, so these use exact float arithmetic on integers below 2^53.

/** roundup_pow_of_two(n), n ≥ 1. */
export function roundupPowOfTwo(n: number): number {
  if (n <= 0x40000000) return n <= 1 ? 1 : 1 << (32 - Math.clz32(n - 1)); // ≤ 2^30: no Math.pow
  let p = 0x40000000;
  while (p < n) p *= 2;
  return p;
}

/** order_base_2(n): ceil(log2(n)), n ≥ 1. */
export function orderBase2(n: number): number {
  if (n <= 0x40000000) return n <= 1 ? 0 : 32 - Math.clz32(n - 1);
  let o = 30;
  let p = 0x40000000;
  while (p < n) {
    p *= 2;
    o++;
  }
  return o;
}

/** ilog2(n): floor(log2(n)), n ≥ 1. */
export function ilog2(n: number): number {
  if (n < 0x100000000) return 31 - Math.clz32(n);
  let o = 32;
  let p = 0x200000000;
  while (p <= n) {
    p *= 2;
    o++;
  }
  return o;
}

/** x mod the power of two `a`, x ≥ 0 (`%` on doubles is an fmod call; for x < 2^31 < a the mask is all ones). */
export function modPow2(x: number, a: number): number {
  return x < 0x80000000 ? x & (a - 1) : x - Math.floor(x / a) * a;
}

/** x rounded down to a multiple of the power of two `a`; x ≥ 0. */
export function alignDown(x: number, a: number): number {
  return x - modPow2(x, a);
}

/** x rounded up to a multiple of the power of two `a`; x ≥ 0. */
export function alignUp(x: number, a: number): number {
  const r = modPow2(x, a);
  return r === 0 ? x : x + (a - r);
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && roundupPowOfTwo(n) === n;
}
