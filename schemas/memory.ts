// Memory and the device's view (API.md): what the CPU and the device each see.
import { z } from 'zod';
import { AddressIn, AddressOut, PhysIn, DebugFinding } from './common.js';

const Base64 = z.base64().max(1 << 22).meta({ description: 'Base64 bytes (at most 3 MiB decoded per call)' });
const ReadLength = z.number().int().min(1).max(1 << 20).meta({ description: 'Bytes, at most 1 MiB per call' });

export const CpuWriteBody = z.strictObject({ phys: PhysIn, data: Base64 }).meta({ id: 'CpuWriteRequest' });
export const CpuReadBody = z.strictObject({ phys: PhysIn, length: ReadLength }).meta({ id: 'CpuReadRequest' });
export const DeviceWriteBody = z.strictObject({ dma_address: AddressIn, data: Base64 }).meta({ id: 'DeviceWriteRequest' });
export const DeviceReadBody = z.strictObject({ dma_address: AddressIn, length: ReadLength }).meta({ id: 'DeviceReadRequest' });

export const Fault = z
  .object({
    seq: z.number().int(),
    dma_address: AddressOut,
    access: z.enum(['read', 'write']),
    reason: z.string(),
    length: z.number().int(),
  })
  .meta({ id: 'Fault' });

export const MemoryResult = z
  .object({
    data: z.string().optional().meta({ description: 'Base64 of what was read' }),
    written: z.number().int().optional(),
    fault: Fault.optional(),
    debug: z.array(DebugFinding).optional(),
  })
  .meta({ id: 'MemoryResult' });
