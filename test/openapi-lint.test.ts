// A third-party linter on the document the service serves: Redocly's `recommended` ruleset
// (@redocly/cli, a devDependency) over GET /openapi.json of a live server on 127.0.0.1. Every
// finding, error or warning, fails the test: security declared, a license, no unused components,
// a 2xx and a 4xx on every operation, examples that match their schemas, and the rest of the set.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildApp } from '../src/service/app.js';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const redocly = path.join(root, 'node_modules/@redocly/cli/bin/cli.js');

const dir = mkdtempSync(path.join(tmpdir(), 'dmaemu-lint-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

type Report = { totals: Record<string, number>; problems: { ruleId: string; severity: string; message: string; location: { pointer: string }[] }[] };

/** Redocly's findings on `text` as "severity rule at pointer: message" lines, and its totals. */
async function lint(text: string): Promise<{ problems: string[]; totals: Record<string, number> }> {
  const doc = path.join(dir, 'openapi.json');
  writeFileSync(doc, text);
  // --format=json: one problem per entry, whatever the severity; telemetry off (no network).
  const r = await run(process.execPath, [redocly, 'lint', '--extends=recommended', '--format=json', doc], {
    cwd: dir,
    env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
    maxBuffer: 64 << 20,
  }).catch((e: { stdout?: string; stderr?: string }) => ({ stdout: e.stdout ?? '', stderr: e.stderr ?? '' }));
  const report = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as Report;
  return { problems: report.problems.map((p) => `${p.severity} ${p.ruleId} at ${p.location[0]?.pointer ?? '?'}: ${p.message}`), totals: report.totals };
}

const app = await buildApp({ logLevel: 'silent' });
const url = await app.listen({ host: '127.0.0.1', port: 0 });
t.teardown(() => app.close());
const served = await (await fetch(`${url}/openapi.json`)).text();

t.test('Redocly recommended: no error and no warning on the live /openapi.json', async (t) => {
  const { problems, totals } = await lint(served);
  t.same(problems, [], 'no findings');
  t.same(totals, { errors: 0, warnings: 0, ignored: 0 });
});

t.test('the lint can fail: the document without its license, security and examples draws findings', async (t) => {
  const doc = JSON.parse(served) as { info: Record<string, unknown>; security?: unknown; paths: Record<string, Record<string, { requestBody?: { content: Record<string, { example?: unknown }> } }>> };
  delete doc.info.license;
  delete doc.security;
  const body = doc.paths['/v1/sessions/{id}/map_sg']?.post?.requestBody?.content['application/json'];
  if (body) body.example = { dir: 'sideways', sg: [] }; // not a direction, and an empty list
  const rules = new Set((await lint(JSON.stringify(doc))).problems.map((p) => p.split(' ')[1]));
  for (const rule of ['info-license', 'security-defined', 'no-invalid-media-type-examples']) t.ok(rules.has(rule), `${rule} is reported`);
});
