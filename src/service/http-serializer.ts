// Response serialization through Fastify's own fast-json-stringify, compiled once per route
// from the zod response schema (z.toJSONSchema, output side): the zod schemas stay the single
// definition, and the hot path pays a generated stringify instead of a zod encode + a generic
// JSON.stringify. Properties a schema does not name are dropped, so nothing internal leaks.

import fastJson from 'fast-json-stringify';
import { z } from 'zod';

type Schema = z.ZodType | { properties?: unknown };

export function serializerCompiler({ schema }: { schema: unknown }): (data: unknown) => string {
  const zs = (schema instanceof z.ZodType ? schema : (schema as Schema & { properties: unknown }).properties) as z.ZodType;
  if (!(zs instanceof z.ZodType)) throw new Error('response schemas must be zod schemas');
  const json = z.toJSONSchema(zs, { io: 'output', target: 'draft-7' }) as Record<string, unknown>;
  delete json.$schema;
  stripPropertyNames(json);
  return fastJson(json as unknown as Parameters<typeof fastJson>[0]);
}

/** fast-json-stringify's strict schema compiler rejects propertyNames (z.record emits it); it never affects output. */
function stripPropertyNames(node: unknown): void {
  if (typeof node !== 'object' || node === null) return;
  if (!Array.isArray(node)) delete (node as Record<string, unknown>).propertyNames;
  for (const v of Object.values(node)) stripPropertyNames(v);
}
