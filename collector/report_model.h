// The aggregated answer of one run: what every report writer renders and what the
// JSON report serialises (schema: docs/report-schema.md). Built by the aggregator
// (aggregate.*) from decoded wire frames, or read back from a JSON report.
//
// Plain data. Times are nanoseconds; names carry their unit.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/builtin_rules.h"

namespace blockwatch::collector {

// One frame of a stack. A return address inside inlined code gives several
// frames with the same pc, module and offset: the inlined functions first
// (inlined = true), innermost first, then the function they were inlined into.
struct StackFrame {
  std::string function;  // demangled; "0x..." when unknown
  std::string module;    // path of the object file; empty when unknown
  uint64_t offset = 0;   // pc - module load bias
  uint64_t pc = 0;       // address in the process (not stable across runs)
  std::string file;      // source file (from DWARF), "" when unknown
  uint32_t line = 0;     // source line, 0 when unknown
  uint32_t function_line = 0;  // line of the function's declaration, 0 when unknown
  bool inlined = false;  // inlined into the next frame
  // The module's file on disk is another build than the one that ran and no
  // copy with its build-id was found: `function` is not named from it.
  bool build_id_mismatch = false;
  // The module has no debug info anywhere the collector looked: no file:line,
  // and functions only from its symbol tables (Symbolization::no_debug_info).
  bool no_debug_info = false;
};

// A task-entry probe the injected library installed or refused (wire TaskProbe).
struct TaskProbe {
  std::string rule;      // the task-entry rule
  std::string function;  // the demangled symbol it matched
  std::string module;
  bool installed = false;
  std::string refused;   // why not
};

struct ProcessInfo {
  int pid = 0;
  int ppid = 0;
  std::string exe;
  std::vector<std::string> argv;
  std::string hostname;
  int64_t start_unix_ns = 0;
  int64_t threshold_ns = 0;
  int64_t stall_threshold_ns = 0;
  bool forked_child = false;
  bool connected = false;      // live collector: stream still open
  bool said_goodbye = false;   // flushed and closed cleanly
  std::string end_reason;      // goodbye reason, "disconnected", or "" while live
  int exit_status = 0;
  uint64_t events = 0;         // records received
  uint64_t dropped = 0;        // sum of every drop counter the process reported
  uint64_t dropped_queue_full = 0;
  uint64_t dropped_no_collector = 0;
  uint64_t dropped_too_deep = 0;
  uint64_t threads_unwatched = 0;  // found every thread slot of the library taken
  uint64_t stalls_suppressed = 0;
  std::vector<TaskProbe> task_probes;  // task-entry probes at start
  std::string task_probes_note;        // probes off, not installed, or what they miss
};

// One occurrence kept for the timeline (capped per hotspot; count is exact).
struct Occurrence {
  int pid = 0;
  int tid = 0;
  std::string thread;
  int64_t start_unix_ns = 0;
  int64_t duration_ns = 0;
  std::string task;
};

// The blocking call a stall was inside when the watchdog could not sample it:
// the stall shows this call's stack (Hotspot::stack_source "blocking_call").
struct BlockingCall {
  std::string kind;      // the call's hotspot kind: "sleep", "read", "mutex", ...
  std::string function;  // the interposed call: "nanosleep", "read", ...
};

struct Hotspot {
  std::string kind;            // DESIGN.md kind names: "mutex", "fsync", "stall", ...
  // Stalls: "task" (one task ran too long: its boundaries were known) or "turn"
  // (only loop turns were known: the turn may hold many short tasks). "" for
  // other kinds, and for stalls from libraries or reports that did not say.
  std::string scope;
  uint64_t count = 0;
  int64_t total_ns = 0;
  int64_t max_ns = 0;
  int64_t p50_ns = 0;
  int64_t p99_ns = 0;
  std::vector<std::string> threads;  // names of the blocked threads
  std::vector<std::string> holders;  // names of threads that held the lock
  std::vector<std::string> tasks;    // task labels seen
  std::vector<std::string> functions;  // interposed calls: "pthread_mutex_lock"
  std::vector<std::string> fd_types;   // I/O kinds: "regular", "socket", ...
  std::string path;            // the config path this stack belongs to, or ""
  bool allowed = false;
  std::string allow_reason;
  std::string exe;             // hotspots merge across processes of one exe
  std::vector<int> pids;
  std::vector<StackFrame> stack;  // innermost first
  // Where `stack` comes from: "own" (captured with the blocking call, or sampled
  // during the stall), "blocking_call" (a stall the watchdog could not sample,
  // shown with the stack of the blocking call it was inside: see caused_by), or
  // "none" (no stack). "" in reports written before this field existed.
  std::string stack_source;
  BlockingCall caused_by;         // stack_source "blocking_call" only
  // Stalls: the code the task ran, named from the stack: the first frame inside
  // the innermost task-entry function (a probed rule's) that is neither the
  // executor's nor the language runtime's; "" when the stack holds no entry.
  std::string task_function;
  // Stalls only: how the stalled time was spent, summed over occurrences.
  int64_t cpu_ns = 0;
  int64_t runqueue_ns = 0;
  int64_t offcpu_ns = 0;
  std::vector<Occurrence> occurrences;  // at most kMaxOccurrences, earliest first
  bool is_new = true;          // false when matched by the --baseline report
};

inline constexpr size_t kMaxOccurrences = 200;

// The frame a user wrote: the innermost one that is not libc, pthread, the
// loader, libstdc++, Rust std or blockwatch (common/builtin_rules.h); the
// innermost frame when all are; null for an empty stack.
inline const StackFrame* top_user_frame(const Hotspot& hotspot) {
  for (const StackFrame& frame : hotspot.stack) {
    if (!builtin_rules::is_system_frame(frame.function, frame.module)) return &frame;
  }
  return hotspot.stack.empty() ? nullptr : &hotspot.stack.front();
}

// How long the tasks of one task entry ran (wire TaskStats, summed over the
// processes of one exe). Probe-entered tasks are counted exactly and a random 1
// in N of them is timed (sampled timing), so the durations are those of the
// `tasks_timed` timed tasks and `over_1ms` is an estimate unless
// `over_1ms_exact`. API tasks (bw_task_begin/end) are all timed.
struct TaskStats {
  std::string source;    // "probe" (a task-entry probe) or "api" (bw_task_begin/end)
  std::string rule;      // probe: the task-entry rule
  std::string function;  // probe: the entry function it matched (not the task's own code)
  std::string label;     // api: the task label ("" when none was given)
  std::string exe;
  std::vector<int> pids;
  uint64_t tasks_total = 0;  // exact
  uint64_t tasks_timed = 0;
  // Of the timed tasks: p50/p99 are the upper bound of their histogram bucket
  // (at most ~25% over), capped at max; max is exact.
  int64_t p50_ns = 0;
  int64_t p99_ns = 0;
  int64_t max_ns = 0;
  int64_t timed_sum_ns = 0;      // the timed tasks' durations added up
  uint64_t timed_over_1ms = 0;   // timed tasks over 1 ms (exact count)
  uint64_t over_1ms = 0;         // all tasks over 1 ms: timed_over_1ms * total / timed
  bool over_1ms_exact = false;   // every task was timed: over_1ms is a count, not an estimate
  std::vector<uint64_t> buckets;  // timed tasks per common/task_histogram.h bucket
};

struct PathTotals {
  std::string path;            // "" = not in any path
  uint64_t blocking_events = 0;
  int64_t blocked_ns = 0;
  uint64_t stalls = 0;
  int64_t stalled_ns = 0;
};

struct Verdict {
  bool failed = false;
  std::vector<std::string> reasons;  // one line per broken --fail-on rule
};

struct Report {
  int version = 1;
  std::vector<ProcessInfo> processes;
  std::vector<Hotspot> hotspots;     // sorted by total_ns, largest first
  std::vector<PathTotals> paths;
  std::vector<TaskStats> tasks;      // per task entry; most tasks over 1 ms first
  uint64_t task_labels_dropped = 0;  // API tasks not in `tasks` (a thread's label table was full)
  uint64_t blocking_events = 0;      // summary
  int64_t blocked_ns = 0;
  uint64_t stalls = 0;
  int64_t stalled_ns = 0;
  uint64_t allowed_events = 0;
  uint64_t dropped = 0;
  uint64_t threads_unwatched = 0;  // summary: sum over processes
  Verdict verdict;
};

}  // namespace blockwatch::collector
