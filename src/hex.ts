// Hex formatting of DMA addresses. IOVAs can reach 2^64, past exact doubles, so addresses are
// kept as (pfn, byte offset) and only turned into BigInt when they are that large.

const SAFE = Number.MAX_SAFE_INTEGER;

export function hex(v: number | bigint): string {
  return '0x' + v.toString(16);
}

/** pfn · 2^shift + off, as lowercase hex. */
export function hexAddr(pfn: number, shift: number, off: number): string {
  const scaled = pfn * 2 ** shift;
  if (scaled <= SAFE - off) return '0x' + (scaled + off).toString(16);
  return '0x' + ((BigInt(pfn) << BigInt(shift)) + BigInt(off)).toString(16);
}

export function toBig(pfn: number, shift: number, off: number): bigint {
  return (BigInt(pfn) << BigInt(shift)) + BigInt(off);
}

/** DMA_MAPPING_ERROR */
export const DMA_MAPPING_ERROR_HEX = '0xffffffffffffffff';
