// Takes the README's picture of the HTML report: opens a report page written by
// `blockwatch run` (normally the demo's, see scripts/report_screenshot.sh) in
// headless Chromium through the viewer's puppeteer-core, selects the top hotspot
// so its stack shows, and saves a PNG of the first screenful (1500 x 1200: the
// summary, flame graph and top of the table; the whole page makes a PNG too big
// for the README). Usage:
//   node scripts/report_screenshot.mjs REPORT.html OUT.png [CHROMIUM]
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const [reportPath, outPath, chromium = '/usr/bin/chromium'] = process.argv.slice(2);
if (!reportPath || !outPath) {
  console.error('usage: node scripts/report_screenshot.mjs REPORT.html OUT.png [CHROMIUM]');
  process.exit(2);
}
const viewerDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'viewer');
const puppeteer = createRequire(join(viewerDir, 'package.json'))('puppeteer-core');

const profileDir = mkdtempSync(join(tmpdir(), 'bw-screenshot-'));
const browser = await puppeteer.launch({
  executablePath: chromium,
  headless: true,
  userDataDir: profileDir,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--font-render-hinting=none'],
});
try {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  // The width the viewer's layout is designed for (docs/viewer.md).
  await page.setViewport({ width: 1500, height: 1200 });
  await page.goto(pathToFileURL(resolve(reportPath)).href, { waitUntil: 'load' });
  await page.waitForSelector('body[data-ready="1"]', { timeout: 60000 });
  const firstRow = await page.$('#hotspot-table tr.row[data-index="0"]');
  if (firstRow) await firstRow.click();
  // Let the flame graph's transition finish before the picture.
  await page.evaluate(() => new Promise((r) => setTimeout(r, 600)));
  // Clicking a row scrolls it into view; the picture starts at the page's top.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: outPath });
  if (errors.length) throw new Error(`the page reported errors:\n${errors.join('\n')}`);
  console.log(`${outPath}: ${statSync(outPath).size} bytes`);
} finally {
  await browser.close();
  rmSync(profileDir, { recursive: true, force: true });
}
