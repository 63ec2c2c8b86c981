// Entry of the report page. One script serves both uses: a static report (the
// JSON report embedded in <script id="bw-report">) and the live dashboard served
// by blockwatchd at "/" (nothing embedded: poll /api/report every 2 s). Holds the
// filter/sort/selection state and re-renders the panels when it changes.
import { el, basename, formatCount } from './format.js';
import { renderSummary } from './summary.js';
import { HotspotTable } from './table.js';
import { FlameGraph, buildFlameTree } from './flame.js';
import { Timeline } from './timeline.js';
import { renderDetail } from './detail.js';
import { whereFrame, frameName } from './format.js';

const POLL_INTERVAL_MS = 2000;

const state = {
  mode: 'static',
  report: null,
  rawText: '',
  hotspots: [],
  rows: [],  // the hotspots that match the filters
  filter: { kind: 'all', path: '*', search: '', showAllowed: true },
  selectedKey: null,
  lastUpdate: null,
};

const $ = (id) => document.getElementById(id);

// A stable identity for a hotspot across live updates (selection survives polls).
function hotspotKey(h) {
  const frames = (h.stack || []).map((f) => `${f.module}+${f.offset}`).join(',');
  return `${h.kind}|${h.exe}|${h.path}|${frames}`;
}

function prepare(report) {
  const hotspots = report.hotspots || [];
  for (const h of hotspots) {
    h._key = hotspotKey(h);
    h._where = whereFrame(h);
  }
  return hotspots;
}

// The text a search looks in; built on the first search (costly for 10k hotspots).
function searchText(h) {
  if (h._search === undefined) {
    h._search = [h.kind, h.path, h.exe, ...(h.threads || []), ...(h.tasks || []), ...(h.holders || []),
      ...(h.functions || []), ...(h.stack || []).map(frameName),
      ...(h.stack || []).map((f) => f.file || '')].join('\n').toLowerCase();
  }
  return h._search;
}

function matches(h, f) {
  if (f.kind === 'blocking' ? h.kind === 'stall' : f.kind !== 'all' && h.kind !== f.kind) return false;
  if (f.path !== '*' && (h.path || '') !== f.path) return false;
  if (!f.showAllowed && h.allowed) return false;
  if (f.search && !searchText(h).includes(f.search.toLowerCase())) return false;
  return true;
}

// Refills a <select> only when its options changed (keeps the user's choice).
function fillSelect(select, options, current) {
  const sig = options.map((o) => o.value).join('\u0000');
  if (select.dataset.sig !== sig) {
    select.replaceChildren(...options.map((o) => el('option', { value: o.value, text: o.label })));
    select.dataset.sig = sig;
  }
  select.value = options.some((o) => o.value === current) ? current : options[0].value;
  return select.value;
}

function updateControls() {
  const kinds = [...new Set(state.hotspots.map((h) => h.kind))].sort();
  state.filter.kind = fillSelect($('kind-filter'), [{ value: 'all', label: 'all kinds' },
    { value: 'blocking', label: 'blocking (no stalls)' },
    ...kinds.map((k) => ({ value: k, label: k }))], state.filter.kind);
  const paths = new Set((state.report.paths || []).map((p) => p.path || ''));
  for (const h of state.hotspots) paths.add(h.path || '');
  state.filter.path = fillSelect($('path-filter'), [{ value: '*', label: 'all paths' },
    ...[...paths].sort().map((p) => ({ value: p, label: p || '(no path)' }))], state.filter.path);
}

let table;
let flame;
let timeline;

// Runs fn between performance marks, so tests and users (DevTools) see where time goes.
function timed(name, fn) {
  performance.mark(`${name}:start`);
  const result = fn();
  performance.measure(`bw:${name}`, `${name}:start`);
  return result;
}

function renderFiltered({ flameToo = true, keepScroll = false } = {}) {
  // Measured once, before any DOM change: reading a width after the flame graph's
  // SVG changed would force a costly layout of thousands of frames.
  const widthPx = $('flame').clientWidth;
  const rows = timed('filter', () => state.hotspots.filter((h) => matches(h, state.filter)));
  state.rows = rows;
  timed('table', () => table.setRows(rows, state.hotspots.length, { keepScroll }));
  if (flameToo) {
    const fs = { ...state.filter, search: '' };  // the flame graph highlights the search instead
    const tree = timed('flame-tree', () => buildFlameTree(state.hotspots.filter((h) => matches(h, fs))));
    timed('flame-draw', () => flame.render(tree, widthPx));  // keeps the search highlight
  }
  timed('timeline', () => timeline.render(rows, state.selectedKey, widthPx));
  select(state.selectedKey, { scroll: false });
}

function select(key, { scroll = true } = {}) {
  const h = state.hotspots.find((x) => x._key === key) || null;
  state.selectedKey = h ? key : null;
  table.setSelected(state.selectedKey);
  timeline.setSelected(state.selectedKey);
  renderDetail($('detail'), h);
  if (h && scroll) $('detail').scrollIntoView({ block: 'nearest', behavior: 'smooth' });
}

function renderHeader() {
  const r = state.report;
  const procs = r.processes || [];
  const exes = [...new Set(procs.map((p) => basename(p.exe)))].filter(Boolean);
  const connected = procs.filter((p) => p.connected).length;
  const live = state.mode === 'live' ? ` (${formatCount(connected)} connected)` : '';
  $('subtitle').textContent = exes.length
    ? `${exes.join(', ')} · ${formatCount(procs.length)} process${procs.length === 1 ? '' : 'es'}${live}`
    : 'no process has reported yet';
  const badge = $('mode');
  if (state.mode === 'live') {
    const ok = state.lastUpdate && !state.fetchError;
    badge.className = `mode live ${ok ? 'ok' : 'stale'}`;
    badge.textContent = ok ? `live · updated ${state.lastUpdate.toLocaleTimeString()}`
                           : `live · ${state.fetchError || 'waiting for the collector'}`;
  } else {
    badge.className = 'mode static';
    badge.textContent = 'report';
  }
}

function load(text) {
  if (text === state.rawText) return false;
  // A live dashboard loads for days: keep only the latest load's timings.
  performance.clearMarks();
  performance.clearMeasures();
  const report = timed('parse', () => JSON.parse(text));
  state.rawText = text;
  state.report = report;
  state.hotspots = timed('prepare', () => prepare(report));
  table.showNew = state.hotspots.some((h) => h.is_new === false);
  renderSummary($('summary'), report, state.mode === 'live');
  updateControls();
  renderFiltered({ keepScroll: state.mode === 'live' });
  return true;
}

async function poll() {
  try {
    const res = await fetch('api/report', { cache: 'no-store' });
    if (!res.ok) throw new Error(`collector answered ${res.status}`);
    const text = await res.text();
    state.fetchError = '';
    state.lastUpdate = new Date();
    load(text);
  } catch (err) {
    if (err instanceof SyntaxError) state.fetchError = 'the collector sent a report that is not JSON';
    else state.fetchError = err.message.startsWith('collector') ? err.message : 'collector unreachable';
  }
  renderHeader();
  document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  setTimeout(poll, POLL_INTERVAL_MS);
}

function wireControls() {
  $('kind-filter').addEventListener('change', (e) => { state.filter.kind = e.target.value; renderFiltered(); });
  $('path-filter').addEventListener('change', (e) => { state.filter.path = e.target.value; renderFiltered(); });
  $('show-allowed').addEventListener('change', (e) => { state.filter.showAllowed = e.target.checked; renderFiltered(); });
  let timer = 0;
  $('search').addEventListener('input', (e) => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      state.filter.search = e.target.value.trim();
      renderFiltered({ flameToo: false });
      flame.search(state.filter.search);
    }, 120);
  });
  $('reset-zoom').addEventListener('click', () => flame.resetZoom());
  let resize = 0;
  window.addEventListener('resize', () => {
    clearTimeout(resize);
    resize = setTimeout(() => state.report && renderFiltered(), 200);
  });
}

function start() {
  table = new HotspotTable($('table'), {
    onSelect: (h) => select(h._key),
    onSort: () => timed('sort', () => table.setRows(state.rows, state.hotspots.length)),
  });
  flame = new FlameGraph($('flame'), { onSelectHotspot: (key) => select(key), details: $('flame-details') });
  timeline = new Timeline($('timeline'), { onSelectHotspot: (key) => select(key) });
  wireControls();
  const embedded = ($('bw-report').textContent || '').trim();
  if (embedded) {
    state.mode = 'static';
    try {
      load(embedded);
    } catch (err) {
      // Say so on the page rather than leave it blank.
      $('summary').replaceChildren(el('p', { class: 'error', id: 'load-error',
        text: `This report could not be read: ${err.message}` }));
      state.report = { processes: [] };
    }
    renderHeader();
  } else {
    state.mode = 'live';
    document.body.classList.add('live');
    load(JSON.stringify({ version: 1, processes: [], hotspots: [], paths: [], summary: {}, verdict: {} }));
    renderHeader();
    poll();
  }
  document.body.dataset.mode = state.mode;
  document.body.dataset.ready = '1';
  window.blockwatchViewer = { state, flame, table, timeline };
}

start();
