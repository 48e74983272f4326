// docs/ui.png is made by scripts/screenshot-ui.ts from the real page (`npm run docs:ui-png`):
// the script runs here into a temporary file and gives a PNG of the whole page, as wide as the
// committed one, so the picture README.md and docs/ui.md show can always be remade.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { UI_PNG, screenshotUi } from '../scripts/screenshot-ui.js';

/** Width and height from a PNG's IHDR chunk. */
function pngSize(buf: Buffer): { width: number; height: number } {
  if (buf.toString('latin1', 1, 4) !== 'PNG') throw new Error('not a PNG');
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

t.test('scripts/screenshot-ui.ts makes a whole-page PNG of the explorer, as wide as docs/ui.png', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'dmaemu-ui-png-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'ui.png');
  const css = await screenshotUi(file);
  const made = pngSize(readFileSync(file));
  t.same(made, css, 'the PNG is the whole page, one pixel per CSS pixel');
  t.ok(made.height > 900, 'longer than the viewport: the page down to the three layouts side by side');
  t.equal(pngSize(readFileSync(UI_PNG)).width, made.width, 'docs/ui.png was made by this script');
});
