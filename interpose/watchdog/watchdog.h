// The stall and hang watchdog: one thread of blockwatch's own ("bw-watchdog")
// that ticks every few milliseconds, notices a worker whose task or loop turn has
// not changed for the stall threshold, samples its stack while it stalls
// (thread_sampler.h) and reports kind `stall` records at 1x, 2x and 4x the
// threshold; past the hang threshold it dumps every thread's stack (kind `hang`)
// and flushes the agent. Task begin/end pay nothing for this: the watchdog only
// reads the counters the slots already keep (thread_state.h).
//
// The pure parts (the per-slot state machine, the report budget, /proc parsers)
// are declared here for unit tests (watchdog_test.cc).
#pragma once

#include <cstdint>

namespace blockwatch::interpose {

// --- lifecycle (library constructor, exit, fork) -----------------------------

// Start the watchdog thread when stall detection (BLOCKWATCH_STALL_THRESHOLD > 0)
// or hang detection (BLOCKWATCH_HANG_THRESHOLD > 0, on by default) is on. Call
// after agent_start(). Not hook path; allocates.
void watchdog_start();

// Stop the thread and wait for it (bounded) so no record is submitted after the
// agent's final flush. Call before agent_shutdown(). Safe to call twice.
void watchdog_stop();

// In a fork() child (after agent_after_fork_child): the parent's watchdog thread
// does not exist here. Restarted exactly when the agent restarted (fork children
// are always watched; not when the parent was already shutting down).
void watchdog_after_fork_child();

// --- settings -----------------------------------------------------------------

struct WatchdogSettings {
  int64_t stall_threshold_ns = 0;    // 0: stalls off
  int64_t hang_threshold_ns = 0;     // 0: hangs off
  int stall_signal = 0;              // BLOCKWATCH_STALL_SIGNAL, default SIGRTMIN+7
  int stall_budget_per_minute = 60;  // BLOCKWATCH_STALL_BUDGET, 0: no limit
  int64_t tick_ns = 0;               // while some worker is busy; none is: parked
};

// How often the watchdog looks while some worker is busy: a quarter of the
// stall threshold, clamped to [1 ms, 10 ms]; with stalls off (hangs only)
// hang/40 clamped to [10 ms, 100 ms]. A stall is reported at most one tick late.
int64_t watchdog_tick_ns(int64_t stall_threshold_ns, int64_t hang_threshold_ns);
// While no worker is busy the watchdog does not tick at all: it parks until a
// thread becomes busy and wakes it (core/watchdog_wake.h), so an idle service
// costs no wake-ups and a task that begins after a quiet spell is seen at once.

// Config plus the watchdog's own variables (signal, budget), from the environment.
WatchdogSettings watchdog_settings_from_environment();

// --- the per-worker state machine -----------------------------------------------

// What identifies one task or one loop turn: it changes when either begins.
struct ActivityKey {
  uint64_t task_seq = 0;
  uint64_t loop_turns = 0;
  bool operator==(const ActivityKey&) const = default;
};

// What one tick read from a slot.
struct SlotView {
  int32_t tid = 0;  // 0: free slot
  bool worker = false;
  bool in_task = false;  // task_depth > 0
  bool probed = false;   // task-entry probes give this thread's task boundaries
  bool idle = false;     // inside the executor's idle wait
  ActivityKey key;
};

// The watchdog's memory of one slot between ticks.
struct StallTracker {
  int32_t tid = 0;
  bool tracking = false;  // the slot is busy with `key` since first_seen_mono_ns
  ActivityKey key;
  int64_t first_seen_mono_ns = 0;
  uint8_t samples_sent = 0;  // bit set of 1, 2, 4
  bool hang_dumped = false;
  bool late_baseline_taken = false;
  // A tick saw the thread inside a hooked blocking call during this task/turn: it
  // blocked, so its time off CPU is not all run-queue wait.
  bool blocked_seen = false;
  bool suppressed = false;  // over budget: later samples of this stall are skipped
  uint64_t stall_id = 0;    // 0 until the first sample
  // Baselines for the deltas a stall reports.
  int64_t cpu_base_ns = 0;
  int64_t runqueue_base_ns = 0;        // read at the second tick
  int64_t first_window_offcpu_ns = 0;  // off CPU between the first and second tick
  int64_t minor_faults_base = 0;
  int64_t major_faults_base = 0;
  int64_t voluntary_switches_base = -1;
};

struct TickDecision {
  bool started = false;        // a new task/turn: take the cheap baseline (CPU time)
  bool late_baseline = false;  // second tick of it: read schedstat/stat baselines
  uint32_t sample = 0;         // 1, 2 or 4: report a stall sample now
  bool hang = false;           // dump every thread now
  int64_t elapsed_ns = 0;      // now - first_seen (a lower bound of the duration)
};

struct Thresholds {
  int64_t stall_ns = 0;
  int64_t hang_ns = 0;
};

// A worker is busy when in a task (API), or between a task entry or the end
// of an idle wait and the next idle wait (probes, loop turns). Pure.
bool slot_is_busy(const SlotView& view);

// What a stall seen in `view` is one of: a task's when the task boundaries are
// known (API task, or probes), else a loop turn's. blockwatch.wire.StallScope.
uint8_t stall_scope_of(const SlotView& view);

// Advances `tracker` by one tick. Pure: no clock, no I/O.
TickDecision observe_slot(StallTracker& tracker, const SlotView& view, int64_t now_mono_ns,
                          const Thresholds& thresholds);

// Per-minute report budget: at most `per_minute` stalls admitted in any window of
// one minute starting at the first stall after the previous window ended.
class StallBudget {
 public:
  constexpr explicit StallBudget(int per_minute) : per_minute_(per_minute) {}
  // True: report this stall. False: counted as suppressed.
  bool admit(int64_t now_mono_ns);
  uint64_t suppressed() const { return suppressed_; }

 private:
  int per_minute_;
  int64_t window_start_ns_ = 0;
  int used_ = 0;
  bool window_open_ = false;
  uint64_t suppressed_ = 0;
};

// --- /proc parsers (pure) ---------------------------------------------------------

struct ThreadSchedStat {
  int64_t cpu_ns = 0;
  int64_t runqueue_ns = 0;
};
// "/proc/self/task/TID/schedstat": "<on-cpu ns> <run-queue ns> <timeslices>".
bool parse_schedstat(const char* text, ThreadSchedStat* out);

struct ThreadFaults {
  int64_t minor = 0;
  int64_t major = 0;
  char state = 0;  // 'R' running or runnable, 'S' sleeping, 'D' in I/O, ...
};
// "/proc/self/task/TID/stat": fields 10 (minflt) and 12 (majflt), counted after
// the parenthesised name (which may itself hold spaces and parentheses).
bool parse_stat_faults(const char* text, ThreadFaults* out);

// "/proc/self/task/TID/status": the voluntary_ctxt_switches line (how often the
// thread blocked). -1 when absent.
int64_t parse_voluntary_switches(const char* text);

// The run-queue time a stall reports. schedstat adds a wait only when it ends,
// so a thread waiting for a CPU right now shows too little: when the thread
// never blocked since the baseline (no voluntary switch) and is runnable, every
// nanosecond it was not on a CPU was spent waiting for one. Never more than
// duration - cpu.
int64_t stall_runqueue_ns(int64_t duration_ns, int64_t cpu_ns, int64_t schedstat_runqueue_ns,
                          bool never_blocked_and_runnable);

}  // namespace blockwatch::interpose
