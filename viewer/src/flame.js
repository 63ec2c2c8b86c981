// The flame graph of blocked and stalled time (d3-flame-graph). Roots are
// programs, then frames outermost first (a box per function and call line:
// "Journal::append(...) journal.cc:57"; inlined functions are boxes of their
// own), then a leaf naming the kind. The tree is
// capped: the largest hotspots get their own stacks, the rest is one "other" box,
// so a 10,000-hotspot report stays quick to build and draw.
import { select } from 'd3-selection';
import flamegraph from 'd3-flame-graph';
import { basename, frameName, frameSource, formatNs, kindColor } from './format.js';

export const MAX_FLAME_HOTSPOTS = 2000;

function child(node, name, extra) {
  let c = node._index.get(name);
  if (!c) {
    c = { name, value: 0, children: [], _index: new Map(), ...extra };
    node._index.set(name, c);
    node.children.push(c);
  }
  return c;
}

function strip(node) {
  delete node._index;
  if (!node.children.length) delete node.children;
  else node.children.forEach(strip);
  return node;
}

export function flameFrameName(frame) {
  const source = frameSource(frame);
  return source ? `${frameName(frame)} ${source}` : frameName(frame);
}

// hotspots: already filtered; sorted here by total so the cap keeps the largest.
export function buildFlameTree(hotspots) {
  const root = { name: 'all blocked and stalled time', value: 0, children: [], _index: new Map() };
  const sorted = [...hotspots].sort((a, b) => b.total_ns - a.total_ns);
  const exes = new Set(sorted.map((h) => h.exe || ''));
  const byExe = exes.size > 1;
  sorted.slice(0, MAX_FLAME_HOTSPOTS).forEach((h) => {
    const ns = Math.max(0, Number(h.total_ns) || 0);
    root.value += ns;
    let node = root;
    if (byExe) {
      node = child(node, basename(h.exe) || '(unknown program)', { program: true });
      node.value += ns;
    }
    const stack = h.stack || [];
    for (let i = stack.length - 1; i >= 0; i--) {
      node = child(node, flameFrameName(stack[i]), { module: basename(stack[i].module) });
      node.value += ns;
    }
    node = child(node, `[${h.kind}]`, { kind: h.kind, hotspotKey: h._key });
    node.value += ns;
  });
  const rest = sorted.slice(MAX_FLAME_HOTSPOTS);
  if (rest.length) {
    const ns = rest.reduce((sum, h) => sum + Math.max(0, Number(h.total_ns) || 0), 0);
    const other = child(root, `[${rest.length} smaller hotspots]`, { other: true });
    other.value += ns;
    root.value += ns;
  }
  return strip(root);
}

// Warm hues for code, the kind's own colour for the leaf, grey for "other".
function colorFor(d) {
  const data = d.data;
  if (d.highlight) return '#ff3cf2';
  if (data.kind) return kindColor(data.kind);
  if (data.other) return '#c8c8c8';
  if (data.program) return '#9fb7d9';
  let hash = 0;
  const name = data.module || data.name || '';
  for (let i = 0; i < name.length; i++) hash = (hash * 31 + name.charCodeAt(i)) | 0;
  const fn = data.name || '';
  let h2 = 0;
  for (let i = 0; i < Math.min(fn.length, 12); i++) h2 = (h2 * 17 + fn.charCodeAt(i)) | 0;
  const hue = 20 + (Math.abs(hash) % 30);
  const light = 62 + (Math.abs(h2) % 14);
  return `hsl(${hue}, 85%, ${light}%)`;
}

export class FlameGraph {
  constructor(root, { onSelectHotspot, details }) {
    this.root = root;
    this.onSelectHotspot = onSelectHotspot;
    this.details = details;
    this.term = '';
    this.chart = null;
  }

  create(width) {
    this.root.replaceChildren();
    this.width = width;
    this.chart = flamegraph()
      .width(width)
      .cellHeight(18)
      .minFrameSize(2)  // px: narrower frames are unreadable and only cost DOM nodes
      .transitionDuration(120)
      .resetHeightOnZoom(true)
      .minHeight(120)
      .sort(true)
      .setColorMapper((d) => colorFor(d))
      .setLabelHandler((d) => `${d.data.name}\n${formatNs(d.value)} (${(100 * (d.x1 - d.x0)).toFixed(1)}%)`)
      .setSearchMatch((d, term) => !!term && String(d.data.name).toLowerCase().includes(term.toLowerCase()))
      .setSearchHandler((results, sum, total) => {
        this.matches = results.length;
        this.details.textContent = this.term
          ? `search "${this.term}": ${results.length} frames, ${formatNs(sum)} of ${formatNs(total)}`
          : '';
      })
      .setDetailsHandler((text) => {
        if (text) this.details.textContent = text.replace('\n', ' — ');
        else if (!this.term) this.details.textContent = 'click a frame to zoom; click a [kind] box to open its hotspot';
      })
      .onClick((d) => {
        if (d.data.hotspotKey) this.onSelectHotspot(d.data.hotspotKey);
      });
  }

  // Redraws with a new tree (after a filter change or a live update).
  // widthPx: the container's width, measured by the caller before it changed the DOM.
  render(tree, widthPx) {
    const width = Math.max(320, widthPx || 960);
    if (!this.chart || Math.abs(width - this.width) > 4) this.create(width);
    select(this.root).datum(tree).call(this.chart);
    if (this.term) this.chart.search(this.term);
    else this.details.textContent = 'click a frame to zoom; click a [kind] box to open its hotspot';
  }

  search(term) {
    if (term === this.term) return;  // each search redraws the whole graph
    this.term = term;
    if (!this.chart) return;
    if (term) this.chart.search(term);
    else this.chart.clear();
  }

  resetZoom() {
    if (this.chart) this.chart.resetZoom();
  }
}
