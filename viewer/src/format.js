// Formatting and small helpers shared by every panel of the report page: durations
// with units, counts, kind colours, frame names. Pure functions, no DOM state.

export const KIND_COLORS = {
  mutex: '#d9534f',
  rwlock_read: '#e8793a',
  rwlock_write: '#c0392b',
  condvar: '#b5651d',
  semaphore: '#a0522d',
  futex: '#e67e22',
  read: '#2e86c1',
  write: '#1f618d',
  fsync: '#6c3483',
  sleep: '#7f8c8d',
  poll: '#16a085',
  stall: '#8e44ad',
};

export function kindColor(kind) {
  return KIND_COLORS[kind] || '#95a5a6';
}

// A stall of scope "turn" is a loop turn (task boundaries unknown), not one
// task: it may hold many short tasks, and says so wherever its kind is shown.
export function kindLabel(h) {
  return h.kind === 'stall' && h.scope === 'turn' ? 'turn stall' : h.kind;
}

export function scopeText(h) {
  if (h.kind !== 'stall') return '';
  if (h.scope === 'task') return 'one task ran this long';
  if (h.scope === 'turn') return 'a loop turn: it may span several tasks (task boundaries unknown)';
  return '';
}

// Nanoseconds to a short human string with a unit: 950 ns, 12.3 µs, 4.56 ms, 1.2 s.
export function formatNs(ns) {
  const v = Number(ns) || 0;
  const abs = Math.abs(v);
  if (abs < 1e3) return `${v.toFixed(0)} ns`;
  if (abs < 1e6) return `${trim(v / 1e3)} µs`;
  if (abs < 1e9) return `${trim(v / 1e6)} ms`;
  if (abs < 60e9) return `${trim(v / 1e9)} s`;
  const min = Math.floor(v / 60e9);
  return `${min} min ${trim((v - min * 60e9) / 1e9)} s`;
}

function trim(x) {
  if (x >= 100) return x.toFixed(0);
  if (x >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

export function formatCount(n) {
  return Number(n || 0).toLocaleString('en-US');
}

export function basename(path) {
  if (!path) return '';
  const i = path.lastIndexOf('/');
  return i >= 0 ? path.slice(i + 1) : path;
}

export function hex(n) {
  return '0x' + Number(n || 0).toString(16);
}

// A frame's display name: the symbol when known, else module+offset.
export function frameName(frame) {
  if (!frame) return '?';
  const fn = frame.function || '';
  if (fn && !fn.startsWith('0x')) return fn;
  const mod = basename(frame.module);
  return mod ? `${mod}+${hex(frame.offset)}` : fn || hex(frame.pc);
}

// A frame's source position: "journal.cc:57" (file basename and line), or ''
// when the collector found no debug info for it.
export function frameSource(frame) {
  if (!frame || !frame.file) return '';
  return frame.line ? `${basename(frame.file)}:${frame.line}` : basename(frame.file);
}

// Frames of the C and C++ runtimes and the vDSO: the call blocked there, but the code to look
// at is the first caller outside them.
const RUNTIME_MODULE = /^(libc|libpthread|libstdc\+\+|libc\+\+|ld-linux|linux-vdso)[.-]/;

// The frame that says where a hotspot is: the innermost frame that is not the
// interposed call itself (stack[0] is usually pthread_mutex_lock or read) nor a
// runtime wrapper (std::mutex::lock).
export function whereFrame(h) {
  const stack = h.stack || [];
  const own = new Set(h.functions || []);
  for (const f of stack) {
    const name = frameName(f);
    if (own.has(f.function) || name.startsWith('__') || name.startsWith('std::')) continue;
    if (RUNTIME_MODULE.test(basename(f.module))) continue;
    return name;
  }
  return stack.length ? frameName(stack[0]) : '(no stack)';
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'style') node.style.cssText = v;
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

export function list(values, max = 3) {
  const v = values || [];
  if (v.length <= max) return v.join(', ');
  return `${v.slice(0, max).join(', ')} +${v.length - max}`;
}
