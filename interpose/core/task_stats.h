// Per-task time by sampled timing (issue 9 item 3). Every task is counted
// exactly; a pseudo-random 1 in N (kTaskTimingEveryDefault, or
// BLOCKWATCH_TASK_TIMING_EVERY) of the tasks a task-entry probe starts is
// timed, so the common probe path adds only a decrement and a branch (a clock
// read costs 7-40 ns here, more than the whole probe budget of 5 ns). A timed
// task starts at its entry and ends at the thread's next task entry; the
// thread's idle waits in between do not count (Asio's do_run_one, the probed
// entry, may wait for work before it runs the handler: the handler's time is
// what counts, not the wait). API tasks (bw_task_begin/end, TaskScope,
// Asio handler tracking) are explicit calls: every one is timed.
//
// Durations go into fixed log-linear histograms (common/task_histogram.h), one
// per (thread slot, probe) and per (thread slot, API label): one writer each
// (the slot's owner), no allocation, no lock. The sender sums them over the
// slots (task_stats_snapshot) and ships the cumulative totals in Counters.
// Slots keep their counts when a thread ends, so the totals only grow.
//
// Hook-path code: everything inline here runs in a task-entry probe, compiled
// with -mgeneral-regs-only (probes/probe_hook.cc): integer arithmetic only, no
// allocation, no lock, async-signal-safe. BW_PROBE_INLINE (always_inline): an
// out-of-line copy emitted by another object (compiled with vector registers)
// could be the one the linker keeps. A signal handler that itself runs a
// probed function on the same thread could lose one count or mis-time one task
// (single-writer plain stores); it cannot corrupt memory.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "common/task_histogram.h"
#include "interpose/base/timebase.h"

#define BW_PROBE_INLINE __attribute__((always_inline)) inline

namespace blockwatch::interpose {

// Time 1 in this many probe-entered tasks, on average (per-thread
// pseudo-random countdown, so no periodic task pattern is over- or
// under-sampled). BLOCKWATCH_TASK_TIMING_EVERY overrides it; 1 times every task.
inline constexpr uint32_t kTaskTimingEveryDefault = 16;
inline constexpr int kTaskProbeStats = 8;    // task-entry rules with their own counts; later rules: task_seq only
inline constexpr int kTaskLabelStats = 8;    // distinct API labels per thread slot
inline constexpr int kTaskLabelBytes = 48;   // longer labels are cut
inline constexpr int kTaskApiNesting = 8;    // = thread_state.h kMaxTaskNesting

// Probe ids are task-entry rule indexes (task_probes.h): the counts are per rule.

// One histogram; one writer (the slot's owner), read by the sender.
struct TaskHistogram {
  std::atomic<uint64_t> timed{0};
  std::atomic<uint64_t> over_1ms{0};
  std::atomic<int64_t> max_ns{0};
  std::atomic<int64_t> sum_ns{0};
  std::atomic<uint32_t> buckets[task_histogram::kBuckets] = {};
};

// The hot part, inside ThreadSlot (thread_state.h). Owner-written; the sender
// reads probe_tasks only.
struct TaskTimer {
  uint32_t countdown = 0;   // tasks until the next timed one; 0: due now (or not seeded)
  uint32_t rng = 0;         // xorshift32 state, seeded at the first timed task
  int32_t timing_probe = -1;  // probe id of the task being timed, -1: none
  int64_t start_ticks = 0;   // the timed task's start, or its last idle wait's end
  int64_t run_ticks = 0;     // its time before its idle waits
  bool idle = false;         // the timed task is in an idle wait
  // Start of a wait not classified yet (wait_classifier.h kUnknown) during the
  // timed task; 0: none. Found idle at its end, it did not count either.
  int64_t unclassified_wait_ticks = 0;
  std::atomic<uint64_t> probe_tasks[kTaskProbeStats] = {};  // exact, every entry
  int64_t api_start_ticks[kTaskApiNesting] = {};
};

// Tick differences to ns without floating point (the probe may not touch a
// vector register): ns = ticks * g_task_ns_per_tick_q32 >> 32. Set by
// task_stats_init and refreshed by the sender (task_stats_snapshot).
extern std::atomic<uint64_t> g_task_ns_per_tick_q32;
extern uint32_t g_task_timing_every;  // written once, by task_stats_init

BW_PROBE_INLINE int64_t task_ticks_to_ns(int64_t elapsed_ticks) {
  if (elapsed_ticks <= 0) return 0;
  const unsigned __int128 product = static_cast<unsigned __int128>(elapsed_ticks) *
                                    g_task_ns_per_tick_q32.load(std::memory_order_relaxed);
  return static_cast<int64_t>(product >> 32);
}

// Count one duration. Single writer. Integer only.
BW_PROBE_INLINE void task_histogram_add(TaskHistogram& h, int64_t ns) {
  h.timed.store(h.timed.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  if (ns > task_histogram::kOneMillisecondNs) {
    h.over_1ms.store(h.over_1ms.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  if (ns > h.max_ns.load(std::memory_order_relaxed)) h.max_ns.store(ns, std::memory_order_relaxed);
  h.sum_ns.store(h.sum_ns.load(std::memory_order_relaxed) + ns, std::memory_order_relaxed);
  std::atomic<uint32_t>& bucket = h.buckets[task_histogram::bucket_of(ns)];
  bucket.store(bucket.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

// An API label's counts on one slot.
struct TaskLabelStats {
  std::atomic<uint8_t> used{0};  // 1 once label is written (release); never unset
  char label[kTaskLabelBytes] = {};
  std::atomic<uint64_t> total{0};
  TaskHistogram histogram;
};

// One thread slot's histograms, indexed like g_thread_slots. Zero-initialised
// BSS: the slots never used cost no memory.
struct SlotTaskStats {
  TaskHistogram probes[kTaskProbeStats];
  TaskLabelStats labels[kTaskLabelStats];
  std::atomic<uint64_t> labels_dropped{0};
};
extern SlotTaskStats g_task_stats[];

// The next countdown: uniform in [1, 2N-1] (mean N). Integer only.
BW_PROBE_INLINE uint32_t task_next_countdown(TaskTimer& timer) {
  uint32_t x = timer.rng;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  timer.rng = x;
  const uint32_t span = 2 * g_task_timing_every - 1;
  return 1 + static_cast<uint32_t>((static_cast<uint64_t>(x) * span) >> 32);
}

// The timed task (if any) ends now: its duration goes into its histogram.
BW_PROBE_INLINE void task_timer_finish(TaskTimer& timer, int slot_index, int64_t now_ticks) {
  if (timer.timing_probe < 0) return;
  const int64_t ticks = timer.run_ticks + (timer.idle ? 0 : now_ticks - timer.start_ticks);
  task_histogram_add(g_task_stats[slot_index].probes[timer.timing_probe], task_ticks_to_ns(ticks));
  timer.timing_probe = -1;
}

// The thread enters (idle_now) or leaves an idle wait: a timed task's clock
// pauses meanwhile. Owner thread; integer only.
BW_PROBE_INLINE void task_timer_idle(TaskTimer& timer, bool idle_now) {
  if (timer.timing_probe < 0 || timer.idle == idle_now) return;
  const int64_t now = hook_clock_ticks();
  if (idle_now) {
    timer.run_ticks += now - timer.start_ticks;
  } else {
    timer.start_ticks = now;
  }
  timer.idle = idle_now;
}

// A wait whose idle verdict is not known yet begins (wait_classifier.cc):
// remember when, if a task is being timed. Owner thread; integer only.
BW_PROBE_INLINE void task_timer_unclassified_wait_begin(TaskTimer& timer) {
  if (timer.timing_probe >= 0 && !timer.idle) timer.unclassified_wait_ticks = hook_clock_ticks();
}

// That wait ended; `was_idle`: the classifier found it an idle wait, so the
// timed task's clock stopped at its start.
BW_PROBE_INLINE void task_timer_unclassified_wait_end(TaskTimer& timer, bool was_idle) {
  const int64_t wait_start = timer.unclassified_wait_ticks;
  if (wait_start == 0) return;
  timer.unclassified_wait_ticks = 0;
  if (!was_idle || timer.timing_probe < 0 || timer.idle) return;
  timer.run_ticks += wait_start - timer.start_ticks;
  timer.start_ticks = hook_clock_ticks();
}

// A probe entry, after the exact count: does it need the clock (a timed task
// ends here, or this task is the one to time)? The common answer is no, at the
// cost of a decrement and a branch.
BW_PROBE_INLINE bool task_timer_entry_needs_clock(TaskTimer& timer) {
  const uint32_t countdown = timer.countdown;
  if (__builtin_expect(countdown > 1, 1)) {
    timer.countdown = countdown - 1;
    return timer.timing_probe >= 0;
  }
  timer.countdown = 0;
  return true;
}

// The rest of a probe entry that needs the clock: end the timed task, and
// start timing this one if its turn came.
BW_PROBE_INLINE void task_timer_entry_clock(TaskTimer& timer, int slot_index, uint32_t probe_id,
                                   int32_t tid) {
  const int64_t now = hook_clock_ticks();
  task_timer_finish(timer, slot_index, now);
  if (timer.countdown != 0) return;
  if (timer.rng == 0) {
    // The thread's first probe entry: seed, and let the countdown pick the
    // first timed task too (timing every thread's first task would favour it).
    timer.rng = (static_cast<uint32_t>(now) ^ (static_cast<uint32_t>(tid) << 7)) | 1;
    timer.countdown = task_next_countdown(timer);
    if (timer.countdown > 1) return;
  }
  timer.countdown = task_next_countdown(timer);
  if (probe_id >= static_cast<uint32_t>(kTaskProbeStats)) return;
  timer.timing_probe = static_cast<int32_t>(probe_id);
  timer.start_ticks = now;
  timer.run_ticks = 0;
  timer.idle = false;
  timer.unclassified_wait_ticks = 0;
}

// API tasks (thread_state.cc task_begin/task_end). `depth` is the nesting
// level the task had (0 = outermost). No allocation, no lock, async-signal-safe.
void task_stats_api_begin(TaskTimer& timer, int depth);
void task_stats_api_end(TaskTimer& timer, int slot_index, int depth, const char* label);

// Library constructor, after timebase_init: N (0 or absent: the default) and
// the tick conversion.
void task_stats_init(uint32_t timing_every);

// One (process-wide) line of the snapshot: a probe, or an API label.
struct TaskStatsLine {
  int probe_id = -1;  // >= 0: the probe's id, its rule's index (task_probes.h); else an API label
  std::string rule;   // a probe's rule text (the sender fills it in)
  std::string label;  // API label ("" for a probe)
  uint64_t tasks_total = 0;
  uint64_t tasks_timed = 0;
  uint64_t timed_over_1ms = 0;
  int64_t max_ns = 0;
  int64_t sum_ns = 0;  // of the timed tasks
  std::vector<uint64_t> buckets;  // trailing zeros cut
  bool operator==(const TaskStatsLine&) const = default;
};

// Sums every slot's counts (cumulative since start or fork), probes first.
// `labels_dropped`: API tasks whose label found its slot's table full (counted,
// not timed). Sender thread; allocates. Also refreshes the tick conversion.
std::vector<TaskStatsLine> task_stats_snapshot(uint64_t* labels_dropped);

// In the child after fork(): the counts restart (a new process, a new stream).
void task_stats_after_fork_child();

}  // namespace blockwatch::interpose
