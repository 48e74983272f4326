// API.md "Memory and the device's view": the CPU through its cache, the device through the IOMMU.
import type { FastifyPluginAsync } from 'fastify';
import * as S from '../schemas/index.js';
import { sessionPost } from './route-kit.js';

export const memoryPlugin: FastifyPluginAsync = async (app) => {
  sessionPost(
    app,
    { path: 'cpu/write', tag: 'memory', summary: "CPU stores (into its cache when the device isn't coherent)", body: S.CpuWriteBody, result: S.MemoryResult },
    (s, body) => s.cpuWrite(body),
  );
  sessionPost(
    app,
    { path: 'cpu/read', tag: 'memory', summary: 'CPU loads: what the CPU sees, stale lines included', body: S.CpuReadBody, result: S.MemoryResult },
    (s, body) => s.cpuRead(body),
  );
  sessionPost(
    app,
    { path: 'device/write', tag: 'memory', summary: 'Device DMA write through the IOMMU (or swiotlb); a fault instead of data when Linux would fault', body: S.DeviceWriteBody, result: S.MemoryResult },
    (s, body) => s.deviceWrite(body),
  );
  sessionPost(
    app,
    { path: 'device/read', tag: 'memory', summary: 'Device DMA read through the IOMMU (or swiotlb)', body: S.DeviceReadBody, result: S.MemoryResult },
    (s, body) => s.deviceRead(body),
  );
};
