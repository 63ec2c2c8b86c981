// Generates a large, plausible JSON report (docs/report-schema.md shape) for the
// scale test: many distinct stacks over a few shared call paths, a few kept
// occurrences each, spread over 16 worker threads. Deterministic.
const KINDS = ['mutex', 'rwlock_read', 'rwlock_write', 'condvar', 'semaphore', 'futex', 'read', 'write', 'fsync', 'sleep', 'poll', 'stall'];
const CALLS = { mutex: 'pthread_mutex_lock', rwlock_read: 'pthread_rwlock_rdlock', rwlock_write: 'pthread_rwlock_wrlock',
  condvar: 'pthread_cond_wait', semaphore: 'sem_wait', futex: 'syscall', read: 'read', write: 'write', fsync: 'fsync',
  sleep: 'nanosleep', poll: 'poll', stall: '' };

function rng(seed) {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

export function generateReport(hotspotCount, seed = 1) {
  const rand = rng(seed);
  const exe = '/srv/bin/big_service';
  const t0 = 1795000000000000000;
  const frame = (fn, off) => ({ function: fn, module: exe, offset: off, pc: 0x400000 + off });
  const hotspots = [];
  for (let i = 0; i < hotspotCount; i++) {
    const kind = KINDS[i % KINDS.length];
    const depth = 6 + Math.floor(rand() * 12);
    const stack = [];
    if (CALLS[kind]) stack.push({ function: CALLS[kind], module: '/usr/lib/x86_64-linux-gnu/libc.so.6', offset: 0x9000 + i % 97, pc: 0x7f0000009000 });
    for (let d = 0; d < depth; d++) {
      const shared = d >= depth - 4;  // outer frames are shared, so the flame graph has structure
      const name = shared ? `service::Layer${depth - d}::run()` : `module${i % 40}::Handler${(i * 7 + d) % 500}::step${d}()`;
      stack.push(frame(name, 0x1000 + ((i * 31 + d) % 65536)));
    }
    const count = 1 + Math.floor(rand() * 500);
    const mean = 50000 + Math.floor(rand() * 5e6);
    const occurrences = [];
    for (let k = 0; k < Math.min(count, 3); k++) {
      const tid = 1000 + Math.floor(rand() * 16);
      occurrences.push({ pid: 777, tid, thread: `worker-${tid - 1000}`, start_unix_ns: t0 + Math.floor(rand() * 60e9),
        duration_ns: Math.floor(mean * (0.5 + rand())), task: `task-${i % 50}` });
    }
    occurrences.sort((a, b) => a.start_unix_ns - b.start_unix_ns);
    hotspots.push({ kind, count, total_ns: count * mean, max_ns: mean * 3, p50_ns: mean, p99_ns: mean * 2,
      threads: [...new Set(occurrences.map((o) => o.thread))], holders: kind === 'mutex' ? ['flusher'] : [],
      tasks: [`task-${i % 50}`], functions: CALLS[kind] ? [CALLS[kind]] : [], fd_types: [],
      path: ['request', 'batch', ''][i % 3], allowed: i % 50 === 0, allow_reason: i % 50 === 0 ? 'generated allow rule' : '',
      exe, pids: [777], stack, cpu_ns: 0, runqueue_ns: 0, offcpu_ns: 0, occurrences, is_new: true });
  }
  hotspots.sort((a, b) => b.total_ns - a.total_ns);
  const sum = (f) => hotspots.reduce((s, h) => s + f(h), 0);
  const blocking = (h) => h.kind !== 'stall';
  return {
    version: 1,
    processes: [{ pid: 777, ppid: 1, exe, argv: [exe], hostname: 'gen', start_unix_ns: t0, threshold_ns: 1000000,
      stall_threshold_ns: 20000000, forked_child: false, connected: false, said_goodbye: true, end_reason: 'exit',
      exit_status: 0, events: sum((h) => h.count), dropped: 0, dropped_queue_full: 0, dropped_no_collector: 0,
      dropped_too_deep: 0, stalls_suppressed: 0 }],
    hotspots,
    paths: ['', 'batch', 'request'].map((p) => {
      const hs = hotspots.filter((h) => h.path === p);
      return { path: p, blocking_events: hs.filter(blocking).reduce((s, h) => s + h.count, 0),
        blocked_ns: hs.filter(blocking).reduce((s, h) => s + h.total_ns, 0),
        stalls: hs.filter((h) => !blocking(h)).reduce((s, h) => s + h.count, 0),
        stalled_ns: hs.filter((h) => !blocking(h)).reduce((s, h) => s + h.total_ns, 0) };
    }),
    summary: { blocking_events: sum((h) => (blocking(h) ? h.count : 0)), blocked_ns: sum((h) => (blocking(h) ? h.total_ns : 0)),
      stalls: sum((h) => (blocking(h) ? 0 : h.count)), stalled_ns: sum((h) => (blocking(h) ? 0 : h.total_ns)),
      allowed_events: sum((h) => (h.allowed ? h.count : 0)), dropped: 0 },
    verdict: { failed: false, reasons: [] },
  };
}
