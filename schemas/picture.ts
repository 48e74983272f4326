// The IOVA picture's query (GET /v1/sessions/{id}/iova.svg): a window of the IOVA space, the
// image width and the scale. Addresses as everywhere on this wire: "0x…" or a safe integer.
import { z } from 'zod';
import type { Scale } from '../src/core/iova-picture.js';
import type { Assert, Exact } from './exact.js';

const QueryAddress = z
  .string()
  .regex(/^(0[xX][0-9a-fA-F]{1,16}|[0-9]{1,16})$/, 'must be a hex string like "0xfff00000" (at most 64 bits) or a decimal integer')
  .transform((v) => BigInt(v))
  .refine((v) => v < 1n << 64n, 'must fit in 64 bits');

export const IovaSvgQuery = z
  .strictObject({
    start: QueryAddress.optional().meta({ description: 'First IOVA shown (default: the aperture start; 0 without an IOMMU)', example: '0xfff00000' }),
    end: QueryAddress.optional().meta({ description: 'Last IOVA shown, inclusive (default: the aperture end; dma_mask without an IOMMU)', example: '0xffffffff' }),
    width: z.coerce.number().int().min(320).max(8192).default(1200).meta({ description: 'Image width in pixels (320..8192, default 1200)' }),
    scale: z
      .enum(['log', 'linear'])
      .optional()
      .meta({ description: 'log: both ends of each side of 4 GiB magnified (the default without start/end); linear: the default for a zoom window' }),
  })
  .refine((q) => q.start === undefined || q.end === undefined || q.start <= q.end, { path: ['end'], message: 'must not be below start' });

export type IovaSvgQueryInput = z.output<typeof IovaSvgQuery>;
type _ScaleIsCore = Assert<Exact<Scale, NonNullable<IovaSvgQueryInput['scale']>>>;
