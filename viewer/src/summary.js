// The summary panel: verdict and why, the run's totals, blocked time and stalls
// per config path, and per program and process (with live status: connected,
// dropped records), and per task entry how long tasks ran (sampled numbers
// marked as such).
import { el, formatNs, formatCount, basename } from './format.js';

function card(label, value, sub, cls = '') {
  return el('div', { class: `card ${cls}` },
    el('div', { class: 'card-label', text: label }),
    el('div', { class: 'card-value', text: value }),
    sub ? el('div', { class: 'card-sub', text: sub }) : null);
}

function verdictCard(verdict) {
  const failed = !!(verdict && verdict.failed);
  const reasons = (verdict && verdict.reasons) || [];
  const node = el('div', { class: `card verdict ${failed ? 'fail' : 'pass'}`, id: 'verdict' },
    el('div', { class: 'card-label', text: 'verdict' }),
    el('div', { class: 'card-value', text: failed ? 'FAIL' : 'PASS' }));
  const ul = el('ul', { class: 'reasons' });
  for (const r of reasons) ul.append(el('li', { text: r }));
  if (!reasons.length) ul.append(el('li', { class: 'muted', text: failed ? 'no reason given' : 'no --fail-on rule broken' }));
  node.append(ul);
  return node;
}

function table(headers, rows, id) {
  const t = el('table', { class: 'small', id });
  const tr = el('tr');
  for (const h of headers) tr.append(el('th', { text: h.label, class: h.num ? 'num' : '' }));
  t.append(el('thead', {}, tr));
  const body = el('tbody');
  for (const r of rows) {
    const row = el('tr');
    headers.forEach((h, i) => {
      const v = r[i];
      row.append(v instanceof Node ? el('td', { class: h.num ? 'num' : '' }, v)
                                   : el('td', { class: h.num ? 'num' : '', text: v }));
    });
    body.append(row);
  }
  t.append(body);
  return t;
}

// Blocked/stalled time per program: hotspots merge across processes of one exe.
function perProgram(hotspots) {
  const byExe = new Map();
  for (const h of hotspots) {
    if (h.allowed) continue;  // as in the summary: allowed events are not blocking
    const key = h.exe || '(unknown)';
    let e = byExe.get(key);
    if (!e) byExe.set(key, (e = { exe: key, events: 0, blocked: 0, stalls: 0, stalled: 0 }));
    if (h.kind === 'stall') { e.stalls += h.count; e.stalled += h.total_ns; }
    else { e.events += h.count; e.blocked += h.total_ns; }
  }
  return [...byExe.values()].sort((a, b) => (b.blocked + b.stalled) - (a.blocked + a.stalled));
}

// Blocked/stalled time per process. Hotspots merge the processes of one exe: a
// hotspot seen in one pid counts for it whole; one seen in several is shared out
// by its kept occurrences (an estimate, marked with "~").
function perProcess(hotspots) {
  const byPid = new Map();
  const get = (pid) => {
    let e = byPid.get(pid);
    if (!e) byPid.set(pid, (e = { blocked: 0, stalls: 0, estimated: false }));
    return e;
  };
  for (const h of hotspots) {
    const pids = h.pids || [];
    if (!pids.length || h.allowed) continue;
    const share = new Map();
    if (pids.length === 1) share.set(pids[0], 1);
    else {
      const occ = (h.occurrences || []).filter((o) => pids.includes(o.pid));
      for (const pid of pids) share.set(pid, occ.length ? occ.filter((o) => o.pid === pid).length / occ.length : 1 / pids.length);
    }
    for (const [pid, f] of share) {
      const e = get(pid);
      e.estimated ||= pids.length > 1;
      if (h.kind === 'stall') e.stalls += f * h.count;
      else e.blocked += f * h.total_ns;
    }
  }
  return byPid;
}

// Per task entry (report.tasks): probe-entered tasks are counted exactly and a
// random sample of them is timed, so "timed" says "N of M" and an estimated
// over-1 ms count carries "~".
function taskRows(tasks) {
  return tasks.map((t) => {
    const entry = t.source === 'api' ? `task '${t.label || '(no label)'}'` : `${t.function || t.rule} (probe)`;
    const timed = t.tasks_timed >= t.tasks_total ? 'all' : `${formatCount(t.tasks_timed)} of ${formatCount(t.tasks_total)}`;
    const has = t.tasks_timed > 0;
    const over = !has ? '' : t.over_1ms_exact ? formatCount(t.over_1ms)
      : el('span', { title: `estimated: ${formatCount(t.timed_over_1ms)} timed tasks over 1 ms, scaled by ${formatCount(t.tasks_total)}/${formatCount(t.tasks_timed)}`,
                     text: `~${formatCount(t.over_1ms)}` });
    return [entry, basename(t.exe), formatCount(t.tasks_total), timed,
      has ? formatNs(t.p50_ns) : '', has ? formatNs(t.p99_ns) : '', has ? formatNs(t.max_ns) : '', over];
  });
}

function processStatus(p, live) {
  if (p.connected) return el('span', { class: 'status on', text: 'connected' });
  const why = p.end_reason || (p.said_goodbye ? 'exited' : live ? 'disconnected' : 'ended');
  const exit = p.exit_status ? ` (status ${p.exit_status})` : '';
  return el('span', { class: 'status off', text: why + exit });
}

export function renderSummary(root, report, live) {
  const s = report.summary || {};
  root.replaceChildren();
  const cards = el('div', { class: 'cards' },
    verdictCard(report.verdict),
    card('blocked', formatNs(s.blocked_ns), `${formatCount(s.blocking_events)} blocking events`),
    card('stalled', formatNs(s.stalled_ns), `${formatCount(s.stalls)} stalls`),
    card('hotspots', formatCount((report.hotspots || []).length),
         `${formatCount(s.allowed_events)} allowed events`),
    card('dropped', formatCount(s.dropped), 'records lost (queue full, no collector, too deep)',
         s.dropped ? 'warn' : ''));
  root.append(cards);

  const paths = (report.paths || []).map((p) => [p.path || '(no path)', formatCount(p.blocking_events),
    formatNs(p.blocked_ns), formatCount(p.stalls), formatNs(p.stalled_ns)]);
  const programs = perProgram(report.hotspots || []).map((e) => [basename(e.exe),
    formatCount(e.events), formatNs(e.blocked), formatCount(e.stalls), formatNs(e.stalled)]);
  const byPid = perProcess(report.hotspots || []);
  const procs = (report.processes || []).map((p) => {
    const e = byPid.get(p.pid) || { blocked: 0, stalls: 0, estimated: false };
    const approx = e.estimated ? '~' : '';
    return [String(p.pid), basename(p.exe), processStatus(p, live),
      approx + formatNs(e.blocked), approx + formatCount(Math.round(e.stalls)), formatCount(p.events),
      p.dropped ? el('span', { class: 'warn-text', text: formatCount(p.dropped) }) : '0',
      `${formatNs(p.threshold_ns)} / ${formatNs(p.stall_threshold_ns)}`];
  });
  const num = (label) => ({ label, num: true });
  const totals = [num('events'), num('blocked'), num('stalls'), num('stalled')];
  root.append(el('div', { class: 'summary-tables' },
    el('div', {}, el('h3', { text: 'per path' }),
      paths.length ? table([{ label: 'path' }, ...totals], paths, 'paths-table')
                   : el('p', { class: 'muted', text: 'no paths configured' })),
    el('div', {}, el('h3', { text: 'per program' }),
      table([{ label: 'program' }, ...totals], programs, 'programs-table')),
    el('div', {}, el('h3', { text: 'processes' }),
      table([num('pid'), { label: 'exe' }, { label: 'status' }, num('blocked'), num('stalls'), num('records'), num('dropped'),
             num('block / stall after')], procs, 'processes-table'))));
  const tasks = report.tasks || [];
  if (tasks.length) {
    root.append(el('div', { class: 'summary-tables' },
      el('div', {}, el('h3', { text: 'tasks per task entry' }),
        el('p', { class: 'muted', text: 'Durations are those of the timed tasks: a random sample of probe-entered tasks ' +
          '(all API tasks). "~" marks an over-1 ms count estimated from the sample.' }),
        table([{ label: 'task entry' }, { label: 'program' }, num('tasks'), num('timed'), num('p50'), num('p99'),
               num('max'), num('over 1 ms')], taskRows(tasks), 'tasks-table'))));
  }
}
