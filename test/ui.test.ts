// The explorer page (/ui) in a real headless Chromium (test/helpers/chromium.ts; no Chromium is
// a failure, not a skip), against a real server on 127.0.0.1: a person creates a session in
// each layout, maps the 2015 thread's {64K, 16K, 64K} list, and reads the segments table, the
// IOVA picture, the findings and faults; then maps the same list in the three layouts side by
// side. Screenshots go to test-output/ (gitignored) for a human to look at.
import t from 'tap';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Locator, Page } from 'playwright-core';
import { buildApp } from '../src/service/app.js';
import { launchChromium } from './helpers/chromium.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outDir = path.join(root, 'test-output');
mkdirSync(outDir, { recursive: true });

const LIST = '64K@0x90000000\n16K@0x91000000\n64K@0x92000000';

// Hand-worked (README "Walk-through"; defaults: platform device, 32-bit dma_mask, 4 KiB granule,
// max_segment_size 64 KiB) — segments and the IOVA allocated:
//  linux: the entries laid back to back, 64K + 16K + 64K = 144 KiB = 36 pages; 36 ≥ 32 is not
//    rounded, aligned to roundup_pow_of_two(36) = 64 pages below the 32-bit limit:
//    alignDown(0x100000 − 36, 0x40) = pfn 0xfffc0. __finalise_sg: 64K + 16K > 64K and
//    16K + 64K > 64K, so three segments at 0xfffc0000, 0xfffd0000, 0xfffd4000.
//  linux-4.4: each entry starts aligned to its own power-of-two size: 0xfffc0000 (64K),
//    0xfffd0000 (16K), next 64K-aligned 0xfffe0000; 192 KiB rounded up to 256 KiB = 64 pages:
//    alignDown(0x100000 − 64, 64) = pfn 0xfffc0, so 0xfffc0000 + 256 KiB.
//  arm-legacy: one bitmap allocation per chunk (16K + 64K would pass max_segment_size), bottom
//    up from the aperture base 0, each aligned to its order: 0x0 (64K), 0x10000 (16K, 4-page
//    aligned), 0x20000 (64K, 16-page aligned after 0x14000).
// Page rows (one per 4 KiB granule the IOMMU maps): 16 + 4 + 16 = 36, except linux-4.4, where
// the 48 KiB pad that moves the third entry to 0xfffe0000 is added to the second entry's length
// (prev->length += pad_len) and iommu_map_sg maps it whole: 16 + 16 + 16 = 48.
const EXPECTED: Record<string, { segments: [string, string][]; iova: [string, string][]; pages: number }> = {
  linux: { segments: [['0xfffc0000', '65536'], ['0xfffd0000', '16384'], ['0xfffd4000', '65536']], iova: [['0xfffc0000', '147456']], pages: 36 },
  'linux-4.4': { segments: [['0xfffc0000', '65536'], ['0xfffd0000', '16384'], ['0xfffe0000', '65536']], iova: [['0xfffc0000', '262144']], pages: 48 },
  'arm-legacy': {
    segments: [['0x0', '65536'], ['0x10000', '16384'], ['0x20000', '65536']],
    iova: [['0x0', '65536'], ['0x10000', '16384'], ['0x20000', '65536']],
    pages: 36,
  },
};

/**
 * The part of a DOM element the in-page functions read: the tests compile without the DOM
 * lib (the service runs on Node), where Element would be an unresolved type.
 */
interface Attributed {
  getAttribute(name: string): string | null;
}

async function cells(table: Locator): Promise<[string, string][]> {
  const rows = await table.locator('tbody tr').all();
  const out: [string, string][] = [];
  for (const r of rows) out.push([(await r.locator('td.addr').innerText()).trim(), (await r.locator('td.len').innerText()).trim()]);
  return out;
}

async function idle(page: Page): Promise<void> {
  // A string: the test is compiled without the DOM's types; the page sets these (ui/explorer.js guarded()).
  await page.waitForFunction("document.body.dataset.ready === 'true' && document.body.dataset.busy === undefined");
}

const app = await buildApp({ logLevel: 'silent' });
const url = await app.listen({ host: '127.0.0.1', port: 0 });
t.teardown(() => app.close());
const browser: Browser = await launchChromium();
t.teardown(() => browser.close());

for (const layout of Object.keys(EXPECTED)) {
  t.test(`/ui, layout ${layout}: map_sg of the thread's list shows the hand-worked segments, IOVA and picture`, async (t) => {
    const want = EXPECTED[layout] as (typeof EXPECTED)[string];
    const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
    t.teardown(() => page.close());
    page.setDefaultTimeout(20_000);
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${url}/ui`);
    await idle(page);
    await page.selectOption('#device select[name=layout]', layout);
    await page.click('#create');
    await idle(page);
    const id = await page.locator('#session').getAttribute('data-id');
    t.ok(id, 'the page shows the new session');
    await page.fill('#sg textarea[name=entries]', LIST);
    await page.click('#map-sg');
    await idle(page);
    t.equal(await page.locator('#sg-error').innerText(), '', 'no error shown');

    const result = page.locator('#result');
    t.same(await cells(result.locator('table.segments')), want.segments, 'segments table');
    t.same(await cells(result.locator('table.iova')), want.iova, 'IOVA allocated');
    t.equal(await result.locator('table.pages tbody tr').count(), want.pages, `${want.pages} page rows`);

    // The picture is the service's SVG, inline: one direction span per allocation, at the
    // hand-worked addresses (arm-legacy's three chunks touch at the pixel level only when the
    // scale puts them in one column; check each allocation is inside a to_device span).
    const spans = await page.locator('#picture svg rect.span[data-lane="dir"]').evaluateAll((els: Attributed[]) =>
      els.map((e) => ({ cat: e.getAttribute('data-cat'), start: e.getAttribute('data-start') ?? '', end: e.getAttribute('data-end') ?? '' })),
    );
    for (const [start, size] of want.iova) {
      const s = BigInt(start);
      const e = s + BigInt(size);
      t.ok(
        spans.some((x) => x.cat === 'to_device' && BigInt(x.start) <= s && BigInt(x.end) >= e),
        `the picture draws ${start}+${size} as to_device`,
      );
    }
    if (layout === 'linux') {
      t.same(spans, [{ cat: 'to_device', start: '0xfffc0000', end: '0xfffe4000' }], 'linux: exactly one drawn range, the 144 KiB allocation');
      // Clicking the range zooms the picture to exactly it (linear scale, the range filling the bar).
      await page.locator('#picture svg rect.span[data-lane="dir"]').click();
      await idle(page);
      const svg = page.locator('#picture svg');
      t.same(
        [await svg.getAttribute('data-window-start'), await svg.getAttribute('data-window-end'), await svg.getAttribute('data-scale')],
        ['0xfffc0000', '0xfffe3fff', 'linear'],
        'zoomed to the clicked range',
      );
      await page.screenshot({ path: path.join(outDir, 'ui-linux-zoomed.png'), fullPage: true });
      await page.click('#zoom-reset');
      await idle(page);
      t.equal(await svg.getAttribute('data-window-end'), '0xffffffffffff', 'back to the whole aperture');
      // A device read of an unmapped IOVA: a translation fault, listed under faults.
      await page.fill('#device-access input[name=dma_address]', '0x10000');
      await page.click('#device-read');
      await idle(page);
      t.match(await page.locator('#access').innerText(), /fault: read at 0x10000/);
      t.match(await page.locator('#faults').innerText(), /read at 0x10000: unmapped IOVA/);
    }
    await page.screenshot({ path: path.join(outDir, `ui-${layout}.png`), fullPage: true });
    t.same(errors, [], 'no script errors');
  });
}

t.test('/ui: "Same list in the three layouts" shows the three hand-worked tables side by side', async (t) => {
  const page = await browser.newPage({ viewport: { width: 1700, height: 1200 } });
  t.teardown(() => page.close());
  page.setDefaultTimeout(20_000);
  await page.goto(`${url}/ui`);
  await idle(page);
  await page.fill('#sg textarea[name=entries]', LIST);
  await page.uncheck('#sg input[name=pages]');
  await page.click('#compare');
  await idle(page);
  for (const [layout, want] of Object.entries(EXPECTED)) {
    const col = page.locator(`#compare-out section[data-layout="${layout}"]`);
    t.same(await cells(col.locator('table.segments')), want.segments, `${layout}: segments`);
    t.same(await cells(col.locator('table.iova')), want.iova, `${layout}: IOVA allocated`);
    t.ok((await col.locator('svg rect.span').count()) > 0, `${layout}: its picture draws the mapping`);
  }
  // One axis for all three: the window holding every aperture (arm-legacy's 0–0xffffffff lies
  // inside linux's 0–0xffffffffffff, the default 48-bit aperture), so the same address is at the
  // same x in each picture.
  const windows = await page.locator('#compare-out svg').evaluateAll((els: Attributed[]) => els.map((e) => `${e.getAttribute('data-window-start') ?? ''}–${e.getAttribute('data-window-end') ?? ''}`));
  t.same(windows, ['0x0–0xffffffffffff', '0x0–0xffffffffffff', '0x0–0xffffffffffff'], 'the three pictures share one window (its last byte included)');
  await page.locator('#compare-out').scrollIntoViewIfNeeded();
  await page.screenshot({ path: path.join(outDir, 'ui-compare.png'), fullPage: true });
});

t.test('/ui: a malformed scatterlist line is reported in the page, naming the line', async (t) => {
  const page = await browser.newPage();
  t.teardown(() => page.close());
  await page.goto(`${url}/ui`);
  await idle(page);
  await page.fill('#sg textarea[name=entries]', '64K@0x90000000\n16K at 0x91000000');
  await page.click('#map-sg');
  await idle(page);
  t.match(await page.locator('#sg-error').innerText(), /^line 2: "16K at 0x91000000" is not length@phys/);
});

t.test('/ui: the stale-data walk-through by clicking: stale before sync for cpu, fresh after; a new session clears the old access line', async (t) => {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  t.teardown(() => page.close());
  page.setDefaultTimeout(20_000);
  await page.goto(`${url}/ui`);
  await idle(page);
  const click = async (sel: string): Promise<string> => {
    await page.click(sel);
    await idle(page);
    t.equal(await page.locator('#sg-error').innerText(), '', `${sel}: no error`);
    return page.locator('#access').innerText();
  };
  await page.uncheck('#device input[name=coherent]');
  await click('#create');
  // docs/walkthrough-stale-data.md, worked by the rules of linux-semantics.md §6 and §8.
  t.equal(await click('#cpu-write'), 'wrote 12 bytes', 'the CPU writes 12 bytes of 0x11 (into its cache)');
  t.equal(await click('#map-page-go'), 'handle 1 · dma_address 0xfffff000', '§5: one page, top-down from the 32-bit limit');
  t.equal(await page.inputValue('#device-access input[name=dma_address]'), '0xfffff000', 'the device form now aims at the mapping');
  t.equal(await click('#device-write'), 'wrote 12 bytes', 'the device writes 12 bytes of 0xff into RAM');
  t.equal(await click('#cpu-read'), 'read ERERERERERERERER · cpu_access_device_owned', 'stale: the cached 0x11 line, and dma-debug flags the read');
  t.equal(await click('#sync'), 'handle 1 · cache invalidate · bounced 0', '§8: for_cpu of a from_device mapping invalidates');
  t.equal(await click('#cpu-read'), 'read ////////////////', 'fresh: the device\'s bytes');
  t.equal(await click('#device-read'), 'fault: read at 0xfffff000: read of a write-only mapping (permission fault: handle 1 mapped from_device)', '§8 enforce_read: no IOMMU_READ on a from_device mapping');
  t.equal(await click('#unmap'), 'handle 1 unmapped');
  t.same(
    await page.locator('#ops-log li').evaluateAll((els: Attributed[]) => els.map((e) => e.getAttribute('data-call'))),
    ['cpu/write', 'map_page', 'device/write', 'cpu/read', 'sync', 'cpu/read', 'device/read', 'unmap'],
    'the log lists every call in order',
  );
  t.match(await page.locator('#faults').innerText(), /read at 0xfffff000/);
  await click('#create');
  t.equal(await page.locator('#access').innerText(), '', 'Create session clears the previous session\'s access line');
  t.equal(await page.locator('#ops-log li').count(), 0, 'and its log');
  t.match(await page.locator('#faults').innerText(), /none/, 'and its faults');
});

t.test('GET / redirects a browser to the explorer', async (t) => {
  const r = await fetch(`${url}/`, { redirect: 'manual' });
  t.equal(r.status, 302);
  t.equal(r.headers.get('location'), '/ui');
});
