// Wire primitives shared by every schema: addresses, directions, the error bodies.
// Addresses travel as lowercase hex strings (they reach 2^64); on input a non-negative safe
// integer is accepted too. Request schemas parse them to bigint, so the core never sees text.
import { z } from 'zod';
import { DMA_DIRECTIONS, KERNEL_ERRNOS } from '../src/core/constants.js';
import type { DebugFinding as CoreDebugFinding } from '../src/core/dma-debug.js';
import type { MapFailure } from '../src/core/mapping.js';
import type { Assert, Exact } from './exact.js';

const HEX64 = /^0[xX][0-9a-fA-F]{1,16}$/;

/** A 64-bit address or mask on input: "0x…" (≤ 16 hex digits) or a safe integer → bigint. */
export const AddressIn = z
  .union([
    z.string().regex(HEX64, 'must be a hex string like "0x80001200" (at most 64 bits)'),
    z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  ])
  .transform((v) => BigInt(v))
  .meta({ description: 'Hex string ("0x80001200", at most 64 bits) or a non-negative safe integer', example: '0x80001200' });

/** PHYS_MASK: emulated physical addresses have at most 52 bits (arm64's largest PA). */
export const PHYS_LIMIT = 2 ** 52;

/** A physical byte address on input: hex string or safe integer below 2^52 → number. */
export const PhysIn = z
  .union([
    z.string().regex(/^0[xX][0-9a-fA-F]{1,13}$/, 'must be a hex string like "0x80001200" (below 2^52)'),
    z.number().int().min(0).max(PHYS_LIMIT - 1),
  ])
  // At most 13 hex digits or a number below 2^52: already under PHYS_LIMIT, no refine needed
  // (a refine after the transform cost a third of parsing a scatterlist entry).
  .transform((v) => (typeof v === 'number' ? v : Number.parseInt(v.slice(2), 16)))
  .meta({ description: 'Physical byte address below 2^52: hex string or safe integer', example: '0x80001200' });

/** A 64-bit value on output: lowercase hex string. */
export const AddressOut = z.string().regex(/^0x[0-9a-f]+$/).meta({ example: '0xffffc000' });

export const Direction = z
  .enum(DMA_DIRECTIONS)
  .meta({ description: 'DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DMA_FROM_DEVICE, DMA_NONE' });

/** Handles are small integers, or in /batch a reference to an earlier op's handle. */
export const Handle = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).meta({ description: 'A handle returned by a map or alloc call' });

/** unsigned int lengths, as in struct scatterlist. */
export const Length32 = z.number().int().min(1).max(0xffffffff);

export const KernelError = z
  .object({
    errno: z.enum(KERNEL_ERRNOS),
    message: z.string(),
  })
  .meta({ description: 'A failure Linux itself reports (the HTTP status stays 200)' });
type _KernelErrorIsMapFailure = Assert<Exact<MapFailure, z.output<typeof KernelError>>>;

export const DebugFinding = z
  .object({
    seq: z.number().int().meta({ description: 'Order of the finding within the session' }),
    check: z.string().meta({ description: 'Which kernel/dma/debug.c check fired' }),
    message: z.string().meta({ description: "The kernel's own words where it has them" }),
    handle: z.number().int().nullable(),
  })
  .meta({ id: 'DebugFinding' });
type _DebugFindingIsCore = Assert<Exact<CoreDebugFinding, z.output<typeof DebugFinding>>>;

export const ErrorBody = z
  .object({
    statusCode: z.number().int(),
    error: z.string(),
    code: z.string(),
    message: z.string(),
  })
  .meta({ id: 'Error', description: "Fastify's error shape; `code` is stable (see README)" });

export const PageRow = z.object({ iova: AddressOut, phys: AddressOut });

export const IovaRange = z.object({
  start: AddressOut,
  size: z.number().int().meta({ description: 'Bytes' }),
});
