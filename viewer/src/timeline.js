// The timeline: one lane per worker thread, a box for each kept occurrence
// (hotspots[].occurrences) at the time it happened, coloured by kind. Drawn on a
// canvas so that tens of thousands of boxes stay cheap; hover shows what a box
// is, a click opens its hotspot.
import { el, formatNs, kindColor, whereFrame } from './format.js';

const LANE_HEIGHT_PX = 20;
const LABEL_WIDTH_PX = 190;
const AXIS_HEIGHT_PX = 22;
const MAX_LANES = 60;

export class Timeline {
  constructor(root, { onSelectHotspot }) {
    this.root = root;
    this.onSelectHotspot = onSelectHotspot;
    this.canvas = el('canvas', { id: 'timeline-canvas' });
    this.tip = el('div', { class: 'tip', style: 'display:none' });
    this.note = el('div', { class: 'muted small-note', id: 'timeline-note' });
    root.replaceChildren(this.note, el('div', { class: 'timeline-wrap' }, this.canvas, this.tip));
    this.canvas.addEventListener('mousemove', (e) => this.hover(e));
    this.canvas.addEventListener('mouseleave', () => { this.tip.style.display = 'none'; });
    this.canvas.addEventListener('click', (e) => {
      const hit = this.hit(e);
      if (hit) this.onSelectHotspot(hit.h._key);
    });
    this.lanes = [];
  }

  // Groups the occurrences of the given hotspots by (pid, tid), busiest lanes first.
  render(hotspots, selectedKey, widthPx) {
    this.widthPx = widthPx;
    const lanes = new Map();
    let t0 = Infinity;
    let t1 = -Infinity;
    for (const h of hotspots) {
      for (const o of h.occurrences || []) {
        const key = `${o.pid}/${o.tid}`;
        let lane = lanes.get(key);
        if (!lane) lanes.set(key, (lane = { key, label: `${o.thread || 'thread'} ${o.pid}/${o.tid}`, boxes: [], ns: 0 }));
        lane.boxes.push({ o, h });
        lane.ns += o.duration_ns;
        t0 = Math.min(t0, o.start_unix_ns);
        t1 = Math.max(t1, o.start_unix_ns + o.duration_ns);
      }
    }
    const all = [...lanes.values()].sort((a, b) => b.ns - a.ns);
    for (const lane of all) {
      lane.byKind = new Map();
      for (const b of lane.boxes) {
        let list = lane.byKind.get(b.h.kind);
        if (!list) lane.byKind.set(b.h.kind, (list = []));
        list.push(b);
      }
    }
    this.lanes = all.slice(0, MAX_LANES).sort((a, b) => a.label.localeCompare(b.label));
    this.t0 = t0;
    this.t1 = t1 > t0 ? t1 : t0 + 1;
    this.selectedKey = selectedKey;
    const hidden = all.length - this.lanes.length;
    this.note.textContent = all.length
      ? `${all.length} threads, ${formatNs(this.t1 - this.t0)} from the first to the last kept occurrence` +
        (hidden > 0 ? ` (${hidden} quieter threads not shown)` : '')
      : 'no occurrences recorded for the hotspots that match the filters';
    this.draw();
  }

  setSelected(key) {
    if (key === this.selectedKey) return;
    this.selectedKey = key;
    this.draw();
  }

  draw() {
    const width = Math.max(320, this.widthPx || 960);
    const height = AXIS_HEIGHT_PX + Math.max(1, this.lanes.length) * LANE_HEIGHT_PX + 4;
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = width * dpr;
    this.canvas.height = height * dpr;
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${height}px`;
    this.width = width;
    const ctx = this.canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = '11px system-ui, sans-serif';
    this.drawAxis(ctx, width);
    this.lanes.forEach((lane, i) => {
      const y = AXIS_HEIGHT_PX + i * LANE_HEIGHT_PX;
      ctx.fillStyle = i % 2 ? '#f6f7f9' : '#ffffff';
      ctx.fillRect(0, y, width, LANE_HEIGHT_PX);
      ctx.fillStyle = '#333';
      ctx.fillText(clip(ctx, lane.label, LABEL_WIDTH_PX - 8), 4, y + 14);
      // Setting fillStyle parses a colour: set it once per kind, not per box.
      ctx.globalAlpha = this.selectedKey ? 0.45 : 0.95;
      for (const [kind, boxes] of lane.byKind) {
        ctx.fillStyle = kindColor(kind);
        for (const b of boxes) {
          const [x, w] = this.span(b.o);
          ctx.fillRect(x, y + 3, w, LANE_HEIGHT_PX - 6);
        }
      }
      ctx.globalAlpha = 1;
      if (this.selectedKey) this.drawSelected(ctx, lane, y);
    });
  }

  drawSelected(ctx, lane, y) {
    ctx.strokeStyle = '#111';
    for (const b of lane.boxes) {
      if (b.h._key !== this.selectedKey) continue;
      const [x, w] = this.span(b.o);
      ctx.fillStyle = kindColor(b.h.kind);
      ctx.fillRect(x, y + 3, w, LANE_HEIGHT_PX - 6);
      ctx.strokeRect(x - 0.5, y + 2.5, w + 1, LANE_HEIGHT_PX - 5);
    }
  }

  drawAxis(ctx, width) {
    ctx.fillStyle = '#555';
    ctx.strokeStyle = '#ddd';
    const plot = width - LABEL_WIDTH_PX - 8;
    for (let i = 0; i <= 5; i++) {
      const x = LABEL_WIDTH_PX + (plot * i) / 5;
      ctx.beginPath();
      ctx.moveTo(x, AXIS_HEIGHT_PX - 4);
      ctx.lineTo(x, AXIS_HEIGHT_PX + this.lanes.length * LANE_HEIGHT_PX);
      ctx.stroke();
      const label = `+${formatNs(((this.t1 - this.t0) * i) / 5)}`;
      ctx.fillText(label, Math.min(x - 10, width - ctx.measureText(label).width - 2), 12);
    }
  }

  span(o) {
    const plot = this.width - LABEL_WIDTH_PX - 8;
    const x = LABEL_WIDTH_PX + ((o.start_unix_ns - this.t0) / (this.t1 - this.t0)) * plot;
    const w = Math.max(2, (o.duration_ns / (this.t1 - this.t0)) * plot);
    return [x, w];
  }

  hit(e) {
    const r = this.canvas.getBoundingClientRect();
    const px = e.clientX - r.left;
    const lane = this.lanes[Math.floor((e.clientY - r.top - AXIS_HEIGHT_PX) / LANE_HEIGHT_PX)];
    if (!lane || px < LABEL_WIDTH_PX) return null;
    let best = null;
    for (const b of lane.boxes) {
      const [x, w] = this.span(b.o);
      if (px >= x - 2 && px <= x + w + 2 && (!best || b.o.duration_ns > best.o.duration_ns)) best = b;
    }
    return best;
  }

  hover(e) {
    const hit = this.hit(e);
    if (!hit) { this.tip.style.display = 'none'; return; }
    const { o, h } = hit;
    this.tip.textContent = `${h.kind} ${formatNs(o.duration_ns)} in ${whereFrame(h)}` +
      `${o.task ? ` · task ${o.task}` : ''} · ${o.thread || ''} ${o.pid}/${o.tid}` +
      ` · at +${formatNs(o.start_unix_ns - this.t0)}`;
    const r = this.canvas.getBoundingClientRect();
    this.tip.style.display = 'block';
    this.tip.style.left = `${Math.min(e.clientX - r.left + 12, this.width - 360)}px`;
    this.tip.style.top = `${e.clientY - r.top + 14}px`;
  }
}

function clip(ctx, text, widthPx) {
  if (ctx.measureText(text).width <= widthPx) return text;
  let s = text;
  while (s.length > 1 && ctx.measureText(`${s}…`).width > widthPx) s = s.slice(0, -1);
  return `${s}…`;
}
