// The hotspot table: sortable by any column, virtualized (only the rows in view
// exist in the DOM) so that 10,000 hotspots scroll smoothly.
import { el, formatNs, formatCount, kindColor, list, whereFrame, kindLabel } from './format.js';

const ROW_HEIGHT_PX = 28;
const OVERSCAN_ROWS = 12;

// Each column: how to show it and how to sort by it.
const COLUMNS = [
  { key: 'kind', label: 'kind', width: 92, value: (h) => kindLabel(h) },
  { key: 'where', label: 'where', width: 210, value: (h) => h._where },
  { key: 'count', label: 'count', width: 64, num: true, value: (h) => h.count, show: formatCount },
  { key: 'total_ns', label: 'total', width: 74, num: true, value: (h) => h.total_ns, show: formatNs },
  { key: 'max_ns', label: 'max', width: 74, num: true, value: (h) => h.max_ns, show: formatNs },
  { key: 'p99_ns', label: 'p99', width: 74, num: true, value: (h) => h.p99_ns, show: formatNs },
  { key: 'threads', label: 'threads', width: 110, value: (h) => list(h.threads, 2) },
  { key: 'holders', label: 'holders', width: 90, value: (h) => list(h.holders, 2) },
  { key: 'tasks', label: 'tasks', width: 100, value: (h) => list(h.tasks, 2) },
  { key: 'path', label: 'path', width: 70, value: (h) => h.path || '' },
  { key: 'allowed', label: 'allowed', width: 96,
    value: (h) => (h.allowed ? `yes: ${h.allow_reason || 'allowed'}` : '') },
];

export class HotspotTable {
  constructor(root, { onSelect, onSort }) {
    this.root = root;
    this.onSelect = onSelect;
    this.onSort = onSort;
    this.rows = [];
    this.selectedKey = null;
    this.showNew = false;  // only meaningful when a --baseline marked some hotspots old
    this.sort = { key: 'total_ns', dir: -1 };
    this.build();
  }

  build() {
    const colgroup = el('colgroup');
    const head = el('tr');
    for (const c of COLUMNS) {
      colgroup.append(el('col', { style: `width:${c.width}px` }));
      head.append(el('th', { class: `sortable ${c.num ? 'num' : ''}`, 'data-key': c.key,
        title: `sort by ${c.label}`, onclick: () => this.toggleSort(c.key) }, c.label));
    }
    this.thead = el('thead', {}, head);
    this.tbody = el('tbody');
    // Columns keep their widths on narrow screens (the table scrolls sideways) and
    // share the extra room on wide ones.
    const minWidthPx = COLUMNS.reduce((sum, c) => sum + c.width, 0);
    this.table = el('table', { class: 'hotspots', id: 'hotspot-table', style: `min-width:${minWidthPx}px` },
      colgroup, this.thead, this.tbody);
    this.scroller = el('div', { class: 'table-scroll', id: 'hotspot-scroll' }, this.table);
    this.scroller.addEventListener('scroll', () => this.paint(), { passive: true });
    this.caption = el('div', { class: 'table-caption', id: 'hotspot-count' });
    this.root.replaceChildren(this.caption, this.scroller);
  }

  toggleSort(key) {
    const col = COLUMNS.find((c) => c.key === key);
    if (this.sort.key === key) this.sort.dir = -this.sort.dir;
    else this.sort = { key, dir: col.num ? -1 : 1 };
    this.onSort(this.sort);
  }

  // rows: filtered hotspots; sorted here so the table owns the sort order.
  // keepScroll: a live update keeps the user's place; a new sort or filter starts at the top.
  setRows(rows, totalCount, { keepScroll = false } = {}) {
    const col = COLUMNS.find((c) => c.key === this.sort.key) || COLUMNS[3];
    const dir = this.sort.dir;
    const keyed = rows.map((h) => [col.value(h), h]);
    keyed.sort((a, b) => {
      const x = a[0];
      const y = b[0];
      const cmp = typeof x === 'number' ? x - y : String(x).localeCompare(String(y));
      return cmp * dir || b[1].total_ns - a[1].total_ns;
    });
    this.rows = keyed.map((k) => k[1]);
    for (const th of this.thead.querySelectorAll('th')) {
      const active = th.dataset.key === this.sort.key;
      th.classList.toggle('sorted', active);
      th.dataset.dir = active ? (dir > 0 ? 'asc' : 'desc') : '';
    }
    // Short tables take only the room they need; long ones scroll inside 420 px.
    this.viewHeightPx = Math.min(420, (this.rows.length + 1) * ROW_HEIGHT_PX + 8);
    this.scroller.style.height = `${this.viewHeightPx}px`;
    if (!keepScroll) this.scroller.scrollTop = 0;
    this.caption.textContent = rows.length === totalCount
      ? `${formatCount(totalCount)} hotspots`
      : `${formatCount(rows.length)} of ${formatCount(totalCount)} hotspots match the filters`;
    this.paint();
  }

  // Marks the selected row among those drawn; reads no layout (cheap after the
  // flame graph changed).
  setSelected(key) {
    this.selectedKey = key;
    for (const tr of this.tbody.querySelectorAll('tr.row')) {
      const h = this.rows[Number(tr.dataset.index)];
      tr.classList.toggle('selected', !!h && h._key === key);
    }
  }

  // Renders only the rows in the scroller's view, between two spacer rows.
  paint() {
    const viewHeight = this.viewHeightPx || 420;
    // scrollTop may still be past the end of a shorter new list: clamp to it.
    const lastFirst = Math.max(0, this.rows.length - Math.ceil(viewHeight / ROW_HEIGHT_PX));
    const first = Math.max(0, Math.min(lastFirst, Math.floor(this.scroller.scrollTop / ROW_HEIGHT_PX)) - OVERSCAN_ROWS);
    const last = Math.min(this.rows.length, first + Math.ceil(viewHeight / ROW_HEIGHT_PX) + 2 * OVERSCAN_ROWS);
    const frag = document.createDocumentFragment();
    frag.append(spacer(first * ROW_HEIGHT_PX));
    for (let i = first; i < last; i++) frag.append(this.row(this.rows[i], i));
    frag.append(spacer((this.rows.length - last) * ROW_HEIGHT_PX));
    this.tbody.replaceChildren(frag);
  }

  row(h, index) {
    const tr = el('tr', { class: `row ${h.allowed ? 'allowed' : ''} ${h._key === this.selectedKey ? 'selected' : ''}`,
      'data-index': index, onclick: () => this.onSelect(h) });
    for (const c of COLUMNS) {
      const v = c.value(h);
      const text = c.show ? c.show(v) : v;
      if (c.key === 'kind') {
        tr.append(el('td', { class: `kind-${h.kind}` },
          el('span', { class: 'swatch', style: `background:${kindColor(h.kind)}` }), text,
          !this.showNew || h.is_new === false ? null : el('span', { class: 'badge-new', title: 'not in the baseline', text: 'new' })));
      } else {
        tr.append(el('td', { class: c.num ? 'num' : '', title: String(text) }, text));
      }
    }
    return tr;
  }
}

function spacer(heightPx) {
  return el('tr', { class: 'spacer', style: `height:${heightPx}px` });
}

export const TABLE_ROW_HEIGHT_PX = ROW_HEIGHT_PX;
