// client/schema.ts is what openapi-typescript makes of the app's /openapi.json today: a route
// or schema changed without regenerating would hand harness authors stale types.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { SCHEMA_FILE, schemaSource } from '../client/generate.js';

t.test('client/schema.ts matches the OpenAPI document the app serves', async (t) => {
  const fresh = await schemaSource();
  const committed = readFileSync(SCHEMA_FILE, 'utf8');
  if (fresh !== committed) {
    const a = committed.split('\n');
    const b = fresh.split('\n');
    let i = 0;
    while (i < a.length && a[i] === b[i]) i++;
    t.fail(`client/schema.ts is stale (first difference at line ${i + 1}): run npm run client:generate`, {
      committed: a.slice(i, i + 5).join('\n'),
      generated: b.slice(i, i + 5).join('\n'),
    });
  } else t.pass('up to date');
  // Not vacuous: the generated types name the contract's paths.
  t.match(fresh, /"\/v1\/sessions\/\{id\}\/map_sg"/);
});
