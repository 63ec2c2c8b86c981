// The aggregated answer of one run: what every report writer renders and what the
// JSON report serialises (schema: docs/report-schema.md). Built by the aggregator
// (aggregate.*) from decoded wire frames, or read back from a JSON report.
//
// Plain data. Times are nanoseconds; names carry their unit.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace blockwatch::collector {

struct StackFrame {
  std::string function;  // demangled; "0x..." when unknown
  std::string module;    // path of the object file; empty when unknown
  uint64_t offset = 0;   // pc - module load bias
  uint64_t pc = 0;       // address in the process (not stable across runs)
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
  // Stalls only: how the stalled time was spent, summed over occurrences.
  int64_t cpu_ns = 0;
  int64_t runqueue_ns = 0;
  int64_t offcpu_ns = 0;
  std::vector<Occurrence> occurrences;  // at most kMaxOccurrences, earliest first
  bool is_new = true;          // false when matched by the --baseline report
};

inline constexpr size_t kMaxOccurrences = 200;

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
