// Swagger UI at /docs in a real headless Chromium (test/helpers/chromium.ts finds or unpacks
// one; driven by playwright-core), used as a first-time reader would: for each operation in
// order (create a session, map_sg, sync, unmap, trace export, compare, delete) open it, press
// "Try it out", type nothing but the session id the first answer gave, press "Execute", and see
// a success. The bodies are the document's own examples (the 2015 thread's {64k, 16k, 64k} list,
// then sync, unmap of handle 1). A screenshot of the map_sg answer is kept in test-output/ for a
// human to look at. No Chromium is a failure, not a skip.
import t from 'tap';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Locator } from 'playwright-core';
import { buildApp } from '../src/service/app.js';
import { launchChromium } from './helpers/chromium.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outDir = path.join(root, 'test-output');
const screenshot = path.join(outDir, 'swagger-ui-map_sg.png');

/** The operations a reader tries first, in order; `id`: the operation takes the session id. */
const STEPS = [
  { op: 'create_session', id: false, status: '201' },
  { op: 'map_sg', id: true, status: '200' },
  { op: 'sync', id: true, status: '200' },
  { op: 'unmap', id: true, status: '200' },
  { op: 'get_trace', id: true, status: '200' },
  { op: 'compare', id: false, status: '200' },
  { op: 'delete_session', id: true, status: '200' },
] as const;

t.test('Swagger UI: Try it out → Execute succeeds on the first click for create, map_sg, sync, unmap, trace, compare, delete', async (t) => {
  const app = await buildApp({ logLevel: 'silent' });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.close());

  const browser: Browser = await launchChromium();
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  page.setDefaultTimeout(20_000);

  await page.goto(`${url}/docs`);
  // The title shows the package's version (it said 1.0.0 while package.json said 0.1.0).
  await page.locator('.info .version').first().waitFor();
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
  t.equal((await page.locator('.info .version').first().innerText()).trim(), pkg.version, 'Swagger UI shows the package version');

  let id = '';
  const answers: Record<string, string> = {};
  for (const step of STEPS) {
    const op: Locator = page.locator(`[id^="operations-"][id$="-${step.op}"]`);
    await op.locator('.opblock-summary').first().click();
    await op.locator('button.try-out__btn').click();
    if (step.id) await op.locator('tr[data-param-name="id"] input').fill(id);
    await op.locator('button.execute').click();
    const live = op.locator('.live-responses-table');
    const status = live.locator('tbody td.response-col_status').first();
    await status.waitFor();
    const body = (await live.locator('.response-col_description pre').first().innerText()).trim();
    t.equal((await status.innerText()).trim(), step.status, `${step.op}: the page shows ${step.status}`, { body });
    answers[step.op] = body;
    if (step.op === 'create_session') id = (JSON.parse(body) as { id: string }).id;
    if (step.op === 'map_sg') {
      mkdirSync(outDir, { recursive: true });
      await live.scrollIntoViewIfNeeded();
      await op.screenshot({ path: screenshot });
    }
    if (step.id) t.match(await op.locator('.request-url pre').first().innerText(), `/v1/sessions/${id}`, `${step.op}: the call went to the session just created`);
  }
  t.ok(existsSync(screenshot), `screenshot saved to ${path.relative(root, screenshot)}`);

  // Worked by hand (semantics §3, §5): 36 granules, aligned to 64 below the 32-bit limit:
  // pfn (0x100000 − 36) & ~63 = 0xfffc0; __finalise_sg joins nothing past 64 KiB (no dma_parms):
  // three segments back to back.
  const mapped = JSON.parse(answers.map_sg ?? '{}') as { handle: number; segments: unknown };
  t.same(mapped.segments, [
    { dma_address: '0xfffc0000', dma_length: 65536 },
    { dma_address: '0xfffd0000', dma_length: 16384 },
    { dma_address: '0xfffd4000', dma_length: 65536 },
  ]);
  t.equal(mapped.handle, 1, 'the first mapping of a session is handle 1, the one the sync and unmap examples name');
  // §6: a to_device mapping needs nothing for the CPU (arch_sync_dma_for_cpu skips DMA_TO_DEVICE).
  t.match(answers.sync, /"cache":\s*"none"/);
  t.match(answers.get_trace, /"op":\s*"unmap"/, 'the trace holds the calls just made');
  t.match(answers.compare, /"linux-4\.4"/, 'compare answers one column per layout');
  t.match(answers.delete_session, /"leaked_mappings":\s*0/, 'nothing leaked: the example unmapped what it mapped');
});
