// What preload_hardening_target (hardening_target.cc) and its driver
// (hardening_test.cc) agree on: scenario sizes and the worker rule.
#pragma once

#include <cstddef>

namespace preload_target {

// signal_first_hook: threads whose first hooked call is in a signal handler.
inline constexpr int kFirstHookThreads = 20;
// A rule with a comma in its regex (issue 10, 7a) and a bound the DFA must build.
inline constexpr char kFirstHookRule[] = "name:(wq|xq)-[0-9]{1,4}";

// reported_in_handler: signals to a worker busy in dl_iterate_phdr's callback
// (loader lock held) and malloc, whose handler makes a reported blocking call.
inline constexpr int kReportedHandlerSignals = 100;
// reported_at_loader_lock_edges: the same, the worker taking and releasing the
// loader's lock in a loop (before phdr_cache.h: a deadlock within ~500 signals).
inline constexpr int kLoaderLockEdgeSignals = 1000;

// small_stack: a worker with a 64 KiB stack makes reported calls with this much
// of it left; a reported call may use kStackBudgetBytes of it.
inline constexpr size_t kSmallStackBytes = 64 * 1024;
inline constexpr size_t kSmallStackLeftBytes = 5 * 1024;
inline constexpr int kSmallStackCalls = 5;
inline constexpr size_t kStackBudgetBytes = 1024;
// small_default_stack: nesting of the template argument that makes the worker's
// call site's mangled name 906 characters long (libiberty demangles up to 1024).
inline constexpr int kDeepNameNesting = 120;

// more_threads_than_slots: live worker threads at once, beyond the library's
// 4096 thread slots (kMaxThreadSlots; the main thread takes one too).
inline constexpr int kLiveWorkerThreads = 4096 + 8;
// raw_exit_threads: threads that end through a raw SYS_exit (no TLS
// destructors) after a hooked call, one after another, more than there are slots.
inline constexpr int kRawExitThreads = 4096 + 200;

// unique_labels: strict-mode reports, each in a task with a label never used
// before; RSS is measured after the warm-up and again after the rest.
inline constexpr int kWarmUpLabels = 20'000;
inline constexpr int kUniqueLabels = 200'000;

}  // namespace preload_target
