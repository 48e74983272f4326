// API.md "Memory and the device's view": the CPU through its cache, the device through the IOMMU.
// One route per `memory` entry of the call table (src/service/calls.ts).
import type { FastifyPluginAsync } from 'fastify';
import { callRoute } from './route-kit.js';
import { CALL_SPECS } from '../src/service/calls.js';

export const memoryPlugin: FastifyPluginAsync = async (app) => {
  for (const spec of CALL_SPECS) if (spec.tag === 'memory') callRoute(app, spec);
};
