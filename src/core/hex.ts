// Hex formatting of DMA addresses. IOVAs can reach 2^64, past exact doubles, so addresses are
// kept as (pfn, byte offset) and only turned into BigInt when they are that large.

const SAFE = Number.MAX_SAFE_INTEGER;

// 16-bit pieces from two tables (padded and not): Number#toString(16) takes V8's slow
// double-to-radix path above 2^31 and was the largest cost of a map/unmap pair (≈0.6 µs).
const PADDED: string[] = new Array<string>(65536);
const BARE: string[] = new Array<string>(65536);
for (let i = 0; i < 65536; i++) {
  BARE[i] = i.toString(16);
  PADDED[i] = (BARE[i] as string).padStart(4, '0');
}

export function hex(v: number | bigint): string {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? hexSafe(v) : '0x' + v.toString(16);
}

/** A non-negative safe integer as lowercase "0x…". */
export function hexSafe(v: number): string {
  const hi = Math.floor(v / 4294967296);
  const lo = v >>> 0;
  if (hi === 0) return lo < 65536 ? '0x' + (BARE[lo] as string) : '0x' + (BARE[lo >>> 16] as string) + (PADDED[lo & 65535] as string);
  const low = (PADDED[lo >>> 16] as string) + (PADDED[lo & 65535] as string);
  if (hi < 65536) return '0x' + (BARE[hi] as string) + low;
  return '0x' + (BARE[hi >>> 16] as string) + (PADDED[hi & 65535] as string) + low;
}

/** pfn · 2^shift + off, as lowercase hex. */
export function hexAddr(pfn: number, shift: number, off: number): string {
  const scaled = pfn * 2 ** shift;
  if (scaled <= SAFE - off) return hexSafe(scaled + off);
  return '0x' + ((BigInt(pfn) << BigInt(shift)) + BigInt(off)).toString(16);
}

/** DMA_MAPPING_ERROR */
export const DMA_MAPPING_ERROR_HEX = '0xffffffffffffffff';
