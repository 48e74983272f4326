// Makes docs/ui.png from the real page (`npm run docs:ui-png`): a service on 127.0.0.1 (port 0),
// the explorer in headless Chromium (test/helpers/chromium.ts finds or unpacks it), the 2015
// thread's {64k, 16k, 64k} list mapped in layout linux and then in the three layouts side by
// side, the page captured whole. Run it after a change to ui/ so the picture in README.md and
// docs/ui.md is the page as it is.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp } from '../src/service/app.js';
import { launchChromium } from '../test/helpers/chromium.js';

export const UI_PNG = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../docs/ui.png');
const LIST = '64K@0x90000000\n16K@0x91000000\n64K@0x92000000';

/** Writes the screenshot to `file`; returns its size in CSS pixels. */
export async function screenshotUi(file: string): Promise<{ width: number; height: number }> {
  const app = await buildApp({ logLevel: 'silent', dataDir: null });
  const browser = await launchChromium();
  try {
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(20_000);
    await page.goto(`${url}/ui`);
    await page.click('#create');
    await page.locator('#session[data-id]').waitFor();
    await page.fill('#sg textarea[name=entries]', LIST);
    await page.click('#map-sg');
    await page.locator('#picture svg').waitFor();
    await page.click('#compare');
    await page.locator('#compare-out svg').first().waitFor();
    await page.screenshot({ path: file, fullPage: true });
    // A string: this project compiles without the DOM's types.
    return await page.evaluate<{ width: number; height: number }>('({ width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight })');
  } finally {
    await browser.close();
    await app.close();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const size = await screenshotUi(UI_PNG);
  console.log(`wrote ${path.relative(process.cwd(), UI_PNG)} (${size.width}×${size.height} CSS px)`);
}
