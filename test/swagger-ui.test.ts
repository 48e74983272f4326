// Swagger UI at /docs in a real headless Chromium (test/helpers/chromium.ts finds or unpacks
// one; driven by playwright-core): a person exploring dmaemu opens map_sg, presses "Try it
// out", fills in a session created by this test and the contract's example scatterlist,
// executes, and sees a 200 whose body holds the `segments` table. A screenshot is kept in
// test-output/ for a human to look at. No Chromium is a failure, not a skip.
import t from 'tap';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { buildApp } from '../src/service/app.js';
import { launchChromium } from './helpers/chromium.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outDir = path.join(root, 'test-output');
const screenshot = path.join(outDir, 'swagger-ui-map_sg.png');

t.test('Swagger UI: map_sg → Try it out → Execute against a live session shows 200 with segments', async (t) => {
  const app = await buildApp({ logLevel: 'silent' });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.close());

  const created = await fetch(`${url}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  t.equal(created.status, 201);
  const { id } = (await created.json()) as { id: string };

  const browser: Browser = await launchChromium();
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  page.setDefaultTimeout(20_000);

  await page.goto(`${url}/docs`);
  const op = page.locator('#operations-dma-map_sg');
  await op.waitFor();
  // The title shows the package's version (it said 1.0.0 while package.json said 0.1.0).
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
  t.equal((await page.locator('.info .version').first().innerText()).trim(), pkg.version, 'Swagger UI shows the package version');
  await op.locator('.opblock-summary').first().click();
  await op.locator('button.try-out__btn').click();

  await op.locator('tr[data-param-name="id"] input').fill(id);
  const body = { dir: 'to_device', sg: [{ phys: '0x80001200', length: 3584 }, { phys: '0x90000000', length: 8192 }] };
  await op.locator('textarea.body-param__text').fill(JSON.stringify(body, null, 2));
  await op.locator('button.execute').click();

  const live = op.locator('.live-responses-table');
  const status = live.locator('tbody td.response-col_status').first();
  await status.waitFor();
  t.equal((await status.innerText()).trim(), '200', 'the page shows status 200');
  const responseBody = (await live.locator('.response-col_description pre').first().innerText()).trim();
  t.match(responseBody, /"segments"/, 'the response body holds segments');
  // Worked by hand (semantics §3): one merged segment at 0xffffc200 of 3584 + 8192 bytes.
  t.match(responseBody, /"dma_address":\s*"0xffffc200"/);
  t.match(responseBody, /"dma_length":\s*11776/);
  const requestUrl = await op.locator('.request-url pre').first().innerText();
  t.match(requestUrl, `/v1/sessions/${id}/map_sg`, 'the call went to the test’s session');

  mkdirSync(outDir, { recursive: true });
  await live.scrollIntoViewIfNeeded();
  await op.screenshot({ path: screenshot });
  t.ok(existsSync(screenshot), `screenshot saved to ${path.relative(root, screenshot)}`);

  // The mapping the browser made is really there.
  const rows = (await (await fetch(`${url}/v1/sessions/${id}/mappings`)).json()) as { mappings: { handle: number }[] };
  t.equal(rows.mappings.length, 1, 'the session now holds the mapping');
});
