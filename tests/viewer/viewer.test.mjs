// Browser tests of the HTML report and live dashboard, in real headless Chromium
// (Debian's chromium driven by puppeteer-core; node's built-in test runner).
// Pages are written by the real C++ writer (blockwatch_render_report), so the
// embedding is covered too. Environment (set by CMake): BW_RENDER_REPORT,
// BW_VIEWER_DIR, BW_FIXTURES, BW_OUT_DIR, BW_CHROMIUM; optional BW_DEMO_REPORT (a
// JSON report of the demo) and BW_DOCS_SCREENSHOT (where to also save the README
// screenshot).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { generateReport } from './generate_report.mjs';

const env = (name) => {
  const v = process.env[name];
  assert.ok(v, `${name} must be set (run through ctest)`);
  return v;
};
const require = createRequire(join(env('BW_VIEWER_DIR'), 'package.json'));
const puppeteer = require('puppeteer-core');
const OUT_DIR = env('BW_OUT_DIR');
const FIXTURE = join(env('BW_FIXTURES'), 'order-server-report.json');

let browser;
let profileDir;  // Chromium's profile, removed again after the run

before(async () => {
  profileDir = mkdtempSync(join(tmpdir(), 'bw-chromium-'));
  browser = await puppeteer.launch({
    executablePath: env('BW_CHROMIUM'),
    headless: true,
    userDataDir: profileDir,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--font-render-hinting=none'],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (profileDir) rmSync(profileDir, { recursive: true, force: true });
});

// With the collector core built (BW_VIA_MODEL=1), pages show what the collector's
// JSON writer produces after reading the report back, not the file as written.
const VIA_MODEL = process.env.BW_VIA_MODEL === '1';

function render(jsonPath, name, { viaModel = VIA_MODEL } = {}) {
  const out = join(OUT_DIR, name);
  rmSync(out, { force: true });  // never test a page left by an earlier run
  execFileSync(env('BW_RENDER_REPORT'), [jsonPath, out, ...(viaModel ? ['--via-model'] : [])]);
  return out;
}

// Opens a page and records every console error, page error and failed request.
async function open(url, { width = 1500, height = 1000 } = {}) {
  const page = await browser.newPage();
  await page.setViewport({ width, height });
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()}`));
  const external = [];
  page.on('request', (r) => { if (/^https?:/.test(r.url()) && !r.url().startsWith('http://127.0.0.1')) external.push(r.url()); });
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForSelector('body[data-ready="1"]', { timeout: 60000 });
  return { page, errors, external };
}

const tableKinds = (page) => page.$$eval('#hotspot-table tr.row td:first-child', (tds) => tds.map((td) => td.textContent.replace(/new$/, '')));
const flameNames = (page) => page.$$eval('#flame g.frame', (gs) => gs.map((g) => g.getAttribute('name')));
const settle = (page) => page.evaluate(() => new Promise((r) => setTimeout(r, 400)));

test('static: the fixture is exactly what the collector writes', { skip: !VIA_MODEL && 'collector core not built' }, () => {
  const out = join(OUT_DIR, 'fixture-rewritten.json');
  rmSync(out, { force: true });
  execFileSync(env('BW_RENDER_REPORT'), ['--rewrite', FIXTURE, out]);
  assert.deepEqual(JSON.parse(readFileSync(out, 'utf8')), JSON.parse(readFileSync(FIXTURE, 'utf8')),
    'read_json_report + write_json_report keep every field of the fixture (same schema)');
});

test('static: the report shows the fixture: summary, table, flame graph, timeline, detail', async () => {
  const report = JSON.parse(readFileSync(FIXTURE, 'utf8'));
  const { page, errors, external } = await open(pathToFileURL(render(FIXTURE, 'fixture-report.html')).href);
  assert.equal(await page.$eval('body', (b) => b.dataset.mode), 'static');
  assert.match(await page.$eval('#verdict', (e) => e.textContent), /FAIL.*request.*blocked/s);
  assert.match(await page.$eval('#paths-table', (e) => e.textContent), /request.*admin|admin.*request/s);
  assert.match(await page.$eval('#processes-table', (e) => e.textContent), /4242.*order_server.*exit.*3\.80 s.*23.*1,720.*12/s,
    'per process: status, blocked time, stalls, records, dropped');
  // Per task entry: the probe's numbers are a sample ("121 of 1,936" timed, "~48"
  // over 1 ms, estimated); the API label's were all timed (exact count).
  const taskRows = await page.$$eval('#tasks-table tbody tr', (rows) => rows.map((r) => r.textContent));
  assert.equal(taskRows.length, 2);
  assert.match(taskRows[0], /do_run_one.*\(probe\).*order_server.*1,936.*121 of 1,936.*~48/);
  assert.match(taskRows[1], /task 'checkout'.*40.*all.*2$/);
  assert.equal(await page.$eval('#hotspot-count', (e) => e.textContent), `${report.hotspots.length} hotspots`);
  const kinds = await tableKinds(page);
  assert.deepEqual(kinds, report.hotspots.map((h) => h.kind), 'default order: total time, largest first');
  await settle(page);
  const names = await flameNames(page);
  for (const want of ['SessionCache::get(SessionId const&)', 'Journal::append(std::string_view) journal.cc:57',
    'Journal::sync_locked() journal.h:31', '[mutex]', '[fsync]', '[stall]']) {
    assert.ok(names.includes(want), `flame graph shows ${want}`);
  }
  assert.match(await page.$eval('#timeline-note', (e) => e.textContent), /^\d+ threads/);
  // Selecting a row shows its full stack, innermost first.
  await page.click('#hotspot-table tr.row[data-index="1"]');
  const stack = await page.$$eval('#detail-stack li .fn', (lis) => lis.map((li) => li.textContent));
  const shown = (f) => (f.function.startsWith('0x') ? `${f.module.split('/').pop()}+0x${f.offset.toString(16)}` : f.function);
  assert.deepEqual(stack, report.hotspots[1].stack.map(shown));
  assert.ok(stack.length >= 8, 'the full stack, not just the top frames');
  // Source lines where the collector had debug info; the inlined function says so.
  const lines = await page.$$eval('#detail-stack li', (lis) => lis.map((li) => li.textContent));
  assert.match(lines[1], /^Journal::sync_locked\(\) journal\.h:31 inlined /);
  assert.match(lines[2], /^Journal::append\(std::string_view\) journal\.cc:57 order_server\+0x/);
  assert.doesNotMatch(lines[0], /:\d+ /, 'no line where there is no debug info');
  await page.screenshot({ path: join(OUT_DIR, 'report-fixture.png'), fullPage: true });
  if (process.env.BW_DOCS_SCREENSHOT) {
    await page.setViewport({ width: 1500, height: 900 });
    await settle(page);
    await page.screenshot({ path: process.env.BW_DOCS_SCREENSHOT, fullPage: true });
  }
  assert.deepEqual(errors, []);
  assert.deepEqual(external, [], 'the report loads nothing from the network');
  await page.close();
});

test('static: a report that is not JSON says so on the page', async () => {
  const bad = join(OUT_DIR, 'truncated-report.json');
  writeFileSync(bad, readFileSync(FIXTURE, 'utf8').slice(0, 5000));
  const { page, errors } = await open(pathToFileURL(render(bad, 'truncated-report.html', { viaModel: false })).href);
  assert.match(await page.$eval('#load-error', (e) => e.textContent), /could not be read/);
  assert.deepEqual(errors, []);
  await page.close();
});

test('sorting: by a column, both directions', async () => {
  const report = JSON.parse(readFileSync(FIXTURE, 'utf8'));
  const { page, errors } = await open(pathToFileURL(render(FIXTURE, 'fixture-report.html')).href);
  const counts = () => page.$$eval('#hotspot-table tr.row td:nth-child(3)', (tds) => tds.map((td) => Number(td.textContent.replace(/,/g, ''))));
  const all = report.hotspots.map((h) => h.count);
  await page.click('#hotspot-table th[data-key="count"]');
  assert.deepEqual(await counts(), [...all].sort((a, b) => b - a));
  await page.click('#hotspot-table th[data-key="count"]');
  assert.deepEqual(await counts(), [...all].sort((a, b) => a - b));
  await page.click('#hotspot-table th[data-key="kind"]');
  assert.deepEqual(await tableKinds(page), report.hotspots.map((h) => h.kind).sort((a, b) => a.localeCompare(b)));
  assert.deepEqual(errors, []);
  await page.close();
});

test('kind: the kind filter narrows table, flame graph and timeline; search highlights', async () => {
  const { page, errors } = await open(pathToFileURL(render(FIXTURE, 'fixture-report.html')).href);
  await page.select('#kind-filter', 'fsync');
  await settle(page);
  assert.deepEqual(await tableKinds(page), ['fsync']);
  let names = await flameNames(page);
  assert.ok(names.includes('[fsync]') && !names.includes('[mutex]'), 'flame graph shows only fsync stacks');
  await page.select('#kind-filter', 'blocking');
  await settle(page);
  assert.ok(!(await tableKinds(page)).includes('stall'));
  // Nothing left to show (fsync on the admin path): empty panels, no errors.
  await page.select('#kind-filter', 'fsync');
  await page.select('#path-filter', 'admin');
  await settle(page);
  assert.deepEqual(await tableKinds(page), []);
  assert.match(await page.$eval('#hotspot-count', (e) => e.textContent), /^0 of 11 hotspots/);
  assert.match(await page.$eval('#timeline-note', (e) => e.textContent), /no occurrences/);
  await page.select('#path-filter', '*');
  await page.select('#kind-filter', 'all');
  await page.type('#search', 'SessionCache');
  await page.waitForFunction(() => document.querySelectorAll('#hotspot-table tr.row').length === 1);
  await settle(page);
  const highlighted = await page.$$eval('#flame g.frame', (gs) => gs
    .filter((g) => g.querySelector('rect').getAttribute('fill') === '#ff3cf2').map((g) => g.getAttribute('name')));
  assert.deepEqual(highlighted, ['SessionCache::get(SessionId const&)']);
  assert.match(await page.$eval('#flame-details', (e) => e.textContent), /search "SessionCache": 1 frames/);
  assert.deepEqual(errors, []);
  await page.close();
});

test('scale: a 10,000-hotspot report opens and stays usable', async () => {
  const bigJson = join(OUT_DIR, 'big-report.json');
  writeFileSync(bigJson, JSON.stringify(generateReport(10000)));
  const html = render(bigJson, 'big-report.html', { viaModel: false });
  const t0 = Date.now();
  const { page, errors } = await open(pathToFileURL(html).href);
  const openMs = Date.now() - t0;
  const phases = await page.evaluate(() => [
    `html ${performance.getEntriesByType('navigation')[0].domInteractive.toFixed(0)} ms`,
    ...performance.getEntriesByType('measure').map((m) => `${m.name.slice(3)} ${m.duration.toFixed(0)} ms`)]);
  console.log(`10,000 hotspots: page ready in ${openMs} ms (${phases.join(', ')})`);
  assert.ok(openMs < 30000, `opened in ${openMs} ms (generous bound)`);
  assert.equal(await page.$eval('#hotspot-count', (e) => e.textContent), '10,000 hotspots');
  const domRows = await page.$$eval('#hotspot-table tr.row', (rows) => rows.length);
  assert.ok(domRows > 10 && domRows < 200, `table is virtualized (${domRows} rows in the DOM)`);
  const frames = await flameNames(page);
  assert.ok(frames.includes('[8000 smaller hotspots]'), 'the flame graph keeps the 2,000 largest stacks');
  assert.ok(frames.length > 3 && frames.length < 20000, `flame graph capped (${frames.length} frames drawn)`);
  // Scroll to the end: the last rows are drawn.
  await page.$eval('#hotspot-scroll', (s) => { s.scrollTop = s.scrollHeight; });
  await page.waitForFunction(() => !!document.querySelector('#hotspot-table tr.row[data-index="9999"]'));
  const t1 = Date.now();
  await page.click('#hotspot-table th[data-key="max_ns"]');
  await page.select('#kind-filter', 'mutex');
  const interactMs = Date.now() - t1;
  const afterPhases = await page.evaluate((n) => performance.getEntriesByType('measure').slice(n)
    .map((m) => `${m.name.slice(3)} ${m.duration.toFixed(0)} ms`), phases.length - 1);
  console.log(`10,000 hotspots: sort + filter in ${interactMs} ms (${afterPhases.join(', ')})`);
  assert.ok(interactMs < 15000);
  assert.match(await page.$eval('#hotspot-count', (e) => e.textContent), /^834 of 10,000 hotspots/);
  await settle(page);
  const mutexFrames = await flameNames(page);
  assert.ok(mutexFrames.length > 100 && mutexFrames.length < 20000, `filtered flame graph (${mutexFrames.length} frames)`);
  assert.ok(mutexFrames.includes('[mutex]') && !mutexFrames.includes('[fsync]'));
  const kinds = await tableKinds(page);
  assert.ok(kinds.length > 10 && kinds.every((k) => k === 'mutex'), 'after scrolling, filtering shows the top of the new list');
  const maxes = await page.$$eval('#hotspot-table tr.row', (rows) => rows.map((r) => r.dataset.index));
  assert.equal(maxes[0], '0');
  await page.screenshot({ path: join(OUT_DIR, 'report-10k.png') });
  assert.deepEqual(errors, []);
  await page.close();
});

test('demo: a real report of the demo, when given', { skip: !process.env.BW_DEMO_REPORT && 'BW_DEMO_REPORT not set' }, async () => {
  const demo = process.env.BW_DEMO_REPORT;
  assert.ok(existsSync(demo), `${demo} exists`);
  const report = JSON.parse(readFileSync(demo, 'utf8'));
  const { page, errors } = await open(pathToFileURL(render(demo, 'demo-report.html', { viaModel: false })).href);
  assert.equal(await page.$eval('#hotspot-count', (e) => e.textContent), `${report.hotspots.length.toLocaleString('en-US')} hotspots`);
  await settle(page);
  if (report.hotspots.length) assert.ok((await flameNames(page)).some((n) => /^\[/.test(n)));
  await page.screenshot({ path: join(OUT_DIR, 'report-demo.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test('live: the dashboard polls /api/report and shows process status', async () => {
  const livePage = join(OUT_DIR, 'live.html');
  rmSync(livePage, { force: true });
  execFileSync(env('BW_RENDER_REPORT'), ['--live', livePage]);
  const report = JSON.parse(readFileSync(FIXTURE, 'utf8'));
  const first = { ...report, hotspots: report.hotspots.slice(0, 3),
    processes: [{ ...report.processes[0], connected: true, end_reason: '', dropped: 0 }] };
  const second = { ...report, processes: [{ ...report.processes[0], connected: false, end_reason: 'disconnected', dropped: 12 },
    { ...report.processes[0], pid: 4300, ppid: 4242, forked_child: true, connected: true, end_reason: '', dropped: 0 }] };
  let requests = 0;
  const server = createServer((req, res) => {
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(readFileSync(livePage));
    } else if (req.url === '/api/report') {
      requests++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(requests <= 1 ? first : second));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  try {
    const { page, errors } = await open(`http://127.0.0.1:${server.address().port}/`);
    assert.equal(await page.$eval('body', (b) => b.dataset.mode), 'live');
    await page.waitForFunction(() => document.getElementById('hotspot-count').textContent === '3 hotspots', { timeout: 10000 });
    assert.match(await page.$eval('#processes-table', (e) => e.textContent), /connected/);
    assert.match(await page.$eval('#mode', (e) => e.textContent), /live · updated/);
    await page.waitForFunction((n) => document.getElementById('hotspot-count').textContent === `${n} hotspots`,
      { timeout: 10000 }, report.hotspots.length);
    const procRows = await page.$$eval('#processes-table tbody tr', (rows) => rows.map((r) => r.textContent));
    assert.equal(procRows.length, 2);
    assert.match(procRows[0], /^4242.*disconnected.*12/);
    assert.match(procRows[1], /^4300.*connected/);
    assert.match(await page.$eval('#subtitle', (e) => e.textContent), /2 processes \(1 connected\)/);
    await page.screenshot({ path: join(OUT_DIR, 'live.png') });
    assert.ok(requests >= 2);
    assert.deepEqual(errors, []);
    await page.close();
  } finally {
    server.close();
  }
});
