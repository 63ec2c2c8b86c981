// The detail pane: everything known about the selected hotspot, with its full
// symbolized stack (innermost first: file:line where the collector found debug
// info, functions inlined into a frame marked as such) and its first kept
// occurrences.
import { el, formatNs, formatCount, kindColor, kindLabel, scopeText, basename, hex, frameName, frameSource, whereFrame } from './format.js';

function field(label, value) {
  if (value === undefined || value === null || value === '' || (Array.isArray(value) && !value.length)) return null;
  return el('div', { class: 'field' }, el('span', { class: 'field-label', text: label }),
    el('span', { class: 'field-value', text: Array.isArray(value) ? value.join(', ') : String(value) }));
}

export function renderDetail(root, h) {
  root.replaceChildren();
  if (!h) {
    root.append(el('p', { class: 'muted', text: 'Select a hotspot in the table, the flame graph or the timeline to see its full stack.' }));
    return;
  }
  root.append(el('h3', {}, el('span', { class: 'swatch', style: `background:${kindColor(h.kind)}` }),
    `${kindLabel(h)} in ${whereFrame(h)}`));
  const stallSplit = h.kind === 'stall'
    ? `on CPU ${formatNs(h.cpu_ns)}, run queue ${formatNs(h.runqueue_ns)}, off CPU ${formatNs(h.offcpu_ns)}` : '';
  root.append(el('div', { class: 'fields' },
    field('count', formatCount(h.count)),
    field('total', formatNs(h.total_ns)),
    field('p50 / p99 / max', `${formatNs(h.p50_ns)} / ${formatNs(h.p99_ns)} / ${formatNs(h.max_ns)}`),
    field('stall of', scopeText(h)),
    field('task function', h.task_function || ''),
    field('stalled time', stallSplit),
    field('calls', h.functions),
    field('stack from', h.stack_source === 'blocking_call' && h.caused_by
      ? `the ${h.caused_by.function} call it was in (${h.caused_by.kind})` : ''),
    field('fd types', h.fd_types),
    field('threads', h.threads),
    field('lock holders', h.holders),
    field('tasks', h.tasks),
    field('path', h.path),
    field('allowed', h.allowed ? (h.allow_reason || 'yes') : ''),
    field('program', h.exe),
    field('pids', (h.pids || []).map(String))));
  const stack = el('ol', { class: 'stack', id: 'detail-stack', start: '0' });
  for (const f of h.stack || []) {
    const source = frameSource(f);
    stack.append(el('li', { class: f.inlined ? 'inlined' : '' }, el('span', { class: 'fn', text: frameName(f) }),
      source ? el('span', { class: 'src', text: ` ${source}`, title: f.file }) : null,
      f.inlined ? el('span', { class: 'tag', text: ' inlined' }) : null,
      f.build_id_mismatch ? el('span', { class: 'tag', text: ' file changed since the run' }) : null,
      f.no_debug_info && !f.inlined ? el('span', { class: 'tag', text: ' no debug info', title: 'no file:line: install the module\'s debug symbols or set DEBUGINFOD_URLS' }) : null,
      el('span', { class: 'mod', text: ` ${basename(f.module) || '?'}+${hex(f.offset)}`, title: f.module || '' })));
  }
  root.append(el('h4', { text: `stack (${(h.stack || []).length} frames, innermost first)` }), stack);
  const occ = h.occurrences || [];
  if (occ.length) {
    const t = el('table', { class: 'small occurrences' });
    t.append(el('thead', {}, el('tr', {}, el('th', { text: 'thread' }), el('th', { class: 'num', text: 'duration' }),
      el('th', { text: 'task' }))));
    const body = el('tbody');
    for (const o of occ.slice(0, 6)) {
      body.append(el('tr', {}, el('td', { text: `${o.thread || ''} ${o.pid}/${o.tid}` }),
        el('td', { class: 'num', text: formatNs(o.duration_ns) }), el('td', { text: o.task || '' })));
    }
    t.append(body);
    root.append(el('h4', { text: `occurrences (${occ.length} kept of ${formatCount(h.count)})` }), t);
  }
}
