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
  nullableInsteadOfAnyOf(json);
  return fastJson(json as unknown as Parameters<typeof fastJson>[0]);
}

/**
 * zod writes `.nullable()` as `anyOf: [X, { type: 'null' }]`; fast-json-stringify serializes an
 * anyOf by running ajv over the value for each branch, for every value: a 100 000-row /mappings
 * page (whose `iova` is nullable, with hex patterns inside) spent 5 s of its 6 s there. The same
 * X with `nullable: true` serializes as one `=== null` test. Branches that are a $ref keep their
 * anyOf (fast-json-stringify reads nullable on the schema the $ref resolves to).
 */
function nullableInsteadOfAnyOf(node: unknown): void {
  if (typeof node !== 'object' || node === null) return;
  for (const v of Object.values(node)) nullableInsteadOfAnyOf(v);
  if (Array.isArray(node)) return;
  const o = node as Record<string, unknown>;
  const branches = o.anyOf;
  if (!Array.isArray(branches) || branches.length !== 2) return;
  const isNull = (b: unknown): boolean => typeof b === 'object' && b !== null && (b as Record<string, unknown>).type === 'null' && Object.keys(b).length === 1;
  const other = branches.find((b) => !isNull(b)) as Record<string, unknown> | undefined;
  if (!other || !branches.some(isNull) || '$ref' in other || 'anyOf' in other || 'oneOf' in other || 'allOf' in other) return;
  delete o.anyOf;
  Object.assign(o, other, { nullable: true });
}

/** fast-json-stringify's strict schema compiler rejects propertyNames (z.record emits it); it never affects output. */
function stripPropertyNames(node: unknown): void {
  if (typeof node !== 'object' || node === null) return;
  if (!Array.isArray(node)) delete (node as Record<string, unknown>).propertyNames;
  for (const v of Object.values(node)) stripPropertyNames(v);
}
